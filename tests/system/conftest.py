"""What the system tests share: redis-server and the tansu broker on free loopback ports, started
by scripts/services.sh and stopped by PID when the module's tests are done."""
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVICES = os.path.join(ROOT, "scripts", "services.sh")


@contextlib.contextmanager
def running_services(prefix, redis_password=None):
    """Yields (state directory, environment for clients, {"redis": port, "tansu": port}).

    The environment points LD_LIBRARY_PATH at the current librdkafka tansu needs."""
    state = tempfile.mkdtemp(prefix=prefix)
    redis_env = dict(os.environ, REDIS_PASSWORD=redis_password) if redis_password else None
    try:
        subprocess.run([SERVICES, "start-redis", state], check=True, env=redis_env)
        subprocess.run([SERVICES, "start-tansu", state], check=True)
        env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(state, "librdkafka"))
        ports = {name: int(open(os.path.join(state, f"{name}.port")).read()) for name in ("redis", "tansu")}
        yield state, env, ports
    finally:
        subprocess.run([SERVICES, "stop", state], check=False)


def free_port():
    """A loopback port nothing listens on (for servers the tests start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def services(request):
    """The module's servers. Their state directory (logs, offline output) is removed when every
    test of the module passed and kept for a look when one failed."""
    failed = request.session.testsfailed
    with running_services(f"tessera-{request.module.__name__.removeprefix('test_')}-") as s:
        yield s
    if request.session.testsfailed == failed:
        shutil.rmtree(s[0], ignore_errors=True)

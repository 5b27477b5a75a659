"""Secrets (docs/design.md, "Bad input and faults"): the Redis password and librdkafka secrets come from the environment or
files, never from the command line, and never appear in logs, the stats line, errors, metrics or
anything Tessera writes.

redis-server runs with a password (requirepass); the worker gets it from TESSERA_REDIS_PASSWORD
and a second secret as TESSERA_KAFKA_SASL_PASSWORD (librdkafka's `sasl.password`: accepted, and
unused over tansu's PLAINTEXT listener). The worker runs with every log on: Tessera's at debug,
librdkafka's own debug output (`debug=all`, which dumps its configuration), a stats line every
second, and the Prometheus endpoint scraped while it works. Then the failure paths: a wrong
password, none at all, a password in the Redis URL, a secret on the command line.
"""
import os
import secrets
import subprocess
import threading
import time
import urllib.request

import pytest
from conftest import free_port, running_services
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESSERA = os.environ.get("TESSERA_BIN", os.path.join(ROOT, ".build", "release", "tessera"))
TOPOLOGY = os.path.join(ROOT, "topologies", "growth.yaml")
EVENTS, USERS = 3_000, 100

REDIS_SECRET = "redis-" + secrets.token_hex(16)
KAFKA_SECRET = "kafka-" + secrets.token_hex(16)


def assert_no_secret(text, *extra):
    """Neither secret (nor any of `extra`) in `text` (str or bytes)."""
    for secret in (REDIS_SECRET, KAFKA_SECRET) + extra:
        needle = secret.encode() if isinstance(text, bytes) else secret
        assert needle not in text, f"a secret leaked: …{text[max(0, text.find(needle) - 300):text.find(needle) + 100]}…"


def assert_no_secret_in_files(directory):
    for folder, _, files in os.walk(directory):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                assert_no_secret(f.read())


@pytest.fixture(scope="module")
def services():
    with running_services("tessera-secrets-", redis_password=REDIS_SECRET) as (state, env, ports):
        # Secrets are only ever given per command, below.
        yield state, {k: v for k, v in env.items() if not k.startswith("TESSERA_")}, ports


def worker_args(ports, offline, group, *extra):
    return [TESSERA, "run", "--topology", TOPOLOGY, "--brokers", f"127.0.0.1:{ports['tansu']}",
            "--redis", f"redis://127.0.0.1:{ports['redis']}", "--offline-dir", offline, "--group", group,
            "--until-end", "--kafka-config", "session.timeout.ms=6000", "--stats-seconds", "1", "--log-level", "debug", *extra]


def with_secrets(env, redis_password=REDIS_SECRET):
    env = dict(env, TESSERA_KAFKA_SASL_PASSWORD=KAFKA_SECRET)
    if redis_password is not None:
        env["TESSERA_REDIS_PASSWORD"] = redis_password
    return env


@pytest.fixture(scope="module")
def worker_run(services):
    """The reference orders produced and drained by a worker with every log on and both secrets."""
    state, env, ports = services
    produced = subprocess.run([TESSERA, "produce", "--brokers", f"127.0.0.1:{ports['tansu']}", "--topic", "orders",
                               "--events", str(EVENTS), "--users", str(USERS), "--partitions", "2"],
                              env=with_secrets(env), capture_output=True, text=True, timeout=120)
    assert produced.returncode == 0, produced.stderr[-3000:]
    offline = os.path.join(state, "offline")
    metrics_port = free_port()
    run_env = dict(with_secrets(env), TESSERA_KAFKA_DEBUG="all")
    p = subprocess.Popen(worker_args(ports, offline, "secrets", "--metrics-port", str(metrics_port)),
                         env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    scraped = []

    def scrape():
        while p.poll() is None:
            for path in ("/metrics", "/health", "/ready"):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}{path}", timeout=2) as response:
                        scraped.append(response.read().decode())
                except OSError as e:  # not listening yet, or 503 while not ready
                    scraped.append(getattr(e, "read", lambda: b"")().decode(errors="replace"))
            time.sleep(0.2)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    try:
        stdout, stderr = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            p.kill()
        scraper.join()
    return {"produced": produced, "returncode": p.returncode, "stdout": stdout, "stderr": stderr,
            "scraped": scraped, "offline": offline}


def test_worker_with_secrets_succeeds_and_leaks_nothing(services, worker_run):
    state, env, ports = services
    run = worker_run
    assert run["returncode"] == 0, run["stderr"][-4000:]
    # Every surface was exercised: Tessera's debug log and stats lines, librdkafka's debug log
    # with its configuration (which shows the secret property was set), the metrics endpoint.
    assert '"level":"debug"' in run["stderr"]
    assert "events/s" in run["stderr"]
    assert "sasl.password = [redacted]" in run["stderr"], "librdkafka did not dump its configuration"
    assert any("tessera_" in text for text in run["scraped"]), run["scraped"][-3:]
    for text in (run["produced"].stdout, run["produced"].stderr, run["stdout"], run["stderr"], *run["scraped"]):
        assert_no_secret(text)
    assert_no_secret_in_files(run["offline"])
    # The run did its work: Redis (behind its password) holds a row per user.
    r = redis.Redis(host="127.0.0.1", port=ports["redis"], password=REDIS_SECRET)
    assert sum(1 for _ in r.scan_iter(match="tessera:user_stats:*", count=1_000)) == USERS


def test_config_shows_secrets_redacted(services):
    state, env, ports = services
    config = subprocess.run([TESSERA, "config", "--topology", TOPOLOGY, "--brokers", f"127.0.0.1:{ports['tansu']}",
                             "--redis", f"redis://127.0.0.1:{ports['redis']}", "--offline-dir", os.path.join(state, "config")],
                            env=with_secrets(env), capture_output=True, text=True, timeout=60)
    assert config.returncode == 0, config.stderr
    assert "sasl.password=***" in config.stdout and "***" in config.stdout.split("redis-password:")[1].splitlines()[0]
    assert_no_secret(config.stdout + config.stderr)


def test_get_with_the_password(services, worker_run):
    state, env, ports = services
    assert worker_run["returncode"] == 0
    args = [TESSERA, "get", "--topology", TOPOLOGY, "--redis", f"redis://127.0.0.1:{ports['redis']}",
            "--view", "user_stats", "--entity", "user_id=1"]
    got = subprocess.run(args, env=dict(env, TESSERA_REDIS_PASSWORD=REDIS_SECRET), capture_output=True, text=True, timeout=60)
    assert got.returncode == 0, got.stderr
    assert '"total_orders": ' in got.stdout and '"total_orders": null' not in got.stdout
    assert_no_secret(got.stdout + got.stderr)
    # The same from a file (TESSERA_REDIS_PASSWORD_FILE), as a mounted secret would be.
    path = os.path.join(state, "redis-password")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(REDIS_SECRET + "\n")
    from_file = subprocess.run(args, env=dict(env, TESSERA_REDIS_PASSWORD_FILE=path), capture_output=True, text=True, timeout=60)
    assert from_file.returncode == 0, from_file.stderr
    assert from_file.stdout == got.stdout
    assert_no_secret(from_file.stderr)


def test_wrong_redis_password(services, worker_run):
    state, env, ports = services
    wrong = "wrong-" + secrets.token_hex(16)
    run = subprocess.run(worker_args(ports, os.path.join(state, "wrong"), "secrets-wrong"), env=with_secrets(env, wrong),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "authentication failed" in run.stderr, run.stderr[-3000:]
    assert_no_secret(run.stdout + run.stderr, wrong)
    got = subprocess.run([TESSERA, "get", "--topology", TOPOLOGY, "--redis", f"redis://127.0.0.1:{ports['redis']}",
                          "--view", "user_stats", "--entity", "user_id=1"],
                         env=dict(env, TESSERA_REDIS_PASSWORD=wrong), capture_output=True, text=True, timeout=60)
    assert got.returncode != 0 and "authentication failed" in got.stderr, got.stderr
    assert_no_secret(got.stdout + got.stderr, wrong)


def test_missing_redis_password_is_an_error_not_an_outage(services, worker_run):
    # Without AUTH, Redis refuses every command, and drops a connection that sends a large
    # pipeline: the worker must say a password is missing, not retry an "unreachable" Redis.
    state, env, ports = services
    run = subprocess.run(worker_args(ports, os.path.join(state, "none"), "secrets-none"), env=with_secrets(env, None),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "requires a password" in run.stderr, run.stderr[-3000:]
    got = subprocess.run([TESSERA, "get", "--topology", TOPOLOGY, "--redis", f"redis://127.0.0.1:{ports['redis']}",
                          "--view", "user_stats", "--entity", "user_id=1"], env=env, capture_output=True, text=True, timeout=60)
    assert got.returncode != 0 and "requires a password" in got.stderr, (got.stdout, got.stderr)
    assert_no_secret(run.stdout + run.stderr + got.stdout + got.stderr)


@pytest.mark.parametrize("url", [
    "redis://:{secret}@127.0.0.1:{port}",
    "redis://default:{secret}@127.0.0.1:{port}/0",
    "rediss://default:{secret}@127.0.0.1:{port}",
    "redis://127.0.0.1:{port}/0?password={secret}",
])
@pytest.mark.parametrize("command", ["run", "get", "config"])
def test_password_in_the_url_is_refused(services, url, command):
    state, env, ports = services
    url = url.format(secret=REDIS_SECRET, port=ports["redis"])
    if command == "get":
        args = [TESSERA, "get", "--topology", TOPOLOGY, "--redis", url, "--view", "user_stats", "--entity", "user_id=1"]
    else:
        args = worker_args(ports, os.path.join(state, "url"), "secrets-url")
        args[1] = command  # `tessera config` takes the worker's flags
        args[args.index("--redis") + 1] = url
    refused = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "redis" in refused.stderr.lower(), refused.stderr
    assert_no_secret(refused.stdout + refused.stderr)


@pytest.mark.parametrize("key", ["sasl.password", "ssl.key.password", "sasl.oauthbearer.client.secret"])
@pytest.mark.parametrize("command", ["run", "produce", "config"])
def test_secret_on_the_command_line_is_refused(services, key, command):
    state, env, ports = services
    if command == "produce":
        args = [TESSERA, "produce", "--brokers", f"127.0.0.1:{ports['tansu']}", "--topic", "never", "--events", "1"]
    else:
        args = worker_args(ports, os.path.join(state, "argv"), "secrets-argv")
        args[1] = command  # `tessera config` takes the worker's flags
    args += ["--kafka-config", f"{key}={KAFKA_SECRET}"]
    refused = subprocess.run(args, env=dict(env, TESSERA_REDIS_PASSWORD=REDIS_SECRET), capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    variable = "TESSERA_KAFKA_" + key.upper().replace(".", "_")
    assert f"{key} is a secret" in refused.stderr and variable in refused.stderr, refused.stderr
    assert_no_secret(refused.stdout + refused.stderr)


def test_malformed_secret_property_is_not_echoed(services):
    state, env, ports = services
    args = worker_args(ports, os.path.join(state, "argv"), "secrets-argv") + ["--kafka-config", f"sasl.password:{KAFKA_SECRET}"]
    refused = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "KEY=VALUE" in refused.stderr, refused.stderr
    assert_no_secret(refused.stdout + refused.stderr)


def test_secrets_in_the_worker_config_file_stay_hidden(services):
    # A worker config file may hold secrets (it is a file, like --kafka-config-file): `tessera
    # config` shows where each setting came from, never the secret itself.
    state, env, ports = services
    path = os.path.join(state, "worker.yaml")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(f"topology: [{TOPOLOGY}]\nbrokers: 127.0.0.1:{ports['tansu']}\nredis: redis://127.0.0.1:{ports['redis']}\n"
                f"offline-dir: {os.path.join(state, 'file')}\nredis-password: {REDIS_SECRET}\n"
                f"kafka-config:\n  sasl.password: {KAFKA_SECRET}\n  session.timeout.ms: 6000\n")
    config = subprocess.run([TESSERA, "config", "--config", path], env=env, capture_output=True, text=True, timeout=60)
    assert config.returncode == 0, config.stderr
    assert "sasl.password=***" in config.stdout and "session.timeout.ms=6000" in config.stdout, config.stdout
    # The password's origin is the file, not the environment the file's value is passed through.
    origin = config.stdout.split("redis-password:")[1].splitlines()[0]
    assert "***" in origin and "file" in origin and "env" not in origin, origin
    assert_no_secret(config.stdout + config.stderr)


@pytest.mark.parametrize("text", [
    "topology: [{topology}\nredis-password: {secret}\n",        # unterminated flow sequence
    "redis-password: \"{secret}\n",                              # unterminated string
    "kafka-config:\n  sasl.password: {secret}\n  - oops\n",      # a list item inside a mapping
    "topology: [{topology}]\nbrokers: 127.0.0.1:1\nredis: redis://127.0.0.1:1\noffline-dir: {state}/broken\n"
    "kafka-config: [\"sasl.password: {secret}\"]\n",             # no '='
])
def test_broken_worker_config_file_is_reported_without_its_secrets(services, text):
    # The error says where the file is broken, not what the line holds (Yams quotes it).
    state, env, ports = services
    path = os.path.join(state, "broken.yaml")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(text.format(topology=TOPOLOGY, state=state, secret=KAFKA_SECRET))
    for command in ("run", "config"):
        refused = subprocess.run([TESSERA, command, "--config", path], env=env, capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and ("config file" in refused.stderr or path in refused.stderr), refused.stderr
        assert_no_secret(refused.stdout + refused.stderr)

"""Effectively-once (docs/design.md, "Emissions and their invariants", invariant 4): kill -9 the worker at random moments, restart it,
and end with the same Redis rows and the same offline log (every row, as a multiset, with
created_timestamp left out: it is the wall clock of the write) as an uninterrupted run.

The reference `quick` workload goes through the tansu broker; the worker is killed at random
moments while it works through it (20 times, Redis restarted empty once among them) and
restarted each time; `tessera verify` then finds no mismatch, and exactly the rows the test
changes. Idle advancement is off (it follows the wall clock, which no two runs share).

Checkpoints belong to the consumer group (`_state/GROUP/TOPIC/`): every run of a test, the last
one that drains what is left included, joins the same group and resumes from them.
"""
import json
import os
import random
import re
import signal
import subprocess
import time
import urllib.request
from collections import Counter

import pyarrow.dataset as ds
import pytest
import redis
from conftest import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESSERA = os.environ.get("TESSERA_BIN", os.path.join(ROOT, ".build", "release", "tessera"))
TOPOLOGY = os.path.join(ROOT, "topologies", "growth.yaml")
SERVICES = os.path.join(ROOT, "scripts", "services.sh")
EVENTS, CHUNKS = 200_000, 6


def produce(env, brokers, topic, chunk):
    # Each chunk is the next range of the one quick stream.
    size = EVENTS // CHUNKS
    subprocess.run([TESSERA, "produce", "--brokers", brokers, "--topic", topic, "--scale", "quick",
                    "--from", str(chunk * size), "--count", str(size if chunk < CHUNKS - 1 else EVENTS - chunk * size),
                    "--partitions", "4"], check=True, env=env, capture_output=True)


def worker(env, brokers, redis_url, offline, group, prefix, until_end=False, metrics_port=None, log=None, topology=TOPOLOGY):
    args = [TESSERA, "run", "--topology", topology, "--brokers", brokers, "--redis", redis_url,
            "--offline-dir", offline, "--group", group, "--key-prefix", prefix, "--idle-seconds", "0",
            "--roll-seconds", "0.3", "--row-group-rows", "500", "--checkpoint-seconds", "1", "--stats-seconds", "0",
            "--kafka-config", "session.timeout.ms=6000", "--kafka-config", "heartbeat.interval.ms=500"]
    if until_end:
        args.append("--until-end")
    if metrics_port:
        args += ["--metrics-port", str(metrics_port)]
    out = open(log or offline + ".log", "a")
    p = subprocess.Popen(args, env=env, stdout=out, stderr=out)
    p.log = out.name
    return p


@pytest.fixture
def processes():
    """Workers a test starts; any still running when it ends (a failed assertion) are killed."""
    started = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()


def finish(p, timeout=300):
    """Waits for a worker to exit 0; on failure shows the end of its log."""
    try:
        code = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        code = "still running after %d s" % timeout
    assert code == 0, (code, open(p.log).read()[-3000:])


def partitions_held(port):
    """`tessera_partitions_assigned` from a worker's /metrics, or None while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            body = r.read().decode()
    except OSError:
        return None
    m = re.search(r"^tessera_partitions_assigned (\S+)$", body, re.M)
    return int(float(m.group(1))) if m else None


def wait_until_held(port, predicate, what, seconds=90):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate(partitions_held(port) or 0):
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {seconds} s (holds {partitions_held(port)})")


def drain(env, brokers, redis_url, offline, group, prefix, processes, topology=TOPOLOGY):
    """Runs `--until-end` in `group` to the end of the stream, resuming from the group's checkpoints.

    tansu 0.6 expires a dead member only when another request arrives, and a group whose member
    was killed mid-rebalance can stay unable to form (a JoinGroup unanswered for ten minutes, seen
    once in CI). A run that holds no partition after 60 s leaves the group cleanly and another joins
    (a membership change lets tansu form the group again); the worker under test is the same."""
    for _ in range(3):
        port = free_port()
        p = worker(env, brokers, redis_url, offline, group, prefix, until_end=True, metrics_port=port, topology=topology)
        processes.append(p)
        deadline = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < deadline and not partitions_held(port):
            time.sleep(0.2)
        if p.poll() is not None or partitions_held(port):
            finish(p)
            return
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=120)
    raise AssertionError(f"group {group}: three runs in a row were given no partition")


def offline_rows(offline):
    table = ds.dataset(os.path.join(offline, "user_stats"), format="parquet").to_table()
    columns = [c for c in table.column_names if c != "created_timestamp"]
    return Counter(zip(*(table.column(c).to_pylist() for c in columns)))


def online_rows(r, prefix):
    rows = {}
    for key in r.scan_iter(match=prefix + "user_stats:*", count=10_000):
        values = {k.decode(): v.decode() for k, v in r.hgetall(key).items() if k != b"_created_ts"}
        rows[key.decode()[len(prefix):]] = values
    return rows


def run_reference(env, brokers, redis_url, state, processes):
    offline = os.path.join(state, "reference")
    for chunk in range(CHUNKS):
        produce(env, brokers, "orders", chunk)
    p = worker(env, brokers, redis_url, offline, "reference", "ref:", until_end=True)
    processes.append(p)
    finish(p)
    return offline


def kill_at_random(p, rng, low=2.5, high=6.0):
    time.sleep(rng.uniform(low, high))
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
        p.wait()
        return True
    return False


def start_redis(directory, port=None):
    os.makedirs(directory, exist_ok=True)
    env = dict(os.environ, REDIS_PORT=str(port)) if port else None
    # Not captured: the server it starts keeps its output open.
    subprocess.run([SERVICES, "start-redis", directory], check=True, env=env, stdout=subprocess.DEVNULL)
    return int(open(os.path.join(directory, "redis.port")).read())


def verify(env, redis_url, offline, group, prefix, topology=TOPOLOGY):
    args = [TESSERA, "verify", "--topology", topology, "--offline-dir", offline, "--group", group, "--key-prefix", prefix,
            "--redis", redis_url, "--sample", "1000000", "--json"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(done.stdout)
    assert (done.returncode == 1) == bool(report["mismatches"]), done.stdout[:2000]
    return report


def test_kill_9_and_restart(services, processes):
    """20 workers in a row, each killed at a random moment: half while joining the group or
    restoring (rebalances), half once they hold partitions and work (checkpoints every second, rolls
    every 0.3 s). The stream arrives a chunk every few kills, on a topic of its own, and Redis —
    a server of this test — is restarted empty once mid-run: the rows it lost are rewritten."""
    state, env, ports = services
    brokers, redis_url = f"127.0.0.1:{ports['tansu']}", f"redis://127.0.0.1:{ports['redis']}"
    reference = run_reference(env, brokers, redis_url, state, processes)
    topology = os.path.join(state, "growth-chaos.yaml")
    with open(TOPOLOGY) as f, open(topology, "w") as out:
        out.write(f.read().replace("topic: orders", "topic: orders_chaos"))
    redis_dir = os.path.join(state, "chaos-redis")
    chaos_port = start_redis(redis_dir)
    chaos_url = f"redis://127.0.0.1:{chaos_port}"
    rng = random.Random(7)
    chaos = os.path.join(state, "chaos")
    kills = restarted = 0
    try:
        for i in range(20):
            if i % 3 == 0 and i // 3 < CHUNKS:
                produce(env, brokers, "orders_chaos", i // 3)
            port = free_port()
            p = worker(env, brokers, chaos_url, chaos, "chaos", "chaos:", metrics_port=port, topology=topology)
            processes.append(p)
            if i % 2 == 1:
                wait_until_held(port, lambda n: n > 0, f"run {i} takes partitions")
                if i == 9:
                    # Redis loses everything while a worker writes to it.
                    subprocess.run([SERVICES, "stop", redis_dir], check=True)
                    start_redis(redis_dir, chaos_port)
                    restarted += 1
                kills += kill_at_random(p, rng, 0.0, 2.5)
            else:
                kills += kill_at_random(p, rng, 0.5, 6.0)
        assert kills >= 20 and restarted == 1
        time.sleep(7)
        drain(env, brokers, chaos_url, chaos, "chaos", "chaos:", processes, topology=topology)
        log = open(chaos + ".log").read()
        assert '"checkpoint":"true"' in log, "no run resumed from a checkpoint"
        assert "Redis lost the online rows" in log, "no run noticed that Redis had lost its data"

        r = redis.Redis(host="127.0.0.1", port=ports["redis"])
        c = redis.Redis(host="127.0.0.1", port=chaos_port)
        assert online_rows(c, "chaos:") == online_rows(r, "ref:")
        expected, actual = offline_rows(reference), offline_rows(chaos)
        assert sum(expected.values()) > EVENTS
        assert actual == expected, (list(actual - expected)[:3], list(expected - actual)[:3])

        # tessera verify agrees, and finds exactly the rows changed behind its back.
        report = verify(env, chaos_url, chaos, "chaos", "chaos:", topology)
        assert report["mismatches"] == [] and report["sampled"] == report["entities"] == len(online_rows(c, "chaos:")), report
        victims = sorted(k.decode() for k in c.scan_iter(match="chaos:user_stats:*", count=10_000))[:5]
        for key in victims:
            c.hset(key, "total_orders", -1)
        report = verify(env, chaos_url, chaos, "chaos", "chaos:", topology)
        assert sorted({m["key"] for m in report["mismatches"]}) == victims, report["mismatches"][:3]
        assert {(m["against"], m["check"]) for m in report["mismatches"]} == {("state", "differs"), ("offline", "differs")}
    finally:
        subprocess.run([SERVICES, "stop", redis_dir], check=False)


def test_two_workers_one_killed(services, processes):
    """A second worker joins, takes partitions, is killed; the first takes them back (from the
    checkpoints the dead one left) each time. The stream arrives a chunk per round, on a topic of
    its own, so that every kill finds work in flight."""
    state, env, ports = services
    brokers, redis_url = f"127.0.0.1:{ports['tansu']}", f"redis://127.0.0.1:{ports['redis']}"
    reference = os.path.join(state, "reference")
    assert os.path.isdir(reference), "runs after test_kill_9_and_restart, which writes the reference"
    topology = os.path.join(state, "growth-pair.yaml")
    with open(TOPOLOGY) as f, open(topology, "w") as out:
        out.write(f.read().replace("topic: orders", "topic: orders_pair"))
    rng = random.Random(11)
    chaos = os.path.join(state, "pair")
    steady_port = free_port()
    produce(env, brokers, "orders_pair", 0)
    steady = worker(env, brokers, redis_url, chaos, "pair", "pair:", metrics_port=steady_port, log=chaos + "-steady.log",
                    topology=topology)
    processes.append(steady)
    wait_until_held(steady_port, lambda n: n == 4, "the first worker holds every partition")
    for round in range(CHUNKS - 1):
        produce(env, brokers, "orders_pair", round + 1)
        victim_port = free_port()
        victim = worker(env, brokers, redis_url, chaos, "pair", "pair:", metrics_port=victim_port, topology=topology)
        processes.append(victim)
        wait_until_held(victim_port, lambda n: n > 0, f"round {round}: the second worker takes partitions")
        time.sleep(rng.uniform(0.0, 2.0))
        assert victim.poll() is None, open(victim.log).read()[-3000:]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        wait_until_held(steady_port, lambda n: n == 4, f"round {round}: the first worker takes the dead one's partitions back")
    assert '"checkpoint":"true"' in open(steady.log).read(), "the first worker never resumed a checkpoint the second left"
    steady.send_signal(signal.SIGTERM)
    finish(steady, timeout=120)
    drain(env, brokers, redis_url, chaos, "pair", "pair:", processes, topology=topology)

    r = redis.Redis(host="127.0.0.1", port=ports["redis"])
    assert online_rows(r, "pair:") == online_rows(r, "ref:")
    assert offline_rows(chaos) == offline_rows(reference)

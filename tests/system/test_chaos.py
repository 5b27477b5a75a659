"""Effectively-once (DESIGN §3, invariant 4): kill -9 the worker at random moments, restart it,
and end with the same Redis rows and the same offline log (every row, as a multiset, with
created_timestamp left out: it is the wall clock of the write) as an uninterrupted run.

The reference `quick` workload goes through the tansu broker; the worker is killed at random
moments while it works through it and restarted each time. Idle advancement is off (it
follows the wall clock, which no two runs share).
"""
import os
import random
import signal
import subprocess
import time
from collections import Counter

import pyarrow.dataset as ds
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESSERA = os.environ.get("TESSERA_BIN", os.path.join(ROOT, ".build", "release", "tessera"))
TOPOLOGY = os.path.join(ROOT, "topologies", "growth.yaml")
EVENTS, CHUNKS = 200_000, 6


def produce(env, brokers, topic, chunk):
    # Each chunk is the next range of the one quick stream.
    size = EVENTS // CHUNKS
    subprocess.run([TESSERA, "produce", "--brokers", brokers, "--topic", topic, "--scale", "quick",
                    "--from", str(chunk * size), "--count", str(size if chunk < CHUNKS - 1 else EVENTS - chunk * size),
                    "--partitions", "4"], check=True, env=env, capture_output=True)


def worker(env, brokers, redis_url, offline, group, prefix, until_end=False):
    args = [TESSERA, "run", "--topology", TOPOLOGY, "--brokers", brokers, "--redis", redis_url,
            "--offline-dir", offline, "--group", group, "--key-prefix", prefix, "--idle-seconds", "0",
            "--roll-seconds", "0.3", "--checkpoint-seconds", "1", "--stats-seconds", "0",
            "--kafka-config", "session.timeout.ms=6000", "--kafka-config", "heartbeat.interval.ms=500"]
    if until_end:
        args.append("--until-end")
    log = open(os.path.join(offline + ".log"), "a")
    return subprocess.Popen(args, env=env, stdout=log, stderr=log)


def offline_rows(offline):
    table = ds.dataset(os.path.join(offline, "user_stats"), format="parquet").to_table()
    columns = [c for c in table.column_names if c != "created_timestamp"]
    return Counter(zip(*(table.column(c).to_pylist() for c in columns)))


def online_rows(r, prefix):
    rows = {}
    for key in r.scan_iter(match=prefix + "*", count=10_000):
        values = {k.decode(): v.decode() for k, v in r.hgetall(key).items() if k != b"_created_ts"}
        rows[key.decode()[len(prefix):]] = values
    return rows


def run_reference(env, brokers, redis_url, state):
    offline = os.path.join(state, "reference")
    for chunk in range(CHUNKS):
        produce(env, brokers, "orders", chunk)
    p = worker(env, brokers, redis_url, offline, "reference", "ref:", until_end=True)
    assert p.wait(timeout=600) == 0, open(offline + ".log").read()[-3000:]
    return offline


def kill_at_random(p, rng, low=2.5, high=6.0):
    time.sleep(rng.uniform(low, high))
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
        p.wait()
        return True
    return False


def test_kill_9_and_restart(services):
    state, env, ports = services
    brokers, redis_url = f"127.0.0.1:{ports['tansu']}", f"redis://127.0.0.1:{ports['redis']}"
    reference = run_reference(env, brokers, redis_url, state)
    rng = random.Random(7)
    chaos = os.path.join(state, "chaos")
    kills = 0
    # The topic already holds the whole stream; the chaos group reads it from the start.
    for _ in range(CHUNKS):
        p = worker(env, brokers, redis_url, chaos, "chaos", "chaos:")
        kills += kill_at_random(p, rng)
    assert kills >= 5
    # --until-end stops once every partition it holds is drained: let the group forget the
    # killed members (session timeout) so that the last run holds them all.
    time.sleep(7)
    p = worker(env, brokers, redis_url, chaos, "chaos", "chaos:", until_end=True)
    assert p.wait(timeout=600) == 0, open(chaos + ".log").read()[-3000:]

    r = redis.Redis(host="127.0.0.1", port=ports["redis"])
    assert online_rows(r, "chaos:") == online_rows(r, "ref:")
    expected, actual = offline_rows(reference), offline_rows(chaos)
    assert sum(expected.values()) > EVENTS
    assert actual == expected, (list(actual - expected)[:3], list(expected - actual)[:3])


def test_two_workers_one_killed(services):
    state, env, ports = services
    brokers, redis_url = f"127.0.0.1:{ports['tansu']}", f"redis://127.0.0.1:{ports['redis']}"
    reference = os.path.join(state, "reference")
    assert os.path.isdir(reference), "runs after test_kill_9_and_restart, which writes the reference"
    rng = random.Random(11)
    chaos = os.path.join(state, "pair")
    steady = worker(env, brokers, redis_url, chaos, "pair", "pair:")
    kills = 0
    for _ in range(5):
        victim = worker(env, brokers, redis_url, chaos, "pair", "pair:")
        kills += kill_at_random(victim, rng, 3.0, 7.0)
    assert kills >= 5
    # The survivor takes every partition back; stop it gracefully and drain the rest.
    steady.send_signal(signal.SIGTERM)
    assert steady.wait(timeout=120) == 0, open(chaos + ".log").read()[-3000:]
    time.sleep(7)
    p = worker(env, brokers, redis_url, chaos, "pair", "pair:", until_end=True)
    assert p.wait(timeout=600) == 0, open(chaos + ".log").read()[-3000:]

    r = redis.Redis(host="127.0.0.1", port=ports["redis"])
    assert online_rows(r, "pair:") == online_rows(r, "ref:")
    assert offline_rows(chaos) == offline_rows(reference)

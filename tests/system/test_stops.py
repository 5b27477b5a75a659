"""Stops and lost state, as an operator meets them (tansu, redis-server, the release binary).

- SIGTERM with a large state (100 000 users) finishes the final flush, checkpoint and commit,
  leaves the group and exits 0: the next run resumes at the end of the topic and consumes nothing.
- A stop that cannot finish (Redis hung) waits within the shutdown timeout; a second SIGTERM
  gives up at once, and so does a run whose timeout passes. Both exit 1 and say why.
- A partition whose checkpoint was deleted while its group has committed offsets is refused (its
  offline files untouched) unless --reset-state says to start it over, which rebuilds exactly
  the offline rows it had.
- A topic that does not exist yet is waited for, and said so; its events are consumed once it exists.
- SIGSEGV from outside ends the worker (after the runtime's backtrace).
"""
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections import Counter

import pyarrow.dataset as ds
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from conftest import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESSERA = os.environ.get("TESSERA_BIN", os.path.join(ROOT, ".build", "release", "tessera"))
TOPOLOGY = os.path.join(ROOT, "topologies", "growth.yaml")
EVENTS, USERS, PARTITIONS = 300_000, 100_000, 4
GROUP = "stops"


def log_lines(path):
    lines = []
    for line in open(path):
        try:
            lines.append(json.loads(line))
        except ValueError:
            pass
    return lines


def tail(path):
    return open(path).read()[-3000:]


def start(env, brokers, redis_port, offline, log, *extra):
    args = [TESSERA, "run", "--topology", TOPOLOGY, "--brokers", brokers, "--redis", f"redis://127.0.0.1:{redis_port}",
            "--offline-dir", offline, "--group", GROUP, "--idle-seconds", "0", "--stats-seconds", "0",
            "--kafka-config", "session.timeout.ms=6000", "--kafka-config", "heartbeat.interval.ms=500", *extra]
    out = open(log, "a")
    p = subprocess.Popen(args, env=env, stdout=out, stderr=out)
    p.log = log
    return p


def metric(port, name):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            body = r.read().decode()
    except OSError:
        return None
    total = None
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total = (total or 0) + float(line.rsplit(" ", 1)[1])
    return total


def wait_for(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def committed(brokers):
    c = Consumer({"bootstrap.servers": brokers, "group.id": GROUP, "enable.auto.commit": False})
    try:
        return {tp.partition: tp.offset for tp in c.committed([TopicPartition("orders", p) for p in range(PARTITIONS)], timeout=10)}
    finally:
        c.close()


def offline_rows(offline):
    table = ds.dataset(os.path.join(offline, "user_stats"), format="parquet").to_table()
    columns = [c for c in table.column_names if c != "created_timestamp"]
    return Counter(zip(*(table.column(c).to_pylist() for c in columns)))


@pytest.fixture(scope="module")
def stream(services):
    state, env, ports = services
    brokers = f"127.0.0.1:{ports['tansu']}"
    subprocess.run([TESSERA, "produce", "--brokers", brokers, "--topic", "orders", "--events", str(EVENTS),
                    "--users", str(USERS), "--disorder", "0s", "--partitions", str(PARTITIONS)],
                   check=True, env=env, capture_output=True)
    offline = tempfile.mkdtemp(prefix="tessera-stops-offline-", dir=state)
    return state, env, ports, brokers, offline


def test_sigterm_finishes_the_final_checkpoint(stream):
    state, env, ports, brokers, offline = stream
    log = os.path.join(state, "clean.log")
    port = free_port()
    # No checkpoint nor roll before the stop: the stop writes the whole state and every offline row.
    p = start(env, brokers, ports["redis"], offline, log, "--checkpoint-seconds", "3600", "--roll-seconds", "3600",
              "--metrics-port", str(port))
    try:
        wait_for(lambda: metric(port, "tessera_events_consumed_total") == EVENTS, 300, "every event consumed")
        p.send_signal(signal.SIGTERM)
        code = p.wait(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert code == 0, tail(log)
    messages = [line["message"] for line in log_lines(log)]
    assert "left the consumer group" in messages, tail(log)
    ends = committed(brokers)
    assert sum(ends.values()) == EVENTS, ends  # offsets from 0, every record read
    assert sum(offline_rows(offline).values()) > 0

    # The next run resumes every partition from its checkpoint at the end of the topic.
    again = os.path.join(state, "again.log")
    p = start(env, brokers, ports["redis"], offline, again, "--until-end")
    assert p.wait(timeout=120) == 0, tail(again)
    restored = {line["partition"]: line for line in log_lines(again) if line["message"] == "partition restored"}
    assert {k: (v["offset"], v["checkpoint"]) for k, v in restored.items()} == \
        {f"orders[{p}]": (str(ends[p]), "true") for p in range(PARTITIONS)}, tail(again)
    stopped = [line for line in log_lines(again) if line["message"] == "stopped"]
    assert stopped and stopped[-1]["events"] == "0", tail(again)


def test_a_stop_that_cannot_finish_gives_up_when_forced_or_timed_out(stream):
    state, env, ports, brokers, offline = stream
    redis_pid = int(open(os.path.join(state, "redis.pid")).read())
    for attempt, extra in (("forced", []), ("timeout", ["--shutdown-seconds", "1"])):
        log = os.path.join(state, f"{attempt}.log")
        port = free_port()
        p = start(env, brokers, ports["redis"], offline, log, "--checkpoint-seconds", "1", "--metrics-port", str(port), *extra)
        try:
            wait_for(lambda: metric(port, "tessera_partitions_assigned") == PARTITIONS, 120, "the assignment")
            os.kill(redis_pid, signal.SIGSTOP)
            try:
                producer = Producer({"bootstrap.servers": brokers})
                user = 1 + len(attempt)
                producer.produce("orders", key=str(user), value=json.dumps(
                    {"order_id": user, "user_id": user, "product_id": 1, "amount": 1.0, "status": "paid",
                     "event_timestamp": int(time.time() * 1000)}).encode())
                assert producer.flush(30) == 0
                wait_for(lambda: metric(port, "tessera_retrying") == 1, 60, "the worker to wait for Redis")
                p.send_signal(signal.SIGTERM)
                if attempt == "forced":
                    time.sleep(3)
                    assert p.poll() is None, "the first SIGTERM must wait for Redis within the 30 s timeout\n" + tail(log)
                    p.send_signal(signal.SIGTERM)
                code = p.wait(timeout=60)
            finally:
                os.kill(redis_pid, signal.SIGCONT)
        finally:
            if p.poll() is None:
                p.kill()
        assert code == 1, tail(log)
        expected = "a second stop signal forced it" if attempt == "forced" else "the shutdown timeout"
        assert expected in open(log).read(), tail(log)
    # Nothing was lost: a run to the end catches up from the last checkpoint.
    log = os.path.join(state, "catch-up.log")
    p = start(env, brokers, ports["redis"], offline, log, "--until-end")
    assert p.wait(timeout=120) == 0, tail(log)
    assert sum(committed(brokers).values()) == EVENTS + 2


def test_a_lost_checkpoint_is_refused_unless_reset(stream):
    state, env, ports, brokers, offline = stream
    before = offline_rows(offline)
    checkpoint = os.path.join(offline, "_state", GROUP, "orders", "0.state")
    assert os.path.exists(checkpoint)
    os.remove(checkpoint)
    files = sorted(os.listdir(os.path.join(offline, "user_stats", "partition=0")))

    log = os.path.join(state, "lost.log")
    p = start(env, brokers, ports["redis"], offline, log, "--until-end")
    assert p.wait(timeout=120) == 1, tail(log)
    text = open(log).read()
    assert "no checkpoint" in text and "orders[0]" in text and "--reset-state" in text, tail(log)
    assert sorted(os.listdir(os.path.join(offline, "user_stats", "partition=0"))) == files, "a refused partition keeps its files"

    log = os.path.join(state, "reset.log")
    p = start(env, brokers, ports["redis"], offline, log, "--until-end", "--reset-state")
    assert p.wait(timeout=300) == 0, tail(log)
    assert "starting over" in open(log).read(), tail(log)
    assert offline_rows(offline) == before
    assert os.path.exists(checkpoint)


def test_a_topic_that_does_not_exist_yet_is_waited_for(services):
    state, env, ports = services
    brokers = f"127.0.0.1:{ports['tansu']}"
    topology = os.path.join(state, "growth-later.yaml")
    with open(TOPOLOGY) as f, open(topology, "w") as out:
        out.write(f.read().replace("topic: orders", "topic: orders_later"))
    offline = tempfile.mkdtemp(prefix="tessera-later-", dir=state)
    log = os.path.join(state, "later.log")
    port = free_port()
    args = [TESSERA, "run", "--topology", topology, "--brokers", brokers, "--redis", f"redis://127.0.0.1:{ports['redis']}",
            "--offline-dir", offline, "--group", "later", "--idle-seconds", "0", "--stats-seconds", "0", "--metrics-port", str(port),
            "--kafka-config", "session.timeout.ms=6000", "--kafka-config", "heartbeat.interval.ms=500"]
    p = subprocess.Popen(args, env=env, stdout=open(log, "a"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: any("does not exist yet" in line.get("message", "") for line in log_lines(log)) or p.poll() is not None,
                 60, "the worker to say it waits for the topic")
        time.sleep(3)
        assert p.poll() is None, tail(log)
        subprocess.run([TESSERA, "produce", "--brokers", brokers, "--topic", "orders_later", "--events", "2000",
                        "--users", "100", "--partitions", str(PARTITIONS)], check=True, env=env, capture_output=True)
        wait_for(lambda: metric(port, "tessera_events_consumed_total") == 2000, 120, "the topic's events consumed")
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 0, tail(log)
    finally:
        if p.poll() is None:
            p.kill()


def test_a_crash_signal_ends_the_worker(stream):
    # SIGSEGV from outside: the runtime prints its backtrace, then the process ends (it must not
    # go on with state it cannot trust); the next run resumes from the checkpoints.
    state, env, ports, brokers, offline = stream
    log = os.path.join(state, "segv.log")
    port = free_port()
    p = start(env, brokers, ports["redis"], offline, log, "--metrics-port", str(port))
    try:
        wait_for(lambda: metric(port, "tessera_partitions_assigned") == PARTITIONS, 120, "the worker to hold its partitions")
        p.send_signal(signal.SIGSEGV)
        try:
            code = p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError("the worker kept running after SIGSEGV")
        assert code == -signal.SIGSEGV, (code, tail(log))
    finally:
        if p.poll() is None:
            p.kill()

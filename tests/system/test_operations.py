"""Operations: the worker's /metrics, /health and /ready, and `tessera serve` (Feast's online API).

- The counters scraped from a running worker equal what was produced (good and bad events).
- Readiness follows the worker: ready once caught up, not ready while Redis hangs (SIGSTOP),
  ready again after; health goes away when the worker stops.
- `tessera serve` answers Feast's request shape; Feast's own client code (the remote online
  store's response reader) reads the answer into the values Redis holds.
"""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest
import redis
from confluent_kafka import Producer
from conftest import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESSERA = os.environ.get("TESSERA_BIN", os.path.join(ROOT, ".build", "release", "tessera"))
TOPOLOGY = os.path.join(ROOT, "topologies", "growth.yaml")
GOOD, BAD = 4_000, 37


def get(url):
    """(status, body) or (None, None) when nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError, socket.timeout):
        return None, None


def wait_for(condition, seconds=60, what="condition"):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def scrape(port):
    """Sample name with labels → value, from the Prometheus text format."""
    status, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    samples = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_metrics_health_and_readiness(services):
    state, env, ports = services
    brokers = f"127.0.0.1:{ports['tansu']}"
    subprocess.run([TESSERA, "produce", "--brokers", brokers, "--topic", "orders", "--events", str(GOOD),
                    "--users", "300", "--disorder", "0s", "--partitions", "4"], check=True, env=env, capture_output=True)
    producer = Producer({"bootstrap.servers": brokers})
    for i in range(BAD):
        producer.produce("orders", key=str(i), value=b"not json %d" % i)
    assert producer.flush(30) == 0

    port = free_port()
    offline = tempfile.mkdtemp(prefix="tessera-ops-offline-")
    log = open(os.path.join(state, "worker.log"), "w")
    worker = subprocess.Popen([TESSERA, "run", "--topology", TOPOLOGY, "--brokers", brokers,
                               "--redis", f"redis://127.0.0.1:{ports['redis']}", "--offline-dir", offline,
                               "--metrics-port", str(port), "--roll-seconds", "1", "--checkpoint-seconds", "1",
                               "--stats-seconds", "1", "--kafka-config", "session.timeout.ms=6000"],
                              env=env, stdout=log, stderr=log)
    try:
        wait_for(lambda: get(f"http://127.0.0.1:{port}/health")[0] == 200, what="/health")
        wait_for(lambda: get(f"http://127.0.0.1:{port}/ready")[0] == 200, what="/ready")
        wait_for(lambda: scrape(port).get('tessera_events_consumed_total{source="orders"}') == GOOD + BAD,
                 what="every event consumed")
        wait_for(lambda: scrape(port).get('tessera_offline_rows_total{view="user_stats"}', 0) > 0, what="an offline roll")
        r = redis.Redis(port=ports["redis"])
        # Rows reach Redis after the events that made them are counted, and Redis's keys can be
        # ahead of the last metrics report: every key there must come to be counted as a write
        # (the keys read before the metrics they are compared with).
        m = wait_for(lambda: (lambda keys, m: m if m.get('tessera_redis_writes_total{view="user_stats"}', 0) >= keys > 0 else None)(
            len(r.keys("tessera:user_stats:*")), scrape(port)), what="every Redis key counted as a write")
        late = m['tessera_events_late_total{source="orders"}']
        assert late == 0
        assert m['tessera_events_aggregated_total{source="orders"}'] == GOOD
        assert m['tessera_events_dead_lettered_total{source="orders",reason="not_json"}'] == BAD
        assert m['tessera_partitions_assigned'] == 4
        assert sum(v for k, v in m.items() if k.startswith("tessera_partition_lag{")) == 0
        assert m['tessera_emissions_total{view="user_stats"}'] >= m['tessera_offline_rows_total{view="user_stats"}']
        assert m['tessera_retrying'] == 0 and m['tessera_ready'] == 1
        assert m['tessera_process_resident_memory_bytes'] > 1e6
        assert m['tessera_batch_size_count'] >= 1 and m['tessera_batch_size_sum'] == GOOD + BAD
        assert m['tessera_freshness_seconds_count{view="user_stats"}'] == m['tessera_redis_writes_total{view="user_stats"}']

        # Redis hangs: the worker waits for it, and says so in /ready and the metrics.
        redis_pid = int(open(os.path.join(state, "redis.pid")).read())
        os.kill(redis_pid, signal.SIGSTOP)
        try:
            producer.produce("orders", key="1", value=json.dumps(
                {"order_id": 1, "user_id": 1, "product_id": 1, "amount": 1.0, "status": "paid",
                 "event_timestamp": int(time.time() * 1000)}).encode())
            producer.flush(30)
            status, body = wait_for(lambda: (lambda s: s if s[0] == 503 else None)(get(f"http://127.0.0.1:{port}/ready")),
                                    what="/ready to report the hung Redis")
            assert "Redis unreachable" in json.loads(body)["reason"]
            assert get(f"http://127.0.0.1:{port}/health")[0] == 200  # alive, waiting
            assert scrape(port)["tessera_retrying"] == 1
        finally:
            os.kill(redis_pid, signal.SIGCONT)
        wait_for(lambda: get(f"http://127.0.0.1:{port}/ready")[0] == 200, what="/ready after Redis came back")
        assert scrape(port)['tessera_errors_total{component="redis"}'] >= 1
        assert_incomplete_request_closed(port)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0
    assert get(f"http://127.0.0.1:{port}/health")[0] is None


def assert_incomplete_request_closed(port):
    # An incomplete request is not kept open: the server closes the connection within its idle timeout (10 s).
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"POST /get-online-features HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
        s.settimeout(30)
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
        except socket.timeout:
            raise AssertionError("the server kept an incomplete request open for 30 s")


def test_serve_answers_feast_requests(services):
    state, env, ports = services
    r = redis.Redis(port=ports["redis"])
    users = sorted(int(k.split(b":")[-1]) for k in r.keys("tessera:user_stats:*"))[:6]
    assert users, "the previous test leaves rows in Redis"
    port = free_port()
    log = open(os.path.join(state, "serve.log"), "w")
    # --max-age-status: rows older than the view's TTL are marked (Feast's Redis store does not).
    server = subprocess.Popen([TESSERA, "serve", "--topology", TOPOLOGY, "--redis", f"redis://127.0.0.1:{ports['redis']}",
                               "--port", str(port), "--max-age-status"], env=env, stdout=log, stderr=log)
    try:
        wait_for(lambda: get(f"http://127.0.0.1:{port}/health")[0] == 200, what="tessera serve")
        request = {"features": ["user_stats:total_orders", "user_stats:avg_order_amount_7d", "user_stats:last_status"],
                   "entities": {"user_id": users + [999_999_999]}}
        req = urllib.request.Request(f"http://127.0.0.1:{port}/get-online-features", data=json.dumps(request).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            answer = json.loads(resp.read())
        assert answer["metadata"]["feature_names"] == ["user_id", "total_orders", "avg_order_amount_7d", "last_status"]
        assert [len(res["values"]) for res in answer["results"]] == [len(users) + 1] * 4
        for i, user in enumerate(users):
            row = {k.decode(): v.decode() for k, v in r.hgetall(f"tessera:user_stats:{user}").items()}
            assert answer["results"][1]["values"][i] == int(row["total_orders"])
            assert answer["results"][3]["values"][i] == row.get("last_status")
            # Rows whose event time is more than the view's TTL (1 day) ago are OUTSIDE_MAX_AGE.
            stale = time.time() - int(row["_event_ts"]) / 1e6 > 86_400
            assert answer["results"][1]["statuses"][i] == ("OUTSIDE_MAX_AGE" if stale else "PRESENT")
        assert [res["statuses"][-1] for res in answer["results"][1:]] == ["NOT_FOUND"] * 3

        # Feast's own reader of a feature server's answer (its remote online store) takes it as is.
        from feast.infra.online_stores.remote import RemoteOnlineStore
        online = RemoteOnlineStore._build_online_response_from_json(RemoteOnlineStore.__new__(RemoteOnlineStore), answer)
        table = online.to_dict()
        assert table["user_id"] == users + [999_999_999]
        assert table["total_orders"][:len(users)] == answer["results"][1]["values"][:len(users)]
        assert table["total_orders"][-1] is None

        bad = urllib.request.Request(f"http://127.0.0.1:{port}/get-online-features", data=b'{"features": ["nope:x"]}', method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=10)
        assert refused.value.code == 400 and "error" in json.loads(refused.value.read())
        assert_incomplete_request_closed(port)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)

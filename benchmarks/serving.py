#!/usr/bin/env python3
"""Online lookup latency: `tessera serve` (Feast's POST /get-online-features) against the bare
Redis round trip it wraps, measured in the same run on the same rows.

    python3 benchmarks/serving.py [--tessera .build/release/tessera] [--requests 5000]

Fills Redis with the reference view (`tessera backfill --redis` over 20 000 reference events),
then times, one request at a time over a kept-alive connection:
- redis: HGETALL of one entity's hash (what `redis-cli HGETALL` sends), with redis-py;
- serve, 1 entity: POST /get-online-features for every feature of user_stats, one user;
- serve, 10 entities: the same for ten users (one pipelined Redis round trip inside).
Prints p50 / p99 / max in microseconds and the ratios to the Redis round trip.
"""
import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVICES = os.path.join(ROOT, "scripts", "services.sh")
TOPOLOGY = os.path.join(ROOT, "topologies", "growth.yaml")
FEATURES = ["total_orders_1h", "total_orders_7d", "total_orders", "total_amount_1d", "avg_order_amount_7d",
            "max_order_amount_7d", "amount_stddev_7d", "distinct_products_7d", "last_status", "paid_orders_1d"]


def percentiles(samples):
    s = sorted(samples)
    return {"p50": s[len(s) // 2], "p99": s[min(len(s) - 1, int(len(s) * 0.99))], "max": s[-1]}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tessera", default=os.path.join(ROOT, ".build", "release", "tessera"))
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    state = tempfile.mkdtemp(prefix="tessera-serving-")
    subprocess.run([SERVICES, "start-redis", state], check=True)
    server = None
    try:
        redis_port = int(open(os.path.join(state, "redis.port")).read())
        events = os.path.join(state, "events.jsonl")
        subprocess.run([args.tessera, "produce", "--scale", "quick", "--count", "20000", "--out", events], check=True, capture_output=True)
        subprocess.run([args.tessera, "backfill", "--topology", TOPOLOGY, "--events", events, "--partitions", "4",
                        "--offline-dir", os.path.join(state, "offline"), "--redis", f"redis://127.0.0.1:{redis_port}"],
                       check=True, capture_output=True)
        r = redis.Redis(port=redis_port)
        users = [int(k.split(b":")[-1]) for k in r.keys("tessera:user_stats:*")]
        port = free_port()
        server = subprocess.Popen([args.tessera, "serve", "--topology", TOPOLOGY, "--redis", f"redis://127.0.0.1:{redis_port}",
                                   "--port", str(port)], stdout=subprocess.DEVNULL, stderr=open(os.path.join(state, "serve.log"), "w"))
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        rng = random.Random(7)
        conn = http.client.HTTPConnection("127.0.0.1", port)

        def serve(n):
            body = json.dumps({"features": [f"user_stats:{f}" for f in FEATURES],
                               "entities": {"user_id": rng.sample(users, n)}})
            start = time.perf_counter_ns()
            conn.request("POST", "/get-online-features", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
            elapsed = time.perf_counter_ns() - start
            assert response.status == 200, payload
            return elapsed

        def redis_round_trip():
            key = f"tessera:user_stats:{rng.choice(users)}"
            start = time.perf_counter_ns()
            r.hgetall(key)
            return time.perf_counter_ns() - start

        rows = {}
        for name, fn in [("redis HGETALL (1 entity)", redis_round_trip), ("serve, 1 entity", lambda: serve(1)),
                         ("serve, 10 entities", lambda: serve(10))]:
            for _ in range(200):
                fn()  # warm up
            rows[name] = percentiles([fn() / 1000 for _ in range(args.requests)])
        base = rows["redis HGETALL (1 entity)"]
        print(f"{len(users)} users in Redis; {args.requests} sequential requests each, one connection kept alive; "
              f"{os.cpu_count()} cores")
        print(f"{'what':28} {'p50 µs':>8} {'p99 µs':>8} {'max µs':>8} {'p50 ×':>6} {'p99 ×':>6}")
        for name, p in rows.items():
            print(f"{name:28} {p['p50']:8.0f} {p['p99']:8.0f} {p['max']:8.0f} {p['p50'] / base['p50']:6.1f} {p['p99'] / base['p99']:6.1f}")
    finally:
        if server:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
        subprocess.run([SERVICES, "stop", state], check=False)


if __name__ == "__main__":
    sys.exit(main())

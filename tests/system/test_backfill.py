"""`tessera backfill` equals streaming (issue: training sets): the reference `quick` workload goes
through the tansu broker into a worker run to the end, and the same events, written as JSON lines
and as Parquet, through `tessera backfill`. The offline logs (every row per partition, as a
multiset, created_timestamp left out: it is the wall clock of the write) and the online rows
must be equal.
"""
import json
import os
import subprocess
from collections import Counter

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESSERA = os.environ.get("TESSERA_BIN", os.path.join(ROOT, ".build", "release", "tessera"))
TOPOLOGY = os.path.join(ROOT, "topologies", "growth.yaml")


def offline_rows(offline):
    rows = {}
    for partition in sorted(os.listdir(os.path.join(offline, "user_stats"))):
        table = ds.dataset(os.path.join(offline, "user_stats", partition), format="parquet").to_table()
        columns = [c for c in table.column_names if c != "created_timestamp"]
        rows[partition] = Counter(zip(*(table.column(c).to_pylist() for c in columns)))
    return rows


def online_rows(r, prefix):
    rows = {}
    for key in r.scan_iter(match=prefix + "user_stats:*", count=10_000):
        rows[key.decode()[len(prefix):]] = {k.decode(): v.decode() for k, v in r.hgetall(key).items() if k != b"_created_ts"}
    return rows


def test_backfill_equals_streaming(services):
    state, env, ports = services
    brokers, redis_url = f"127.0.0.1:{ports['tansu']}", f"redis://127.0.0.1:{ports['redis']}"
    subprocess.run([TESSERA, "produce", "--brokers", brokers, "--topic", "orders", "--scale", "quick", "--partitions", "4"],
                   check=True, env=env, capture_output=True)
    streamed = os.path.join(state, "streamed")
    run = subprocess.run([TESSERA, "run", "--topology", TOPOLOGY, "--brokers", brokers, "--redis", redis_url,
                          "--offline-dir", streamed, "--key-prefix", "stream:", "--idle-seconds", "0", "--until-end",
                          "--stats-seconds", "0"], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]

    events = os.path.join(state, "orders.jsonl")
    subprocess.run([TESSERA, "produce", "--scale", "quick", "--out", events], check=True, capture_output=True)
    # The same events as Parquet: event_timestamp as a timestamp column, the rest as typed columns.
    with open(events) as f:
        orders = [json.loads(line) for line in f]
    table = pa.table({
        "order_id": [o["order_id"] for o in orders], "user_id": [o["user_id"] for o in orders],
        "product_id": [o["product_id"] for o in orders], "amount": [float(o["amount"]) for o in orders],
        "status": [o["status"] for o in orders],
        "event_timestamp": pa.array([o["event_timestamp"] * 1000 for o in orders], pa.timestamp("us", tz="UTC")),
    })
    parquet = os.path.join(state, "orders.parquet")
    pq.write_table(table, parquet, row_group_size=50_000)

    expected = offline_rows(streamed)
    assert len(expected) == 4 and sum(sum(c.values()) for c in expected.values()) > len(orders)
    r = redis.Redis(host="127.0.0.1", port=ports["redis"])
    online = online_rows(r, "stream:")
    assert len(online) > 10_000
    for name, path in (("jsonl", events), ("parquet", parquet)):
        out = os.path.join(state, "backfill-" + name)
        done = subprocess.run([TESSERA, "backfill", "--topology", TOPOLOGY, "--events", path, "--offline-dir", out,
                               "--partitions", "4", "--redis", redis_url, "--key-prefix", name + ":"],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"{len(orders)} events" in done.stderr
        assert offline_rows(out) == expected, name
        assert online_rows(r, name + ":") == online, name
    # A second backfill into a log that has files is refused with a clear message.
    again = subprocess.run([TESSERA, "backfill", "--topology", TOPOLOGY, "--events", events, "--offline-dir",
                            os.path.join(state, "backfill-jsonl"), "--partitions", "4"], capture_output=True, text=True)
    assert again.returncode == 1 and "already holds" in again.stderr

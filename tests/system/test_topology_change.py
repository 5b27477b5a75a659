"""A view gains a feature between two runs of one consumer group, as a team would roll it out.

The first run computes `user_stats` over the first half of the `quick` stream; the second, with
`orders_since_change` (a lifetime count) added, resumes from the checkpoints and reads the rest:
- the saved features carry on (`total_orders` counts every event of a user, once); the new one
  starts empty (it counts only the events from the offsets the second run resumed at);
- the files the first run wrote are given the new column (null) when the second run restores the
  partitions, so every file of the view has the view's whole schema: `tessera inspect` lists the
  column in every file, and `tessera historical` equals an as-of query in DuckDB over a plain glob
  (no union by name: DuckDB takes the columns from the first file), null where the matched row
  predates the feature, at a time inside the first run and at each user's last emission, where
  it also equals the Redis row (invariant 3).
"""
import json
import os
import re
import subprocess
from collections import Counter

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import redis
from confluent_kafka import Consumer, TopicPartition

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESSERA = os.environ.get("TESSERA_BIN", os.path.join(ROOT, ".build", "release", "tessera"))
TOPOLOGY = os.path.join(ROOT, "topologies", "growth.yaml")
HALF, PARTITIONS = 100_000, 4
ADDED = "orders_since_change"


def tessera(env, *args):
    done = subprocess.run([TESSERA, *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (args[0], done.stderr[-4000:])
    return done


def events_per_user(brokers, ends):
    """Events per user below `ends` (an offset per partition) and from there on, and the next
    offset of each partition (the whole stream is read: tansu's watermarks lag behind)."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": "topology-change-count", "enable.auto.commit": False,
                         "session.timeout.ms": 6000})
    consumer.assign([TopicPartition("orders", p, 0) for p in range(PARTITIONS)])
    before, after, next_offsets = Counter(), Counter(), {}
    while sum(before.values()) + sum(after.values()) < 2 * HALF:
        for m in consumer.consume(10_000, 1.0):
            assert not m.error(), m.error()
            (before if m.offset() < ends[m.partition()] else after)[int(m.key())] += 1
            next_offsets[m.partition()] = m.offset() + 1
    consumer.close()
    return before, after, next_offsets


def test_added_feature(services):
    state, env, ports = services
    brokers, redis_url = f"127.0.0.1:{ports['tansu']}", f"redis://127.0.0.1:{ports['redis']}"
    offline = os.path.join(state, "offline")
    changed = os.path.join(state, "growth-changed.yaml")
    with open(TOPOLOGY) as f, open(changed, "w") as out:
        text = f.read()
        marker = "      - name: paid_orders_1d\n"
        assert marker in text
        out.write(text.replace(marker, f"      - {{name: {ADDED}, aggregate: count, window: lifetime}}\n" + marker))
    run = ["run", "--brokers", brokers, "--redis", redis_url, "--offline-dir", offline, "--group", "teams",
           "--until-end", "--idle-seconds", "0", "--stats-seconds", "0", "--kafka-config", "session.timeout.ms=6000"]

    tessera(env, "produce", "--brokers", brokers, "--topic", "orders", "--scale", "quick", "--count", str(HALF),
            "--partitions", str(PARTITIONS))
    tessera(env, *run, "--topology", TOPOLOGY)
    first_files = {os.path.join(d, f) for d, _, fs in os.walk(os.path.join(offline, "user_stats")) for f in fs if f.endswith(".parquet")}
    first_run_end = max(pq.read_table(p, columns=["event_timestamp"]).column(0).cast(pa.int64()).to_pylist()[-1] for p in first_files)

    tessera(env, "produce", "--brokers", brokers, "--topic", "orders", "--scale", "quick", "--from", str(HALF),
            "--partitions", str(PARTITIONS))
    second = tessera(env, *run, "--topology", changed)
    widened = [json.loads(line) for line in second.stderr.splitlines() if "given the view's added features" in line]
    assert sorted(int(w["partition"].removeprefix("orders[").removesuffix("]")) for w in widened) == list(range(PARTITIONS)), second.stderr[-3000:]
    assert sum(int(w["files"]) for w in widened) == len(first_files)
    # Where the second run resumed each partition: its checkpoint's offset.
    ends = {}
    for line in (second.stderr + second.stdout).splitlines():
        if '"partition restored"' in line:
            restored = json.loads(line)
            assert restored["checkpoint"] == "true", line
            ends[int(restored["partition"].removeprefix("orders[").removesuffix("]"))] = int(restored["offset"])
    assert sorted(ends) == list(range(PARTITIONS)) and all(ends.values()), ends

    # Saved features carry on; the added one starts empty.
    before, after, next_offsets = events_per_user(brokers, ends)
    r = redis.Redis(host="127.0.0.1", port=ports["redis"])
    rows = {}
    for user in set(before) | set(after):
        rows[user] = {k.decode(): v.decode() for k, v in r.hgetall(f"tessera:user_stats:{user}").items()}
        assert int(rows[user]["total_orders"]) == before[user] + after[user], user
        assert int(rows[user].get(ADDED, 0)) == after[user], user
    assert len(before) > 1000 and len(after) > 1000

    # The offline log, as `tessera inspect` describes it.
    files = {os.path.join(d, f) for d, _, fs in os.walk(os.path.join(offline, "user_stats")) for f in fs if f.endswith(".parquet")}
    inspect = tessera(env, "inspect", offline).stdout
    assert first_files < files
    assert f"{ADDED} int64," in inspect and f"{ADDED} int64 (in" not in inspect, inspect
    for p in first_files:
        assert pq.read_schema(p).names == pq.read_schema(sorted(files - first_files)[0]).names, p
        assert pq.read_table(p, columns=[ADDED]).column(0).null_count == pq.read_metadata(p).num_rows, p
    assert "total_orders int64," in inspect and "9223372036854775807" not in inspect, inspect
    for p in range(PARTITIONS):
        first, last = map(int, re.search(rf"partition={p}: .* input offsets (\d+)…(\d+)", inspect).groups())
        assert 0 <= first <= ends[p] <= last <= next_offsets[p], (p, first, last, inspect)

    # Training sets over the files of both runs, against DuckDB over a plain glob.
    frame = os.path.join(state, "entities.parquet")
    users = sorted(rows)
    times = [first_run_end] * len(users) + [int(rows[u]["_event_ts"]) for u in users]
    pq.write_table(pa.table({"user_id": pa.array(users + users, pa.int64()),
                             "event_timestamp": pa.array(times, pa.int64()).cast(pa.timestamp("us", tz="UTC"))}), frame)
    out = os.path.join(state, "training.parquet")
    tessera(env, "historical", "--topology", changed, "--offline-dir", offline, "--entities", frame, "--features", "user_stats:*",
            "--out", out)
    training = pq.read_table(out)
    features = training.column_names[2:]
    assert ADDED in features and "total_orders" in features
    expected = duckdb.sql(f"""
        SELECT {", ".join(f"f.{n}" for n in features)}
        FROM (SELECT row_number() OVER () AS row, * FROM '{frame}') e
        LEFT JOIN read_parquet('{offline}/user_stats/*/*.parquet') f
          ON f.user_id = e.user_id AND f.event_timestamp <= e.event_timestamp
         AND e.event_timestamp - f.event_timestamp <= INTERVAL 1 DAY
        QUALIFY row_number() OVER (PARTITION BY e.row ORDER BY f.event_timestamp DESC, f.created_timestamp DESC) = 1
        ORDER BY e.row""").fetchall()
    actual = list(zip(*(training.column(n).to_pylist() for n in features)))
    assert actual == [tuple(row) for row in expected]
    early = actual[:len(users)]
    assert sum(1 for row in early if row[features.index("total_orders")] is not None) > 1000
    assert sum(1 for row in early if row[features.index(ADDED)] is not None) < len(early) // 2

    # At each user's last emission, the training set is what serving returns.
    for i, user in enumerate(users):
        for name, value in zip(features, actual[len(users) + i]):
            if value is None:
                assert name not in rows[user], (user, name)
            elif isinstance(value, float):
                assert float(rows[user][name]) == value, (user, name)
            else:
                assert rows[user][name] == str(value), (user, name)

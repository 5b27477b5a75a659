"""System test: the reference `quick` workload through the tansu broker.

`tessera produce` writes the orders, `tessera run --until-end` drains them into Redis and the
offline log, and third-party readers (pyarrow, DuckDB) check what Tessera wrote:
- both readers read every offline row with the same schema and values;
- the last offline row of every user is the row Redis serves (invariant 3);
- every produced event is counted exactly once (lifetime order counts = events per user).
"""
import json
import os
import subprocess
from collections import Counter

import duckdb
import pyarrow.dataset as ds
import redis
from confluent_kafka import Consumer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESSERA = os.environ.get("TESSERA_BIN", os.path.join(ROOT, ".build", "release", "tessera"))


def test_produce_run_and_read_back(services):
    state, env, ports = services
    brokers = f"127.0.0.1:{ports['tansu']}"
    offline = os.path.join(state, "offline")
    subprocess.run([TESSERA, "produce", "--brokers", brokers, "--topic", "orders", "--scale", "quick", "--partitions", "4"],
                   check=True, env=env)
    run = subprocess.run([TESSERA, "run", "--topology", os.path.join(ROOT, "topologies", "growth.yaml"),
                          "--brokers", brokers, "--redis", f"redis://127.0.0.1:{ports['redis']}",
                          "--offline-dir", offline, "--until-end", "--kafka-config", "session.timeout.ms=6000",
                          "--stats-seconds", "2"], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]

    # Events per user, read from the topic itself.
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": "system-test-count", "auto.offset.reset": "earliest",
                         "enable.partition.eof": True, "session.timeout.ms": 6000})
    consumer.subscribe(["orders"])
    events, ended = Counter(), set()
    while len(ended) < 4:
        m = consumer.poll(1.0)
        if m is None:
            continue
        if m.error():
            ended.add(m.partition())
            continue
        events[json.loads(m.value())["user_id"]] += 1
    consumer.close()
    assert sum(events.values()) == 200_000

    # Both third-party readers see the same rows.
    table = ds.dataset(os.path.join(offline, "user_stats"), format="parquet", partitioning="hive").to_table()
    con = duckdb.connect()
    files = os.path.join(offline, "user_stats", "*", "*.parquet")
    assert con.execute(f"select count(*) from read_parquet('{files}')").fetchall()[0][0] == table.num_rows
    assert str(table.schema.field("event_timestamp").type) == "timestamp[us, tz=UTC]"
    features = ["total_orders_1h", "total_orders_7d", "total_orders", "total_amount_1d", "avg_order_amount_7d",
                "max_order_amount_7d", "amount_stddev_7d", "distinct_products_7d", "last_status", "paid_orders_1d"]
    last = con.execute(f"""
        select user_id, {", ".join(features)}, epoch_us(event_timestamp), epoch_us(created_timestamp)
        from read_parquet('{files}')
        qualify row_number() over (partition by user_id order by event_timestamp desc, created_timestamp desc) = 1
    """).fetchall()
    assert len(last) == len(events)

    # Invariant 3 and exactly-once counting, user by user.
    r = redis.Redis(host="127.0.0.1", port=ports["redis"])
    for row in last:
        user = row[0]
        online = {k.decode(): v.decode() for k, v in r.hgetall(f"tessera:user_stats:{user}").items()}
        assert int(online["_event_ts"]) == row[-2] and int(online["_created_ts"]) == row[-1], user
        for name, value in zip(features, row[1:-2]):
            if value is None:
                assert name not in online, (user, name)
            elif isinstance(value, float):
                assert float(online[name]) == value, (user, name)
            else:
                assert online[name] == str(value), (user, name)
        assert row[1 + features.index("total_orders")] == events[user], user

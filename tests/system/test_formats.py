"""Topics as teams have them, through the tansu broker: the reference orders produced again as
nested JSON (the entity in a header, the event time only in the Kafka record timestamp) give
exactly the offline and online rows of the flat reference events (`tessera produce`).

The nested twin of `user_stats` reads `order.amount`, `order.status`, … at their paths, `user_id`
from the record header `user` and its event time from the record timestamp; every event goes to
the partition and position of its flat original, so even the `_offset` column must agree.
"""
import json
import os
import subprocess

import duckdb
import redis
from confluent_kafka import Consumer, Producer, TopicPartition

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESSERA = os.environ.get("TESSERA_BIN", os.path.join(ROOT, ".build", "release", "tessera"))
EVENTS, PARTITIONS = 200_000, 4

NESTED = """
team: nested
sources:
  - name: nested_orders
    topic: orders_nested
    format: json
    timestamp: {field: produced_at, unit: ms}
    allowed_lateness: 5s
    fields:
      order_id: {type: int64, path: order.id}
      user_id: {type: int64, header: user}
      product_id: {type: int64, path: order.item.product}
      amount: {type: float64, path: order.amount}
      status: {type: string, path: order.status}
      produced_at: {type: int64, from: kafka_timestamp}
entities:
  - name: user
    join_keys: {user_id: int64}
feature_views:
  - name: user_stats_nested
    entities: [user]
    source: nested_orders
    ttl: 1d
"""


def tessera(env, *args):
    done = subprocess.run([TESSERA, *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (args[0], done.stderr[-4000:])
    return done


def nested_twin(brokers):
    """Reads the flat reference orders and produces each again, nested, to the same partition."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": "formats-twin", "enable.auto.commit": False,
                         "session.timeout.ms": 6000})
    consumer.assign([TopicPartition("orders", p, 0) for p in range(PARTITIONS)])
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 20})
    seen = 0
    while seen < EVENTS:
        for m in consumer.consume(10_000, 1.0):
            assert not m.error(), m.error()
            e = json.loads(m.value())
            nested = {"order": {"id": e["order_id"], "amount": e["amount"], "status": e["status"],
                                "item": {"product": e["product_id"], "qty": 1}},
                      "source": {"app": "shop", "version": [1, 2]}}
            producer.produce("orders_nested", key=m.key(), value=json.dumps(nested), partition=m.partition(),
                             timestamp=e["event_timestamp"], headers=[("user", str(e["user_id"]).encode()), ("trace", b"x")])
            seen += 1
        producer.poll(0)
    producer.flush()
    consumer.close()


def test_nested_json_keyed_on_a_header_and_timed_by_the_record(services):
    state, env, ports = services
    brokers, redis_url = f"127.0.0.1:{ports['tansu']}", f"redis://127.0.0.1:{ports['redis']}"
    offline = os.path.join(state, "offline")
    growth = open(os.path.join(ROOT, "topologies", "growth.yaml")).read()
    features = growth[growth.index("    features:\n"):]
    topology = os.path.join(state, "nested.yaml")
    with open(topology, "w") as f:
        f.write(NESTED + features)
    tessera(env, "validate", topology)

    tessera(env, "produce", "--brokers", brokers, "--topic", "orders", "--scale", "quick", "--partitions", str(PARTITIONS))
    tessera(env, "produce", "--brokers", brokers, "--topic", "orders_nested", "--count", "0", "--partitions", str(PARTITIONS))
    nested_twin(brokers)
    run = tessera(env, "run", "--topology", os.path.join(ROOT, "topologies", "growth.yaml"), "--topology", topology,
                  "--brokers", brokers, "--redis", redis_url, "--offline-dir", offline, "--until-end", "--idle-seconds", "0",
                  "--stats-seconds", "0", "--kafka-config", "session.timeout.ms=6000")
    stopped = [json.loads(line) for line in run.stderr.splitlines() if '"message":"stopped"' in line][-1]
    assert int(stopped["events"]) == 2 * EVENTS and int(stopped["dead_lettered"]) == 0, stopped

    described = json.loads(tessera(env, "describe", "--topology", topology, "--json").stdout)
    names = [f["name"] for f in described["topologies"][0]["views"][0]["features"]]
    columns = ", ".join(["user_id"] + names + ["epoch_us(event_timestamp)", "_offset", "partition"])
    def rows(view):
        return sorted(duckdb.sql(f"SELECT {columns} FROM read_parquet('{offline}/{view}/*/*.parquet', hive_partitioning = true)").fetchall(),
                      key=repr)
    flat, nested = rows("user_stats"), rows("user_stats_nested")
    assert len(flat) > EVENTS and flat == nested

    r = redis.Redis(host="127.0.0.1", port=ports["redis"])
    users = {row[0] for row in flat}
    for user in sorted(users)[::7]:
        a = {k: v for k, v in r.hgetall(f"tessera:user_stats:{user}").items() if k != b"_created_ts"}
        b = {k: v for k, v in r.hgetall(f"tessera:user_stats_nested:{user}").items() if k != b"_created_ts"}
        assert a and a == b, user

"""Topics as teams have them, through the tansu broker: the reference orders produced again in
another shape give exactly the offline and online rows of the flat JSON reference events
(`tessera produce`), the oracle of every other test:
- as nested JSON, the entity in a record header and the event time only in the record timestamp
  (the twin view reads `order.amount`, … at their paths);
- as Avro through a schema registry, by confluent-kafka's own AvroSerializer: schema v1 for the
  first half, then v2, which adds an optional field and widens `product_id` from int to long.
Every event goes to the partition and position of its flat original, so even `_offset` agrees.
And the registry's faults: an unknown schema id, an undecodable payload and a writer schema the
source cannot read are dead-lettered each with its reason and count; a registry down for 10 s
stops the worker from consuming (reported), and it loses nothing.
"""
import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

import duckdb
import redis
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import free_port

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


def twin(brokers, topic, encode):
    """Reads the flat reference orders and produces each again to `topic`, to the same partition
    in the same order: `encode(index, event)` gives (value, headers, timestamp)."""
    create_topic(brokers, topic)
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"formats-{topic}", "enable.auto.commit": False,
                         "session.timeout.ms": 6000})
    consumer.assign([TopicPartition("orders", p, 0) for p in range(PARTITIONS)])
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 20})
    seen = 0
    while seen < EVENTS:
        for m in consumer.consume(10_000, 1.0):
            assert not m.error(), m.error()
            value, headers, timestamp = encode(m.offset(), json.loads(m.value()))
            producer.produce(topic, key=m.key(), value=value, partition=m.partition(), timestamp=timestamp, headers=headers)
            seen += 1
        producer.poll(0)
    producer.flush()
    consumer.close()


def nested(_, e):
    value = {"order": {"id": e["order_id"], "amount": e["amount"], "status": e["status"], "item": {"product": e["product_id"], "qty": 1}},
             "source": {"app": "shop", "version": [1, 2]}}
    return json.dumps(value), [("user", str(e["user_id"]).encode()), ("trace", b"x")], e["event_timestamp"]


def same_rows(env, offline, ports, topology, twin_view):
    """The twin view's offline rows and Redis rows equal user_stats' (created times aside)."""
    described = json.loads(tessera(env, "describe", "--topology", topology, "--json").stdout)
    names = [f["name"] for f in described["topologies"][0]["views"][0]["features"]]
    columns = ", ".join(["user_id"] + names + ["epoch_us(event_timestamp)", "_offset", "partition"])
    def rows(view):
        return sorted(duckdb.sql(f"SELECT {columns} FROM read_parquet('{offline}/{view}/*/*.parquet', hive_partitioning = true)").fetchall(),
                      key=repr)
    flat, other = rows("user_stats"), rows(twin_view)
    assert len(flat) > EVENTS and flat == other
    r = redis.Redis(host="127.0.0.1", port=ports["redis"])
    for user in sorted({row[0] for row in flat})[::7]:
        a = {k: v for k, v in r.hgetall(f"tessera:user_stats:{user}").items() if k != b"_created_ts"}
        b = {k: v for k, v in r.hgetall(f"tessera:{twin_view}:{user}").items() if k != b"_created_ts"}
        assert a and a == b, user


@pytest.fixture(scope="module")
def flat(services):
    """The flat reference orders, produced once for the module."""
    state, env, ports = services
    tessera(env, "produce", "--brokers", f"127.0.0.1:{ports['tansu']}", "--topic", "orders", "--scale", "quick",
            "--partitions", str(PARTITIONS))
    return services


def run_until_end(env, ports, offline, *topologies, group="tessera"):
    args = ["run", "--brokers", f"127.0.0.1:{ports['tansu']}", "--redis", f"redis://127.0.0.1:{ports['redis']}",
            "--offline-dir", offline, "--until-end", "--idle-seconds", "0", "--stats-seconds", "0", "--group", group,
            "--kafka-config", "session.timeout.ms=6000"]
    for t in topologies:
        args += ["--topology", t]
    run = tessera(env, *args)
    return [json.loads(line) for line in run.stderr.splitlines() if '"message":"stopped"' in line][-1]


def test_nested_json_keyed_on_a_header_and_timed_by_the_record(flat):
    state, env, ports = flat
    brokers = f"127.0.0.1:{ports['tansu']}"
    offline = os.path.join(state, "offline-nested")
    growth = open(os.path.join(ROOT, "topologies", "growth.yaml")).read()
    features = growth[growth.index("    features:\n"):]
    topology = os.path.join(state, "nested.yaml")
    with open(topology, "w") as f:
        f.write(NESTED + features)
    tessera(env, "validate", topology)
    twin(brokers, "orders_nested", nested)
    stopped = run_until_end(env, ports, offline, os.path.join(ROOT, "topologies", "growth.yaml"), topology, group="nested")
    assert int(stopped["events"]) == 2 * EVENTS and int(stopped["dead_lettered"]) == 0, stopped
    same_rows(env, offline, ports, topology, "user_stats_nested")


AVRO_V1 = {"type": "record", "name": "Order", "namespace": "shop", "fields": [
    {"name": "order_id", "type": "long"},
    {"name": "user_id", "type": "long"},
    {"name": "product_id", "type": "int"},
    {"name": "amount", "type": "double"},
    {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["paid", "refunded", "cancelled"]}},
    {"name": "event_timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
]}
# v2: an optional field added (with a default), product_id widened from int to long.
AVRO_V2 = {**AVRO_V1, "fields": AVRO_V1["fields"][:2] + [
    {"name": "coupon", "type": ["null", "string"], "default": None},
    {"name": "product_id", "type": "long"},
] + AVRO_V1["fields"][3:]}

TWIN_SOURCE = """
team: TEAM
sources:
  - name: TEAM_orders
    topic: TOPIC
    format: FORMAT
SCHEMAS
    timestamp: {field: event_timestamp, unit: ms}
    allowed_lateness: 5s
    fields: FIELDS
entities:
  - name: user
    join_keys: {user_id: int64}
feature_views:
  - name: VIEW
    entities: [user]
    source: TEAM_orders
    ttl: 1d
"""
TWIN_FIELDS = "{order_id: int64, user_id: int64, product_id: int64, amount: float64, status: string}"


def twin_topology(state, view, topic, format, schemas, fields=TWIN_FIELDS):
    """A topology whose view `view` is user_stats (the same features) over `topic` in `format`."""
    growth = open(os.path.join(ROOT, "topologies", "growth.yaml")).read()
    path = os.path.join(state, f"{view}.yaml")
    with open(path, "w") as f:
        f.write(TWIN_SOURCE.replace("TEAM", view).replace("TOPIC", topic).replace("FORMAT", format).replace("SCHEMAS", schemas)
                .replace("FIELDS", fields).replace("VIEW", view) + growth[growth.index("    features:\n"):])
    return path


def create_topic(brokers, topic):
    admin = AdminClient({"bootstrap.servers": brokers})
    for future in admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)]).values():
        future.result()


class Registry:
    """tests/system/schema_registry.py on a free port, stopped by PID; restartable on its port."""

    def __init__(self, state):
        self.port, self.state = free_port(), os.path.join(state, "registry.json")
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None
        self.start()

    def start(self):
        self.process = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "system", "schema_registry.py"), "--port", str(self.port),
                                         "--state", self.state, "--user", "tessera"], env=dict(os.environ, REGISTRY_PASSWORD="s3cret"))
        for _ in range(100):
            try:
                urllib.request.urlopen(urllib.request.Request(self.url + "/subjects"), timeout=1)
            except urllib.error.HTTPError:
                return  # it answers (401 without credentials)
            except OSError:
                time.sleep(0.1)
        raise AssertionError("the schema registry did not start")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def registry(flat):
    r = Registry(flat[0])
    yield r
    r.stop()


def serializer(registry, schema):
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext
    client = SchemaRegistryClient({"url": registry.url, "basic.auth.user.info": "tessera:s3cret"})
    avro = AvroSerializer(client, json.dumps(schema))
    return lambda topic, value: avro(value, SerializationContext(topic, MessageField.VALUE))


def avro_topology(state, registry, topic, view):
    return twin_topology(state, view, topic, "avro", f"    schema_registry: {{url: {registry.url}}}")


def registry_env(env):
    return dict(env, TESSERA_SCHEMA_REGISTRY_USERNAME="tessera", TESSERA_SCHEMA_REGISTRY_PASSWORD="s3cret")


def test_avro_through_a_schema_registry_v1_then_v2(flat, registry):
    state, env, ports = flat
    brokers = f"127.0.0.1:{ports['tansu']}"
    offline = os.path.join(state, "offline-avro")
    v1, v2 = serializer(registry, AVRO_V1), serializer(registry, AVRO_V2)

    def encode(offset, e):
        record = {k: e[k] for k in ("order_id", "user_id", "product_id", "amount", "status", "event_timestamp")}
        if offset < EVENTS // 8:
            return v1("orders_avro", record), None, e["event_timestamp"]
        return v2("orders_avro", dict(record, coupon=None if offset % 3 else f"c{offset}")), None, e["event_timestamp"]

    twin(brokers, "orders_avro", encode)
    subjects = json.loads(urllib.request.urlopen(urllib.request.Request(
        registry.url + "/subjects/orders_avro-value/versions", headers={"Authorization": "Basic dGVzc2VyYTpzM2NyZXQ="})).read())
    assert subjects == [1, 2]
    topology = avro_topology(state, registry, "orders_avro", "user_stats_avro")
    tessera(env, "validate", topology)
    stopped = run_until_end(registry_env(env), ports, offline, os.path.join(ROOT, "topologies", "growth.yaml"), topology, group="avro")
    assert int(stopped["events"]) == 2 * EVENTS and int(stopped["dead_lettered"]) == 0, stopped
    same_rows(env, offline, ports, topology, "user_stats_avro")


def test_avro_faults_each_with_its_reason_and_a_registry_outage_loses_nothing(flat, registry):
    state, env, ports = flat
    brokers = f"127.0.0.1:{ports['tansu']}"
    env = registry_env(env)
    offline = os.path.join(state, "offline-faults")
    topology = avro_topology(state, registry, "avro_faults", "fault_stats")
    create_topic(brokers, "avro_faults")
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 5})
    v1 = serializer(registry, AVRO_V1)
    # A writer schema the source cannot read: amount is text.
    text_amount = serializer(registry, {**AVRO_V1, "name": "TextOrder", "fields": [
        dict(f, type="string") if f["name"] == "amount" else f for f in AVRO_V1["fields"]]})
    start = 1_767_225_600_000
    sent = {}  # user → good events

    def good(i, encode=v1):
        user = 1 + i % 50
        sent[user] = sent.get(user, 0) + 1
        producer.produce("avro_faults", key=str(user), value=encode("avro_faults", {
            "order_id": i, "user_id": user, "product_id": i % 7, "amount": 1.5, "status": "paid", "event_timestamp": start + i * 1000}))

    for i in range(1_000):
        good(i)
    body = v1("avro_faults", {"order_id": 0, "user_id": 1, "product_id": 1, "amount": 1.0, "status": "paid", "event_timestamp": start})
    bad = {"schema_unavailable": [b"\x00\x00\x00\x27\x0f" + body[5:]],      # schema 9999: never registered
           "undecodable": [body[:5] + b"\xff\xff\xff", b"plain text", body + b"\x00"],
           "schema_mismatch": [text_amount("avro_faults", {"order_id": 1, "user_id": 2, "product_id": 3, "amount": "1.5",
                                                          "status": "paid", "event_timestamp": start}) for _ in range(2)]}
    for payloads in bad.values():
        for p in payloads:
            producer.produce("avro_faults", key="1", value=p)
    producer.flush()

    # A worker that keeps running; then the registry goes down for 10 s while events written with a
    # schema the worker has not fetched yet (v2) arrive.
    metrics_port = free_port()
    worker = subprocess.Popen([TESSERA, "run", "--topology", topology, "--brokers", brokers, "--redis", f"redis://127.0.0.1:{ports['redis']}",
                               "--offline-dir", offline, "--group", "faults", "--idle-seconds", "0", "--stats-seconds", "1",
                               "--checkpoint-seconds", "2", "--metrics-port", str(metrics_port), "--kafka-config", "session.timeout.ms=6000"],
                              env=env, stderr=open(os.path.join(state, "faults-worker.log"), "w"))
    try:
        def metric(name):
            text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
            return {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line.startswith(name)}

        def wait(predicate, seconds=60):
            deadline = time.time() + seconds
            while time.time() < deadline:
                try:
                    if predicate():
                        return True
                except OSError:
                    pass
                time.sleep(0.3)
            return False

        expected_bad = sum(len(p) for p in bad.values())
        assert wait(lambda: sum(metric("tessera_events_consumed_total").values()) == 1_000 + expected_bad), "the first events were not consumed"
        v2 = serializer(registry, AVRO_V2)
        v2("avro_faults", {"order_id": 0, "user_id": 1, "product_id": 1, "amount": 1.0, "status": "paid", "event_timestamp": start, "coupon": None})
        registry.stop()
        for i in range(1_000, 1_500):
            good(i, lambda topic, value: v2(topic, dict(value, coupon="x")))
        producer.flush()
        def ready():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/ready", timeout=5) as r:
                    return r.status, json.loads(r.read())["reason"]
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())["reason"]

        # Back-pressure, reported: not ready, retrying the registry; the v2 events wait, none is dead-lettered.
        assert wait(lambda: ready()[0] == 503 and "schema registry" in ready()[1], 30), ready()
        time.sleep(10)
        down = sum(metric("tessera_events_consumed_total").values())
        assert down < 1_500 + expected_bad
        registry.start()
        assert wait(lambda: sum(metric("tessera_events_consumed_total").values()) == 1_500 + expected_bad, 60)
        assert wait(lambda: ready()[0] == 200, 60), ready()
        dead = metric("tessera_events_dead_lettered_total")
        by_reason = {k.split('reason="')[1].split('"')[0]: v for k, v in dead.items() if v > 0}
        assert by_reason == {reason: len(p) for reason, p in bad.items()}, by_reason
        assert metric('tessera_errors_total{component="schema_registry"}')[f'tessera_errors_total{{component="schema_registry"}}'] > 0
        assert metric("tessera_schema_fetches_total") == {'tessera_schema_fetches_total{result="found"}': 3.0,
                                                          'tessera_schema_fetches_total{result="missing"}': 1.0}
    finally:
        worker.terminate()
        assert worker.wait(timeout=60) == 0
    # Drained: every good event counted once (total_orders = events per user), nothing lost to the outage.
    stopped = run_until_end(env, ports, offline, topology, group="faults")
    r = redis.Redis(host="127.0.0.1", port=ports["redis"])
    for user, count in sent.items():
        assert int(r.hget(f"tessera:fault_stats:{user}", "total_orders")) == count, user
    letters = [json.loads(line) for line in open(os.path.join(offline, "_dead_letters.jsonl"))]
    assert sorted(l["reason"] for l in letters) == sorted(reason for reason, p in bad.items() for _ in p)


ORDER_PROTO = """
syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";

// The reference order; its status enum uses the JSON events' words.
enum Status {
  paid = 0;
  refunded = 1;
  cancelled = 2;
}

message Order {
  int64 order_id = 1;
  sint64 user_id = 2;
  uint32 product_id = 3;
  double amount = 4;
  Status status = 5;
  google.protobuf.Timestamp event_timestamp = 6;
  repeated string notes = 7;
}
"""

def test_protobuf_through_a_schema_registry_and_from_a_descriptor_set(flat, registry):
    """confluent-kafka's ProtobufSerializer (the schema registered as a serialized descriptor,
    google/protobuf/timestamp.proto skipped as a known type), and plain messages read with a
    descriptor set protoc wrote: both give exactly the flat events' rows."""
    state, env, ports = flat
    brokers = f"127.0.0.1:{ports['tansu']}"
    offline = os.path.join(state, "offline-protobuf")
    proto_dir = os.path.join(state, "proto")
    os.makedirs(os.path.join(proto_dir, "shop"), exist_ok=True)
    with open(os.path.join(proto_dir, "shop", "order.proto"), "w") as f:
        f.write(ORDER_PROTO)
    descriptors = os.path.join(state, "order.desc")
    subprocess.run(["protoc", f"--proto_path={proto_dir}", "--proto_path=/usr/include", f"--descriptor_set_out={descriptors}",
                    "--include_imports", "shop/order.proto"], check=True)

    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    file_set = descriptor_pb2.FileDescriptorSet()
    file_set.ParseFromString(open(descriptors, "rb").read())
    pool = descriptor_pool.DescriptorPool()
    for file in file_set.file:
        pool.Add(file)
    Order = message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Order"))
    client = SchemaRegistryClient({"url": registry.url, "basic.auth.user.info": "tessera:s3cret"})
    framed = ProtobufSerializer(Order, client)

    def order(e, offset):
        o = Order(order_id=e["order_id"], user_id=e["user_id"], product_id=e["product_id"], amount=e["amount"],
                  status=["paid", "refunded", "cancelled"].index(e["status"]))
        o.event_timestamp.seconds, millis = divmod(e["event_timestamp"], 1000)
        o.event_timestamp.nanos = millis * 1_000_000
        if offset % 5 == 0:
            o.notes.extend(["gift", f"n{offset}"])
        return o

    twin(brokers, "orders_protobuf", lambda offset, e: (
        framed(order(e, offset), SerializationContext("orders_protobuf", MessageField.VALUE)), None, e["event_timestamp"]))
    twin(brokers, "orders_protobuf_plain", lambda offset, e: (order(e, offset).SerializeToString(), None, e["event_timestamp"]))

    # The event time is the message's google.protobuf.Timestamp, declared as a field.
    fields = TWIN_FIELDS.replace("}", ", event_timestamp: int64}")
    topologies = [
        twin_topology(state, "user_stats_protobuf", "orders_protobuf", "protobuf", f"    schema_registry: {{url: {registry.url}}}", fields),
        twin_topology(state, "user_stats_protobuf_plain", "orders_protobuf_plain", "protobuf",
                      f"    descriptor_set: {descriptors}\n    message: shop.Order", fields)]
    for path in topologies:
        tessera(env, "validate", path)
    stopped = run_until_end(registry_env(env), ports, offline, os.path.join(ROOT, "topologies", "growth.yaml"), *topologies, group="protobuf")
    assert int(stopped["events"]) == 3 * EVENTS and int(stopped["dead_lettered"]) == 0, stopped
    same_rows(env, offline, ports, topologies[0], "user_stats_protobuf")
    same_rows(env, offline, ports, topologies[1], "user_stats_protobuf_plain")

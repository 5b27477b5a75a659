"""An unmodified Feast (0.67, from PyPI) reads what Tessera writes, as a Feast user sets it up.

The shipped topologies (growth: an int64 key; risk: a string key and a two-entity view) and the
example examples/feast/shop.yaml, all in Feast's online layout for project `shop`:
- `tessera feast-repo` → `feast apply` → `tessera run --until-end`; then Feast's own Redis online
  store (`get_online_features`, no `remote` store, no materialization) returns for every sampled
  entity exactly the entity's latest offline row (read by DuckDB) and what `tessera get` prints
  (≥ 1 000 entities per view where the view has them):
  integers equal, floats bit-identical, nulls null, strings equal; `tessera verify` finds every
  row equal to the checkpointed state and the offline log;
- views on one entity share one hash per entity, whose expiry is the longest TTL among them;
- `get_historical_features` over the generated FileSources equals `tessera historical` on the same
  entity frame, including after a feature was added to a view between two runs (null before it
  existed), and re-applying the regenerated repository deletes no online row;
- Feast's feature server (`feast serve`) and `tessera serve` answer the same.

Where Feast differs and the test says so: Feast's file (dask) store drops an entity row whose key
has offline rows but none at or before its timestamp within the TTL (Tessera returns nulls), and
fails on a key with no offline row at all (dask cannot sort the nulls), so the frames use keys
with rows; Feast's Redis store reports PRESENT with a null value where Tessera says NOT_FOUND.
"""
import json
import os
import random
import shutil
import struct
import subprocess
import time
import urllib.request
from datetime import datetime, timedelta, timezone

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
import redis
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESSERA = os.environ.get("TESSERA_BIN", os.path.join(ROOT, ".build", "release", "tessera"))
HALF, PARTITIONS, PAYMENTS = 100_000, 4, 30_000
LAYOUT = "online: {layout: feast, project: shop}\n"
ADDED = "paid_amount_30d"


def tessera(env, *args, timeout=600):
    done = subprocess.run([TESSERA, *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (args[0], done.stderr[-4000:])
    return done


def feast_cli(repo, *args):
    done = subprocess.run(["feast", "-c", repo, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def write_topologies(directory, added=False):
    """growth and risk in Feast's layout, and the shop example (with a feature added, later)."""
    os.makedirs(directory, exist_ok=True)
    for name in ("growth.yaml", "risk.yaml"):
        text = open(os.path.join(ROOT, "topologies", name)).read()
        team = text.index("\nowner:")
        with open(os.path.join(directory, name), "w") as f:
            f.write(text[:team + 1] + LAYOUT + text[team + 1:])
    shop = open(os.path.join(ROOT, "examples", "feast", "shop.yaml")).read()
    if added:
        marker = '      - {name: paid_orders_30d, aggregate: count, window: 30d, where: status == "paid"}\n'
        assert marker in shop
        shop = shop.replace(marker, marker + f'      - {{name: {ADDED}, aggregate: sum, field: amount, window: 30d, where: status == "paid"}}\n')
    with open(os.path.join(directory, "shop.yaml"), "w") as f:
        f.write(shop)


def produce_payments(brokers, count):
    """Card payments for the risk views: string card ids, int64 merchants, RFC 3339 times."""
    rng = random.Random(7)
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 20})
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i in range(count):
        card = f"card-{int(rng.paretovariate(1.2)) % 600:04d}"
        at = start + timedelta(seconds=i * 3 + rng.random())
        event = {"card_id": card, "merchant_id": rng.randrange(150), "amount": round(rng.expovariate(1 / 80), 2),
                 "currency": "EUR", "country": rng.choice(["DE", "DE", "FR", "US"]), "approved": rng.random() < 0.9,
                 "authorized_at": at.isoformat().replace("+00:00", "Z"),
                 "ingested_at": (at + timedelta(milliseconds=250)).isoformat().replace("+00:00", "Z")}
        producer.produce("payments", key=card, value=json.dumps(event))
        if i % 10_000 == 0:
            producer.flush()
    producer.flush()


def view_specs(topology_dir):
    """name → (join keys with types, features with types, TTL in µs), from `tessera describe --json`."""
    described = json.loads(subprocess.run([TESSERA, "describe", "--topology", topology_dir, "--json"], capture_output=True,
                                          text=True, check=True).stdout)
    units = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}
    views = {}
    for t in described["topologies"]:
        for v in t["views"]:
            keys = [tuple(k.split(":")) for k in v["join_keys"]]
            views[v["name"]] = (keys, [(f["name"], f["type"]) for f in v["features"]], int(v["ttl"][:-1]) * units[v["ttl"][-1]])
    return views


def latest_offline(offline, view, keys, features):
    """The latest offline row of every entity of a view (DuckDB over the Parquet files)."""
    columns = ", ".join(k for k, _ in keys)
    selected = ", ".join([k for k, _ in keys] + [f for f, _ in features] + ["epoch_us(event_timestamp)"])
    rows = duckdb.sql(f"""
        SELECT {selected} FROM read_parquet('{offline}/{view}/*/*.parquet')
        QUALIFY row_number() OVER (PARTITION BY {columns} ORDER BY event_timestamp DESC, created_timestamp DESC) = 1
        """).fetchall()
    return {tuple(r[:len(keys)]): r[len(keys):] for r in rows}


def same(a, b):
    """Equal values; floats bit for bit."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, float) and isinstance(b, float) and struct.pack("<d", a) == struct.pack("<d", b)
    return type(a) is type(b) and a == b


def post(port, body):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/get-online-features", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_http(port, process, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        assert process.poll() is None, f"the server on port {port} exited"
        try:
            post(port, {"features": [], "entities": {}})
            return
        except urllib.error.HTTPError:
            return  # it answers (a bad request is still an answer)
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"nothing answers on port {port}")


@pytest.fixture(scope="module")
def deployment(services):
    """Both runs done: the first half of the orders and all payments, then the second half with a
    feature added to customer_history and the repository regenerated and applied again."""
    state, env, ports = services
    brokers, redis_url = f"127.0.0.1:{ports['tansu']}", f"redis://127.0.0.1:{ports['redis']}"
    topologies, repo, offline = os.path.join(state, "topologies"), os.path.join(state, "repo"), os.path.join(state, "offline")
    run = ["run", "--topology", topologies, "--brokers", brokers, "--redis", redis_url, "--offline-dir", offline,
           "--state-dir", os.path.join(state, "checkpoints"), "--group", "feast", "--until-end", "--idle-seconds", "0",
           "--stats-seconds", "0", "--kafka-config", "session.timeout.ms=6000"]
    write_topologies(topologies)
    tessera(env, "produce", "--brokers", brokers, "--topic", "orders", "--scale", "quick", "--count", str(HALF),
            "--partitions", str(PARTITIONS))
    admin = AdminClient({"bootstrap.servers": brokers})
    for future in admin.create_topics([NewTopic("payments", num_partitions=PARTITIONS, replication_factor=1)]).values():
        future.result()
    produce_payments(brokers, PAYMENTS)

    generated = tessera(env, "feast-repo", "--topology", topologies, "--redis", redis_url, "--offline-dir", offline, "--out", repo)
    assert "Feast project shop, 5 feature views" in generated.stderr, generated.stderr
    feast_cli(repo, "apply")
    tessera(env, *run)
    # Before which event time every row of customer_history is the first run's: the earliest of
    # its partitions' last event times (event times grow along each partition of `quick`).
    first_files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(offline, "customer_history")) for f in fs if f.endswith(".parquet")]
    first_end = duckdb.sql(f"""SELECT min(last) FROM (SELECT partition, max(epoch_us(event_timestamp)) AS last
                               FROM read_parquet({first_files!r}, hive_partitioning = true) GROUP BY partition)""").fetchall()[0][0]

    # A feature added to customer_history; the repository regenerated and applied again. Applying
    # must not delete the online rows.
    write_topologies(topologies, added=True)
    r = redis.Redis(host="127.0.0.1", port=ports["redis"])
    keys_before = r.dbsize()
    tessera(env, "feast-repo", "--topology", topologies, "--redis", redis_url, "--offline-dir", offline, "--out", repo)
    feast_cli(repo, "apply")
    assert r.dbsize() == keys_before
    tessera(env, "produce", "--brokers", brokers, "--topic", "orders", "--scale", "quick", "--from", str(HALF),
            "--partitions", str(PARTITIONS))
    second = tessera(env, *run)
    assert "given the view's added features" in second.stderr, second.stderr[-3000:]
    return state, env, ports, topologies, repo, offline, first_end


def test_feast_reads_the_online_rows(deployment):
    state, env, ports, topologies, repo, offline, _ = deployment
    from feast import FeatureStore
    store = FeatureStore(repo_path=repo)
    assert store.config.online_store.type == "redis"
    rng = random.Random(3)
    compared = 0
    for view, (keys, features, _) in view_specs(topologies).items():
        latest = latest_offline(offline, view, keys, features)
        sample = rng.sample(sorted(latest), min(1_200, len(latest)))
        names = [k for k, _ in keys]
        # A key no event had: Feast finds nothing there either.
        absent = tuple("nobody" if t == "string" else -1 for _, t in keys)
        rows = [dict(zip(names, key)) for key in sample + [absent]]
        answer = store.get_online_features(features=[f"{view}:{f}" for f, _ in features], entity_rows=rows).to_dict()
        for i, key in enumerate(sample):
            for j, (f, _) in enumerate(features):
                assert same(answer[f][i], latest[key][j]), (view, key, f, answer[f][i], latest[key][j])
                compared += 1
        assert all(answer[f][-1] is None for f, _ in features)
        # tessera get prints the same rows (one line per entity).
        entities = [arg for key in sample for arg in ("--entity", ",".join(f"{k}={v}" for k, v in zip(names, key)))]
        got = tessera(env, "get", "--topology", topologies, "--redis", f"redis://127.0.0.1:{ports['redis']}", "--view", view,
                      *entities).stdout.splitlines()
        assert len(got) == len(sample)
        for i, line in enumerate(got):
            row = json.loads(line)
            assert tuple(row[k] for k in names) == sample[i]
            for f, _ in features:
                assert same(row[f], answer[f][i]), (view, sample[i], f, row[f], answer[f][i])
    assert compared > 5 * 1_000
    # tessera verify reads the Feast layout too: every row equals the checkpointed state and the offline log.
    verified = subprocess.run([TESSERA, "verify", "--topology", topologies, "--offline-dir", offline, "--redis",
                               f"redis://127.0.0.1:{ports['redis']}", "--state-dir", os.path.join(state, "checkpoints"),
                               "--group", "feast", "--sample", "4000", "--seed", "1", "--json"], env=env, capture_output=True, text=True, timeout=300)
    report = json.loads(verified.stdout)
    assert verified.returncode == 0 and report["mismatches"] == [] and report["sampled"] == 4000, verified.stdout[-2000:] + verified.stderr[-2000:]

    # The three user views share one hash per user (Feast's layout): its expiry is the longest TTL
    # among them (customer_history, 30 d; 1.1 × once written), not user_stats' 1 d or customer_recent's 2 h.
    r = redis.Redis(host="127.0.0.1", port=ports["redis"])
    month = 30 * 86_400_000
    from feast.infra.online_stores.helpers import _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value
    for user in rng.sample(sorted(k[0] for k in latest_offline(offline, "customer_recent", [("user_id", "int64")], [])), 50):
        key = _redis_key("shop", EntityKey(join_keys=["user_id"], entity_values=[Value(int64_val=user)]))
        assert r.pttl(key) > month, user
        tables = {field[4:] for field in r.hkeys(key) if field.startswith(b"_ts:")}
        assert tables == {b"user_stats", b"customer_recent", b"customer_history"}, (user, tables)


def test_feast_training_data_equals_tessera_historical(deployment):
    state, env, ports, topologies, repo, offline, first_end = deployment
    from feast import FeatureStore
    store = FeatureStore(repo_path=repo)
    rng = random.Random(11)
    for view, (keys, features, ttl) in view_specs(topologies).items():
        names = [k for k, _ in keys]
        columns = ", ".join(names)
        # Entity rows at event times of the view's own rows (exact matches), just after them, and
        # between; keys that have offline rows only (Feast's dask store fails on a key without any).
        rows = duckdb.sql(f"SELECT {columns}, epoch_us(event_timestamp) FROM read_parquet('{offline}/{view}/*/*.parquet')").fetchall()
        picked = rng.sample(rows, min(1_500, len(rows)))
        frame_rows = set()
        for r in picked:
            t = r[-1] + rng.choice([0, 1_000, 600_000_000, -3_600_000_000, 2 * ttl])
            frame_rows.add(tuple(r[:-1]) + (t,))
        frame = pd.DataFrame(sorted(frame_rows), columns=names + ["event_timestamp"])
        frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], unit="us", utc=True)
        entities = os.path.join(state, f"entities-{view}.parquet")
        frame.to_parquet(entities, index=False)
        out = os.path.join(state, f"training-{view}.parquet")
        tessera(env, "historical", "--topology", topologies, "--offline-dir", offline, "--entities", entities,
                "--features", f"{view}:*", "--out", out)
        ours = pq.read_table(out).to_pandas()
        feature_names = [f for f, _ in features]
        theirs = store.get_historical_features(entity_df=frame, features=[f"{view}:{f}" for f in feature_names]).to_df()
        found = {tuple(r[k] for k in names) + (pd.Timestamp(r["event_timestamp"]).tz_convert("UTC"),): r for r in theirs.to_dict("records")}
        matched = dropped = 0
        for r in ours.to_dict("records"):
            other = found.get(tuple(r[k] for k in names) + (pd.Timestamp(r["event_timestamp"]).tz_convert("UTC"),))
            if other is None:
                # Feast's dask store drops an entity row with no row at or before it within the TTL;
                # Tessera returns nulls there.
                assert all(pd.isna(r[f]) for f in feature_names), (view, r)
                dropped += 1
                continue
            for f in feature_names:
                a = None if pd.isna(r[f]) else r[f]
                b = None if pd.isna(other[f]) else other[f]
                if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
                    assert a == b and (not isinstance(a, float) or struct.pack("<d", a) == struct.pack("<d", float(b))), (view, r, f, a, b)
                else:
                    assert a == b, (view, r, f, a, b)
            matched += 1
        assert matched > 500 and len(found) == matched, (view, matched, dropped, len(found))

        if view == "customer_history":
            # The feature added for the second run: null on rows of the first, set on later ones.
            assert ADDED in feature_names
            early = [r for r in ours.to_dict("records") if r["event_timestamp"].value // 1000 <= first_end and not pd.isna(r["orders_30d"])]
            late = [r for r in ours.to_dict("records") if r["event_timestamp"].value // 1000 > first_end + 3_600_000_000]
            assert early and all(pd.isna(r[ADDED]) for r in early)
            assert late and any(not pd.isna(r[ADDED]) for r in late)


def test_feast_serve_answers_as_tessera_serve(deployment):
    state, env, ports, topologies, repo, offline, _ = deployment
    views = view_specs(topologies)
    feast_port, tessera_port = free_port(), free_port()
    feast_server = subprocess.Popen(["feast", "-c", repo, "serve", "-p", str(feast_port), "--no-access-log"],
                                    stdout=subprocess.DEVNULL, stderr=open(os.path.join(state, "feast-serve.log"), "w"))
    ours = subprocess.Popen([TESSERA, "serve", "--topology", topologies, "--redis", f"redis://127.0.0.1:{ports['redis']}",
                             "--port", str(tessera_port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(state, "tessera-serve.log"), "w"))
    try:
        wait_http(tessera_port, ours)
        wait_http(feast_port, feast_server, seconds=120)
        rng = random.Random(5)
        for view, (keys, features, _) in views.items():
            latest = latest_offline(offline, view, keys, [])
            sample = rng.sample(sorted(latest), min(200, len(latest)))
            entities = {k: [key[i] for key in sample] + ["nobody" if t == "string" else -1] for i, (k, t) in enumerate(keys)}
            for body in ({"features": [f"{view}:{f}" for f, _ in features], "entities": entities},
                         {"feature_service": view, "entities": entities, "full_feature_names": True}):
                a, b = post(tessera_port, body), post(feast_port, body)
                # Columns by name: Feast orders a feature service's features its own way.
                a_columns = dict(zip(a["metadata"]["feature_names"], a["results"]))
                b_columns = dict(zip(b["metadata"]["feature_names"], b["results"]))
                assert sorted(a_columns) == sorted(b_columns)
                assert a["metadata"]["feature_names"][:len(keys)] == [k for k, _ in keys]
                for name, ours_column in a_columns.items():
                    theirs = b_columns[name]
                    assert len(ours_column["values"]) == len(sample) + 1
                    for i, (x, y) in enumerate(zip(ours_column["values"], theirs["values"])):
                        assert same(x, y), (view, name, i, x, y)
                    assert ours_column["event_timestamps"] == theirs["event_timestamps"], (view, name)
                    for x, s, t in zip(ours_column["values"], ours_column["statuses"], theirs["statuses"]):
                        # Feast's Redis store says PRESENT for a null value; Tessera, NOT_FOUND.
                        assert s == t if x is not None else (s, t) == ("NOT_FOUND", "PRESENT"), (view, name, x, s, t)
    finally:
        for p in (feast_server, ours):
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()

"""Feature quality through the tansu broker and a running worker:

- Baselines: the one built from the offline log over a time range equals the one built from the
  same rows as a training-set file.
- Drift (features whose windows move a minute at a time, as the quality window does: a window
  sampling one phase of a coarser sawtooth would drift by itself): a baseline is built from the offline log (`tessera stats baseline`), the worker loads it;
  the amounts are then tripled from a given event time on (same users, same rate). Within two
  hops of that time, PSI of the amount features crosses the view's threshold while the count
  feature stays below it, and the shipped alert rule fires in `promtool test rules` fed with the
  PSI series recorded from the worker.
- Statistics: the rolling window's rows, null shares, min/max, mean, stddev and quantiles that
  `tessera stats --json` reads from the worker equal the same figures computed by DuckDB from the
  offline log's rows of those hops (the statistics' population), quantiles within the stated error.
- Freshness: with the worker paused (SIGSTOP) for longer than its view's freshness target, again
  and again, the share of rows written within the target drops and the shipped alert rule fires
  on the recorded counters; once it runs undisturbed the share recovers and the alert resolves.
"""
import datetime
import json
import os
import random
import re
import signal
import subprocess
import tempfile
import threading
import time

import duckdb
import yaml
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import free_port
from test_operations import get, scrape, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESSERA = os.environ.get("TESSERA_BIN", os.path.join(ROOT, ".build", "release", "tessera"))
DEPLOY = os.path.join(ROOT, "deploy")
PARTITIONS, USERS = 4, 200
MINUTE = 60_000
T0 = 1_790_000_000_000 // MINUTE * MINUTE  # event time of the first order (ms, a whole minute)

TOPOLOGY = """
team: quality
sources:
  - name: orders_q
    topic: {topic}
    format: json
    timestamp: {{field: event_timestamp, unit: ms}}
    allowed_lateness: 5s
    fields:
      user_id: int64
      amount: float64
      status: string
      event_timestamp: int64
entities:
  - name: user
    join_keys: {{user_id: int64}}
feature_views:
  - name: {view}
    entities: [user]
    source: orders_q
    freshness_target: {target}
    quality: {quality}
    features:
      - {{name: orders_5m, aggregate: count, window: 5m, hop: 1m}}
      - {{name: amount_last, aggregate: last, field: amount, window: 1h}}
      - {{name: amount_max_5m, aggregate: max, field: amount, window: 5m, hop: 1m}}
      - {{name: status_last, aggregate: last, field: status, window: 1h}}
"""


def iso(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def promtool():
    unpacked = os.path.join(os.environ.get("TESSERA_PROMTOOL_DIR", os.path.expanduser("~/.cache/tessera/prometheus")), "usr", "bin", "promtool")
    assert os.access(unpacked, os.X_OK), "promtool is missing (scripts/deps.sh unpacks it from Debian's prometheus package)"
    return unpacked


def create_topic(brokers, topic):
    admin = AdminClient({"bootstrap.servers": brokers})
    for f in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        f.result(30)


def orders(producer, topic, start_minute, minutes, per_minute, scale, rng):
    """`per_minute` orders a minute of event time from T0 + start_minute, amounts × `scale`; one in
    twenty without an amount. Keyed by user, in event-time order."""
    for i in range(minutes * per_minute):
        t = T0 + start_minute * MINUTE + i * MINUTE // per_minute
        user = rng.randrange(USERS)
        event = {"user_id": user, "status": rng.choice(["paid", "open", "void"]), "event_timestamp": t}
        if rng.random() >= 0.05:
            event["amount"] = round(rng.lognormvariate(3, 0.6) * scale, 2)
        producer.produce(topic, key=str(user), value=json.dumps(event).encode(), partition=user % PARTITIONS)
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0


def write_topology(path, topic, view, quality="{window: 2m, hop: 1m, min_rows: 200}", target="2s"):
    with open(path, "w") as f:
        f.write(TOPOLOGY.format(topic=topic, view=view, quality=quality, target=target))


def start_worker(env, state, ports, topology, offline, port, name, group):
    log = open(os.path.join(state, f"{name}.log"), "a")
    return subprocess.Popen([TESSERA, "run", "--topology", topology, "--brokers", f"127.0.0.1:{ports['tansu']}",
                             "--redis", f"redis://127.0.0.1:{ports['redis']}", "--offline-dir", offline,
                             "--state-dir", os.path.join(state, f"{name}-state"), "--group", group,
                             "--metrics-port", str(port), "--roll-seconds", "1", "--checkpoint-seconds", "2",
                             "--kafka-config", "session.timeout.ms=6000"], env=env, stdout=log, stderr=log)


def stop(worker):
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0


def consumed(port, topic_source="orders_q"):
    """Events the worker consumed so far (0 while its metrics port is not up yet)."""
    if get(f"http://127.0.0.1:{port}/health")[0] is None:
        return 0
    return scrape(port).get(f'tessera_events_consumed_total{{source="{topic_source}"}}', 0)


def settled(port, view, produced):
    """Waits until every produced event is consumed and the rolling statistics stop changing."""
    wait_for(lambda: consumed(port) == produced, seconds=120, what=f"{produced} events consumed")
    last = [None]

    def still():
        m = scrape(port)
        rows = m.get(f'tessera_feature_rows{{view="{view}",feature="orders_5m",window="all"}}')
        same = rows is not None and rows == last[0]
        last[0] = rows
        return same
    time.sleep(1.2)
    wait_for(still, seconds=30, what="the statistics to settle")
    return scrape(port)


def stats_json(port, view):
    done = subprocess.run([TESSERA, "stats", "--view", view, "--metrics-url", f"http://127.0.0.1:{port}", "--json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def annotations(alert, labels):
    """The rule's annotations with `{{ $labels.NAME }}` filled in."""
    rules = yaml.safe_load(open(os.path.join(DEPLOY, "prometheus", "alerts.yml")))["groups"][0]["rules"]
    rule = next(r for r in rules if r.get("alert") == alert)
    return {k: re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], v) for k, v in rule["annotations"].items()}


def promtool_test(state, name, series, alert, expected, fired_at, quiet_at):
    """Runs the shipped rules on `series` (name{labels} → values at 1 m steps): `alert` fires with
    `expected` labels at minute `fired_at` and is quiet at `quiet_at`."""
    path = os.path.join(state, f"{name}_test.yml")
    with open(path, "w") as f:
        f.write(f"rule_files: [{os.path.join(DEPLOY, 'prometheus', 'alerts.yml')}]\nevaluation_interval: 1m\ntests:\n")
        f.write(f"  - interval: 1m\n    input_series:\n")
        for s, values in series.items():
            f.write(f"      - series: '{s}'\n        values: '{' '.join(repr(float(v)) for v in values)}'\n")
        f.write(f"    alert_rule_test:\n      - eval_time: {quiet_at}m\n        alertname: {alert}\n        exp_alerts: []\n")
        f.write(f"      - eval_time: {fired_at}m\n        alertname: {alert}\n        exp_alerts:{'' if expected else ' []'}\n")
        for labels in expected:
            f.write(f"          - exp_labels: {json.dumps(dict(labels, severity='ticket'))}\n")
            f.write(f"            exp_annotations: {json.dumps(annotations(alert, labels))}\n")
    done = subprocess.run([promtool(), "test", "rules", path], capture_output=True, text=True, timeout=120)
    return done


def prepare(services, topic, view, **settings):
    """A topic, a topology of `view` over it, an offline directory: (brokers, topology, offline)."""
    state, env, ports = services
    brokers = f"127.0.0.1:{ports['tansu']}"
    create_topic(brokers, topic)
    topology = os.path.join(state, f"{view}.yaml")
    write_topology(topology, topic, view, **settings)
    return brokers, topology, tempfile.mkdtemp(prefix=f"tessera-{view}-offline-", dir=state)


def test_drift_and_statistics(services):
    state, env, ports = services
    topic, view = "orders_q", "user_quality"
    brokers, topology, offline = prepare(services, topic, view)
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 20})
    rng = random.Random(17)
    port = free_port()

    # The training period: 20 minutes of event time, into the offline log.
    orders(producer, topic, 0, 20, 600, 1, rng)
    produced = 20 * 600
    worker = start_worker(env, state, ports, topology, offline, port, "drift", "quality-drift")
    try:
        settled(port, view, produced)
    finally:
        stop(worker)

    baseline = os.path.join(state, "user_quality.baseline.json")
    done = subprocess.run([TESSERA, "stats", "baseline", "--topology", topology, "--view", view, "--offline-dir", offline,
                           "--from", iso(T0 + 6 * MINUTE), "--to", iso(T0 + 20 * MINUTE), "--out", baseline],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    b = json.load(open(baseline))
    # Minutes 6 to 20 (the 5-minute windows are full by then): every offline row of those minutes
    # (a row per change: an order, or an order leaving a window).
    rows = f"read_parquet('{offline}/{view}/*/*.parquet', union_by_name=true)"
    assert b["rows"] == duckdb.connect().execute(
        f"select count(*) from {rows} where epoch_ms(event_timestamp) >= {T0 + 6 * MINUTE} and epoch_ms(event_timestamp) < {T0 + 20 * MINUTE}").fetchone()[0]
    assert b["rows"] > 14 * 600
    assert {f["name"] for f in b["features"]} == {"orders_5m", "amount_last", "amount_max_5m", "status_last"}
    # The same rows as a training set (columns VIEW__FEATURE, written by DuckDB) give the same baseline.
    training = os.path.join(state, "training.parquet")
    duckdb.connect().execute(
        f"copy (select {', '.join(f'{f} as {view}__{f}' for f in ('orders_5m', 'amount_last', 'amount_max_5m', 'status_last'))} from {rows} "
        f"where epoch_ms(event_timestamp) >= {T0 + 6 * MINUTE} and epoch_ms(event_timestamp) < {T0 + 20 * MINUTE}) to '{training}' (format parquet)")
    again = os.path.join(state, "from_training.json")
    done = subprocess.run([TESSERA, "stats", "baseline", "--topology", topology, "--view", view, "--training-set", training, "--out", again],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert dict(json.load(open(again)), source=None) == dict(b, source=None)

    write_topology(topology, topic, view, quality=f"{{window: 2m, hop: 1m, min_rows: 200, baseline: {baseline}, psi_threshold: 0.2}}")
    worker = start_worker(env, state, ports, topology, offline, port, "drift", "quality-drift")
    produced = 0  # since this worker started
    recorded = []
    psi = lambda m, f: m.get(f'tessera_feature_psi{{view="{view}",feature="{f}"}}')
    try:
        # Ten more minutes like the training period: nothing crosses the threshold.
        orders(producer, topic, 20, 10, 600, 1, rng)
        produced += 10 * 600
        m = settled(port, view, produced)
        recorded.append(m)
        for f in ("orders_5m", "amount_last", "amount_max_5m", "status_last"):
            assert psi(m, f) < 0.2, (f, psi(m, f))

        # The amounts triple from minute 30: within two hops (minutes 30 and 31) the amount
        # features cross the threshold, the count does not.
        for minute in (30, 31):
            orders(producer, topic, minute, 1, 600, 3, rng)
            produced += 600
            recorded.append(settled(port, view, produced))
        m = recorded[-1]
        for f in ("amount_last", "amount_max_5m"):
            assert psi(m, f) > 0.2, (f, psi(m, f))
        assert psi(m, "orders_5m") < 0.2 and psi(m, "status_last") < 0.2, m
        assert m[f'tessera_view_psi_threshold{{view="{view}"}}'] == 0.2

        stats = stats_json(port, view)
        text = subprocess.run([TESSERA, "stats", "--view", view, "--metrics-url", f"http://127.0.0.1:{port}"],
                              capture_output=True, text=True, timeout=60)
        assert text.returncode == 0 and "amount_last" in text.stdout and "rolling" in text.stdout, text.stderr
    finally:
        stop(worker)

    # The rolling window is hops 30 and 31: the offline log's rows of those minutes, exactly.
    assert stats["psi_threshold"] == 0.2
    lo, hi = T0 + 30 * MINUTE, T0 + 32 * MINUTE
    where = f"epoch_ms(event_timestamp) >= {lo} and epoch_ms(event_timestamp) < {hi}"
    con = duckdb.connect()
    for f in ("orders_5m", "amount_last", "amount_max_5m", "status_last"):
        w = stats["features"][f]["rolling"]
        n, nulls = con.execute(f"select count(*), count(*) - count({f}) from {rows} where {where}").fetchone()
        assert (w["rows"], round(w["null_ratio"] * n)) == (n, nulls), f
        if f == "status_last":
            continue
        mn, mx, mean, sd = con.execute(f"select min({f}), max({f}), avg({f}), stddev_pop({f}) from {rows} where {where}").fetchone()
        assert (w["min"], w["max"]) == (mn, mx), f
        assert abs(w["mean"] - mean) <= 1e-6 * abs(mean) and abs(w["stddev"] - sd) <= 1e-6 * max(sd, 1), f
        for q in ("0.5", "0.9", "0.99"):
            exact = con.execute(f"select quantile_disc({f}, {q}) from {rows} where {where}").fetchone()[0]
            assert abs(w["quantiles"][q] - exact) <= exact / 256 + 1e-9, (f, q, w["quantiles"][q], exact)

    # The shipped rule on the recorded PSI, a scrape per minute: quiet while below, fires ten
    # minutes after the crossing for the amount features only.
    series, labels = {}, {"instance": "w1", "view": view}
    samples = [recorded[0]] * 3 + [recorded[-1]] * 13
    for f in ("orders_5m", "amount_last", "amount_max_5m", "status_last"):
        series[f'tessera_feature_psi{{instance="w1",view="{view}",feature="{f}"}}'] = [psi(m, f) for m in samples]
    series[f'tessera_view_psi_threshold{{instance="w1",view="{view}"}}'] = [0.2] * len(samples)
    series[f'tessera_view_ks_threshold{{instance="w1",view="{view}"}}'] = [recorded[0][f'tessera_view_ks_threshold{{view="{view}"}}']] * len(samples)
    done = promtool_test(state, "drift", series, "TesseraFeatureDrift",
                         [dict(labels, feature="amount_last"), dict(labels, feature="amount_max_5m")], fired_at=14, quiet_at=2)
    assert done.returncode == 0, done.stdout + done.stderr


def test_freshness_target(services):
    state, env, ports = services
    topic, view = "orders_fresh", "user_fresh"
    brokers, topology, offline = prepare(services, topic, view, target="1s")
    port = free_port()
    worker = start_worker(env, state, ports, topology, offline, port, "fresh", "quality-fresh")
    stop_producing = threading.Event()

    def produce():
        producer = Producer({"bootstrap.servers": brokers, "linger.ms": 5})
        rng = random.Random(3)
        while not stop_producing.is_set():
            now = int(time.time() * 1000)
            for _ in range(20):
                user = rng.randrange(USERS)
                producer.produce(topic, key=str(user), partition=user % PARTITIONS, value=json.dumps(
                    {"user_id": user, "amount": 10.0, "status": "paid", "event_timestamp": now}).encode())
            producer.poll(0)
            time.sleep(0.1)
        producer.flush(30)

    rows = f'tessera_freshness_rows_total{{view="{view}"}}'
    within = f'tessera_freshness_within_target_total{{view="{view}"}}'
    recorded = []
    thread = threading.Thread(target=produce)
    thread.start()
    try:
        wait_for(lambda: get(f"http://127.0.0.1:{port}/ready")[0] == 200, what="/ready")
        wait_for(lambda: scrape(port).get(rows, 0) > 500, what="rows written")  # /ready: the port is up

        def record(seconds):
            time.sleep(seconds)
            m = scrape(port)
            recorded.append((m[rows], m[within]))
        for _ in range(6):
            record(1)
        share = lambda a, b: (b[1] - a[1]) / (b[0] - a[0])
        assert share(recorded[0], recorded[-1]) > 0.99, recorded
        assert scrape(port)[f'tessera_freshness_target_seconds{{view="{view}"}}'] == 1

        # Paused for 2.5 s a time, longer than the 1 s target: the rows of those seconds are late.
        for _ in range(8):
            worker.send_signal(signal.SIGSTOP)
            time.sleep(2.5)
            worker.send_signal(signal.SIGCONT)
            record(1)
        paused = share(recorded[5], recorded[-1])
        assert paused < 0.9, recorded
        for _ in range(10):
            record(1)
        assert share(recorded[-8], recorded[-1]) > 0.99, recorded
    finally:
        stop_producing.set()
        thread.join()
        worker.send_signal(signal.SIGCONT)
        stop(worker)

    # The shipped rule on the recorded counters, a scrape per minute: fires while the worker is
    # paused again and again, resolves after.
    series = {f'tessera_freshness_rows_total{{instance="w1",view="{view}"}}': [r for r, _ in recorded],
              f'tessera_freshness_within_target_total{{instance="w1",view="{view}"}}': [w for _, w in recorded]}
    done = promtool_test(state, "freshness", series, "TesseraFreshnessTargetMissed",
                         [{"instance": "w1", "view": view}], fired_at=13, quiet_at=5)
    assert done.returncode == 0, done.stdout + done.stderr
    done = promtool_test(state, "freshness-after", series, "TesseraFreshnessTargetMissed", [], fired_at=len(recorded) - 1, quiet_at=5)
    assert done.returncode == 0, done.stdout + done.stderr

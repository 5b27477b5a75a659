"""System test: `tessera historical` and `tessera compact` as a user runs them.

An offline log of the reference view `user_stats` (written by pyarrow in Tessera's layout, as
benchmarks/historical.py generates it) and an entity frame as CSV with RFC 3339 timestamps:
- the training set (CSV and Parquet) holds every input column in order, then the features, one
  row per input row in order, and equals DuckDB's ASOF JOIN with the view's TTL;
- `tessera compact` merges only checkpointed files by default; with --all-files it merges them all,
  and the training set is unchanged afterwards;
- without a terminal, stderr carries one summary line and no progress bar.
"""
import importlib.util
import os
import subprocess
import tempfile

import duckdb
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESSERA = os.environ.get("TESSERA_BIN", os.path.join(ROOT, ".build", "release", "tessera"))
TOPOLOGY = os.path.join(ROOT, "topologies", "growth.yaml")

spec = importlib.util.spec_from_file_location("historical_benchmark", os.path.join(ROOT, "benchmarks", "historical.py"))
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
FEATURES = [name for name, _ in bench.FEATURES]


def historical(directory, entities, out):
    done = subprocess.run([TESSERA, "historical", "--topology", TOPOLOGY, "--offline-dir", os.path.join(directory, "offline"),
                           "--entities", entities, "--features", "user_stats:*", "--out", out],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_historical_and_compact():
    directory = tempfile.mkdtemp(prefix="tessera-historical-system-")
    bench.generate(directory, rows=200_000, entities=20_000, users=20_000, partitions=4, file_rows=5_000, seed=3)
    # The entity frame as CSV: RFC 3339 text, a pass-through column with commas and quotes.
    frame = pq.read_table(os.path.join(directory, "entities.parquet"))
    csv = os.path.join(directory, "entities.csv")
    with open(csv, "w") as f:
        f.write("note,user_id,event_timestamp\n")
        for i, (user, ts) in enumerate(zip(frame.column("user_id").to_pylist(), frame.column("event_timestamp").to_pylist())):
            f.write(f'"row {i}, ""quoted""",{user},{ts.isoformat()}\n')

    out = os.path.join(directory, "training.parquet")
    stderr = historical(directory, csv, out)
    assert stderr.strip() == f"{out}: 20000 rows, {3 + len(FEATURES)} columns"
    table = pq.read_table(out)
    assert table.column_names == ["note", "user_id", "event_timestamp"] + FEATURES
    assert table.column("note").to_pylist()[:2] == ['row 0, "quoted"', 'row 1, "quoted"']
    assert str(table.schema.field("event_timestamp").type) == "timestamp[us, tz=UTC]"
    assert table.column("user_id").to_pylist() == frame.column("user_id").to_pylist()
    assert pc.all(pc.equal(table.column("event_timestamp"), frame.column("event_timestamp"))).as_py()

    # DuckDB's ASOF JOIN with the TTL (event times are unique per user here, so no tie-breaks).
    files = os.path.join(directory, "offline", "user_stats", "*", "*.parquet")
    selected = ", ".join(f"CASE WHEN e.event_timestamp - f.event_timestamp <= INTERVAL 1 DAY THEN f.{n} END AS {n}" for n in FEATURES)
    expected = duckdb.sql(f"""
        SELECT e.row, {selected}
        FROM (SELECT row_number() OVER () - 1 AS row, * FROM '{os.path.join(directory, "entities.parquet")}') e
        ASOF LEFT JOIN read_parquet('{files}') f ON e.user_id = f.user_id AND e.event_timestamp >= f.event_timestamp
        ORDER BY e.row""").fetchall()
    actual = list(zip(range(table.num_rows), *[table.column(n).to_pylist() for n in FEATURES]))
    assert actual == [tuple(r) for r in expected]
    assert sum(1 for r in actual if r[1] is not None) > 5_000

    # CSV out: the same values, timestamps as RFC 3339 with microseconds and Z.
    out_csv = os.path.join(directory, "training.csv")
    historical(directory, csv, out_csv)
    text = open(out_csv).read().splitlines()
    assert text[0] == "note,user_id,event_timestamp," + ",".join(FEATURES)
    assert text[1].startswith('"row 0, ""quoted""",') and text[1].split(",")[3].endswith("Z")
    read_back = pacsv.read_csv(out_csv)
    assert read_back.column("total_orders").to_pylist() == table.column("total_orders").to_pylist()

    # Compaction: no worker checkpoint covers these files, so by default nothing is merged; with
    # --all-files (a log no worker writes): fewer files, the same training set.
    def compact(*flags):
        done = subprocess.run([TESSERA, "compact", "--topology", TOPOLOGY, "--offline-dir", os.path.join(directory, "offline"),
                               "--target-rows", "40000", *flags], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return len([f for _, _, fs in os.walk(os.path.join(directory, "offline")) for f in fs if f.endswith(".parquet")])

    before = len([f for _, _, fs in os.walk(os.path.join(directory, "offline")) for f in fs if f.endswith(".parquet")])
    assert compact() == before
    after = compact("--all-files")
    assert after < before / 4, (before, after)
    again = os.path.join(directory, "again.parquet")
    historical(directory, csv, again)
    assert pq.read_table(again).equals(table)

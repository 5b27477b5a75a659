#!/usr/bin/env python3
"""Point-in-time join benchmark: `tessera historical` against DuckDB, polars and pandas.

    python3 benchmarks/historical.py [--rows 10000000] [--entities 1000000] [--dir DIR] [--tessera BIN] [--json FILE]

Generates (or reuses, with --dir) an offline log of the reference view `user_stats` in Tessera's
layout (DIR/offline/user_stats/partition=P/SEQUENCE-FIRST-LAST.parquet, 4 partitions, users keyed by
partition, zstd like the worker's files) and an entity frame (user_id, event_timestamp, label),
then, in one run, times each engine producing the full training set as Parquet from the same files:

- tessera historical (release binary; peak RSS from /usr/bin/time -v),
- DuckDB ASOF LEFT JOIN, COPY … TO parquet,
- polars join_asof (by user_id, backward, tolerance = the view's TTL),
- pandas merge_asof (same).

All apply the view's TTL (1 day). Event timestamps are unique within a partition, so no user has
two rows with the same event time and the created-timestamp tie-break cannot change an answer:
the peers' plain as-of joins compute exactly Tessera's semantics here. The script checks that
every engine agrees on a sample of entity rows, then prints wall time, the ratio to Tessera and
peak RSS for each (and, with --json, writes them to FILE). `benchmarks/run` runs it as its
point-in-time join measurement. Needs polars besides the test tools (`pip install polars`).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FEATURES = [
    ("total_orders_1h", "int64"), ("total_orders_7d", "int64"), ("total_orders", "int64"),
    ("total_amount_1d", "double"), ("avg_order_amount_7d", "double"), ("max_order_amount_7d", "double"),
    ("amount_stddev_7d", "double"), ("distinct_products_7d", "int64"), ("last_status", "string"),
    ("paid_orders_1d", "int64"),
]
TTL_US = 86_400_000_000
START_US = 1_767_225_600_000_000      # 2026-01-01
SPAN_US = 7 * 86_400_000_000


def generate(directory, rows, entities, users, partitions, file_rows, seed):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    schema = pa.schema(
        [pa.field("user_id", pa.int64(), nullable=False)]
        + [pa.field(n, pa.string() if t == "string" else pa.int64() if t == "int64" else pa.float64()) for n, t in FEATURES]
        + [pa.field("event_timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
           pa.field("created_timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
           pa.field("_offset", pa.int64(), nullable=False)])
    statuses = np.array(["paid", "refunded", "cancelled"], dtype=object)
    per_partition = rows // partitions
    for p in range(partitions):
        count = per_partition + (1 if p < rows % partitions else 0)
        base = os.path.join(directory, "offline", "user_stats", f"partition={p}")
        os.makedirs(base, exist_ok=True)
        # Unique, increasing event times per partition (the partition's stream time); users u ≡ p (mod partitions).
        steps = rng.integers(1, 2 * SPAN_US // max(count, 1) + 2, size=count)
        event = START_US + np.cumsum(steps)
        user = rng.integers(0, users // partitions, size=count) * partitions + p
        created = event + rng.integers(0, 2_000_000, size=count)
        offsets = np.arange(count, dtype=np.int64) * 3
        for start in range(0, count, file_rows):
            end = min(count, start + file_rows)
            n = end - start
            columns = [pa.array(user[start:end])]
            for name, kind in FEATURES:
                if kind == "int64":
                    values = rng.integers(0, 50, size=n)
                    columns.append(pa.array(values))
                elif kind == "double":
                    values = np.round(rng.random(n) * 500, 2)
                    mask = rng.random(n) < 0.05
                    columns.append(pa.array(values, mask=mask))
                else:
                    columns.append(pa.array(statuses[rng.integers(0, 3, size=n)]))
            columns += [pa.array(event[start:end], pa.timestamp("us", tz="UTC")),
                        pa.array(created[start:end], pa.timestamp("us", tz="UTC")),
                        pa.array(offsets[start:end])]
            table = pa.Table.from_arrays(columns, schema=schema)
            name = f"{start // file_rows:010d}-{offsets[start]:020d}-{offsets[end - 1]:020d}.parquet"
            pq.write_table(table, os.path.join(base, name), compression="zstd", compression_level=1,
                           use_dictionary=["last_status"])
    ts = START_US + rng.integers(0, SPAN_US + 86_400_000_000, size=entities)
    frame = pa.table({
        "user_id": pa.array(rng.integers(0, users, size=entities)),
        "event_timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "label": pa.array(rng.integers(0, 2, size=entities)),
    })
    pq.write_table(frame, os.path.join(directory, "entities.parquet"), compression="zstd")


def peer(kind, directory, out):
    """One peer's whole job, run in its own process so that its time and RSS are its own."""
    files = os.path.join(directory, "offline", "user_stats", "*", "*.parquet")
    entities = os.path.join(directory, "entities.parquet")
    names = [n for n, _ in FEATURES]
    if kind == "duckdb":
        import duckdb
        con = duckdb.connect()
        con.execute("SET threads = 2")
        selected = ", ".join(f"CASE WHEN e.event_timestamp - f.event_timestamp <= INTERVAL {TTL_US} MICROSECONDS "
                             f"THEN f.{n} END AS {n}" for n in names)
        con.execute(f"""
            COPY (SELECT e.*, {selected}
                  FROM read_parquet('{entities}') e
                  ASOF LEFT JOIN read_parquet('{files}') f
                  ON e.user_id = f.user_id AND e.event_timestamp >= f.event_timestamp)
            TO '{out}' (FORMAT parquet)""")
    elif kind == "polars":
        import polars as pl
        frame = pl.read_parquet(entities).with_row_index("_row").sort("event_timestamp")
        offline = pl.read_parquet(files, columns=["user_id", "event_timestamp"] + names).sort("event_timestamp")
        joined = frame.join_asof(offline, on="event_timestamp", by="user_id", strategy="backward",
                                 tolerance=f"{TTL_US}us")
        joined.sort("_row").drop("_row").write_parquet(out)
    elif kind == "pandas":
        import glob
        import pandas as pd
        frame = pd.read_parquet(entities).reset_index(names="_row").sort_values("event_timestamp", kind="stable")
        offline = pd.concat([pd.read_parquet(f, columns=["user_id", "event_timestamp"] + names)
                             for f in sorted(glob.glob(files))], ignore_index=True)
        offline = offline.sort_values("event_timestamp", kind="stable")
        joined = pd.merge_asof(frame, offline, on="event_timestamp", by="user_id", direction="backward",
                               tolerance=pd.Timedelta(microseconds=TTL_US), allow_exact_matches=True)
        joined.sort_values("_row").drop(columns="_row").to_parquet(out, index=False)
    else:
        raise SystemExit(f"unknown peer {kind}")


def timed(command, env=None):
    """Runs a command under /usr/bin/time -v; returns (wall seconds, peak RSS in MiB)."""
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v"] + command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"failed: {' '.join(command)}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) / 1024
    return wall, rss


def check(outputs, sample, seed):
    """Every engine's answer for a sample of distinct (user_id, event_timestamp) rows agrees with Tessera's."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    names = [n for n, _ in FEATURES]
    reference = pq.read_table(outputs["tessera"])
    rng = np.random.default_rng(seed)
    rows = rng.choice(reference.num_rows, size=min(sample, reference.num_rows), replace=False)
    wanted = reference.take(rows)

    def by_key(table):
        keys = zip(table.column("user_id").to_pylist(), pc.cast(table.column("event_timestamp"), "int64").to_pylist())
        values = zip(*[table.column(n).to_pylist() for n in names])
        return dict(zip(keys, values))

    expected = by_key(wanted)
    matched = sum(1 for v in expected.values() if any(x is not None for x in v))
    for engine, path in outputs.items():
        table = pq.read_table(path, columns=["user_id", "event_timestamp"] + names)
        mask = pc.is_in(table.column("user_id"), value_set=wanted.column("user_id"))
        actual = by_key(table.filter(mask))
        for key, values in expected.items():
            got = actual.get(key)
            if got is None or any(not (a == b or (isinstance(a, float) and isinstance(b, float) and abs(a - b) <= 1e-9 * max(1, abs(a))))
                                  for a, b in zip(values, got)):
                raise SystemExit(f"{engine} disagrees with tessera at user_id={key[0]} ts={key[1]}: {got} vs {values}")
    return len(expected), matched


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000, help="offline rows (default 10 M)")
    parser.add_argument("--entities", type=int, default=1_000_000, help="entity rows (default 1 M)")
    parser.add_argument("--users", type=int, help="distinct users (default rows / 10)")
    parser.add_argument("--file-rows", type=int, default=250_000, help="rows per offline file (default 250 000)")
    parser.add_argument("--dir", help="work directory; data generated there is reused on the next run")
    parser.add_argument("--tessera", default=os.environ.get("TESSERA_BIN", os.path.join(ROOT, ".build", "release", "tessera")))
    parser.add_argument("--peers", default="duckdb,polars,pandas", help="comma-separated peers to run (default all)")
    parser.add_argument("--sample", type=int, default=2000, help="entity rows compared across engines")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", help="also write the results to this file as JSON")
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        return peer(args.peer, args.dir, args.out)

    directory = args.dir or tempfile.mkdtemp(prefix="tessera-historical-")
    started = time.perf_counter()
    users = args.users or max(1, args.rows // 10)
    stamp = os.path.join(directory, f"generated-{args.rows}-{args.entities}-{users}-{args.file_rows}-{args.seed}")
    if not os.path.exists(stamp):
        subprocess.run(["rm", "-rf", os.path.join(directory, "offline"), os.path.join(directory, "entities.parquet")], check=True)
        os.makedirs(directory, exist_ok=True)
        print(f"generating {args.rows:,} offline rows ({users:,} users) and {args.entities:,} entity rows in {directory}", flush=True)
        generate(directory, args.rows, args.entities, users, 4, args.file_rows, args.seed)
        open(stamp, "w").close()

    generated = time.perf_counter()
    outputs, results = {}, []
    out = os.path.join(directory, "tessera.parquet")
    wall, rss = timed([args.tessera, "historical", "--topology", os.path.join(ROOT, "topologies", "growth.yaml"),
                       "--offline-dir", os.path.join(directory, "offline"), "--entities", os.path.join(directory, "entities.parquet"),
                       "--features", "user_stats:*", "--out", out])
    outputs["tessera"] = out
    results.append(("tessera historical", wall, rss))
    labels = {"duckdb": "DuckDB ASOF JOIN → Parquet", "polars": "polars join_asof", "pandas": "pandas merge_asof"}
    for kind in [p for p in args.peers.split(",") if p]:
        out = os.path.join(directory, f"{kind}.parquet")
        wall, rss = timed([sys.executable, os.path.abspath(__file__), "--peer", kind, "--dir", directory, "--out", out])
        outputs[kind] = out
        results.append((labels[kind], wall, rss))
    compared, matched = check(outputs, args.sample, args.seed)

    print(f"\n{args.rows:,} offline rows × {args.entities:,} entity rows, {os.cpu_count()} cores; "
          f"{compared} sampled rows agree across engines ({matched} with a match)")
    print(f"{'engine':<30} {'wall s':>8} {'× tessera':>10} {'peak RSS MiB':>13}")
    base = results[0][1]
    for name, wall, rss in results:
        print(f"{name:<30} {wall:>8.2f} {wall / base:>10.2f} {rss:>13.0f}")
    if args.json:
        import json
        with open(args.json, "w") as f:
            json.dump({"rows": args.rows, "entities": args.entities, "users": users, "cores": os.cpu_count(),
                       "sampled_rows_agree": compared, "sampled_rows_with_match": matched,
                       "generate_seconds": generated - started,
                       "engines": [{"engine": name, "seconds": wall, "peak_rss_mib": rss} for name, wall, rss in results]}, f)


if __name__ == "__main__":
    main()

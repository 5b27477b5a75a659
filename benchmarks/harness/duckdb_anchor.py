#!/usr/bin/env python3
"""The batch anchor: DuckDB computing the reference view's rolling features for every event with
window functions over the same events (RANGE windows), the bar a vectorised engine sets for the
aggregation core.

    duckdb_anchor.py --events FILE.jsonl --out RESULT.json [--threads 2]

Loads the JSON lines (`tessera produce --out`) into a table (timed apart), then times one
`CREATE TABLE … AS SELECT` computing, for every event, each feature of `user_stats` over a window
ending at that event: RANGE windows of 1 hour, 1 day and 7 days per user, plus lifetime frames.
DuckDB's windows slide exactly (Tessera's tails move in hops). Each feature uses DuckDB's fastest
windowed form: the distinct count is exact (`count(DISTINCT …)`; `approx_count_distinct` over a
window is several times slower) and the filtered count is a sum of 0/1 (`count(*) FILTER (…)`
over a frame is about ten times slower than every other feature together).
"""
import argparse
import json
import time

FEATURES_SQL = """
    CREATE TABLE features AS
    SELECT order_id, user_id, ts,
        count(*) OVER w1h AS total_orders_1h,
        count(*) OVER w7d AS total_orders_7d,
        count(*) OVER lifetime AS total_orders,
        sum(amount) OVER w1d AS total_amount_1d,
        avg(amount) OVER w7d AS avg_order_amount_7d,
        max(amount) OVER w7d AS max_order_amount_7d,
        stddev_samp(amount) OVER w7d AS amount_stddev_7d,
        count(DISTINCT product_id) OVER w7d AS distinct_products_7d,
        last_value(status) OVER lifetime AS last_status,
        sum(CASE WHEN status = 'paid' THEN 1 ELSE 0 END) OVER w1d AS paid_orders_1d
    FROM orders
    WINDOW
        w1h AS (PARTITION BY user_id ORDER BY ts RANGE BETWEEN INTERVAL 1 HOUR PRECEDING AND CURRENT ROW),
        w1d AS (PARTITION BY user_id ORDER BY ts RANGE BETWEEN INTERVAL 1 DAY PRECEDING AND CURRENT ROW),
        w7d AS (PARTITION BY user_id ORDER BY ts RANGE BETWEEN INTERVAL 7 DAYS PRECEDING AND CURRENT ROW),
        lifetime AS (PARTITION BY user_id ORDER BY ts, order_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import duckdb
    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    started = time.perf_counter()
    con.execute(f"""
        CREATE TABLE orders AS
        SELECT order_id, user_id, product_id, amount, status, make_timestamp(event_timestamp * 1000) AS ts
        FROM read_json('{args.events}', format = 'newline_delimited',
                       columns = {{order_id: 'BIGINT', user_id: 'BIGINT', product_id: 'BIGINT', amount: 'DOUBLE',
                                  status: 'VARCHAR', event_timestamp: 'BIGINT'}})""")
    loaded = time.perf_counter()
    con.execute(FEATURES_SQL)
    computed = time.perf_counter()
    rows = con.execute("SELECT count(*) FROM features").fetchone()[0]
    events = con.execute("SELECT count(*) FROM orders").fetchone()[0]
    # The lifetime count at each user's last event, for a cross-check against the event counts.
    users = con.execute("SELECT count(DISTINCT user_id) FROM orders").fetchone()[0]
    check = con.execute("""
        SELECT count(*) FROM (SELECT user_id, max(total_orders) AS n FROM features GROUP BY user_id) f
        JOIN (SELECT user_id, count(*) AS n FROM orders GROUP BY user_id) o USING (user_id) WHERE f.n = o.n""").fetchone()[0]
    result = {"events": events, "rows": rows, "users": users, "lifetime_counts_agree": check,
              "load_seconds": loaded - started, "seconds": computed - loaded,
              "rate": events / (computed - loaded), "threads": args.threads, "duckdb": duckdb.__version__}
    with open(args.out, "w") as f:
        json.dump(result, f)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

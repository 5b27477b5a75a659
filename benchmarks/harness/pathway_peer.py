#!/usr/bin/env python3
"""The Pathway peer of the end-to-end benchmark: the reference view `user_stats`
(topologies/growth.yaml) computed by Pathway from a topic holding exactly a prefix of the stream.

    pathway_peer.py --brokers B --topic T --events N --mode view|tumbling --out FILE [--sample IDS]

Runs in the streaming peers' virtual environment (scripts/deps.sh). Pathway's Kafka reader runs in
`static` mode: it reads each partition up to the high watermark it finds at its start, then the
computation ends. The topic holds the first N events of the stream (`order_id <= N`) and, after
them, one record on each partition that the peer drops (benchmarks/run: append_end_markers).
The measured time is the whole `pw.run()`, the engine's start included.

`--mode view` computes every feature with Pathway's own windows and reducers, the windows chosen as
for Quix (quix_peer.py): a Tessera feature over W with hop h is, at time t, Pathway's sliding
window of duration W + h and hop h that starts at floor((t - W) / h) * h; the lifetime features
are a group-by of the user. The sampled users' windows are joined out inside Pathway and written
to FILE for the agreement check (benchmarks/run: compare_with_peer). A sample standard deviation
is computed from the window's count, sum and sum of squares (Pathway has no such reducer).

`--mode tumbling` is Pathway's best case: one tumbling 1-hour window counting orders per user.
"""
import math
import sys
import time

import peer

MINUTE, HOUR = 60_000, 3_600_000
GROUPS = {"1h": (HOUR, 5 * MINUTE), "1d": (24 * HOUR, HOUR), "7d": (7 * 24 * HOUR, HOUR)}


def main():
    args = peer.arguments(__doc__, (("--events",), dict(type=int, required=True, help="events the topic holds")))
    started_process = time.perf_counter()

    import pathway as pw

    class Order(pw.Schema):
        order_id: int = pw.column_definition(primary_key=True)
        user_id: int
        product_id: int
        amount: float
        status: str
        event_timestamp: int

    settings = {"bootstrap.servers": args.brokers, "group.id": f"pathway-peer-{args.mode}",
                "auto.offset.reset": "earliest", "session.timeout.ms": "6000"}
    orders = pw.io.kafka.read(settings, topic=args.topic, format="json", schema=Order, mode="static")
    orders = orders.filter(orders.order_id <= args.events)     # the end markers (benchmarks/run) go
    sample = sorted({int(s) for s in args.sample.split(",") if s})
    chosen = pw.debug.table_from_rows(pw.schema_from_types(user=int), [(u,) for u in sample])

    values = {}            # user → group → window start → aggregates (sampled users only)
    outputs = [0]          # rows the sampled users' windows produced

    def sink(group, start_column):
        def on_change(key, row, time, is_addition):
            if not is_addition:
                return
            outputs[0] += 1
            start = str(row[start_column]) if start_column else "0"
            row = {k: v for k, v in row.items() if k not in ("user", "start")}
            if "n" in row:
                n, s, q = row.pop("n"), row.pop("s"), row.pop("q")
                row["amount_stddev_7d"] = math.sqrt(max(0.0, (q - s * s / n) / (n - 1))) if n >= 2 else None
            values.setdefault(str(row.pop("u")), {}).setdefault(group, {})[start] = row
        return on_change

    def windows(duration, hop):
        return orders.windowby(orders.event_timestamp, window=pw.temporal.sliding(duration=duration, hop=hop, origin=0),
                               instance=orders.user_id)

    def sampled(table, group, **columns):
        joined = table.join(chosen, table.u == chosen.user).select(*[table[c] for c in columns])
        pw.io.subscribe(joined, on_change=sink(group, "start" if group != "lifetime" else None))

    if args.mode == "view":
        w, h = GROUPS["1h"]
        t = windows(w + h, h).reduce(u=pw.this._pw_instance, start=pw.this._pw_window_start,
                                     total_orders_1h=pw.reducers.count())
        sampled(t, "1h", u=1, start=1, total_orders_1h=1)
        w, h = GROUPS["1d"]
        t = windows(w + h, h).reduce(u=pw.this._pw_instance, start=pw.this._pw_window_start,
                                     total_amount_1d=pw.reducers.sum(pw.this.amount),
                                     paid_orders_1d=pw.reducers.sum(pw.if_else(pw.this.status == "paid", 1, 0)))
        sampled(t, "1d", u=1, start=1, total_amount_1d=1, paid_orders_1d=1)
        w, h = GROUPS["7d"]
        t = windows(w + h, h).reduce(u=pw.this._pw_instance, start=pw.this._pw_window_start,
                                     total_orders_7d=pw.reducers.count(),
                                     avg_order_amount_7d=pw.reducers.avg(pw.this.amount),
                                     max_order_amount_7d=pw.reducers.max(pw.this.amount),
                                     n=pw.reducers.count(), s=pw.reducers.sum(pw.this.amount),
                                     q=pw.reducers.sum(pw.this.amount * pw.this.amount),
                                     distinct_products_7d=pw.reducers.count_distinct(pw.this.product_id))
        sampled(t, "7d", u=1, start=1, total_orders_7d=1, avg_order_amount_7d=1, max_order_amount_7d=1, n=1, s=1, q=1,
                distinct_products_7d=1)
        lifetime = orders.groupby(orders.user_id).reduce(u=orders.user_id, total_orders=pw.reducers.count(),
                                                         latest=pw.reducers.argmax(orders.event_timestamp))
        lifetime = lifetime.select(lifetime.u, lifetime.total_orders, last_status=orders.ix(lifetime.latest).status)
        sampled(lifetime, "lifetime", u=1, total_orders=1, last_status=1)
    else:
        t = orders.windowby(orders.event_timestamp, window=pw.temporal.tumbling(duration=HOUR, origin=0),
                            instance=orders.user_id).reduce(u=pw.this._pw_instance, start=pw.this._pw_window_start,
                                                            count=pw.reducers.count())
        sampled(t, "t1h", u=1, start=1, count=1)

    read = [0]
    pw.io.subscribe(orders.reduce(n=pw.reducers.count()),
                    on_change=lambda key, row, time, is_addition: is_addition and read.__setitem__(0, row["n"]))

    first = time.perf_counter()
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)
    done = time.perf_counter()
    if read[0] != args.events:
        raise SystemExit(f"pathway peer read {read[0]} of {args.events} events")
    result = {
        "mode": args.mode, "events": args.events, "sampled_rows": outputs[0],
        "seconds": done - first,                  # pw.run(): the engine's start, reading, computing
        "process_seconds": done - started_process,
        "rate": args.events / (done - first),
        "pathway": pw.__version__,
        "values": values,
    }
    peer.write(result, args.out)


if __name__ == "__main__":
    sys.exit(main())

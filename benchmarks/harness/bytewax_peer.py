#!/usr/bin/env python3
"""The Bytewax peer of the end-to-end benchmark: the reference view `user_stats`
(topologies/growth.yaml) computed by Bytewax from a topic holding exactly a prefix of the stream.

    bytewax_peer.py --brokers B --topic T --events N --mode view|tumbling --out FILE [--sample IDS]

Runs in the streaming peers' virtual environment (scripts/deps.sh), one worker. Bytewax's Kafka
source reads each partition to its end (`tail=False`), so the run ends with the input, and every
window is closed and emitted then. The measured time is the whole run of the dataflow.

`--mode view` computes every feature with Bytewax's own windows, the windows chosen as for Quix
(quix_peer.py): a Tessera feature over W with hop h is, at time t, the sliding window of length
W + h and offset h (aligned to the epoch) that opens at floor((t - W) / h) * h; the lifetime
features are one tumbling window longer than the data. Each window folds the aggregates of its
group (a Welford accumulator for the standard deviation, an exact set for the distinct count);
events are keyed by the Kafka key (the user id), timed by `event_timestamp` with the source's
allowed lateness (5 s) as the clock's wait. The sampled users' windows go to FILE for the agreement
check (benchmarks/run: compare_with_peer).

`--mode tumbling` is Bytewax's best case: one tumbling 1-hour window counting orders per user.
"""
import json
import sys
import time
from datetime import datetime, timedelta, timezone

import peer

GRACE = timedelta(seconds=5)     # the source's allowed_lateness
MINUTE, HOUR = 60_000, 3_600_000
GROUPS = {"1h": (HOUR, 5 * MINUTE), "1d": (24 * HOUR, HOUR), "7d": (7 * 24 * HOUR, HOUR)}
LIFETIME = timedelta(milliseconds=1 << 41)   # one tumbling window from the epoch to 2039
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def unmergeable(a, b):
    raise NotImplementedError("only session windows merge accumulators")


def fold(group):
    """The (builder, folder, merger) of a group's aggregates; the accumulator is a list."""
    if group == "1h":
        return (lambda: [0]), (lambda a, e: [a[0] + 1]), (lambda a, b: [a[0] + b[0]])

    if group == "1d":
        def folder(a, e):
            return [a[0] + e["amount"], a[1] + (e["status"] == "paid")]
        return (lambda: [0.0, 0]), folder, (lambda a, b: [a[0] + b[0], a[1] + b[1]])

    if group == "7d":
        def folder(a, e):
            n, mean, m2, top, products = a
            x = e["amount"]
            n += 1
            delta = x - mean
            mean += delta / n
            products.add(e["product_id"])
            return [n, mean, m2 + delta * (x - mean), x if top is None or x > top else top, products]
        return (lambda: [0, 0.0, 0.0, None, set()]), folder, None

    def folder(a, e):          # lifetime: count and the status of the latest event
        n, latest, status = a
        t = e["event_timestamp"]
        return [n + 1, t, e["status"]] if latest is None or t >= latest else [n + 1, latest, status]
    return (lambda: [0, None, None]), folder, None


def aggregates(group, a):
    if group == "1h":
        return {"total_orders_1h": a[0]}
    if group == "1d":
        return {"total_amount_1d": a[0], "paid_orders_1d": a[1]}
    if group == "7d":
        n, mean, m2, top, products = a
        return {"total_orders_7d": n, "avg_order_amount_7d": mean if n else None, "max_order_amount_7d": top,
                "amount_stddev_7d": (m2 / (n - 1)) ** 0.5 if n >= 2 else None, "distinct_products_7d": len(products)}
    if group == "lifetime":
        return {"total_orders": a[0], "last_status": a[2]}
    return {"count": a[0]}


def main():
    args = peer.arguments(__doc__, (("--events",), dict(type=int, required=True, help="events the topic holds")))
    started_process = time.perf_counter()

    from importlib.metadata import version

    import bytewax.operators as op
    import bytewax.operators.windowing as win
    from bytewax.connectors.kafka import KafkaSource
    from bytewax.dataflow import Dataflow
    from bytewax.testing import run_main

    sample = {s for s in args.sample.split(",") if s}
    windows = []           # per group: (name, window openings, aggregates), sampled users only
    closed = [0]           # windows closed and emitted
    seen = [0]

    flow = Dataflow("peer")
    messages = op.input("kafka", flow, KafkaSource([args.brokers], [args.topic], tail=False))

    def keyed(message):
        seen[0] += 1
        return message.key.decode(), json.loads(message.value)
    events = op.map("parse", messages, keyed)
    clock = win.EventClock(lambda e: EPOCH + timedelta(milliseconds=e["event_timestamp"]), wait_for_system_duration=GRACE)

    def window(group, windower):
        builder, folder, merger = fold(group)
        out = win.fold_window(f"w{group}", events, clock, windower, builder, folder, merger or unmergeable)
        # A window's opening time and its aggregates come out on two streams, keyed by the user
        # and numbered by the window: paired after the run.
        opened, folded = {}, {}
        windows.append((group, opened, folded))

        def meta(step, item):
            user, (number, metadata) = item
            if user in sample:
                opened[(user, number)] = metadata.open_time

        def down(step, item):
            closed[0] += 1
            user, (number, accumulator) = item
            if user in sample:
                folded[(user, number)] = aggregates(group, accumulator)
        op.inspect(f"meta{group}", out.meta, meta)
        op.inspect(f"down{group}", out.down, down)

    if args.mode == "view":
        for group, (w, h) in GROUPS.items():
            window(group, win.SlidingWindower(length=timedelta(milliseconds=w + h), offset=timedelta(milliseconds=h),
                                              align_to=EPOCH))
        window("lifetime", win.TumblingWindower(length=LIFETIME, align_to=EPOCH))
    else:
        window("t1h", win.TumblingWindower(length=timedelta(milliseconds=HOUR), align_to=EPOCH))

    first = time.perf_counter()
    run_main(flow)
    done = time.perf_counter()
    if seen[0] != args.events:
        raise SystemExit(f"bytewax peer read {seen[0]} of {args.events} events")
    values = {}            # user → group → window start → aggregates
    for group, opened, folded in windows:
        for (user, number), row in folded.items():
            start = 0 if group == "lifetime" else int((opened[(user, number)] - EPOCH) / timedelta(milliseconds=1))
            values.setdefault(user, {}).setdefault(group, {})[str(start)] = row
    result = {
        "mode": args.mode, "events": seen[0], "windows_closed": closed[0],
        "seconds": done - first,                  # the whole run of the dataflow
        "process_seconds": done - started_process,
        "rate": seen[0] / (done - first),
        "bytewax": version("bytewax"),
        "values": values,
    }
    peer.write(result, args.out)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The Quix Streams peer of the end-to-end benchmark: the reference view `user_stats`
(topologies/growth.yaml) computed by Quix Streams from the same topic, on a bounded prefix.

    quix_peer.py --brokers B --topic T --prefix N --mode view|tumbling --out FILE [--sample IDS]

Runs in its own virtual environment (Quix Streams pins an older confluent-kafka than the rest of
the benchmarks use; see scripts/deps.sh). The prefix is the first N events of the generated stream,
that is the events with `order_id <= N` (the generator numbers events from 1 in stream order);
benchmarks/run gives it a topic holding exactly those, and the app stops once it has processed
all of them.

`--mode view` computes every feature of the view with Quix's own windows and aggregators. Tessera's
windows are sawtooth windows: a feature over W with hop h has, at time t, the value of the events
in [floor((t - W) / h) * h, t]. The Quix hopping window of duration W + h and step h that starts at
floor((t - W) / h) * h holds exactly those events of an entity once nothing later than t has
arrived, so each feature group is one hopping window (Quix updates every overlapping window on
every event: 13 windows for 1h/5m, 25 for 1d/1h, 169 for 7d/1h), and the lifetime features are one
tumbling window longer than the data. Each window update goes, as Quix emits it (`.current()`), to
an in-memory sink; the values of the sampled users are written to FILE for the agreement check.

`--mode tumbling` is Quix's best case: one tumbling 1-hour window counting orders per user.
"""
import os
import sys
import time

import peer

GRACE_MS = 5_000          # the source's allowed_lateness
MINUTE, HOUR = 60_000, 3_600_000
GROUPS = {
    # name: (window W, hop h) in ms, as Tessera derives the hop from the window
    "1h": (HOUR, 5 * MINUTE),
    "1d": (24 * HOUR, HOUR),
    "7d": (7 * 24 * HOUR, HOUR),
}
LIFETIME_MS = 1 << 41     # one tumbling window from the epoch to 2039 holds every event


def main():
    args = peer.arguments(__doc__, (("--prefix",), dict(type=int, required=True, help="process the events with order_id <= N")),
                          (("--group",), dict(default=f"quix-peer-{os.getpid()}")), (("--state-dir",), dict(required=True)))
    started_process = time.perf_counter()

    import logging

    from quixstreams import Application
    from quixstreams.dataframe.windows.aggregations import Aggregator, Count, Latest, Max, Mean, Sum
    from quixstreams.models.topics.manager import TopicManager

    # tansu does not report topic configs, and Quix derives its changelog topics' settings from the
    # input topic's `retention.ms`: default it to unlimited (-1, the broker default of tansu's
    # in-memory storage) where the broker said nothing.
    derive = TopicManager.derive_topic_config.__func__

    def derive_with_default(cls, topics):
        for t in topics:
            if t.broker_config is not None:
                t.broker_config.extra_config.setdefault("retention.ms", "-1")
        return derive(cls, topics)

    TopicManager.derive_topic_config = classmethod(derive_with_default)

    class PaidCount(Aggregator):
        """count where status == "paid" (the view's `paid_orders_1d`)."""
        def initialize(self):
            return 0

        def agg(self, old, new, timestamp):
            return old + 1 if new.get("status") == "paid" else old

        def result(self, value):
            return value

    class StdDev(Aggregator):
        """Sample standard deviation (Welford); null below two values, like Tessera's `stddev`."""
        def initialize(self):
            return [0, 0.0, 0.0]

        def agg(self, old, new, timestamp):
            x = new.get(self.column)
            if x is None:
                return old
            n, mean, m2 = old
            n += 1
            delta = x - mean
            mean += delta / n
            return [n, mean, m2 + delta * (x - mean)]

        def result(self, value):
            n, _, m2 = value
            return (m2 / (n - 1)) ** 0.5 if n >= 2 else None

    class Distinct(Aggregator):
        """Exact count of distinct values (Quix has no approximate distinct count)."""
        def initialize(self):
            return []

        def agg(self, old, new, timestamp):
            x = new.get(self.column)
            if x is not None and x not in old:
                old.append(x)
            return old

        def result(self, value):
            return len(value)

    sample = {s for s in args.sample.split(",") if s}
    values = {}           # user → group → window start → aggregates (sampled users only)
    sunk = 0              # window updates received by the sink
    seen = 0
    first = last = None

    app = Application(broker_address=args.brokers, consumer_group=args.group, auto_offset_reset="earliest",
                      state_dir=args.state_dir, loglevel=logging.WARNING,
                      consumer_extra_config={"session.timeout.ms": 6000})
    topic = app.topic(args.topic, key_deserializer="str", value_deserializer="json",
                      timestamp_extractor=lambda value, headers, ts, ts_type: value["event_timestamp"])
    sdf = app.dataframe(topic)
    limit = args.prefix
    sdf = sdf.filter(lambda v: v["order_id"] <= limit)

    def counted(value):
        nonlocal seen, first, last
        if first is None:
            first = time.perf_counter()
        seen += 1
        if seen == limit:
            last = time.perf_counter()
            app.stop()     # the current message still goes through every window below
    sdf = sdf.update(counted)

    def sink(group):
        def record(value, key, timestamp, headers):
            nonlocal sunk
            sunk += 1
            if key in sample:
                values.setdefault(key, {}).setdefault(group, {})[value["start"]] = value
        return record

    if args.mode == "view":
        w, h = GROUPS["1h"]
        (sdf.hopping_window(duration_ms=w + h, step_ms=h, grace_ms=GRACE_MS, name="w1h")
            .agg(total_orders_1h=Count()).current().update(sink("1h"), metadata=True))
        w, h = GROUPS["1d"]
        (sdf.hopping_window(duration_ms=w + h, step_ms=h, grace_ms=GRACE_MS, name="w1d")
            .agg(total_amount_1d=Sum("amount"), paid_orders_1d=PaidCount()).current().update(sink("1d"), metadata=True))
        w, h = GROUPS["7d"]
        (sdf.hopping_window(duration_ms=w + h, step_ms=h, grace_ms=GRACE_MS, name="w7d")
            .agg(total_orders_7d=Count(), avg_order_amount_7d=Mean("amount"), max_order_amount_7d=Max("amount"),
                 amount_stddev_7d=StdDev("amount"), distinct_products_7d=Distinct("product_id"))
            .current().update(sink("7d"), metadata=True))
        (sdf.tumbling_window(duration_ms=LIFETIME_MS, grace_ms=GRACE_MS, name="lifetime")
            .agg(total_orders=Count(), last_status=Latest("status")).current().update(sink("lifetime"), metadata=True))
    else:
        (sdf.tumbling_window(duration_ms=HOUR, grace_ms=GRACE_MS, name="t1h")
            .count().current().update(sink("t1h"), metadata=True))

    app.run()
    done = time.perf_counter()
    if seen < limit:
        raise SystemExit(f"quix peer stopped after {seen} of {limit} events")
    import quixstreams
    result = {
        "mode": args.mode, "events": seen, "window_updates": sunk,
        "seconds": done - first,                 # first event → stopped (final checkpoint included)
        "seconds_to_last_event": last - first,
        "process_seconds": done - started_process,
        "rate": seen / (done - first),
        "quixstreams": quixstreams.__version__,
        "values": values,
    }
    peer.write(result, args.out)


if __name__ == "__main__":
    sys.exit(main())

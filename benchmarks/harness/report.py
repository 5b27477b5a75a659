"""results.json, the markdown table and the charts of a `benchmarks/run` session."""
import json
import os

# Every row a complete run produces, in table order (the CI smoke test checks them all).
ROW_IDS = ["ceiling", "tessera", "tessera_resources", "scaling_1", "scaling_2", "freshness", "hot",
           "quix_view", "quix_tumbling", "quix_agreement", "bytewax_view", "bytewax_tumbling", "bytewax_agreement",
           "pathway_view", "pathway_tumbling", "pathway_agreement", "core", "core_steady", "core_state",
           "backfill", "duckdb", "historical_tessera", "historical_duckdb", "historical_polars", "historical_pandas"]
MEASUREMENT_OF_ROW = {"ceiling": "ceiling", "tessera": "tessera", "tessera_resources": "tessera", "scaling_1": "scaling",
                      "scaling_2": "scaling", "freshness": "freshness", "hot": "hot", "quix_view": "quix",
                      "quix_tumbling": "quix", "quix_agreement": "quix", "bytewax_view": "bytewax",
                      "bytewax_tumbling": "bytewax", "bytewax_agreement": "bytewax", "pathway_view": "pathway",
                      "pathway_tumbling": "pathway", "pathway_agreement": "pathway", "core": "core", "core_steady": "core", "core_state": "core", "backfill": "backfill", "duckdb": "duckdb",
                      "historical_tessera": "historical", "historical_duckdb": "historical",
                      "historical_polars": "historical", "historical_pandas": "historical"}
# The streaming peers: measurement, name in the table, package (its version key), Tessera's target ratio.
PEERS = [("quix", "Quix Streams", "quixstreams", 100), ("bytewax", "Bytewax", "bytewax", None),
         ("pathway", "Pathway", "pathway", None)]
HISTORICAL_ENGINES = {"historical_tessera": "tessera historical", "historical_duckdb": "DuckDB ASOF JOIN → Parquet",
                      "historical_polars": "polars join_asof", "historical_pandas": "pandas merge_asof"}


def rate(x):
    if x is None:
        return "—"
    if x >= 1e6:
        return f"{x / 1e6:.2f} M/s"
    if x >= 1e4:
        return f"{x / 1e3:.0f} k/s"
    if x >= 1e3:
        return f"{x / 1e3:.1f} k/s"
    return f"{x:.0f}/s"


def times(x):
    return "—" if x is None else (f"{x:.2f}×" if x < 10 else f"{x:.0f}×")


def factor(x):
    return f"{x:.2f}×" if x < 2 else f"{x:.1f}×"


def at_least(ratio, target):
    """Verdict for a 'ratio ≥ target' goal."""
    if ratio is None:
        return None, ""
    return (True, "met") if ratio >= target else (False, f"missed by {factor(target / ratio)}")


def at_most(value, target):
    if value is None:
        return None, ""
    return (True, "met") if value <= target else (False, f"missed by {factor(value / target)}")


def missing_probe(fresh):
    """Where the first probe never seen in Redis went: its partition and offset, and how long the
    broker took to take it."""
    first = next((p for p in fresh.get("never_visible", []) if isinstance(p, dict) and "offset" in p), None)
    if first is None:
        return ""
    return (f"; the first, {first['key']}, is at partition {first['partition']} offset {first['offset']}, "
            f"taken by the broker {1000 * (first['delivered_at'] - first['produced_at']):.0f} ms after it was produced")


def rows(results):
    m, errors = results["measurements"], results["errors"]
    out = []

    def add(row_id, what, result, value, unit, baseline="", ratio=None, target="", verdict=(None, "")):
        out.append({"id": row_id, "measurement": MEASUREMENT_OF_ROW[row_id], "what": what, "result": result,
                    "value": value, "unit": unit, "baseline": baseline, "ratio": ratio, "target": target,
                    "met": verdict[0], "verdict": verdict[1]})

    ceiling, tessera = m.get("ceiling"), m.get("tessera")
    if ceiling:
        add("ceiling", "raw librdkafka batch consume of the topic, no processing (Tessera's consumer)",
            rate(ceiling["rate"]), ceiling["rate"], "events/s", baseline="(the baseline)")
    if tessera:
        ratio = tessera.get("ratio_to_ceiling")
        add("tessera", "tessera run --until-end, tansu → worker → Redis + offline log", rate(tessera["rate"]),
            tessera["rate"], "events/s", baseline=f"ceiling {rate(ceiling['rate'])}" if ceiling else "", ratio=ratio,
            target="≥ 0.5 × ceiling (stretch 0.7 ×)", verdict=at_least(ratio, 0.5))
        add("tessera_resources", "same run: CPU, peak RSS, Redis commands",
            f"{tessera['cpu_seconds_per_million']:.2f} CPU s / M events; peak RSS {tessera['peak_rss_mib']:.0f} MiB; "
            f"{tessera['redis_commands']:,} Redis commands ({tessera['redis_commands'] / tessera['events']:.2f} per event, "
            f"{tessera['redis_writes']:,} HSET"
            + "".join(f", {n / tessera['events']:.2f} {name.upper()}" for name, n in sorted(tessera.get("redis_commands_by_name", {}).items()) if name != "hset")
            + ")"
            + "".join(f"; {name} {cpu:.2f} CPU s / M" for name, cpu in sorted(tessera.get("server_cpu_seconds_per_million", {}).items()))
            + ("; the worker's threads (CPU s / M): " + ", ".join(f"{name} {cpu:.2f}" for name, cpu in sorted(tessera["thread_cpu_seconds_per_million"].items(), key=lambda kv: -kv[1]))
               if tessera.get("thread_cpu_seconds_per_million") else "")
            + (f"; longest loop iteration {tessera['longest_loop_ms']:.0f} ms (checkpoint hand-over {tessera['longest_checkpoint_pause_ms']:.0f} ms; a partition held back at most {tessera.get('longest_checkpoint_hold_ms', 0):.0f} ms)"
               if "longest_loop_ms" in tessera else ""),
            tessera["cpu_seconds_per_million"], "CPU s per M events")
    scaling = m.get("scaling")
    if scaling:
        one, two = scaling["workers_1"], scaling["workers_2"]
        add("scaling_1", "1 worker process (to the last event consumed)", rate(one["rate_to_drained"]),
            one["rate_to_drained"], "events/s", baseline="(the baseline)")
        add("scaling_2", "2 worker processes, one consumer group", rate(two["rate_to_drained"]), two["rate_to_drained"],
            "events/s", baseline=f"1 worker {rate(one['rate_to_drained'])}", ratio=scaling["speedup"])
    fresh = m.get("freshness")
    if fresh:
        load = "a fixed rate" if fresh.get("fixed_rate") else "half of Tessera's rate"
        add("freshness", f"produce → visible in Redis at {rate(fresh['rate'])} ({load}), "
                         f"{fresh['visible']} of {fresh['probes']} probes",
            f"p50 {fresh['p50_ms']:.0f} ms, p99 {fresh['p99_ms']:.0f} ms, max {fresh['max_ms']:.0f} ms"
            + (f"; longest loop iteration {fresh['longest_loop_ms']:.0f} ms (checkpoint hand-over {fresh['longest_checkpoint_pause_ms']:.0f} ms; a partition held back at most {fresh.get('longest_checkpoint_hold_ms', 0):.0f} ms)"
               if fresh.get("longest_loop_ms") else "")
            + ("; cores used during the load (of the machine's " + str(os.cpu_count()) + "): "
               + ", ".join(f"{name} {cores:.2f}" for name, cores in sorted(fresh["cores_used"].items(), key=lambda kv: -kv[1]))
               if fresh.get("cores_used") else "")
            + ("; the worker's threads: " + ", ".join(f"{name} {cores:.2f}" for name, cores in sorted(fresh["worker_threads_cores_used"].items(), key=lambda kv: -kv[1]))
               if fresh.get("worker_threads_cores_used") else ""), fresh["p99_ms"],
            "ms (p99)", baseline=f"load {rate(fresh['achieved_rate'])} achieved", target="p99 ≤ 250 ms",
            verdict=at_most(fresh["p99_ms"], 250) if fresh["lost"] == 0 else (False, f"{fresh['lost']} probes never visible"
                                                                                          + (f" ({len(fresh['undelivered'])} not taken by the broker)" if fresh.get("undelivered") else "")
                                                                                          + missing_probe(fresh)))
    hot = m.get("hot")
    if hot:
        add("hot", f"hot keys ({hot['events']:,} events, {hot['users']:,} users): Redis writes/s, busiest second",
            f"{hot['max_writes_per_second']:,.0f} writes/s ({hot['writes_per_event']:.4f} per event; {rate(hot['rate'])} events)",
            hot["max_writes_per_second"], "writes/s",
            baseline=f"bound {hot['entities_written']:,} entities × {1000 / hot['flush_ms']:.0f} flushes/s = {hot['bound_writes_per_second']:,.0f}/s",
            ratio=hot["max_writes_per_second"] / hot["bound_writes_per_second"], target="≤ 1 write per entity per flush",
            verdict=(True, "met") if hot["within_bound"] else (False, f"over by {hot['max_writes_per_second'] / hot['bound_writes_per_second']:.2f}×"))
    for name, title, _, target in PEERS:
        peer = m.get(name)
        if not peer:
            continue
        v, t, a = peer["view"], peer["tumbling"], peer["agreement"]
        add(f"{name}_view", f"{title}, the same view, first {v['events']:,} events of the stream", rate(v["rate"]), v["rate"],
            "events/s", baseline=f"Tessera {rate(tessera['rate']) if tessera else '—'} (full topic)",
            ratio=peer["tessera_ratio_view"], target=f"Tessera ≥ {target} × {title}" if target else "",
            verdict=at_least(peer["tessera_ratio_view"], target) if target else (None, ""))
        add(f"{name}_tumbling", f"{title}, one tumbling 1 h count (its best case), first {t['events']:,} events",
            rate(t["rate"]), t["rate"], "events/s", baseline=f"Tessera {rate(tessera['rate']) if tessera else '—'}",
            ratio=peer["tessera_ratio_tumbling"])
        agree = a["mismatches"] == 0 and a["users"] > 0
        add(f"{name}_agreement", f"{title} vs Tessera on the first {peer['prefix_events']:,} events: sampled users' final rows",
            f"{a['values'] - a['mismatches']} of {a['values']} values agree ({a['users']} users; distinct counts within "
            f"{a['distinct_max_relative_error'] * 100:.1f} %)", a["mismatches"], "mismatches",
            target="all agree", verdict=(agree, "met" if agree else "disagree"))
    core, duck = m.get("core"), m.get("duckdb")
    if core:
        add("core", "aggregation core alone, same events in memory, one core (core-profile)",
            f"{rate(core['rate'])} whole run, {rate(core['tail_rate'])} over its last 20 %; state {core['state_mib']:,} MiB",
            core["rate"], "events/s", target="≥ 10 M events/s", verdict=at_least(core["rate"] / 1e7, 1.0))
        steady = core.get("steady")
        if steady:
            add("core_steady", f"the same over the steady scale ({steady['events']:,} events, 28 days: 7-day windows slide)",
                f"{rate(steady['rate'])} whole run, {rate(steady['tail_rate'])} over its last 20 %; state {steady['state_mib']:,} MiB",
                steady["rate"], "events/s", baseline=f"standard {rate(core['rate'])}",
                ratio=core["steady_cost_ratio"], target="≥ 10 M events/s; steady ÷ standard cost per event ≤ 1.25",
                verdict=at_least(1.25 / core["steady_cost_ratio"], 1.0) if steady["rate"] >= 1e7 else (False, f"missed by {1e7 / steady['rate']:.1f}×"))
    if core and "entities" in core:
        add("core_state", "aggregation state after the core's run (all partitions)",
            f"{core['state_mib']:,} MiB in use ({core['state_reserved_mib']:,} MiB reserved): {core['entities']:,} entities, "
            f"{core['tiles']:,} non-empty tiles; {core['bytes_per_entity']:,} B per entity, {core['bytes_per_tile']:,} B per non-empty tile",
            core["state_mib"], "MiB", target="≤ 0.5 GiB", verdict=at_most(core["state_mib"], 512))
    backfill = m.get("backfill")
    if backfill:
        add("backfill", f"tessera backfill of the same {backfill['events']:,} events from JSON lines, 4 partitions "
            "(decode, core, offline log)",
            f"{rate(backfill['rate'])}, {backfill['cpu_seconds_per_million']:.2f} CPU s per M events, "
            f"peak RSS {backfill['peak_rss_mib']:,.0f} MiB", backfill["rate"], "events/s",
            baseline=f"core {rate(core['rate'])}" if core else "", ratio=backfill.get("core_ratio"))
    if duck:
        add("duckdb", "DuckDB window functions (RANGE), every event's features, 2 threads", rate(duck["rate"]), duck["rate"],
            "events/s", baseline=f"core {rate(core['rate'])}" if core else "", ratio=duck.get("core_ratio"),
            target="core ≥ 10 × DuckDB", verdict=at_least(duck.get("core_ratio"), 10))
    hist = m.get("historical")
    if hist:
        engines = {e["engine"]: e for e in hist["engines"]}
        base = engines.get("tessera historical")
        duck_asof = engines.get("DuckDB ASOF JOIN → Parquet")
        for row_id, engine in HISTORICAL_ENGINES.items():
            e = engines.get(engine)
            if not e:
                continue
            if row_id == "historical_tessera":
                verdict = at_least(duck_asof["seconds"] / e["seconds"], 1.0) if duck_asof else (None, "")
                if verdict[0] and e["peak_rss_mib"] > 2048:
                    verdict = (False, f"RSS over 2 GiB by {e['peak_rss_mib'] / 2048:.1f}×")
                add(row_id, f"point-in-time join, {hist['rows']:,} offline × {hist['entities']:,} entity rows: {engine}",
                    f"{e['seconds']:.2f} s, {e['peak_rss_mib']:.0f} MiB", e["seconds"], "s", baseline="(the baseline)",
                    target="faster than DuckDB; ≤ 2 GiB", verdict=verdict)
            else:
                add(row_id, f"point-in-time join: {engine}", f"{e['seconds']:.2f} s, {e['peak_rss_mib']:.0f} MiB", e["seconds"],
                    "s", baseline=f"tessera {base['seconds']:.2f} s" if base else "", ratio=e["seconds"] / base["seconds"] if base else None)
    present = {r["id"] for r in out}
    for row_id in ROW_IDS:
        measurement = MEASUREMENT_OF_ROW[row_id]
        # The core's steady companion runs only beside standard (and quick's smoke run).
        if row_id == "core_steady" and results.get("scale") not in ("standard", "quick"):
            continue
        if row_id not in present and measurement in results.get("selected", []):
            out.append({"id": row_id, "measurement": measurement, "what": row_id, "result": f"failed: {errors.get(measurement, 'no result')}",
                        "value": None, "unit": "", "baseline": "", "ratio": None, "target": "", "met": None, "verdict": ""})
    order = {r: i for i, r in enumerate(ROW_IDS)}
    return sorted(out, key=lambda r: order[r["id"]])


def summary(name, m):
    if m is None:
        return "failed"
    if name in ("ceiling", "tessera", "core", "duckdb"):
        return rate(m["rate"])
    if name == "backfill":
        return f"{rate(m['rate'])}, {m['cpu_seconds_per_million']:.2f} CPU s per M events"
    if name == "scaling":
        return f"2 workers {rate(m['workers_2']['rate_to_drained'])} ({m['speedup']:.2f}× of 1)"
    if name == "freshness":
        return f"p50 {m['p50_ms']:.0f} ms, p99 {m['p99_ms']:.0f} ms, max {m['max_ms']:.0f} ms at {rate(m['rate'])}"
    if name == "hot":
        return f"max {m['max_writes_per_second']:,.0f} writes/s, bound {m['bound_writes_per_second']:,.0f}/s"
    if name in ("quix", "bytewax", "pathway"):
        a = m["agreement"]
        return (f"view {rate(m['view']['rate'])}, tumbling {rate(m['tumbling']['rate'])}, "
                f"{a['values'] - a['mismatches']}/{a['values']} values agree")
    if name == "historical":
        return ", ".join(f"{e['engine']} {e['seconds']:.2f} s" for e in m["engines"])
    return "done"


def markdown(results, table):
    machine = results.get("machine", {})
    lines = [f"# Tessera benchmarks — `{results['scale']}` scale", "",
             f"- command: `{results['command']}`",
             f"- started {results['started']}, {results['duration_seconds'] / 60:.1f} min (plus {results['timings'].get('build', 0):.0f} s building)",
             f"- machine: {machine.get('cpu')}, {machine.get('cores')} cores, {machine.get('memory_gib')} GiB, {machine.get('os')}; "
             f"commit {machine.get('commit')}{' with uncommitted changes' if machine.get('uncommitted_changes') else ''}",
             f"- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(machine.get("versions", {}).items()) if v)
             + (f", Redis {machine['redis']}" if machine.get("redis") else "") + (f", {machine['swift']}" if machine.get("swift") else ""),
             "- every ratio is against a baseline measured in this run; targets are docs/workload.md's (stated for the `standard` scale)",
             "", "| measurement | result | baseline (same run) | ratio | target | verdict |", "|---|---|---|---|---|---|"]
    for r in table:
        ratio = times(r["ratio"]) if r["ratio"] is not None else ""
        lines.append(f"| {r['what']} | {r['result']} | {r['baseline']} | {ratio} | {r['target']} | {r['verdict']} |")
    lines += ["", "Method:", ""]
    m = results["measurements"]
    data = results.get("data", {})
    if "main" in data:
        w = data["workload"]
        lines.append(f"- Data: `tessera produce`, {data['main']['events']:,} events, {w['users']:,} users, zipf {w['skew']}, "
                     f"{w['span']} of event time, disorder {w['disorder']}, 4 partitions, one tansu broker (in-memory storage).")
    if "tessera" in m:
        t = m["tessera"]
        lines.append(f"- Ceiling and Tessera: events / time from the group's first assignment to the end (Tessera: to the "
                     f"process exit, after the final flush, checkpoint and commit); group join ({t['group_join_seconds']:.1f} s) "
                     f"excluded. Redis commands counted by Redis (`INFO commandstats`). CPU from `/proc/PID/stat` (utime + stime), the "
                     f"worker's per thread from `/proc/PID/task/*/stat` read every 0.5 s (its last half second is missing there). "
                     f"librdkafka {t.get('librdkafka')}.")
    if "scaling" in m:
        lines.append("- Scaling: events / time from the first assignment to the last stats line (every 0.5 s) that "
                     "consumed events, for both runs (2 workers then wait 10 s before stopping, not counted).")
    if "freshness" in m:
        f = m["freshness"]
        lines.append(f"- Freshness: `rate-load` produces the reference orders with the wall clock as event time at "
                     f"{f['rate']:,}/s for {f['seconds']} s (its producer's `linger.ms` {f.get('load_linger_ms', 5)}; every payload written before the load starts, "
                     f"sent without a copy, only its event time stamped as it goes); a probe produces {f['probes']} marker events (a new user each) beside it and polls "
                     f"Redis every {f['poll_interval_ms']} ms for their keys; delay = first poll seeing the key − the produce call.")
    if "hot" in m:
        lines.append("- Hot keys: Redis's `HSET` count read from Redis every second during the run; the bound is the "
                     f"entities written × flushes per second (`--flush-ms {m['hot']['flush_ms']}`).")
    if "quix" in m:
        q = m["quix"]
        lines.append(f"- Quix Streams {q['view'].get('quixstreams')}: the view as hopping windows (duration W + hop, step hop; "
                     f"13 + 25 + 169 windows updated per event) plus a lifetime window, on the first {q['view']['events']:,} events of "
                     f"the same stream (it runs at a few hundred events/s here); its best case, one tumbling window, on the first "
                     f"{q['tumbling']['events']:,}. Each prefix is produced into a topic of its own (the same events, keys and partitions), "
                     f"so that Quix reads exactly the prefix. Rate = events / time from its first event to its stop (final checkpoint "
                     f"included), against Tessera's rate on the full topic. Agreement: Tessera runs on the same prefix topic and each "
                     f"sampled user's final Redis row is compared with Quix's window ending at the row's `_event_ts`.")
    if "bytewax" in m:
        lines.append(f"- Bytewax {m['bytewax']['view'].get('bytewax')}, one worker: the same windows as Quix (sliding windows of "
                     "length W + hop and offset hop, folded per user; an event clock waiting the source's 5 s lateness) on the "
                     "same prefix topics, read to their end (`tail=False`); every window is emitted when it closes. Rate = "
                     "events / the dataflow's whole run.")
    if "pathway" in m:
        lines.append(f"- Pathway {m['pathway']['view'].get('pathway')}: the same windows as `windowby` sliding windows and a "
                     "group-by for the lifetime features, its Kafka reader in `static` mode over prefix topics of its own "
                     "(one record past the prefix appended to each partition, dropped by the peer: tansu reports a partition's "
                     "high watermark as its last batch's first offset); the sampled users' windows joined out inside Pathway. "
                     "Rate = events / the whole `pw.run()`, the engine's start included.")
    if "backfill" in m:
        lines.append("- Backfill: `tessera backfill` of the scale's events written as JSON lines (as the topic holds them), "
                     "4 partitions, into a fresh offline log; wall clock and CPU from /usr/bin/time, the reading of the file "
                     "included. Ratio: the core's rate over backfill's (what decoding and the offline log add).")
    if "duckdb" in m:
        lines.append("- DuckDB: the same events loaded from JSON lines (not timed), then one CREATE TABLE AS SELECT of all "
                     "ten features with RANGE windows per user, each in DuckDB's fastest windowed form (exact count(DISTINCT); "
                     "the filtered count as a sum of 0/1).")
    if "historical" in m:
        lines.append("- Point-in-time join: `benchmarks/historical.py` (generated offline log, every engine writes the full "
                     "training set to Parquet; answers checked equal on a sample).")
    lines += ["", "Time per phase: " + ", ".join(f"{k} {v:.0f} s" for k, v in results["timings"].items()), ""]
    lines += [f"![{c[:-4]}]({c})" for c in results.get("charts", [])] + [""]
    if results["errors"]:
        lines += ["Failures:", ""] + [f"- {k}: {v}" for k, v in results["errors"].items()] + [""]
    return "\n".join(lines)


def charts(results, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = results["measurements"]
    written = []
    bars = []
    if "ceiling" in m:
        bars.append(("librdkafka ceiling", m["ceiling"]["rate"]))
    if "tessera" in m:
        bars.append(("Tessera end to end", m["tessera"]["rate"]))
    if "scaling" in m:
        bars.append(("Tessera, 1 worker, to last event", m["scaling"]["workers_1"]["rate_to_drained"]))
        bars.append(("Tessera, 2 workers, to last event", m["scaling"]["workers_2"]["rate_to_drained"]))
    if "core" in m:
        bars.append(("Tessera core (1 core)", m["core"]["rate"]))
    if "duckdb" in m:
        bars.append(("DuckDB windows", m["duckdb"]["rate"]))
    for name, title, _, _ in PEERS:
        if name in m:
            bars.append((f"{title}, tumbling 1 h", m[name]["tumbling"]["rate"]))
            bars.append((f"{title}, the view", m[name]["view"]["rate"]))
    if bars:
        fig, ax = plt.subplots(figsize=(8, 0.5 * len(bars) + 1.2))
        ax.barh([b[0] for b in bars][::-1], [b[1] for b in bars][::-1], color="#4c72b0")
        ax.set_xscale("log")
        ax.set_xlabel("events/s (log scale)")
        for i, (_, v) in enumerate(bars[::-1]):
            ax.text(v, i, " " + rate(v), va="center", fontsize=8)
        ax.set_title(f"Throughput, {results['scale']} scale")
        ax.set_xlim(right=max(b[1] for b in bars) * 8)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "throughput.png"), dpi=110)
        plt.close(fig)
        written.append("throughput.png")
    if "freshness" in m:
        f = m["freshness"]
        delays = f["delays_ms"]
        timeline = f.get("probe_timeline")
        fig, axes = plt.subplots(1, 2 if timeline else 1, figsize=(11 if timeline else 7, 4), squeeze=False)
        ax = axes[0][0]
        ax.plot(delays, [(i + 1) / len(delays) for i in range(len(delays))], color="#4c72b0")
        ax.axvline(250, color="#c44e52", linestyle="--", label="target p99 250 ms")
        ax.axvline(f["p99_ms"], color="#55a868", linestyle=":", label=f"p99 {f['p99_ms']:.0f} ms")
        ax.axvline(f["p50_ms"], color="#8172b2", linestyle=":", label=f"p50 {f['p50_ms']:.0f} ms")
        ax.set_xlabel("produce → visible in Redis (ms)")
        ax.set_ylabel("fraction of probes")
        ax.set_title(f"Freshness at {f['rate']:,} events/s ({results['scale']})", fontsize=10)
        ax.legend(fontsize=8)
        if timeline:
            ax = axes[0][1]
            ax.plot([t for t, _ in timeline], [d for _, d in timeline], ".", markersize=3, color="#4c72b0", label="probe delay (ms)")
            ax.set_xlabel("seconds since the load started")
            ax.set_ylabel("produce → visible (ms)")
            lag = ax.twinx()
            w = f.get("worker_timeline", [])
            lag.plot([t for t, _, _ in w], [l for _, _, l in w], color="#dd8452", alpha=0.7, label="worker lag (events)")
            lag.set_ylabel("worker lag (events)")
            ax.set_title("Probe delays and the worker's lag over time", fontsize=10)
            handles = ax.get_legend_handles_labels()
            more = lag.get_legend_handles_labels()
            ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize=8, loc="upper left")
        fig.tight_layout()
        fig.savefig(os.path.join(out, "freshness.png"), dpi=110)
        plt.close(fig)
        written.append("freshness.png")
    if "hot" in m:
        h = m["hot"]
        other = m.get("tessera", {}).get("redis_samples") if results["scale"] != "hot" else None
        fig, axes = plt.subplots(1, 2 if other else 1, figsize=(11 if other else 7, 4), squeeze=False)
        ax = axes[0][0]
        ax.plot([s[0] for s in h["samples"]], [s[1] for s in h["samples"]], marker=".", label="HSET/s, read from Redis")
        ax.axhline(h["bound_writes_per_second"], color="#c44e52", linestyle="--",
                   label=f"bound: {h['entities_written']:,} entities × {1000 / h['flush_ms']:.0f} flushes/s")
        ax.set_ylim(bottom=0, top=max(h["bound_writes_per_second"], h["max_writes_per_second"]) * 1.3)
        ax.set_xlabel("seconds since the assignment")
        ax.set_ylabel("Redis writes/s")
        ax.set_title(f"Hot keys: {h['events']:,} events, {h['users']:,} users ({rate(h['rate'])})", fontsize=10)
        ax.legend(fontsize=8)
        if other:
            ax = axes[0][1]
            ax.plot([x[0] for x in other], [x[1] for x in other], marker=".", color="#dd8452", label="HSET/s")
            ax.plot([x[0] for x in other], [x[2] for x in other], marker=".", color="#8172b2", alpha=0.6, label="all commands/s")
            ax.set_ylim(bottom=0)
            ax.set_xlabel("seconds since the assignment")
            ax.set_title(f"The {results['scale']} data, end-to-end run ({rate(m['tessera']['rate'])})", fontsize=10)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "redis-writes.png"), dpi=110)
        plt.close(fig)
        written.append("redis-writes.png")
    if "historical" in m:
        engines = m["historical"]["engines"]
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.barh([e["engine"] for e in engines][::-1], [e["seconds"] for e in engines][::-1], color="#55a868")
        for i, e in enumerate(engines[::-1]):
            ax.text(e["seconds"], i, f" {e['seconds']:.2f} s", va="center", fontsize=8)
        ax.set_xlabel("seconds (full training set to Parquet)")
        ax.set_title(f"Point-in-time join, {m['historical']['rows']:,} × {m['historical']['entities']:,} rows")
        ax.set_xlim(right=max(e["seconds"] for e in engines) * 1.25)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "historical.png"), dpi=110)
        plt.close(fig)
        written.append("historical.png")
    return written


def write(results, out):
    table = rows(results)
    results["rows"] = table
    try:
        results["charts"] = charts(results, out)
    except Exception as e:  # noqa: BLE001 — the numbers matter more than the pictures
        results["errors"]["charts"] = f"{type(e).__name__}: {e}"
        results["charts"] = []
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(markdown(results, table))

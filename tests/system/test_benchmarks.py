"""Smoke test of the benchmark harness: `benchmarks/run --scale quick` produces every row.

It checks that each measurement ran and reported a number, that the markdown table and the
charts were written, and that each streaming peer (Quix Streams, Bytewax, Pathway) agreed with
Tessera on its sample; it does not judge the numbers (benchmarks report, tests do not time things).
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESSERA = os.environ.get("TESSERA_BIN", os.path.join(ROOT, ".build", "release", "tessera"))

sys.path.insert(0, os.path.join(ROOT, "benchmarks", "harness"))
import report  # noqa: E402


def test_quick_benchmarks_produce_every_row(tmp_path):
    out = str(tmp_path / "results")
    done = subprocess.run([os.path.join(ROOT, "benchmarks", "run"), "--scale", "quick", "--out", out],
                          env=dict(os.environ, TESSERA_BIN=TESSERA), capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-6000:]

    results = json.load(open(os.path.join(out, "results.json")))
    assert results["errors"] == {}
    rows = {r["id"]: r for r in results["rows"]}
    assert sorted(rows) == sorted(report.ROW_IDS)
    for row_id, row in rows.items():
        assert row["value"] is not None, row_id
        assert not row["result"].startswith("failed"), row
    for peer in ("quix", "bytewax", "pathway"):
        agreement = results["measurements"][peer]["agreement"]
        assert agreement["users"] > 0, peer
        assert agreement["mismatches"] == 0, (peer, agreement)

    table = open(os.path.join(out, "results.md")).read()
    for row in rows.values():
        assert row["what"] in table
    for chart in ("throughput.png", "freshness.png", "redis-writes.png", "historical.png"):
        path = os.path.join(out, chart)
        assert os.path.getsize(path) > 1000, chart
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"

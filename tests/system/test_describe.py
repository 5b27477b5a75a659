"""Lineage: `tessera describe` against the topology files themselves (read with PyYAML).

- --json lists every team, source, entity, view and feature the YAML defines, with the view's
  topic, Redis key and offline directory; a view that is offline-only has no Redis key.
- The state version changes when a feature's definition changes, not when its description does.
- --dot draws one edge topic → view per view, and view → Redis / offline log where rows go.
- A view's drift baseline is listed with it, and drawn as a dashed edge into the view.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESSERA = os.environ.get("TESSERA_BIN", os.path.join(ROOT, ".build", "release", "tessera"))
TOPOLOGIES = os.path.join(ROOT, "topologies")


def describe(*args):
    result = subprocess.run([TESSERA, "describe", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def yaml_topologies(directory):
    loaded = [yaml.safe_load(open(os.path.join(directory, f)))
              for f in sorted(os.listdir(directory)) if f.endswith((".yaml", ".yml"))]
    return {t["team"]: t for t in loaded}


def test_json_lists_what_the_topologies_define():
    described = json.loads(describe("--topology", TOPOLOGIES, "--offline-dir", "/data/offline", "--key-prefix", "feat:", "--json"))
    expected = yaml_topologies(TOPOLOGIES)
    teams = {t["team"]: t for t in described["topologies"]}
    assert set(teams) == set(expected)
    for team, y in expected.items():
        t = teams[team]
        assert {s["name"]: s["topic"] for s in t["sources"]} == {s["name"]: s["topic"] for s in y["sources"]}
        assert {e["name"]: e["join_keys"] for e in t["entities"]} == {e["name"]: e["join_keys"] for e in y["entities"]}
        topics = {s["name"]: s["topic"] for s in y["sources"]}
        views = {v["name"]: v for v in t["views"]}
        assert list(views) == [v["name"] for v in y["feature_views"]]
        for yv in y["feature_views"]:
            v = views[yv["name"]]
            assert v["source"] == yv["source"] and v["topic"] == topics[yv["source"]]
            assert v["entities"] == yv["entities"]
            assert v["tags"] == {k: str(x) for k, x in (yv.get("tags") or {}).items()}
            assert [f["name"] for f in v["features"]] == [f["name"] for f in yv["features"]]
            for f, yf in zip(v["features"], yv["features"]):
                assert f["aggregate"] == yf["aggregate"]
                assert f.get("field") == yf.get("field")
                assert f["window"].split("/")[0] == yf.get("window", "lifetime")
                assert (f.get("where") is None) == (yf.get("where") is None)
            keys = [k.split(":")[0] for k in v["join_keys"]]
            if yv.get("online", True):
                assert v["online_key"] == "feat:" + yv["name"] + "".join(f":<{k}>" for k in keys)
            else:
                assert "online_key" not in v
            if yv.get("offline", True):
                assert v["offline_path"] == f"/data/offline/{yv['name']}/partition=<P>/"
            assert re.fullmatch(r"[0-9a-f]{12}", v["state_version"])
            assert v.get("freshness_target") == yv.get("freshness_target")
            assert v["quality_window"] == (yv.get("quality") or {}).get("window", "1h")
            assert v["baselines"] == []


def test_state_version_follows_the_definition():
    with tempfile.TemporaryDirectory() as d:
        shutil.copy(os.path.join(TOPOLOGIES, "growth.yaml"), d)
        path = os.path.join(d, "growth.yaml")

        def version():
            return json.loads(describe("--topology", path, "--json"))["topologies"][0]["views"][0]["state_version"]

        original = version()
        text = open(path).read()
        with open(path, "w") as f:
            f.write(text.replace("ttl: 1d", "ttl: 2d", 1))
        assert version() == original, "the TTL is not part of the state"
        with open(path, "w") as f:
            f.write(text.replace("window: 1h}", "window: 2h}", 1))
        assert version() != original, "a changed window must change the state version"


def test_dot_draws_every_view_between_its_topic_and_its_stores():
    dot = describe("--topology", TOPOLOGIES, "--dot")
    assert dot.startswith("digraph tessera {") and dot.rstrip().endswith("}")
    assert all(line.endswith(("{", "}", ";")) for line in dot.splitlines()), "a statement spans lines"
    edges = set(re.findall(r'^\s*"([^"]+)" -> "([^"]+)"', dot, re.M))
    for team, y in yaml_topologies(TOPOLOGIES).items():
        topics = {s["name"]: s["topic"] for s in y["sources"]}
        for v in y["feature_views"]:
            assert (f"topic:{topics[v['source']]}", f"view:{v['name']}") in edges
            assert ((f"view:{v['name']}", "online") in edges) == v.get("online", True)
            assert ((f"view:{v['name']}", "offline") in edges) == v.get("offline", True)
    text = describe("--topology", TOPOLOGIES)
    for team in yaml_topologies(TOPOLOGIES):
        assert f"team {team}" in text


def test_baselines_are_listed_and_drawn():
    with tempfile.TemporaryDirectory() as d:
        text = open(os.path.join(TOPOLOGIES, "growth.yaml")).read()
        baseline = {"view": "user_stats", "source": "test", "rows": 1,
                    "features": [{"name": "total_orders_1h", "rows": 1, "null_fraction": 0, "edges": [1], "fractions": [1, 0]}]}
        json.dump(baseline, open(os.path.join(d, "user_stats.json"), "w"))
        with open(os.path.join(d, "growth.yaml"), "w") as f:
            f.write(text.replace("    freshness_target: 2s", "    freshness_target: 2s\n    quality: {baseline: user_stats.json, window: 30m, hop: 5m}", 1))
        view = json.loads(describe("--topology", d, "--json"))["topologies"][0]["views"][0]
        assert view["baselines"] == [os.path.join(d, "user_stats.json")]
        assert (view["quality_window"], view["quality_hop"], view["freshness_target"]) == ("30m", "5m", "2s")
        dot = describe("--topology", d, "--dot")
        assert f'"baseline:{d}/user_stats.json" -> "view:user_stats" [style=dashed];' in dot

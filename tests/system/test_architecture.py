"""The target graph of Package.swift keeps its rooms apart (README, "Architecture"): no library
depends on the worker, the training library and the core, topology and offline tests link no
Kafka or Redis client, and each C library is wrapped by exactly one target."""
import json
import os
import subprocess

from conftest import ROOT

C_CLIENTS = {"CRdKafka", "CHiredis", "CCurl"}


def targets():
    swift = os.environ.get("SWIFT", "swift")
    described = subprocess.run([swift, "package", "describe", "--type", "json"], cwd=ROOT, check=True,
                               capture_output=True, text=True)
    text = described.stdout
    data = json.loads(text[text.index("{"):])
    return {t["name"]: t for t in data["targets"]}


def closure(graph, name):
    seen, todo = set(), [name]
    while todo:
        for d in graph[todo.pop()].get("target_dependencies") or []:
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def test_no_library_depends_on_the_engine():
    graph = targets()
    libraries = [n for n, t in graph.items() if t["type"] == "library" and n != "TesseraEngine"]
    assert libraries, "no library targets found"
    for name in libraries:
        assert "TesseraEngine" not in closure(graph, name), f"{name} depends on TesseraEngine"


def test_training_core_topology_and_offline_need_no_c_client_library():
    graph = targets()
    for name in ("TesseraTraining", "TesseraLog", "TesseraTestSupport",
                 "TesseraCoreTests", "TesseraTopologyTests", "TesseraOfflineTests"):
        linked = closure(graph, name) & C_CLIENTS
        assert not linked, f"{name} links {sorted(linked)}"


def test_each_c_library_is_wrapped_by_one_target():
    graph = targets()
    for library in ("CRdKafka", "CHiredis", "CCurl", "CZstd", "CSnappy", "CIntrinsics"):
        users = [n for n, t in graph.items() if library in (t.get("target_dependencies") or [])]
        assert len(users) == 1, f"{library} is used directly by {users}"

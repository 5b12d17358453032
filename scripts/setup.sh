#!/usr/bin/env bash
# Installs every Debian package Custodian needs to build, test and run.
# Idempotent: when everything is installed it does nothing (no apt-get update).
set -euo pipefail

packages=(
  build-essential cmake g++ make pkg-config
  libcaf-dev
  libprotobuf-dev protobuf-compiler
  libspdlog-dev libfmt-dev
  libboost-test-dev libboost-dev
  libsqlite3-dev sqlite3
  libsodium-dev
  libcpp-httplib-dev libssl-dev zlib1g-dev libbrotli-dev
  curl python3
)

# `setup.sh --fuzz` adds what `make fuzz` needs (clang's libFuzzer runtime).
if [ "${1:-}" = "--fuzz" ]; then
  packages+=(clang libclang-rt-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"

#!/usr/bin/env bash
# Installs everything Custodian needs to build, test and run on Debian 12.
# Idempotent: when everything is installed it does nothing (no apt-get update).
#
# Debian packages: compilers, libraries, PostgreSQL 15 (storage of the FerretDB
# server the MongoDB backend is tested against), prometheus-cpp (the /metrics
# registry), prometheus (promtool checks the scrape and the alert rules) and
# chromium (the ops page's browser test). A Python virtualenv for the
# Python tools of the tests from PyPI (below). Go >= 1.24 (to build FerretDB):
# the machine's own if it is recent enough, else the toolchain module from the
# Go module proxy into .tools/go (Debian 12's golang is 1.19).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"

packages=(
  build-essential cmake g++ make pkg-config
  libcaf-dev
  libprotobuf-dev protobuf-compiler
  libspdlog-dev libfmt-dev
  libboost-test-dev libboost-dev
  libsqlite3-dev sqlite3
  librocksdb-dev libjemalloc-dev
  libsnappy-dev libbz2-dev liblz4-dev libzstd-dev  # librocksdb.a's own (linked statically)
  libsodium-dev
  libcpp-httplib-dev libssl-dev zlib1g-dev libbrotli-dev
  libmongoc-dev libbson-dev
  postgresql-15
  curl python3 python3-venv ca-certificates openssl
  prometheus-cpp-dev prometheus chromium
  clang-format clang-tidy  # make test's format_test and tidy_test (.clang-format, .clang-tidy)
)

# `setup.sh --fuzz` adds what `make fuzz` needs (clang's libFuzzer runtime);
# `setup.sh --bench` builds vegeta (the open-loop HTTP load tool of `make bench`).
if [ "${1:-}" = "--fuzz" ]; then
  packages+=(clang libclang-rt-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
  # Debian starts a cluster on port 5432; the tests run their own, so stop it.
  if printf '%s\n' "${missing[@]}" | grep -qx postgresql-15; then
    $SUDO pg_ctlcluster 15 main stop 2>/dev/null || true
  fi
fi

# A virtualenv in .tools/venv with what the Python parts of the tests need from
# PyPI: the reference external participant (examples/external-participant:
# standardwebhooks), Schemathesis against docs/openapi.yaml and Playwright for
# the ops page's browser test (tests/ops: it drives Debian's chromium; no
# browser is downloaded).
venv="$here/.tools/venv"
reqs=("$here/examples/external-participant/requirements.txt" "$here/tests/ops/requirements.txt")
if ! "$venv/bin/python3" -c 'import standardwebhooks, schemathesis, playwright, openapi_spec_validator, cryptography, jsonschema, axe_playwright_python' 2> /dev/null; then
  echo "setup: installing into $venv: $(cat "${reqs[@]}" | grep -v '^#' | tr '\n' ' ')"
  [ -x "$venv/bin/python3" ] || python3 -m venv "$venv"
  "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check -r "${reqs[0]}" -r "${reqs[1]}"
fi

# Go >= 1.24 for tools/ferretdb-runner.
GO_TOOLCHAIN=go1.24.13
go_ok() {
  local v
  v="$("$1" env GOVERSION 2>/dev/null)" || return 1
  v="${v#go}"
  [ "$(printf '%s\n1.24\n' "${v%%[-+ ]*}" | sort -V | head -1)" = "1.24" ]
}
if ! { command -v go > /dev/null && go_ok go; } && ! go_ok "$here/.tools/go/bin/go" 2> /dev/null; then
  proxy="${GOPROXY:-https://proxy.golang.org}"
  proxy="${proxy%%,*}"
  [ "$proxy" = direct ] || [ "$proxy" = off ] && proxy=https://proxy.golang.org
  mod="golang.org/toolchain/@v/v0.0.1-$GO_TOOLCHAIN.linux-amd64.zip"
  echo "setup: fetching Go toolchain $GO_TOOLCHAIN from $proxy"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  curl -sSfL "$proxy/$mod" -o "$tmp/go.zip"
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$tmp/go.zip" "$tmp/x"
  rm -rf "$here/.tools/go"
  mkdir -p "$here/.tools"
  mv "$tmp/x/golang.org/toolchain@v0.0.1-$GO_TOOLCHAIN.linux-amd64" "$here/.tools/go"
  chmod +x "$here/.tools/go/bin/"* "$here/.tools/go/pkg/tool/"*/* 2>/dev/null || true
  go_ok "$here/.tools/go/bin/go" || { echo "setup: the Go toolchain in .tools/go does not run" >&2; exit 1; }
fi

# vegeta, for `make bench`'s HTTP scenarios: built from the Go module proxy
# into .tools/bin.
VEGETA_VERSION=v12.13.0
if [ "${1:-}" = "--bench" ] && [ ! -x "$here/.tools/bin/vegeta" ]; then
  gobin=go
  go_ok go 2> /dev/null || gobin="$here/.tools/go/bin/go"
  echo "setup: building vegeta $VEGETA_VERSION into .tools/bin"
  mkdir -p "$here/.tools/bin"
  GOBIN="$here/.tools/bin" GOFLAGS=-mod=mod "$gobin" install "github.com/tsenart/vegeta/v12@$VEGETA_VERSION"
fi

#!/usr/bin/env bash
# A throw-away MongoDB-compatible server for the tests of the MongoDB backend:
# PostgreSQL 15 (Debian) in DIR/pg, and FerretDB 1.24 on top of it, both on
# free loopback ports. The server's mongodb:// URI is written to DIR/uri.
#
#   scripts/ferretdb.sh build        builds .tools/bin/ferretdb-runner (cached)
#   scripts/ferretdb.sh start DIR [durable]
#                                    starts both; prints the URI. Tests run
#                                    PostgreSQL without fsync; `durable` keeps
#                                    PostgreSQL's own durability (benchmarks)
#   scripts/ferretdb.sh stop DIR     stops both and deletes DIR
#
# DIR/pg.url is PostgreSQL's URL, for a test that runs a FerretDB of its own on
# the same database (to stop and restart the server under a running node).
#
# FerretDB runs embedded in tools/ferretdb-runner (see its main.go for why).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="$here/.tools/bin/ferretdb-runner"
pgbin=/usr/lib/postgresql/15/bin

die() { echo "ferretdb.sh: $*" >&2; exit 1; }

go_cmd() {
  if [ -x "$here/.tools/go/bin/go" ]; then echo "$here/.tools/go/bin/go"; else echo go; fi
}

build() {
  local stamp="$here/.tools/bin/ferretdb-runner.sum"
  local want
  want="$(cat "$here/tools/ferretdb-runner/go.sum" "$here/tools/ferretdb-runner/main.go" | sha256sum | cut -c1-16)"
  if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  mkdir -p "$here/.tools/bin"
  echo "ferretdb.sh: building ferretdb-runner (FerretDB v1.24.2)" >&2
  (cd "$here/tools/ferretdb-runner" && GOFLAGS="-mod=mod -buildvcs=false" "$(go_cmd)" build -o "$bin" .) \
    || die "cannot build tools/ferretdb-runner (is Go >= 1.24 installed? run scripts/setup.sh)"
  echo "$want" > "$stamp"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Runs a PostgreSQL program as an unprivileged user (postgres refuses root).
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  local dir="$1" durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  [ "${2:-}" = durable ] && durability=""
  [ -x "$pgbin/initdb" ] || die "PostgreSQL 15 is not installed (run scripts/setup.sh)"
  build
  stop "$dir"  # what an interrupted run left behind
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"  # absolute: PostgreSQL's socket directory
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
  local pgport
  pgport="$(free_port)"
  as_pg "$pgbin/initdb" -D "$dir/pg" -U ferret --auth=trust -E UTF8 > "$dir/initdb.log" 2>&1 \
    || die "initdb failed: $(tail -3 "$dir/initdb.log")"
  # Sockets in DIR; for tests, no fsync.
  as_pg "$pgbin/pg_ctl" -D "$dir/pg" -l "$dir/pg.log" -w -t 30 \
    -o "-p $pgport -k $dir -c listen_addresses=127.0.0.1 $durability -c shared_buffers=128MB -c max_connections=500" \
    start > /dev/null || die "PostgreSQL did not start: $(tail -5 "$dir/pg.log")"
  # FerretDB 1.24's update holds one pooled PostgreSQL connection while it takes
  # a second: with its default pool (50) many concurrent updates can deadlock
  # it. A pool far above what the tests open keeps clear of that.
  echo "postgres://ferret@127.0.0.1:$pgport/ferretdb?pool_max_conns=400" > "$dir/pg.url"
  as_pg "$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U ferret ferretdb \
    || die "createdb failed"
  "$bin" -listen 127.0.0.1:0 -postgresql-url "$(cat "$dir/pg.url")" \
    -uri-file "$dir/uri" > "$dir/ferretdb.log" 2>&1 &
  echo $! > "$dir/ferretdb.pid"
  for _ in $(seq 1 100); do
    [ -s "$dir/uri" ] && break
    kill -0 "$(cat "$dir/ferretdb.pid")" 2>/dev/null || die "FerretDB exited: $(tail -5 "$dir/ferretdb.log")"
    sleep 0.1
  done
  [ -s "$dir/uri" ] || die "FerretDB did not start within 10 s"
  cat "$dir/uri"
}

stop() {
  local dir="$1"
  [ -d "$dir" ] || return 0
  if [ -f "$dir/ferretdb.pid" ]; then
    kill "$(cat "$dir/ferretdb.pid")" 2>/dev/null || true
  fi
  if [ -d "$dir/pg" ]; then
    as_pg "$pgbin/pg_ctl" -D "$dir/pg" -m immediate -w -t 30 stop > /dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  build) build ;;
  start) [ $# -ge 2 ] || die "usage: $0 start DIR [durable]"; start "$2" "${3:-}" ;;
  stop) [ $# -eq 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
  *) die "usage: $0 build | start DIR [durable] | stop DIR" ;;
esac

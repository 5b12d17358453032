#!/usr/bin/env bash
# chaos.sh BUILD_DIR SCHEDULES [rocksdb|sqlite|ferretdb FERRETDB_DIR] — the randomized
# fault test once per seed (1..SCHEDULES), each schedule its own process, so one
# failure does not hide the others. Prints a line per schedule and a summary:
# schedules run, failures (with their seeds), faults injected, double pauses.
# Logs: BUILD_DIR/chaos-<store>/seed-N.log, and the nodes' directories (their
# logs) named in it, are kept for failed schedules only.
# `make chaos` runs it on both backends.
set -uo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 BUILD_DIR SCHEDULES [rocksdb|sqlite|ferretdb FERRETDB_DIR]" >&2
  exit 2
fi
build="$(cd "$1" && pwd)"
schedules="$2"
store="${3:-rocksdb}"
env_vars=(CUSTODIAN_TEST_STORE="$store")
if [ "$store" = ferretdb ]; then
  [ $# -ge 4 ] || { echo "chaos: ferretdb needs the directory of a running test server" >&2; exit 2; }
  env_vars=(CUSTODIAN_TEST_STORE=ferretdb "CUSTODIAN_TEST_FERRETDB_DIR=$(cd "$4" && pwd)")
fi
out="$build/chaos-$store"
mkdir -p "$out"

pass=0
failed=()
faults=0
doubles=0
start=$(date +%s)
for seed in $(seq 1 "$schedules"); do
  log="$out/seed-$seed.log"
  t0=$(date +%s)
  if env "${env_vars[@]}" CUSTODIAN_TEST_KEEP=1 CUSTODIAN_CHAOS_SEED="$seed" \
    "$build/tests/chaos_test" > "$log" 2>&1; then
    result=ok
    pass=$((pass + 1))
  else
    result=FAILED
    failed+=("$seed")
  fi
  f=$(grep -cE "^chaos: seed $seed: (kill -9|SIGSTOP|restart|double pause)" "$log")
  d=$(grep -c "^chaos: seed $seed: double pause" "$log")
  faults=$((faults + f))
  doubles=$((doubles + d))
  echo "chaos ($store): seed $seed: $result in $(($(date +%s) - t0)) s, $f faults, $d double pauses"
  if [ "$result" = ok ]; then
    nodes_dir=$(sed -n "s/^chaos: seed $seed: nodes in //p" "$log" | head -n 1)
    case "$nodes_dir" in */custodian-test-*) rm -rf "$nodes_dir" ;; esac
    rm -f "$log"
  fi
done
echo "chaos ($store): $schedules schedules in $(($(date +%s) - start)) s: $pass passed," \
  "${#failed[@]} failed${failed[*]:+ (seeds ${failed[*]}; logs in $out)}; $faults faults injected," \
  "$doubles double pauses"
[ ${#failed[@]} -eq 0 ]

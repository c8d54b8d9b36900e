#!/usr/bin/env bash
# The path a new user takes, timed: a fresh clone of this repository's HEAD and an empty
# cargo cache (CARGO_HOME in a new folder, so every crate is downloaded and every tool
# cargo installs is built again), then `make run`, `make stop` and `make test`.
#   make test-fresh            (FRESH_DIR=<folder> keeps the clone and cache somewhere else)
# Debian packages already on the machine stay installed: removing them would break the
# machine's other stacks, and install.sh installs them the same way either way.
# The stacks use their own ports and state, so a `make run` or `make test` stack of the
# working copy keeps running beside it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${FRESH_DIR:-$(mktemp -d /tmp/exatom-fresh.XXXXXX)}
mkdir -p "$work"
rm -rf "$work/clone" "$work/cargo-home"
export CARGO_HOME=$work/cargo-home
git clone -q "$root" "$work/clone"
cd "$work/clone"

ports=(STACK_KAFKA_PORT=29092 STACK_CH_HTTP_PORT=28123 STACK_CH_TCP_PORT=29000
  STACK_COLLECTOR_PORT=28080 STACK_ANONYMIZER_PORT=29102 STACK_SESSIONIZER_PORT=29103
  STACK_AGGREGATOR_PORT=29104 STACK_CONSOLE_PORT=28090 STACK_PROMETHEUS_PORT=29090)
test_ports=(TEST_KAFKA_PORT=39092 TEST_CH_HTTP_PORT=38123 TEST_CH_TCP_PORT=39000)

# timed LOG CMD...: runs CMD with its output in LOG; prints its seconds, or the log's tail.
timed() {
  local log=$1 t=$SECONDS; shift
  "$@" >"$log" 2>&1 || { tail -n 60 "$log" >&2; return 1; }
  echo $((SECONDS - t))
}
echo "fresh clone of $(git rev-parse --short HEAD) in $work/clone, CARGO_HOME=$CARGO_HOME" >&2
run_s=$(timed "$work/make-run.log" env "${ports[@]}" make run)
env "${ports[@]}" make stop >>"$work/make-run.log" 2>&1
test_s=$(timed "$work/make-test.log" make test "${test_ports[@]}")
printf 'fresh machine: make run %d min %02d s, then make test %d min %02d s (logs in %s)\n' \
  $((run_s / 60)) $((run_s % 60)) $((test_s / 60)) $((test_s % 60)) "$work"

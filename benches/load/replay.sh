#!/usr/bin/env bash
# Session replay under load: the browser test's recorded visit (benches/load/replay_visit.json,
# three pages, four batches) sent again as many visits, through the collector, the broker and
# the anonymizer's replay loop into `replay_batches`, with the ceilings of the same run.
#
#   make bench-replay          BENCH_VISITS (20 000) visits over BENCH_CONNECTIONS (32)
#
# 1. A fresh stack of its own (STACK_STATE, default .local/bench-replay; ports 59192, 58123,
#    59100, 58180, 59202-59204, Prometheus 59090). The site samples every visitor, and its
#    replay bytes per minute are lifted: the run measures the path, not the quota.
# 2. replay-load: the visits as fast as the collector takes them, a probe of events beside
#    them (their 202 times alone and during the flood), every batch followed into ClickHouse,
#    the table's bytes on disk per 1 000 visits. CPU seconds per 1 000 batches of every
#    process, from the flood's start until its last row is stored.
# 3. One client's flood: BENCH_VISITS visits from one address, at the collector's default
#    rate limit (its 429s are not waited for), the probe beside it.
# 4. Ceilings: the broker alone (broker-drain with the collector's exatom.replay records of
#    the visit), ClickHouse alone (this run's rows of replay_batches inserted again in one
#    RowBinary INSERT, as the anonymizer writes them).
# Figures go to stdout; record them in BENCHMARKS.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export STACK_STATE=${STACK_STATE:-$ROOT/.local/bench-replay}
export STACK_KAFKA_PORT=${STACK_KAFKA_PORT:-59192}
export STACK_CH_HTTP_PORT=${STACK_CH_HTTP_PORT:-58123}
export STACK_CH_TCP_PORT=${STACK_CH_TCP_PORT:-59100}
export STACK_COLLECTOR_PORT=${STACK_COLLECTOR_PORT:-58180}
export STACK_ANONYMIZER_PORT=${STACK_ANONYMIZER_PORT:-59202}
export STACK_SESSIONIZER_PORT=${STACK_SESSIONIZER_PORT:-59203}
export STACK_AGGREGATOR_PORT=${STACK_AGGREGATOR_PORT:-59204}
export STACK_CONSOLE_PORT=${STACK_CONSOLE_PORT:-58190}
export STACK_PROM_PORT=${STACK_PROM_PORT:-59090}
VISITS=${BENCH_VISITS:-20000}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
source "$ROOT/deploy/local/common.sh"
source "$ROOT/benches/load/cpu.sh"

"$ROOT/deploy/local/install.sh"
(cd "$ROOT" && cargo build --release --workspace --bins -q)
if running broker || running clickhouse; then
  echo "a stack already runs in $STATE: stop it first (STACK_STATE=$STATE make stop)" >&2
  exit 1
fi
cleanup() {
  "$ROOT/deploy/local/services.sh" down || true
  "$ROOT/deploy/local/stack.sh" down || true
}
trap cleanup EXIT
rm -rf "$STATE"
mkdir -p "$STATE/logs" "$STATE/pids"
"$ROOT/deploy/local/stack.sh" up

letters() { od -An -N4 -tx1 /dev/urandom | tr -d ' \n' | tr '0-9' 'g-p'; }
site=BENCH$(letters)
flood_site=BENCH$(letters)
for s in "$site" "$flood_site"; do
  printf '[sites.%s]\norigins = []\nconversion_tags = []\nreplay_sample = 1.0\n\n' "$s"
done >"$STATE/sites.toml"
EXATOM_SITES_FILE=$STATE/sites.toml EXATOM_DEMO_SITE= \
  EXATOM_REPLAY_SITE_BYTES_PER_MINUTE=100000000000 \
  "$ROOT/deploy/local/services.sh" up

collector=http://127.0.0.1:$COLLECTOR_PORT
clickhouse=$EXATOM_CLICKHOUSE_URL/
ch() { curl -fsS "$clickhouse" --data-binary "$1"; }
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== replay: $VISITS visits over $CONNECTIONS connections (site $site)"
before=$(cpu_snapshot)
"$BIN/replay-load" "$collector" "$clickhouse" "$site" "$VISITS" "$CONNECTIONS"
batches=$(ch "SELECT count() FROM exatom.replay_batches FINAL WHERE site = '$site'")
echo "  $(cpu_per_k_events "$before" "$(cpu_snapshot)" "$batches" batches) (the probe's events included)"

echo "== one client floods: $VISITS visits from one address over $CONNECTIONS connections (site $flood_site)"
replay_requests() {
  curl -fsS "$collector/metrics" | awk '$1 ~ /^exatom_collector_requests_total\{route="\/v1\/replay"/ {n += $2} END {print n}'
}
before=$(cpu_snapshot)
requests_before=$(replay_requests)
"$BIN/replay-load" "$collector" "$clickhouse" "$flood_site" "$VISITS" "$CONNECTIONS" one-client
echo "  $(cpu_per_k_events "$before" "$(cpu_snapshot)" "$(($(replay_requests) - requests_before))" requests) (nearly all of them 429s)"

echo "== ceilings"
"$BIN/broker-drain" "$EXATOM_KAFKA_BROKERS" 100000 3 replay
ch "CREATE TABLE IF NOT EXISTS exatom.replay_ceiling AS exatom.replay_batches"
ch "SELECT * FROM exatom.replay_batches WHERE site = '$site' FORMAT RowBinary" >"$STATE/replay.rowbinary"
rows=$(ch "SELECT count() FROM exatom.replay_batches WHERE site = '$site'")
start=$(date +%s.%N)
curl -fsS "$clickhouse?query=INSERT%20INTO%20exatom.replay_ceiling%20FORMAT%20RowBinary" \
  --data-binary @"$STATE/replay.rowbinary"
took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {print b - a}')
awk -v n="$rows" -v t="$took" -v b="$(stat -c %s "$STATE/replay.rowbinary")" \
  'BEGIN {printf "  ClickHouse alone: %d replay rows (%.0f MB) in %.2f s: %.0f rows/s\n", n, b / 1e6, t, n / t}'
ch "DROP TABLE exatom.replay_ceiling"
echo "logs: $STATE/logs"

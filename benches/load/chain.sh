#!/usr/bin/env bash
# The whole chain under load: broker, ClickHouse, the four services and the load generator on
# this machine's cores, as `make run` has them, with the ceilings measured in the same run.
#
#   make bench-chain                       sustained rates, then a 1 000 000-event burst
#   BENCH_RATES="2000 4000" BENCH_SECONDS=60 BENCH_BURST=200000 make bench-chain   (shorter)
#
# 1. A fresh stack of its own (STACK_STATE, default .local/bench-chain; ports 49192, 48123,
#    49100, 48180, 49202-49204). Journeys are timestamped two hours back and sessions close
#    60 s (the lateness) after their last arrival, so the run sees them through to the rollups.
# 2. Ceilings: the broker alone (broker-drain: the collector's records produced, then drained
#    by a service's consumer) and ClickHouse alone (the run's own `events` rows inserted again
#    in one RowBinary INSERT over HTTP, as the sessionizer writes them).
# 3. For each rate in BENCH_RATES: chain-load offers that many events/s for BENCH_SECONDS (300,
#    the issue's 5 minutes) on a site of its own; prints accepted events/s, the consumer lag
#    of each stage every 10 s, freshness to `events` and to the rollups, and CPU seconds per
#    1 000 events of every process.
# 4. The burst: BENCH_BURST (1 000 000) events as fast as the collector takes them over 64
#    connections, then the time until all are in `events` and every session in the rollups.
#    The stack's Prometheus (port 49090, the rules of deploy/prometheus) watches: the alerts
#    that went pending, fired and resolved are printed, from the burst's start until none has
#    been active for a minute (at most BENCH_ALERTS_WAIT, 900 s).
# BENCH_REPLICAS=N (default 1) runs N replicas of every stage: the extra collectors on the
# ports after STACK_COLLECTOR_PORT (the load goes to each in turn, as a load balancer sends
# it), the extra consumers in their stage's group with admin ports 49212+. The rates' CPU
# figures then sum a stage's replicas.
# BENCH_CLUSTER=1 runs ClickHouse as the local cluster profile (ZooKeeper on 42181, four
# servers, 2 shards x 2 replicas, HTTP 48131-48134) in cluster mode; the ClickHouse ceiling
# is then a replicated, Distributed twin of `events` written with the services' quorum, and
# the CPU figures sum the four servers and ZooKeeper as `clickhouse`.
# Figures go to stdout; record them in BENCHMARKS.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export STACK_STATE=${STACK_STATE:-$ROOT/.local/bench-chain}
export STACK_KAFKA_PORT=${STACK_KAFKA_PORT:-49192}
export STACK_CH_HTTP_PORT=${STACK_CH_HTTP_PORT:-48123}
export STACK_CH_TCP_PORT=${STACK_CH_TCP_PORT:-49100}
export STACK_COLLECTOR_PORT=${STACK_COLLECTOR_PORT:-48180}
export STACK_ANONYMIZER_PORT=${STACK_ANONYMIZER_PORT:-49202}
export STACK_SESSIONIZER_PORT=${STACK_SESSIONIZER_PORT:-49203}
export STACK_AGGREGATOR_PORT=${STACK_AGGREGATOR_PORT:-49204}
export STACK_CONSOLE_PORT=${STACK_CONSOLE_PORT:-48190}
export STACK_PROM_PORT=${STACK_PROM_PORT:-49090}
if [[ ${BENCH_CLUSTER:-0} == 1 ]]; then
  export STACK_CLUSTER=1 STACK_ZK_PORT=${STACK_ZK_PORT:-42181}
  export STACK_CLUSTER_PORT_BASE=${STACK_CLUSTER_PORT_BASE:-48130}
  export STACK_STATE=$ROOT/.local/bench-chain-cluster
fi
RATES=${BENCH_RATES:-2000 4000 6000 8000}
REPLICAS=${BENCH_REPLICAS:-1}
SECONDS_PER_RATE=${BENCH_SECONDS:-300}
BURST=${BENCH_BURST:-1000000}
source "$ROOT/deploy/local/common.sh"

"$ROOT/deploy/local/install.sh"
(cd "$ROOT" && cargo build --release --workspace --bins -q)
if running broker || running clickhouse || running ch1; then
  echo "a stack already runs in $STATE: stop it first (STACK_STATE=$STATE make stop)" >&2
  exit 1
fi
cleanup() {
  for name in "${replicas[@]}"; do stop "$name" || true; done
  "$ROOT/deploy/local/services.sh" down || true
  "$ROOT/deploy/local/stack.sh" down || true
}
replicas=()
trap cleanup EXIT
rm -rf "$STATE"
mkdir -p "$STATE/logs" "$STATE/pids"
"$ROOT/deploy/local/stack.sh" up

# One site per run: figures are counted per site.
letters() { od -An -N4 -tx1 /dev/urandom | tr -d ' \n' | tr '0-9' 'g-p'; }
sites=()
for rate in $RATES burst; do sites+=("BENCH$(letters)"); done
for site in "${sites[@]}"; do
  printf '[sites.%s]\norigins = []\nconversion_tags = ["%s1"]\n\n' "$site" "$site"
done >"$STATE/sites.toml"
EXATOM_SITES_FILE=$STATE/sites.toml EXATOM_DEMO_SITE= \
  EXATOM_LATENESS_MS=60000 EXATOM_IDLE_MARGIN_MS=1000 \
  "$ROOT/deploy/local/services.sh" up

collector=http://127.0.0.1:$COLLECTOR_PORT
clickhouse=$EXATOM_CLICKHOUSE_URL/
admin_of=(http://127.0.0.1:$ANONYMIZER_PORT/metrics http://127.0.0.1:$SESSIONIZER_PORT/metrics http://127.0.0.1:$AGGREGATOR_PORT/metrics)
health=()
# Replicas 2..N of every stage, started as services.sh starts the first (same settings).
for ((r = 2; r <= REPLICAS; r++)); do
  port=$((COLLECTOR_PORT + r - 1))
  EXATOM_LISTEN=127.0.0.1:$port EXATOM_SITES_FILE=$STATE/sites.toml EXATOM_DEMO_SITE= \
    start "collector-$r" "$BIN/exatom-collector"
  collector+=",http://127.0.0.1:$port"
  health+=("http://127.0.0.1:$port/readyz")
  i=0
  for stage in anonymizer sessionizer aggregator; do
    port=$((49210 + 10 * r + i))
    EXATOM_ADMIN_LISTEN=127.0.0.1:$port EXATOM_TRANSACTION_KEY_FILE=$STATE/transaction.key \
      EXATOM_GEO_DATABASE=$GEO_DATABASE EXATOM_LATENESS_MS=60000 EXATOM_IDLE_MARGIN_MS=1000 \
      start "$stage-$r" "$BIN/exatom-$stage"
    admin_of[i]+="+http://127.0.0.1:$port/metrics"
    health+=("http://127.0.0.1:$port/healthz")
    i=$((i + 1))
  done
  replicas+=("collector-$r" "anonymizer-$r" "sessionizer-$r" "aggregator-$r")
done
for url in "${health[@]}"; do wait_for "$url" 30 curl -fsS "$url"; done
admin=$(IFS=,; echo "${admin_of[*]}")
ch() { curl -fsS "$clickhouse" --data-binary "$1"; }
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $REPLICAS replica(s) of every stage"

source "$ROOT/benches/load/cpu.sh"

# Events every collector replica accepted so far.
accepted_total() {
  local sum=0 url
  for url in ${collector//,/ }; do
    sum=$((sum + $(curl -fsS "$url/metrics" | awk '$1 == "exatom_collector_events_accepted_total" {print $2}')))
  done
  echo "$sum"
}

echo "== ceilings"
"$BIN/broker-drain" "$EXATOM_KAFKA_BROKERS" 300000

n=0
for rate in $RATES; do
  site=${sites[$n]}; n=$((n + 1))
  echo "== sustained: $rate events/s for $SECONDS_PER_RATE s (site $site)"
  before=$(cpu_snapshot)
  accepted_before=$(accepted_total)
  "$BIN/chain-load" rate "$collector" "$clickhouse" "$site" "$rate" "$SECONDS_PER_RATE" "$admin"
  accepted=$(( $(accepted_total) - accepted_before ))
  echo "  $(cpu_per_k_events "$before" "$(cpu_snapshot)" "$accepted") (until the last followed row arrived)"
done

site=${sites[$n]}
echo "== burst: $BURST events (site $site)"
before=$(cpu_snapshot)
"$ROOT/benches/load/alert_timeline.py" "http://127.0.0.1:$PROM_PORT" --settle 60 >"$STATE/alerts.log" 2>&1 &
timeline=$!
"$BIN/chain-load" burst "$collector" "$clickhouse" "$site" "$BURST" 64
echo "  $(cpu_per_k_events "$before" "$(cpu_snapshot)" "$BURST")"
echo "== alerts from the burst's start (Prometheus http://127.0.0.1:$PROM_PORT, scraping every $PROM_SCRAPE_INTERVAL)"
if ! timeout "${BENCH_ALERTS_WAIT:-900}" bash -c "while kill -0 $timeline 2>/dev/null; do sleep 1; done"; then
  kill "$timeline" 2>/dev/null || true
  echo "  (still active after ${BENCH_ALERTS_WAIT:-900} s)"
fi
sed 's/^/  /' "$STATE/alerts.log"

echo "== ClickHouse alone: the burst's events rows inserted again, one RowBinary INSERT"
insert_settings=
if [[ $CLUSTER == 1 ]]; then
  on="ON CLUSTER $CLUSTER_NAME"
  ch "CREATE TABLE IF NOT EXISTS exatom.events_ceiling_local $on AS exatom.events_local
      ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/exatom/events_ceiling_local', '{replica}', version)
      PARTITION BY day ORDER BY (site, day, visitor_id, event_id)" >/dev/null
  ch "CREATE TABLE IF NOT EXISTS exatom.events_ceiling $on AS exatom.events_ceiling_local
      ENGINE = Distributed($CLUSTER_NAME, exatom, events_ceiling_local, cityHash64(visitor_id))" >/dev/null
  insert_settings="&insert_distributed_sync=1&insert_quorum=2"
else
  ch "CREATE TABLE IF NOT EXISTS exatom.events_ceiling AS exatom.events"
fi
ch "SELECT * FROM exatom.events WHERE site = '$site' AND version = 1 FORMAT RowBinary" >"$STATE/events.rowbinary"
rows=$(ch "SELECT count() FROM exatom.events WHERE site = '$site' AND version = 1")
start=$(date +%s.%N)
curl -fsS "$clickhouse?query=INSERT%20INTO%20exatom.events_ceiling%20FORMAT%20RowBinary$insert_settings" \
  --data-binary @"$STATE/events.rowbinary"
took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {print b - a}')
awk -v n="$rows" -v t="$took" -v b="$(stat -c %s "$STATE/events.rowbinary")" \
  'BEGIN {printf "  %d rows (%.0f MB) in %.2f s: %.0f rows/s\n", n, b / 1e6, t, n / t}'
if [[ $CLUSTER == 1 ]]; then
  ch "DROP TABLE exatom.events_ceiling ON CLUSTER $CLUSTER_NAME" >/dev/null
  ch "DROP TABLE exatom.events_ceiling_local ON CLUSTER $CLUSTER_NAME" >/dev/null
else
  ch "DROP TABLE exatom.events_ceiling"
fi
echo "logs: $STATE/logs"

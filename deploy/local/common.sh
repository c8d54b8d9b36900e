# Shared by the deploy/local scripts: where state lives, which ports, how processes start.
# Every value can be overridden from the environment, so `make test` runs its own stack
# (own state folder, own ports) beside a `make run` stack without touching it.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=${STACK_STATE:-$ROOT/.local/run}
KAFKA_PORT=${STACK_KAFKA_PORT:-9092}
CH_HTTP_PORT=${STACK_CH_HTTP_PORT:-8123}
CH_TCP_PORT=${STACK_CH_TCP_PORT:-9000}
COLLECTOR_PORT=${STACK_COLLECTOR_PORT:-8080}
ANONYMIZER_PORT=${STACK_ANONYMIZER_PORT:-9102}
SESSIONIZER_PORT=${STACK_SESSIONIZER_PORT:-9103}
AGGREGATOR_PORT=${STACK_AGGREGATOR_PORT:-9104}
CONSOLE_PORT=${STACK_CONSOLE_PORT:-8090}
PROM_PORT=${STACK_PROM_PORT:-9090}
# How often Prometheus scrapes and evaluates its rules: 5 s for people, 1 s in the tests
# (an alert's `for:` is what they wait for, not the scrapes).
PROM_SCRAPE_INTERVAL=${STACK_PROM_SCRAPE_INTERVAL:-5s}
BIN=${STACK_BIN:-$ROOT/target/release}
# The broker as deploy/local/tansu/build.sh built it: beside the cargo cache, so every clone
# of the project shares one build, and a fresh CARGO_HOME (make test-fresh) makes its own.
TANSU_HOME=${TANSU_HOME:-${CARGO_HOME:-$HOME/.cargo}/exatom-tansu}
TANSU=${TANSU:-$TANSU_HOME/bin/tansu}
# The IP → country database the anonymizer reads (README, "Privacy": source and licence),
# from the npm registry, pinned by version and checksum; shared by every clone like tansu.
GEO_VERSION=2.3.2026061719
GEO_INTEGRITY=sha512-xemBDNQl4mCYDuVbqe3jKGKsVDykZGkfvebhtOh/3VGLadq8vsp7t7ontpMUt3hH7sAGT0eLDyJ99SV+0waxZg==
GEO_HOME=${GEO_HOME:-${CARGO_HOME:-$HOME/.cargo}/exatom-geo/$GEO_VERSION}
GEO_DATABASE=$GEO_HOME/geo-whois-asn-country.mmdb

# The cluster profile (STACK_CLUSTER=1, `make run CLUSTER=1`): ZooKeeper and four ClickHouse
# servers, 2 shards × 2 replicas. Node n (1–4) listens on HTTP base+n, TCP base+10+n and
# replication base+20+n; shard (n+1)/2.
CLUSTER=${STACK_CLUSTER:-0}
CLUSTER_NAME=exatom_cluster
CLUSTER_NODES=(1 2 3 4)
ZK_PORT=${STACK_ZK_PORT:-2181}
CLUSTER_PORT_BASE=${STACK_CLUSTER_PORT_BASE:-8130}
node_http_port() { echo $((CLUSTER_PORT_BASE + $1)); }
node_tcp_port() { echo $((CLUSTER_PORT_BASE + 10 + $1)); }

export EXATOM_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
if [[ $CLUSTER == 1 ]]; then
  export EXATOM_CLICKHOUSE_URL=http://127.0.0.1:$(node_http_port 1)
  export EXATOM_CLICKHOUSE_CLUSTER=$CLUSTER_NAME
  CONSOLE_CH_DIR=$STATE/cluster/ch1
else
  export EXATOM_CLICKHOUSE_URL=http://127.0.0.1:$CH_HTTP_PORT
  CONSOLE_CH_DIR=$STATE/clickhouse
fi

mkdir -p "$STATE/logs" "$STATE/pids"

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# render_prometheus_config FILE: deploy/prometheus/prometheus.yml.in for this stack.
render_prometheus_config() {
  sed -e "s#@STATE@#$STATE#g" -e "s#@ROOT@#$ROOT#g" -e "s#@PROM_PORT@#$PROM_PORT#g" \
    -e "s#@SCRAPE_INTERVAL@#$PROM_SCRAPE_INTERVAL#g" -e "s#@SCRAPE_TIMEOUT@#$PROM_SCRAPE_INTERVAL#g" \
    "$ROOT/deploy/prometheus/prometheus.yml.in" >"$1"
}

# running NAME: true when NAME's recorded process is alive.
running() {
  local pidfile="$STATE/pids/$1.pid"
  [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

# start NAME CMD...: starts CMD in the background (own session), logs to $STATE/logs/NAME.log.
start() {
  local name=$1; shift
  if running "$name"; then
    log "$name already running (pid $(cat "$STATE/pids/$name.pid"))"
    return 0
  fi
  setsid "$@" >>"$STATE/logs/$name.log" 2>&1 < /dev/null &
  echo $! >"$STATE/pids/$name.pid"
  log "$name started (pid $!, log $STATE/logs/$name.log)"
}

# stop NAME: SIGTERM, wait up to 20 s for the drain, then SIGKILL.
stop() {
  local name=$1 pidfile="$STATE/pids/$1.pid"
  [[ -f $pidfile ]] || return 0
  local pid; pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name did not stop in 20 s: killing"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "$name stopped"
  fi
  rm -f "$pidfile"
}

# kill_now NAME: SIGKILL, no drain (crash tests).
kill_now() {
  local pidfile="$STATE/pids/$1.pid"
  [[ -f $pidfile ]] || return 0
  local pid; pid=$(cat "$pidfile")
  kill -KILL "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  log "$1 killed"
  rm -f "$pidfile"
}

# wait_for NAME SECONDS CMD...: retries CMD until it succeeds.
wait_for() {
  local name=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  log "$name not ready after ${secs}s; last lines of its log:"
  tail -n 20 "$STATE/logs/$name.log" >&2 || true
  return 1
}

#!/usr/bin/env bash
# End-to-end load of the collector: wrk posts 20-event batches (fresh ids) to the running
# collector, pinned to one core, with the real broker behind it; nginx answering 204 on the
# same core is the ceiling of this machine's HTTP path, measured in the same run.
#
#   benches/load/collector.sh            (stack state in .local/bench unless EXATOM_STATE)
#
# Ports: EXATOM_KAFKA_PORT / EXATOM_CH_HTTP_PORT / EXATOM_CH_TCP_PORT for the stack (it is
# started if not running, and stopped again if this script started it), BENCH_PORT for the
# collector, BENCH_NGINX_PORT for nginx. BENCH_SECONDS per run, BENCH_CORE for the server,
# BENCH_CLIENT_CORE for wrk. Figures go to stdout; record them in BENCHMARKS.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export EXATOM_STATE=${EXATOM_STATE:-$ROOT/.local/bench}
export EXATOM_KAFKA_PORT=${EXATOM_KAFKA_PORT:-39092}
export EXATOM_CH_HTTP_PORT=${EXATOM_CH_HTTP_PORT:-38123}
export EXATOM_CH_TCP_PORT=${EXATOM_CH_TCP_PORT:-39000}
source "$ROOT/deploy/local/common.sh"
PORT=${BENCH_PORT:-38080}
NGINX_PORT=${BENCH_NGINX_PORT:-38081}
SECONDS_PER_RUN=${BENCH_SECONDS:-15}
CORE=${BENCH_CORE:-1}
CLIENT_CORE=${BENCH_CLIENT_CORE:-0}
LUA=$ROOT/benches/load/batch.lua
OUT=$STATE/bench
mkdir -p "$OUT"

for tool in wrk nginx taskset; do
  if ! command -v "$tool" >/dev/null; then
    log "installing wrk and nginx-light (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
    break
  fi
done
(cd "$ROOT" && cargo build --release --workspace --bins -q)

started_stack=false
if ! running broker; then
  "$ROOT/deploy/local/stack.sh" up
  started_stack=true
fi
collector_pid=
nginx_pid=
cleanup() {
  [[ -n $collector_pid ]] && kill -TERM "$collector_pid" 2>/dev/null && wait "$collector_pid" || true
  [[ -n $nginx_pid ]] && kill -TERM "$nginx_pid" 2>/dev/null && wait "$nginx_pid" || true
  if $started_stack; then "$ROOT/deploy/local/stack.sh" down; fi
}
trap cleanup EXIT

# wrk_run NAME URL CONNECTIONS: one wrk run on the client core; its output is kept.
wrk_run() {
  taskset -c "$CLIENT_CORE" wrk -t1 -c"$3" -d"${SECONDS_PER_RUN}s" --latency -s "$LUA" "$2" \
    >"$OUT/$1.txt"
}
requests_per_s() { awk '/^Requests\/sec/ {print $2}' "$OUT/$1.txt"; }
latency() { awk -v p="$2" '$1 == p {print $2}' "$OUT/$1.txt"; }
metric() {
  curl -fsS "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m {print $2}' | tail -1
}

# The ceiling: nginx, one worker on the same core, answering 204 to the same requests.
cat >"$OUT/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $OUT/nginx.pid;
error_log $OUT/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_buffer_size 64k;
  server { listen 127.0.0.1:$NGINX_PORT; location / { return 204; } }
}
EOF
taskset -c "$CORE" nginx -c "$OUT/nginx.conf" &
nginx_pid=$!
wait_for nginx 10 curl -fsS -o /dev/null "http://127.0.0.1:$NGINX_PORT/"
wrk_run nginx-c64 "http://127.0.0.1:$NGINX_PORT/v1/events" 64
kill -TERM "$nginx_pid"; wait "$nginx_pid" || true; nginx_pid=

printf '[sites.BENCH]\norigins = []\n' >"$OUT/sites.toml"
EXATOM_LISTEN=127.0.0.1:$PORT EXATOM_SITES_FILE=$OUT/sites.toml \
  EXATOM_RATE_PER_SECOND=1000000000 EXATOM_RATE_BURST=1000000000 \
  taskset -c "$CORE" "$BIN/exatom-collector" 2>"$OUT/collector.log" &
collector_pid=$!
wait_for collector 30 curl -fsS "http://127.0.0.1:$PORT/readyz"

# Throughput: what the broker acknowledged (the metric), not what wrk sent.
best_rate=0
for c in 32 64 128; do
  before=$(metric exatom_collector_events_accepted_total)
  refused_before=$(metric 'exatom_collector_requests_total{route="/v1/events",status="503"}')
  wrk_run "collector-c$c" "http://127.0.0.1:$PORT/v1/events" "$c"
  after=$(metric exatom_collector_events_accepted_total)
  refused=$(metric 'exatom_collector_requests_total{route="/v1/events",status="503"}')
  rate=$(( (after - before) / SECONDS_PER_RUN ))
  echo "collector c=$c: $rate events/s acknowledged, 503 answers: $(( ${refused:-0} - ${refused_before:-0} )), p50 $(latency "collector-c$c" 50%) p99 $(latency "collector-c$c" 99%)"
  if (( rate > best_rate )); then best_rate=$rate; fi
done

# Latency at about half that rate: wrk is closed-loop (wrk2 is not packaged), so the
# connection count whose rate comes nearest to half the best is the one reported.
half=$(( best_rate / 2 ))
best_c=0 best_gap=-1
for c in 1 2 4 8 16; do
  wrk_run "half-c$c" "http://127.0.0.1:$PORT/v1/events" "$c"
  rate=$(awk -v r="$(requests_per_s "half-c$c")" 'BEGIN {printf "%d", r * 20}')
  gap=$(( rate > half ? rate - half : half - rate ))
  echo "collector c=$c: $rate events/s, p50 $(latency "half-c$c" 50%) p90 $(latency "half-c$c" 90%) p99 $(latency "half-c$c" 99%)"
  if (( best_gap < 0 || gap < best_gap )); then best_c=$c best_gap=$gap; fi
done
rss_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$collector_pid/status")
peak_kib=$(awk '/^VmHWM/ {print $2}' "/proc/$collector_pid/status")
nginx_events=$(awk -v r="$(requests_per_s nginx-c64)" 'BEGIN {printf "%d", r * 20}')

echo
echo "ceiling (nginx 204, c=64):        $nginx_events events/s ($(requests_per_s nginx-c64) requests/s), p99 $(latency nginx-c64 99%)"
echo "collector, one core, into broker: $best_rate events/s acknowledged"
echo "latency at ~half rate (c=$best_c): p50 $(latency "half-c$best_c" 50%) p75 $(latency "half-c$best_c" 75%) p90 $(latency "half-c$best_c" 90%) p99 $(latency "half-c$best_c" 99%)"
echo "collector memory: RSS $((rss_kib / 1024)) MiB now, peak $((peak_kib / 1024)) MiB"
echo "raw wrk outputs: $OUT/*.txt"

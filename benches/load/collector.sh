#!/usr/bin/env bash
# End-to-end load of the collector: 20-event batches (fresh ids) posted to the running
# collector, pinned to one core, with the real broker behind it. Two ceilings are measured in
# the same run, on the same core: nginx answering 204 (this machine's HTTP path) and
# broker-ceiling (the collector's producer settings and records with no HTTP: what the
# broker acknowledges at best).
#
#   benches/load/collector.sh                      broker on memory storage (the default here)
#   BENCH_STORAGE=sqlite benches/load/collector.sh broker as `make run` has it (sqlite)
#
# Installs its tools with `deploy/local/install.sh bench`. Starts its own broker (no
# ClickHouse: the collector does not use it) in STACK_STATE (default .local/bench), on
# STACK_KAFKA_PORT (default 39092), and stops it at the end. BENCH_PORT for the collector,
# BENCH_NGINX_PORT for nginx, BENCH_SECONDS per run, BENCH_CORE for the server under test,
# BENCH_CLIENT_CORE for the load tools and the broker. BENCH_FIXED_RATE (events/s) sets the
# latency run's rate instead of half the best (e.g. 100000, half the 200 000 target);
# BENCH_COLLECTOR names another collector binary (an A/B against an older build). Figures
# go to stdout; record them in BENCHMARKS.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export STACK_STATE=${STACK_STATE:-$ROOT/.local/bench}
export STACK_KAFKA_PORT=${STACK_KAFKA_PORT:-39092}
STORAGE=${BENCH_STORAGE:-memory}
case $STORAGE in
  memory)
    export STACK_TANSU_STORAGE=memory://tansu/
    export TANSU=$ROOT/.local/tansu-memory/bin/tansu
    ;;
  sqlite) ;;
  *) echo "BENCH_STORAGE must be memory or sqlite" >&2; exit 2 ;;
esac
source "$ROOT/deploy/local/common.sh"
PORT=${BENCH_PORT:-38080}
NGINX_PORT=${BENCH_NGINX_PORT:-38081}
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
CORE=${BENCH_CORE:-1}
CLIENT_CORE=${BENCH_CLIENT_CORE:-0}
COLLECTOR=${BENCH_COLLECTOR:-$BIN/exatom-collector}
LUA=$ROOT/benches/load/batch.lua
OUT=$STATE/bench-$STORAGE
mkdir -p "$OUT"

"$ROOT/deploy/local/install.sh" bench
(cd "$ROOT" && cargo build --release --workspace --bins -q)

if running broker; then
  echo "a broker already runs in $STATE: stop it first (deploy/local/stack.sh down)" >&2
  exit 1
fi
collector_pid=
nginx_pid=
cleanup() {
  [[ -n $collector_pid ]] && kill -TERM "$collector_pid" 2>/dev/null && wait "$collector_pid" || true
  [[ -n $nginx_pid ]] && kill -TERM "$nginx_pid" 2>/dev/null && wait "$nginx_pid" || true
  "$ROOT/deploy/local/stack.sh" broker-down
}
trap cleanup EXIT
# A fresh broker every run: a sqlite file grown by earlier runs would be slower.
rm -rf "$STATE/tansu"
"$ROOT/deploy/local/stack.sh" broker-up
taskset -a -p -c "$CLIENT_CORE" "$(cat "$STATE/pids/broker.pid")" >/dev/null
"$BIN/exatom-admin" topics >&2

echo "$(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg), broker storage $STORAGE"

# wrk_run NAME URL CONNECTIONS: one closed-loop wrk run on the client core.
wrk_run() {
  taskset -c "$CLIENT_CORE" wrk -t1 -c"$3" -d"${SECONDS_PER_RUN}s" --latency -s "$LUA" "$2" \
    >"$OUT/$1.txt"
}
requests_per_s() { awk '/^Requests\/sec/ {print $2}' "$OUT/$1.txt"; }
latency() { awk -v p="$2" '$1 == p {print $2}' "$OUT/$1.txt"; }
metric() {
  curl -fsS "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m {print $2}' | tail -1
}

# Ceiling 1: nginx, one worker on the server core, answering 204 to the same requests.
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
nginx_events=$(awk -v r="$(requests_per_s nginx-c64)" 'BEGIN {printf "%d", r * 20}')
echo "ceiling, nginx 204 c=64: $nginx_events events/s, p50 $(latency nginx-c64 50%) p99 $(latency nginx-c64 99%)"

# Ceiling 2: the broker, fed by the collector's producer on the server core, no HTTP.
for c in 8 32 64; do
  taskset -c "$CORE" "$BIN/broker-ceiling" "$EXATOM_KAFKA_BROKERS" "$c" "$SECONDS_PER_RUN" \
    | tee "$OUT/broker-c$c.txt"
done

printf '[sites.BENCH]\norigins = []\n' >"$OUT/sites.toml"
EXATOM_LISTEN=127.0.0.1:$PORT EXATOM_SITES_FILE=$OUT/sites.toml \
  EXATOM_RATE_PER_SECOND=1000000000 EXATOM_RATE_BURST=1000000000 \
  taskset -c "$CORE" "$COLLECTOR" 2>"$OUT/collector.log" &
collector_pid=$!
wait_for collector 30 curl -fsS "http://127.0.0.1:$PORT/readyz"

# Throughput: what the broker acknowledged (the metric), not what wrk sent; CPU per event
# from the collector's user + system time (all its threads: HTTP, librdkafka).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$collector_pid/stat"; }
ticks_per_s=$(getconf CLK_TCK)
# This is a VM: time the host gives to others shows as steal on the server's core, and a
# run with steal measures the neighbours as much as the collector.
core_ticks() { awk -v c="cpu$CORE" '$1 == c {print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
steal_since() {
  awk -v from="$1" -v to="$(core_ticks)" 'BEGIN {
    split(from, a, " "); split(to, b, " ");
    printf "%.1f", (b[2] > a[2]) ? 100 * (b[1] - a[1]) / (b[2] - a[2]) : 0 }'
}
best_rate=0
for c in 8 32 64 128; do
  before=$(metric exatom_collector_events_accepted_total)
  refused_before=$(metric 'exatom_collector_requests_total{route="/v1/events",status="503"}')
  ticks_before=$(cpu_ticks)
  core_before=$(core_ticks)
  wrk_run "collector-c$c" "http://127.0.0.1:$PORT/v1/events" "$c"
  ticks=$(( $(cpu_ticks) - ticks_before ))
  steal=$(steal_since "$core_before")
  after=$(metric exatom_collector_events_accepted_total)
  refused=$(metric 'exatom_collector_requests_total{route="/v1/events",status="503"}')
  rate=$(( (after - before) / SECONDS_PER_RUN ))
  cpu=$(awk -v t="$ticks" -v hz="$ticks_per_s" -v n="$((after - before))" \
    'BEGIN {printf "%.2f", n ? t / hz * 1e6 / n : 0}')
  echo "collector c=$c: $rate events/s acknowledged, $cpu µs CPU per event, steal $steal %, 503 answers: $(( ${refused:-0} - ${refused_before:-0} )), p50 $(latency "collector-c$c" 50%) p90 $(latency "collector-c$c" 90%) p99 $(latency "collector-c$c" 99%)"
  if (( rate > best_rate )); then best_rate=$rate; fi
done

# Latency at half that rate, at a fixed rate (h2load --rps; wrk is closed-loop): enough
# HTTP/1.1 connections that each sends at most 100 requests/s, so a request rarely waits
# behind the previous one on its connection, opened 1 ms apart so that their schedules
# interleave (all at once, h2load fires every connection on the same tick: bursts of a
# thousand events). The body is the same batch (same event ids) every time: the collector
# does not deduplicate, the pipeline does.
{
  printf '{"site":"BENCH","sent_at":"%s","events":[' "$(date -u +%Y-%m-%dT%H:%M:%S.000Z)"
  ts=$(date -u -d '-1 second' +%Y-%m-%dT%H:%M:%S.000Z)
  for i in $(seq 0 19); do
    ((i > 0)) && printf ','
    printf '{"id":"6f1c2e3a-0000-4000-8000-%012d","type":"form_event","ts":"%s","page":"https://shop.example/checkout","form":{"name":"checkout","id":"co","order":0},"event":"input","seq":%d,"field":{"name":"email","id":"email","tag":"input","type":"email","order":0,"label":"E-mail"},"value":"*"}' "$i" "$ts" "$i"
  done
  printf ']}'
} >"$OUT/batch.json"
half_requests=$(( ${BENCH_FIXED_RATE:-$(( best_rate / 2 ))} / 20 ))
clients=$(( (half_requests + 99) / 100 ))
clients=$(( clients > 0 ? clients : 1 ))
rps=$(( half_requests / clients ))
rm -f "$OUT/half.log" # h2load appends to it
# The collector's own view of the same requests: enqueue to the last acknowledgement.
acked_within() {
  metric "exatom_collector_produce_latency_seconds_bucket{le=\"$1\"}"
}
acked_before=$(metric exatom_collector_produce_latency_seconds_count)
acked_2ms_before=$(acked_within 0.002)
acked_5ms_before=$(acked_within 0.005)
core_before=$(core_ticks)
taskset -c "$CLIENT_CORE" h2load --h1 -c"$clients" --rps="$rps" -r1 --rate-period=1ms \
  -n $(( clients * rps * SECONDS_PER_RUN )) -d "$OUT/batch.json" \
  -H 'Content-Type: text/plain;charset=UTF-8' --log-file="$OUT/half.log" \
  "http://127.0.0.1:$PORT/v1/events" >"$OUT/half.txt"
fixed_steal=$(steal_since "$core_before")
acked=$(( $(metric exatom_collector_produce_latency_seconds_count) - acked_before ))
acked_2ms=$(( $(acked_within 0.002) - acked_2ms_before ))
acked_5ms=$(( $(acked_within 0.005) - acked_5ms_before ))
# The same rate into the broker with no HTTP (the collector idles meanwhile).
taskset -c "$CORE" "$BIN/broker-ceiling" "$EXATOM_KAFKA_BROKERS" "$((clients * rps * 20))/s" \
  "$SECONDS_PER_RUN" >"$OUT/broker-half.txt"
statuses=$(cut -f2 "$OUT/half.log" | sort | uniq -c | awk '{printf "%s×%s ", $1, $2}')
# Column 3 is microseconds until the end of the response.
percentiles=$(cut -f3 "$OUT/half.log" | sort -n | awk '{v[NR] = $1} END {
  split("0.5 0.9 0.99 0.999", ps, " ");
  for (i = 1; i <= 4; i++) { n = int(NR * ps[i]); if (n < 1) n = 1; printf "p%s %.2fms ", ps[i] * 100, v[n] / 1000 }
  printf "max %.2fms", v[NR] / 1000 }')
rss_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$collector_pid/status")
peak_kib=$(awk '/^VmHWM/ {print $2}' "/proc/$collector_pid/status")

echo
echo "collector, one core, into the broker: $best_rate events/s acknowledged (best of the wrk runs)"
echo "fixed rate $((clients * rps * 20)) events/s ($clients connections × $rps requests/s): $(awk '/^finished in/ {printf "%d", $4 * 20}' "$OUT/half.txt") events/s answered, statuses $statuses"
echo "latency at that rate: $percentiles (steal on the collector's core $fixed_steal %)"
awk -v n="$acked" -v a="$acked_2ms" -v b="$acked_5ms" 'BEGIN {
  if (n) printf "collector produce latency at that rate: %.1f %% of requests acknowledged within 2 ms, %.2f %% within 5 ms\n", 100 * a / n, 100 * b / n }'
cat "$OUT/broker-half.txt"
echo "collector memory: RSS $((rss_kib / 1024)) MiB now, peak $((peak_kib / 1024)) MiB"
echo "raw outputs: $OUT/"

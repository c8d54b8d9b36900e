#!/usr/bin/env bash
# Times the console's pages on the query pack's year of rollups (run after
# services/aggregator/bench/query_pack.sh, which loads them into `exatom_bench`): a console
# against that database, its site BENCH granted as in production (per-user ClickHouse user,
# Distributed tables over the site's filtered views), each page fetched 11 times over HTTP
# with a logged-in cookie. Prints median and max per page, for 30 days and for the year.
#   services/console/bench/pages.sh        # against $EXATOM_CLICKHOUSE_URL, state in $STACK_STATE
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
source "$ROOT/deploy/local/common.sh"
URL=${EXATOM_CLICKHOUSE_URL:-http://127.0.0.1:8123}
BIN=${STACK_BIN:-$ROOT/target/release}
PORT=${BENCH_CONSOLE_PORT:-18090}
RUNS=11
work=$(mktemp -d)
cleanup() {
  kill "$console" 2>/dev/null || true
  rm -rf "$work" "$STATE/clickhouse/users.d/exatom-bench-console.xml"
  for db in exatom_bench_console_BENCH exatom_bench_site_BENCH; do
    curl -fsS "$URL/" --data-binary "DROP DATABASE IF EXISTS $db" >/dev/null || true
  done
}
console=
trap cleanup EXIT

od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$work/key"
cat >"$work/sites.toml" <<EOF
[sites.BENCH]
origins = []

[users.bench]
password_hash = '$(printf bench-pass | "$BIN/exatom-console" hash-password)'
sites = ["BENCH"]
EOF
export EXATOM_CLICKHOUSE_URL=$URL EXATOM_CLICKHOUSE_DATABASE=exatom_bench EXATOM_SITES_FILE=$work/sites.toml \
  EXATOM_CONSOLE_SESSION_KEY_FILE=$work/key
"$BIN/exatom-console" grant-sites "$STATE/clickhouse/users.d/exatom-bench-console.xml" >&2
start_console() {
  EXATOM_CONSOLE_LISTEN=127.0.0.1:$PORT EXATOM_CONSOLE_SITE_USERS=$1 "$BIN/exatom-console" 2>"$work/console.log" &
  console=$!
  for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
  curl -fsS -c "$work/cookies" -o /dev/null -d 'user=bench&password=bench-pass' "http://127.0.0.1:$PORT/login"
}
year="from=$(date -u -d '364 days ago' +%F)&to=$(date -u +%F)"
time_page() {
  local name=$1 path=$2 times=() status
  status=$(curl -sS -b "$work/cookies" -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT$path")
  [[ $status == 200 ]] || { echo "$name: HTTP $status ($path)" >&2; tail -3 "$work/console.log" >&2; exit 1; }
  for _ in $(seq $RUNS); do
    times+=("$(curl -sS -b "$work/cookies" -o /dev/null -w '%{time_total}' "http://127.0.0.1:$PORT$path")")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v name="$name" \
    '{ t[NR] = $1 * 1000 } END { printf "%-34s median %6.1f ms  max %6.1f ms\n", name, t[int((NR + 1) / 2)], t[NR] }'
}
pages() {
  time_page "forms (30 days)" "/sites/BENCH/forms"
  time_page "forms (year)" "/sites/BENCH/forms?$year"
  time_page "form detail (30 days)" "/sites/BENCH/forms/form_42"
  time_page "form detail (year)" "/sites/BENCH/forms/form_42?$year"
  time_page "form detail by country (year)" "/sites/BENCH/forms/form_42?$year&segment=country"
  time_page "conversions (year)" "/sites/BENCH/conversions?$year"
  time_page "trends (year)" "/sites/BENCH/trends?$year"
  time_page "tooltips (year)" "/sites/BENCH/tooltips?$year"
  time_page "live" "/sites/BENCH/live"
  time_page "fields CSV (year)" "/api/sites/BENCH/forms/form_42/fields?$year&format=csv"
  # What ClickHouse took per query, over all the runs above (the console's own histogram).
  echo "per query, mean over every page above (exatom_console_query_seconds):"
  curl -fsS "http://127.0.0.1:$PORT/metrics" | awk '
    /^exatom_console_query_seconds_sum/ { match($0, /query="[^"]*"/); q = substr($0, RSTART + 7, RLENGTH - 8); sum[q] = $2 }
    /^exatom_console_query_seconds_count/ { match($0, /query="[^"]*"/); q = substr($0, RSTART + 7, RLENGTH - 8); n[q] = $2 }
    END { for (q in sum) printf "  %-24s %6.1f ms  (%d queries)\n", q, sum[q] / n[q] * 1000, n[q] }' | sort
}

# Each page as make run serves it: the console user's own ClickHouse user, reading the
# site's Distributed tables (the second lock); then the console's check alone.
for site_users in true false; do
  echo "== EXATOM_CONSOLE_SITE_USERS=$site_users"
  start_console $site_users
  pages
  kill "$console"; wait "$console" 2>/dev/null || true
done

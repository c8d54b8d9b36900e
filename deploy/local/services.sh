#!/usr/bin/env bash
# The four services of the local stack.
#   deploy/local/services.sh up | down | status
set -euo pipefail
source "$(dirname "$0")/common.sh"

SERVICES=(collector anonymizer sessionizer aggregator console)

up() {
  # Transaction ids are hashed under a key kept outside the topics and tables (README,
  # "Transaction ids"): made once per stack, readable by its owner only.
  local key=$STATE/transaction.key
  if ! [[ -s $key ]]; then
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$key")
  fi
  EXATOM_LISTEN=127.0.0.1:$COLLECTOR_PORT \
    EXATOM_SITES_FILE=${EXATOM_SITES_FILE:-$ROOT/deploy/local/sites.toml} \
    EXATOM_DEMO_SITE=${EXATOM_DEMO_SITE-DEMO} \
    start collector "$BIN/exatom-collector"
  EXATOM_ADMIN_LISTEN=127.0.0.1:$ANONYMIZER_PORT EXATOM_TRANSACTION_KEY_FILE=$key \
    EXATOM_GEO_DATABASE=${EXATOM_GEO_DATABASE-$GEO_DATABASE} \
    start anonymizer "$BIN/exatom-anonymizer"
  EXATOM_ADMIN_LISTEN=127.0.0.1:$SESSIONIZER_PORT start sessionizer "$BIN/exatom-sessionizer"
  EXATOM_ADMIN_LISTEN=127.0.0.1:$AGGREGATOR_PORT start aggregator "$BIN/exatom-aggregator"
  # The console signs its cookies with a key of the stack's own, like the transaction key.
  local session_key=$STATE/console-session.key
  if ! [[ -s $session_key ]]; then
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$session_key")
  fi
  # Each registered site gets its ClickHouse user and databases (README, "Console"), on the
  # server the console reads (the cluster's first node in the cluster profile).
  EXATOM_CONSOLE_SESSION_KEY_FILE=$session_key EXATOM_SITES_FILE=${EXATOM_SITES_FILE:-$ROOT/deploy/local/sites.toml} \
    "$BIN/exatom-console" grant-sites "$CONSOLE_CH_DIR/users.d/exatom-console-sites.xml" >>"$STATE/logs/console.log" 2>&1 \
    || { log "granting the console's site users failed: see $STATE/logs/console.log"; exit 1; }
  EXATOM_CONSOLE_LISTEN=127.0.0.1:$CONSOLE_PORT EXATOM_CONSOLE_SESSION_KEY_FILE=$session_key \
    EXATOM_CONSOLE_SITE_USERS=true EXATOM_SITES_FILE=${EXATOM_SITES_FILE:-$ROOT/deploy/local/sites.toml} \
    start console "$BIN/exatom-console"
  # What Prometheus scrapes (file discovery: it notices the file by itself).
  mkdir -p "$STATE/prometheus/targets"
  cat >"$STATE/prometheus/targets/services.json" <<EOF
[
  {"targets": ["127.0.0.1:$COLLECTOR_PORT"], "labels": {"job": "exatom-collector"}},
  {"targets": ["127.0.0.1:$ANONYMIZER_PORT"], "labels": {"job": "exatom-anonymizer"}},
  {"targets": ["127.0.0.1:$SESSIONIZER_PORT"], "labels": {"job": "exatom-sessionizer"}},
  {"targets": ["127.0.0.1:$AGGREGATOR_PORT"], "labels": {"job": "exatom-aggregator"}},
  {"targets": ["127.0.0.1:$CONSOLE_PORT"], "labels": {"job": "exatom-console"}}
]
EOF
  wait_for collector 30 curl -fsS "http://127.0.0.1:$COLLECTOR_PORT/readyz"
  wait_for anonymizer 30 curl -fsS "http://127.0.0.1:$ANONYMIZER_PORT/healthz"
  wait_for sessionizer 30 curl -fsS "http://127.0.0.1:$SESSIONIZER_PORT/healthz"
  wait_for aggregator 30 curl -fsS "http://127.0.0.1:$AGGREGATOR_PORT/healthz"
  wait_for console 30 curl -fsS "http://127.0.0.1:$CONSOLE_PORT/readyz"
}

case ${1:-up} in
  up) up ;;
  down) for s in "${SERVICES[@]}"; do stop "$s"; done ;;
  status)
    for s in broker clickhouse prometheus "${SERVICES[@]}"; do
      if running "$s"; then echo "$s: running (pid $(cat "$STATE/pids/$s.pid"))"; else echo "$s: stopped"; fi
    done
    ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac

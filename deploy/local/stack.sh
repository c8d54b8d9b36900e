#!/usr/bin/env bash
# The infrastructure of the local stack: broker (tansu), ClickHouse, Prometheus (with the
# rules of deploy/prometheus), topics, schema.
#   deploy/local/stack.sh up      start what is not running, create topics, migrate
#   deploy/local/stack.sh down    stop the broker and ClickHouse (data kept)
#   deploy/local/stack.sh broker-down | broker-up | clickhouse-down | clickhouse-up   (outage tests)
set -euo pipefail
source "$(dirname "$0")/common.sh"

broker_up() {
  mkdir -p "$STATE/tansu"
  # SQLite storage survives a broker restart (the default memory:// does not); the
  # maintenance pass is what applies retention.ms, every 30 s here. tansu reads the path
  # after sqlite:// as relative to its working directory, hence the cd.
  # STACK_TANSU_STORAGE overrides it for load runs (memory://tansu/: the broker out of
  # the way of the collector's figures; benches/load/collector.sh).
  (cd "$STATE/tansu" && start broker "$TANSU" broker \
    --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --storage-engine "${STACK_TANSU_STORAGE:-sqlite://tansu.db?maintenance_interval=30s}")
  wait_for broker 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$KAFKA_PORT"
}

clickhouse_up() {
  mkdir -p "$STATE/clickhouse"/{data,tmp,user_files,format_schemas,log}
  mkdir -p "$STATE/clickhouse/users.d"
  local reader=$STATE/clickhouse/console-reader.password
  if ! [[ -s $reader ]]; then
    (umask 077 && od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$reader")
  fi
  cp /etc/clickhouse-server/users.xml "$STATE/clickhouse/users.xml"
  sed -e "s#@READER_SHA256@#$(tr -d '\n' <"$reader" | sha256sum | cut -c1-64)#" \
    "$ROOT/deploy/local/clickhouse-users.xml.in" >"$STATE/clickhouse/users.d/exatom-console.xml"
  (umask 077 && sed -e "s#@STATE@#$STATE#g" -e "s#@HTTP_PORT@#$CH_HTTP_PORT#g" -e "s#@TCP_PORT@#$CH_TCP_PORT#g" \
    -e "s#@READER_PASSWORD@#$(cat "$reader")#g" \
    "$ROOT/deploy/local/clickhouse.xml.in" >"$STATE/clickhouse/config.xml")
  start clickhouse clickhouse-server --config-file="$STATE/clickhouse/config.xml"
  wait_for clickhouse 60 curl -fsS "http://127.0.0.1:$CH_HTTP_PORT/ping"
}

prometheus_up() {
  mkdir -p "$STATE/prometheus"/{data,targets}
  render_prometheus_config "$STATE/prometheus/prometheus.yml"
  start prometheus prometheus \
    --config.file="$STATE/prometheus/prometheus.yml" \
    --storage.tsdb.path="$STATE/prometheus/data" \
    --storage.tsdb.retention.time=7d \
    --web.listen-address="127.0.0.1:$PROM_PORT" \
    --web.enable-lifecycle
  wait_for prometheus 30 curl -fsS "http://127.0.0.1:$PROM_PORT/-/ready"
}

case ${1:-up} in
  up)
    broker_up
    clickhouse_up
    prometheus_up
    "$BIN/exatom-admin" topics >&2
    "$BIN/exatom-admin" migrate >&2
    ;;
  down)
    stop prometheus
    stop clickhouse
    stop broker
    ;;
  broker-down) stop broker ;;
  broker-kill) kill_now broker ;;
  broker-up) broker_up ;;
  clickhouse-down) stop clickhouse ;;
  clickhouse-up) clickhouse_up ;;
  *) echo "usage: $0 up|down|broker-down|broker-kill|broker-up|clickhouse-down|clickhouse-up" >&2; exit 2 ;;
esac

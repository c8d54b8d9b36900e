#!/usr/bin/env bash
# The infrastructure of the local stack: broker (tansu), ClickHouse, Prometheus (with the
# rules of deploy/prometheus), topics, schema.
#   deploy/local/stack.sh up      start what is not running, create topics, migrate
#   deploy/local/stack.sh down    stop the broker and ClickHouse (data kept)
#   deploy/local/stack.sh broker-down | broker-up | clickhouse-down | clickhouse-up   (outage tests)
#   deploy/local/stack.sh cluster-up | cluster-down | node-kill N | node-up N   (the cluster
#     profile: ZooKeeper and ClickHouse nodes ch1–ch4; `up` starts it instead of the single
#     server when STACK_CLUSTER=1)
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

# clickhouse_node NAME DIR HTTP_PORT TCP_PORT [SHARD INTERSERVER_PORT]: one ClickHouse server;
# with a shard it is a node of the cluster profile (clickhouse-cluster.xml.in).
clickhouse_node() {
  local name=$1 dir=$2 http=$3 tcp=$4 shard=${5:-} interserver=${6:-}
  mkdir -p "$dir"/{data,tmp,user_files,format_schemas,log,users.d}
  local reader=$dir/console-reader.password
  if ! [[ -s $reader ]]; then
    (umask 077 && od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$reader")
  fi
  cp /etc/clickhouse-server/users.xml "$dir/users.xml"
  sed -e "s#@READER_SHA256@#$(tr -d '\n' <"$reader" | sha256sum | cut -c1-64)#" \
    "$ROOT/deploy/local/clickhouse-users.xml.in" >"$dir/users.d/exatom-console.xml"
  local fragment=/dev/null servers=/dev/null
  if [[ -n $shard ]]; then
    fragment=$dir/cluster.xml servers=$dir/cluster-servers.xml
    sed -e "s#@ZK_PORT@#$ZK_PORT#g" -e "s#@SHARD@#$shard#g" -e "s#@REPLICA@#$name#g" \
      -e "s#@INTERSERVER_PORT@#$interserver#g" \
      "$ROOT/deploy/local/clickhouse-cluster.xml.in" >"$fragment"
    cluster_servers >"$servers"
    cp "$ROOT/deploy/local/clickhouse-cluster-users.xml" "$dir/users.d/exatom-cluster.xml"
  fi
  (umask 077 && sed -e "s#@STATE@/clickhouse#$dir#g" -e "s#@HTTP_PORT@#$http#g" -e "s#@TCP_PORT@#$tcp#g" \
    -e "s#@READER_PASSWORD@#$(cat "$reader")#g" \
    -e "/@CLUSTER@/r $fragment" -e "/@CLUSTER@/d" \
    -e "/@CLUSTER_SERVERS@/r $servers" -e "/@CLUSTER_SERVERS@/d" \
    "$ROOT/deploy/local/clickhouse.xml.in" >"$dir/config.xml")
  start "$name" clickhouse-server --config-file="$dir/config.xml"
  wait_for "$name" 60 curl -fsS "http://127.0.0.1:$http/ping"
}

clickhouse_up() {
  clickhouse_node clickhouse "$STATE/clickhouse" "$CH_HTTP_PORT" "$CH_TCP_PORT"
}

# The cluster's shards for remote_servers: the replicas of a shard copy each other
# (internal_replication), so a Distributed insert writes one replica per shard.
cluster_servers() {
  echo "        <$CLUSTER_NAME>"
  for shard in 1 2; do
    echo "            <shard><internal_replication>true</internal_replication>"
    for n in $((shard * 2 - 1)) $((shard * 2)); do
      echo "                <replica><host>127.0.0.1</host><port>$(node_tcp_port "$n")</port></replica>"
    done
    echo "            </shard>"
  done
  echo "        </$CLUSTER_NAME>"
}

zookeeper_up() {
  mkdir -p "$STATE/zookeeper/data"
  cat >"$STATE/zookeeper/zoo.cfg" <<EOF
tickTime=2000
dataDir=$STATE/zookeeper/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
admin.enableServer=false
autopurge.purgeInterval=1
4lw.commands.whitelist=srvr
EOF
  # The packaged zkServer.sh wants its /etc setup; the server class runs from the jars.
  (cd "$STATE/zookeeper" && start zookeeper java -Xms64m -Xmx256m \
    -cp "/usr/share/java/zookeeper.jar:/usr/share/java/*" \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$STATE/zookeeper/zoo.cfg")
  # Listening is not serving (it loads its snapshot first): ClickHouse started before
  # then fails its handshake and exits. `srvr` names the mode only once it serves.
  wait_for zookeeper 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ZK_PORT && echo srvr >&3 && grep -q '^Mode:' <&3"
}

# node_up N: node N of the cluster (ch1–ch4), shard (N+1)/2.
node_up() {
  clickhouse_node "ch$1" "$STATE/cluster/ch$1" "$(node_http_port "$1")" "$(node_tcp_port "$1")" \
    $((($1 + 1) / 2)) $((CLUSTER_PORT_BASE + 20 + $1))
}

cluster_up() {
  zookeeper_up
  for n in "${CLUSTER_NODES[@]}"; do node_up "$n"; done
}

cluster_down() {
  # Each server takes ~10 s to shut down: all at once.
  for n in "${CLUSTER_NODES[@]}"; do stop "ch$n" & done
  wait
  stop zookeeper
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
    if [[ $CLUSTER == 1 ]]; then cluster_up; else clickhouse_up; fi
    prometheus_up
    "$BIN/exatom-admin" topics >&2
    "$BIN/exatom-admin" migrate >&2
    ;;
  down)
    stop prometheus
    stop clickhouse
    cluster_down
    stop broker
    ;;
  broker-down) stop broker ;;
  broker-kill) kill_now broker ;;
  broker-up) broker_up ;;
  clickhouse-down) stop clickhouse ;;
  clickhouse-up) clickhouse_up ;;
  cluster-up) cluster_up ;;
  cluster-down) cluster_down ;;
  node-kill) kill_now "ch$2" ;;
  node-up) node_up "$2" ;;
  *) echo "usage: $0 up|down|broker-down|broker-kill|broker-up|clickhouse-down|clickhouse-up|cluster-up|cluster-down|node-kill N|node-up N" >&2; exit 2 ;;
esac

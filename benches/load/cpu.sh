# CPU seconds of a bench stack's processes (sourced by chain.sh and replay.sh, after
# deploy/local/common.sh: STATE, CLUSTER).

# CPU seconds (user + system, all threads) of each process of the stack.
processes=(broker clickhouse collector anonymizer sessionizer aggregator)
# On the cluster, its five processes are `clickhouse`'s.
cluster_processes=(zookeeper ch1 ch2 ch3 ch4)
# A stage's replicas count as the stage.
cpu_snapshot() {
  for p in "${processes[@]}"; do
    local sum=0
    local files=("$STATE/pids/$p.pid" "$STATE"/pids/"$p"-[0-9]*.pid)
    if [[ $p == clickhouse && $CLUSTER == 1 ]]; then
      files=("${cluster_processes[@]/#/$STATE/pids/}"); files=("${files[@]/%/.pid}")
    fi
    for pidfile in "${files[@]}"; do
      [[ -f $pidfile ]] || continue
      sum=$(awk -v s="$sum" '{print s + $14 + $15}' "/proc/$(cat "$pidfile")/stat")
    done
    printf "%s=%s " "$p" "$sum"
  done
}
cpu_per_k_events() { # before after count [what, default events]
  local hz; hz=$(getconf CLK_TCK)
  awk -v a="$1" -v b="$2" -v n="$3" -v what="${4:-events}" -v hz="$hz" 'BEGIN {
    split(a, x, " "); split(b, y, " "); total = 0;
    for (i in x) { split(x[i], kv, "="); before[kv[1]] = kv[2] }
    for (i in y) { split(y[i], kv, "="); d = (kv[2] - before[kv[1]]) / hz; total += d;
      out = out sprintf("%s %.3f  ", kv[1], n ? d * 1000 / n : 0) }
    printf "CPU s per 1000 %s: %s| all %.3f\n", what, out, n ? total * 1000 / n : 0 }'
}


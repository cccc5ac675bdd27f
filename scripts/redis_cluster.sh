#!/usr/bin/env bash
# A throwaway Redis Cluster of 3 primaries (no replicas) for tests and benchmarks
# (Debian's redis-server and redis-cli).
#
#   scripts/redis_cluster.sh start DIR   starts 3 servers in cluster mode, each with its
#                                        folder DIR/node1..3 (config file redis.conf,
#                                        append-only file, nodes.conf, pid file, log),
#                                        listening on 127.0.0.1 on free ports (the cluster
#                                        bus on port + 10000), joins them into one cluster
#                                        (`redis-cli --cluster create`, 5461/5461/5462 slots)
#                                        and waits until every node reports cluster_state:ok;
#                                        prints only the seed URLs on stdout, comma-separated,
#                                        e.g. redis://127.0.0.1:41001,redis://127.0.0.1:41002,...
#                                        (if it is already running there, prints them again)
#   scripts/redis_cluster.sh stop DIR    shuts every node down and removes DIR
#
# A node is restarted after a crash with `redis-server DIR/nodeN/redis.conf`: it comes back
# on the same port with the same node id and slots (nodes.conf) and its data (append-only
# file). The nodes run with cluster-require-full-coverage no, so while one primary is down
# the others keep serving their slots (what the online store's tests check).
# Set REDIS_SERVER / REDIS_CLI to use binaries other than /usr/bin/redis-server / redis-cli.
set -euo pipefail

name=redis_cluster.sh
marker=.stratalake-redis-cluster
# shellcheck source=scripts/server_common.sh
source "$(dirname "$0")/server_common.sh"
parse_args "$@"
server="${REDIS_SERVER:-/usr/bin/redis-server}"
cli="${REDIS_CLI:-/usr/bin/redis-cli}"
nodes=(1 2 3)

# The reply's first line to an inline command $2 on port $1 ('' when it does not answer).
ask() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf '%s\r\n' "$2" >&3
    IFS= read -r -t 2 line <&3 || exit 1
    printf '%s' "$line"
  ) 2>/dev/null || true
}

pings() { [[ "$(ask "$1" PING)" == +PONG* ]]; }

# True when node $1 (port) says cluster_state:ok (CLUSTER INFO is a bulk reply: read it all).
cluster_ok() {
  local info
  info="$(
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'CLUSTER INFO\r\n' >&3
    IFS= read -r -t 2 header <&3 || exit 1
    header="${header%$'\r'}"
    [[ "$header" =~ ^\$[0-9]+$ ]] || exit 1
    head -c "${header:1}" <&3 2>/dev/null
  )" 2>/dev/null || return 1
  [[ "$info" == *cluster_state:ok* ]] && [[ "$info" == *cluster_known_nodes:3* ]]
}

is_redis() {
  kill -0 "$1" 2>/dev/null && grep -q redis-server "/proc/$1/cmdline" 2>/dev/null
}

node_pid() {
  local pid f="$dir/node$1/redis.pid"
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] && is_redis "$pid" || return 1
  echo "$pid"
}

urls() {
  local n out=""
  for n in "${nodes[@]}"; do out+="${out:+,}redis://127.0.0.1:$(cat "$dir/node$n/port")"; done
  echo "$out"
}

is_running() {
  local n
  for n in "${nodes[@]}"; do
    [[ -f "$dir/node$n/port" ]] && node_pid "$n" >/dev/null &&
      cluster_ok "$(cat "$dir/node$n/port")" || return 1
  done
}

# A port in [20000, 55000) that is free, with its cluster bus port (+10000) free too.
cluster_port() {
  local port
  while true; do
    port=$((20000 + RANDOM % 35000))
    port_in_use "$port" || port_in_use $((port + 10000)) || break
  done
  echo "$port"
}

stop_nodes() {
  local n pid i
  for n in "${nodes[@]}"; do
    if pid="$(node_pid "$n")"; then
      kill -TERM "$pid" 2>/dev/null || true
      for i in $(seq 1 100); do
        is_redis "$pid" || break
        sleep 0.1
      done
      if is_redis "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
      fi
      ! is_redis "$pid" || die "redis-server (pid $pid) in $dir/node$n is still running"
    fi
  done
}

# Starts node $1 on port $2; true once it answers PING.
start_node() {
  local d="$dir/node$1" i
  mkdir -p "$d"
  rm -f "$d/redis.pid" "$d/nodes.conf" "$d"/appendonly* 2>/dev/null || true
  rm -rf "$d/appendonlydir"
  # appendfsync everysec: a killed server (SIGKILL) keeps what it acknowledged (the file
  # is written before replies go out); no RDB snapshots, so no background forks.
  cat >"$d/redis.conf" <<EOF
port $2
bind 127.0.0.1
protected-mode no
dir $d
daemonize yes
pidfile $d/redis.pid
logfile $d/redis.log
appendonly yes
appendfsync everysec
save ""
cluster-enabled yes
cluster-config-file $d/nodes.conf
cluster-node-timeout 3000
cluster-require-full-coverage no
EOF
  echo "$2" >"$d/port"
  "$server" "$d/redis.conf" >/dev/null 2>&1 || return 1
  for i in $(seq 1 100); do
    node_pid "$1" >/dev/null && pings "$2" && return 0
    sleep 0.1
  done
  return 1
}

start() {
  [[ -x "$server" ]] ||
    die "$server not found; install the 'redis-server' package (scripts/bootstrap.sh does)" \
        "or set REDIS_SERVER"
  [[ -x "$cli" ]] ||
    die "$cli not found; install the 'redis-tools' package (redis-server depends on it)" \
        "or set REDIS_CLI"
  claim_dir
  if is_running; then
    urls
    return
  fi
  stop_nodes
  local attempt n ok hosts
  for attempt in 1 2 3 4 5; do
    ok=1
    hosts=()
    for n in "${nodes[@]}"; do
      local port
      port="$(cluster_port)"
      if ! start_node "$n" "$port"; then
        echo "$name: node $n failed to start on port $port (attempt $attempt)" >&2
        ok=0
        break
      fi
      hosts+=("127.0.0.1:$port")
    done
    if [[ $ok -eq 1 ]]; then
      if "$cli" --cluster create "${hosts[@]}" --cluster-replicas 0 --cluster-yes \
          >"$dir/create.log" 2>&1; then
        local i all
        for i in $(seq 1 200); do
          all=1
          for n in "${nodes[@]}"; do
            cluster_ok "$(cat "$dir/node$n/port")" || all=0
          done
          if [[ $all -eq 1 ]]; then
            urls
            return
          fi
          sleep 0.1
        done
        echo "$name: the cluster did not reach cluster_state:ok (attempt $attempt)" >&2
      else
        echo "$name: redis-cli --cluster create failed (attempt $attempt):" >&2
        tail -n 5 "$dir/create.log" >&2 || true
      fi
    fi
    stop_nodes
  done
  for n in "${nodes[@]}"; do tail -n 10 "$dir/node$n/redis.log" >&2 2>/dev/null || true; done
  die "could not start the Redis cluster (server logs above: $dir/node*/redis.log)"
}

stop() {
  dir_to_stop || return 0
  stop_nodes
  rm -rf "$dir"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac

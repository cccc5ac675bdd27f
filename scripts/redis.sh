#!/usr/bin/env bash
# A throwaway Redis server for tests (Debian's redis-server).
#
#   scripts/redis.sh start DIR   starts a server whose data (append-only file), pid file and
#                                log live in DIR, listening on 127.0.0.1 on a free port, and
#                                waits until it answers PING; prints only its URL on stdout,
#                                e.g. redis://127.0.0.1:54321/0
#                                (if it is already running there, prints its URL again)
#   scripts/redis.sh stop DIR    shuts it down and removes DIR
#
# Works as root and as a normal user (the server runs as whoever calls this). Set
# REDIS_SERVER to use a binary other than /usr/bin/redis-server.
set -euo pipefail

name=redis.sh
marker=.stratalake-redis
# shellcheck source=scripts/server_common.sh
source "$(dirname "$0")/server_common.sh"
parse_args "$@"
server="${REDIS_SERVER:-/usr/bin/redis-server}"

# True when the server on port $1 answers PING (inline protocol, no redis-cli needed).
pings() {
  local reply
  reply="$(
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'PING\r\n' >&3
    IFS= read -r -t 2 line <&3 || exit 1
    printf '%s' "$line"
  )" 2>/dev/null || return 1
  [[ "$reply" == +PONG* ]]
}

# True while process $1 is a live redis-server (not a reused pid, not a zombie:
# a zombie's cmdline is empty).
is_redis() {
  kill -0 "$1" 2>/dev/null && grep -q redis-server "/proc/$1/cmdline" 2>/dev/null
}

# The pid in DIR/redis.pid when that process is a live redis-server.
server_pid() {
  local pid
  [[ -f "$dir/redis.pid" ]] || return 1
  pid="$(cat "$dir/redis.pid" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] && is_redis "$pid" || return 1
  echo "$pid"
}

is_running() {
  [[ -f "$dir/port" ]] && server_pid >/dev/null && pings "$(cat "$dir/port")"
}

start() {
  [[ -x "$server" ]] ||
    die "$server not found; install the 'redis-server' package (scripts/bootstrap.sh does)" \
        "or set REDIS_SERVER"
  claim_dir
  if is_running; then
    echo "redis://127.0.0.1:$(cat "$dir/port")/0"
    return
  fi
  local attempt port i
  for attempt in 1 2 3 4 5; do
    port="$(random_free_port)"
    rm -f "$dir/redis.pid"
    # appendfsync everysec: the server is thrown away, and tests should not wait on disks;
    # no RDB snapshots (save ""), so no background forks.
    if ! "$server" --port "$port" --bind 127.0.0.1 --protected-mode no --dir "$dir" \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
        --appendonly yes --appendfsync everysec --save "" >/dev/null 2>&1; then
      echo "redis.sh: redis-server failed to start on port $port (attempt $attempt)" >&2
      continue
    fi
    # The daemon writes its pid file only once it listens; it exits if the port is taken.
    for i in $(seq 1 100); do
      if server_pid >/dev/null && pings "$port"; then
        echo "$port" >"$dir/port"
        echo "redis://127.0.0.1:$port/0"
        return
      fi
      sleep 0.1
    done
    # Not answering after 10 s: stop whatever started before trying another port.
    local pid
    if pid="$(server_pid)"; then kill -KILL "$pid" 2>/dev/null || true; fi
    echo "redis.sh: start on port $port failed (attempt $attempt), retrying" >&2
  done
  tail -n 20 "$dir/redis.log" >&2 || true
  die "could not start Redis (server log above: $dir/redis.log)"
}

stop() {
  dir_to_stop || return 0
  local pid i
  if pid="$(server_pid)"; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
      is_redis "$pid" || break
      sleep 0.1
    done
    if is_redis "$pid"; then
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
    ! is_redis "$pid" || die "redis-server (pid $pid) in $dir is still running"
  fi
  rm -rf "$dir"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac

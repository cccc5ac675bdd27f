#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests (Debian's packages, trust auth).
#
#   scripts/postgres.sh start DIR   initdb + start a server whose data, socket and log
#                                   live in DIR, listening on 127.0.0.1 on a free port;
#                                   prints only its URL on stdout, e.g.
#                                   postgresql://stratalake@127.0.0.1:54321/postgres
#                                   (if it is already running there, prints its URL again)
#   scripts/postgres.sh stop DIR    stops it (fast shutdown) and removes DIR
#
# As root the server runs as the `postgres` user (PostgreSQL refuses to run as root)
# and DIR is handed to that user. Set PG_BINDIR to use binaries other than the newest
# /usr/lib/postgresql/*/bin.
set -euo pipefail

name=postgres.sh
marker=.stratalake-postgres
# shellcheck source=scripts/server_common.sh
source "$(dirname "$0")/server_common.sh"
parse_args "$@"
user=stratalake   # the superuser initdb creates

find_bindir() {
  if [[ -n "${PG_BINDIR:-}" ]]; then
    [[ -x "$PG_BINDIR/initdb" && -x "$PG_BINDIR/pg_ctl" ]] ||
      die "PG_BINDIR=$PG_BINDIR has no initdb/pg_ctl"
    echo "$PG_BINDIR"
    return
  fi
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" ]] ||
    die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin; install the" \
        "'postgresql' package (scripts/bootstrap.sh does) or set PG_BINDIR"
  echo "$d"
}

# Runs a PostgreSQL binary as a user it accepts, from a directory that user can read.
as_pg() {
  if [[ "$(id -u)" -eq 0 ]]; then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && "$@")
  fi
}

is_running() {
  [[ -f "$dir/data/postmaster.pid" ]] && as_pg "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

start() {
  bindir="$(find_bindir)"
  claim_dir
  if [[ -f "$dir/port" ]] && is_running; then
    echo "postgresql://$user@127.0.0.1:$(cat "$dir/port")/postgres"
    return
  fi
  mkdir -p "$dir/socket"
  if [[ "$(id -u)" -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user to run" \
      "the server as (the Debian 'postgresql' package creates it)"
    chown -R postgres: "$dir"
    runuser -u postgres -- test -w "$dir" ||
      die "user 'postgres' cannot write $dir (is a parent folder closed to it?); use a folder" \
          "under /tmp, e.g. \$(mktemp -d)"
  fi
  if [[ ! -f "$dir/data/PG_VERSION" ]]; then
    if ! as_pg "$bindir/initdb" -D "$dir/data" -U "$user" -A trust -E UTF8 --locale=C \
        --no-sync >"$dir/initdb.log" 2>&1; then
      cat "$dir/initdb.log" >&2
      die "initdb failed (log above)"
    fi
  fi
  local attempt port
  for attempt in 1 2 3 4 5; do
    port="$(random_free_port)"
    # fsync off: the server is thrown away, and tests should not wait on disks.
    if as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o \
        "-c listen_addresses=127.0.0.1 -p $port -k '$dir/socket' -c fsync=off \
-c synchronous_commit=off -c full_page_writes=off" start >/dev/null 2>&1; then
      echo "$port" >"$dir/port"
      echo "postgresql://$user@127.0.0.1:$port/postgres"
      return
    fi
    echo "postgres.sh: start on port $port failed (attempt $attempt), retrying" >&2
  done
  tail -n 20 "$dir/server.log" >&2 || true
  die "could not start PostgreSQL (server log above: $dir/server.log)"
}

stop() {
  dir_to_stop || return 0
  bindir="$(find_bindir)"
  if is_running; then
    as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null ||
      die "pg_ctl stop failed; the server in $dir/data may still be running"
  fi
  rm -rf "$dir"
}

bindir=
case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac

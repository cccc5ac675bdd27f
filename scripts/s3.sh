#!/usr/bin/env bash
# A throwaway S3-compatible server for tests and the demo: versitygw (Apache-2.0,
# github.com/versity/versitygw) serving a folder of DIR through its POSIX backend.
# It supports conditional writes (PUT If-None-Match: *), which StrataLake's commits
# on object storage rely on (docs/object-storage.md).
#
#   scripts/s3.sh fetch       builds the pinned versitygw with `go install` (Go module
#                             proxy) into .cache/s3/versitygw-VERSION/ (gitignored) unless
#                             it is there; prints the binary's path. Needs Go (>= 1.21).
#   scripts/s3.sh start DIR   starts the server with its data, pid file and log in DIR,
#                             listening on 127.0.0.1 on a free port, with one bucket named
#                             "stratalake", waits until it answers and prints only its
#                             endpoint on stdout, e.g. http://127.0.0.1:54321
#                             (if it is already running there, prints it again).
#                             DIR/env holds the settings to `source`: AWS_ENDPOINT_URL,
#                             AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
#   scripts/s3.sh stop DIR    stops it and removes DIR
#
# S3_NO_CONDITIONAL_WRITES=1 (for fetch and start): versitygw v1.0.14 instead (May
# 2025), a release from before conditional writes (versitygw PR #1522): it ignores
# If-None-Match and overwrites, like the S3-compatible servers StrataLake must refuse
# or coordinate through the registry database; the commit-coordinator tests run it.
# Its DIR/env also sets AWS_RESPONSE_CHECKSUM_VALIDATION=when_required: it refuses the
# x-amz-checksum-mode header that the AWS SDK (in Arrow) sends on GetObject otherwise.
#
# Credentials are fixed (the server is local and thrown away): access key
# "stratalake", secret "stratalake-secret", region us-east-1. More buckets: make a
# folder in DIR/data, or create one through the S3 API. VERSITYGW=PATH uses
# another binary.
set -euo pipefail

name=s3.sh
marker=.stratalake-s3
version=v1.8.0  # github.com/versity/versitygw, pinned
if [[ "${S3_NO_CONDITIONAL_WRITES:-}" == 1 ]]; then
  version=v1.0.14  # pinned: a release that ignores If-None-Match
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
access_key=stratalake
secret_key=stratalake-secret
region=us-east-1
# shellcheck source=scripts/server_common.sh
source "$(dirname "$0")/server_common.sh"

binary() { echo "${VERSITYGW:-$root/.cache/s3/versitygw-$version/versitygw}"; }

fetch() {
  local bin dest
  bin="$(binary)"
  if [[ -x "$bin" ]]; then
    echo "$bin"
    return
  fi
  [[ -z "${VERSITYGW:-}" ]] || die "VERSITYGW=$VERSITYGW is not an executable"
  command -v go >/dev/null ||
    die "go not found; install Go 1.21 or newer (https://go.dev/dl/) to build versitygw"
  # Go >= 1.21 fetches the toolchain versitygw's go.mod asks for (1.25) from the module
  # proxy by itself (GOTOOLCHAIN=auto); older ones cannot build it.
  local minor
  minor="$(go env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')"
  [[ -n "$minor" && "$minor" -ge 21 ]] ||
    die "$(go env GOVERSION) is too old to build versitygw; install Go 1.21 or newer"
  dest="$(dirname "$bin")"
  mkdir -p "$dest.tmp"
  if ! GOBIN="$dest.tmp" GOFLAGS="-buildvcs=false" GOTOOLCHAIN=auto \
      go install "github.com/versity/versitygw/cmd/versitygw@$version" >&2; then
    rm -rf "$dest.tmp"
    die "could not build versitygw $version with go install"
  fi
  rm -rf "$dest"
  mv "$dest.tmp" "$dest"
  echo "$bin"
}

if [[ "${1:-}" == fetch ]]; then
  [[ $# -eq 1 ]] || usage
  fetch
  exit 0
fi
parse_args "$@"

# The pid in DIR/versitygw.pid when that process is a live versitygw of DIR.
server_pid() {
  local pid
  [[ -f "$dir/versitygw.pid" ]] || return 1
  pid="$(cat "$dir/versitygw.pid" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
    grep -q versitygw "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

# True when the server on port $1 answers HTTP (any status: an unsigned request is refused).
answers() {
  local reply
  reply="$(
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    IFS= read -r -t 2 line <&3 || exit 1
    printf '%s' "$line"
  )" 2>/dev/null || return 1
  [[ "$reply" == HTTP/* ]]
} 2>/dev/null

is_running() {
  [[ -f "$dir/port" ]] && server_pid >/dev/null && answers "$(cat "$dir/port")"
}

write_env() {
  cat >"$dir/env" <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$1
export AWS_REGION=$region
export AWS_ACCESS_KEY_ID=$access_key
export AWS_SECRET_ACCESS_KEY=$secret_key
EOF
  if [[ "${S3_NO_CONDITIONAL_WRITES:-}" == 1 ]]; then
    echo "export AWS_RESPONSE_CHECKSUM_VALIDATION=when_required" >>"$dir/env"
  fi
}

start() {
  local bin
  bin="$(binary)"
  [[ -x "$bin" ]] || bin="$(fetch)"
  claim_dir
  if is_running; then
    echo "http://127.0.0.1:$(cat "$dir/port")"
    return
  fi
  mkdir -p "$dir/data/stratalake" "$dir/meta"
  local attempt port i pid
  for attempt in 1 2 3 4 5; do
    port="$(random_free_port)"
    # --nometa would drop object metadata; the POSIX backend keeps it in xattrs
    # where the filesystem has them, else in a sidecar folder.
    ROOT_ACCESS_KEY="$access_key" ROOT_SECRET_KEY="$secret_key" \
      setsid "$bin" --port "127.0.0.1:$port" --region "$region" \
      posix --sidecar "$dir/meta" "$dir/data" >>"$dir/versitygw.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/versitygw.pid"
    for i in $(seq 1 100); do
      if ! server_pid >/dev/null; then break; fi
      if answers "$port"; then
        echo "$port" >"$dir/port"
        write_env "$port"
        echo "http://127.0.0.1:$port"
        return
      fi
      sleep 0.1
    done
    if server_pid >/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    echo "s3.sh: start on port $port failed (attempt $attempt), retrying" >&2
  done
  tail -n 20 "$dir/versitygw.log" >&2 || true
  die "could not start versitygw (server log above: $dir/versitygw.log)"
}

stop() {
  dir_to_stop || return 0
  local pid i
  if pid="$(server_pid)"; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
      server_pid >/dev/null || break
      sleep 0.1
    done
    if server_pid >/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
    ! server_pid >/dev/null || die "versitygw (pid $pid) in $dir is still running"
  fi
  rm -rf "$dir"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac

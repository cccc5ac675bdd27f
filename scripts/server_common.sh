# Shared by scripts/redis.sh and scripts/postgres.sh: a throwaway server whose
# files live in one folder DIR that this script made (a marker file says so),
# listening on 127.0.0.1 on a free port. Sourced, not run; the caller sets
# `name` (for messages) and `marker` (the marker file's name) first, and then
# calls `parse_args "$@"`, which sets `cmd` and `dir`.

usage() {
  echo "usage: $0 start|stop DIR" >&2
  exit 2
}

die() {
  echo "$name: $*" >&2
  exit 1
}

parse_args() {
  [[ $# -eq 2 ]] || usage
  cmd="$1"
  dir="$2"
  [[ -n "$dir" ]] || usage
}

# True when something listens on 127.0.0.1:$1.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A random port in [20000, 60000) that nothing listens on now (a start may
# still lose it to another process; callers retry).
random_free_port() {
  local port
  while true; do
    port=$((20000 + RANDOM % 40000))
    port_in_use "$port" || break
  done
  echo "$port"
}

# start: DIR exists, is absolute in $dir, and is this script's (empty before).
claim_dir() {
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if [[ ! -f "$dir/$marker" ]]; then
    [[ -z "$(ls -A "$dir")" ]] || die "$dir is not empty and was not made by this script"
    touch "$dir/$marker"
  fi
}

# stop: returns 1 when there is nothing to stop (no DIR, or an empty one, which
# is removed); dies when DIR is not this script's; otherwise makes $dir absolute.
dir_to_stop() {
  [[ -d "$dir" ]] || return 1
  dir="$(cd "$dir" && pwd)"
  if [[ -z "$(ls -A "$dir")" ]]; then  # e.g. a mktemp -d folder `start` failed to use
    rmdir "$dir"
    return 1
  fi
  [[ -f "$dir/$marker" ]] || die "refusing to remove $dir: it was not made by this script"
}

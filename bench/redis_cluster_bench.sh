#!/usr/bin/env bash
# Online reads and materialization: the embedded store, one Redis server and a local Redis
# Cluster of 3 primaries, on the same data (`stratalake init`'s shop).
#
#   bench/redis_cluster_bench.sh [BUILD] [--customers N] [--iters N]
#
# Starts a throwaway Redis server (scripts/redis.sh) and cluster (scripts/redis_cluster.sh),
# makes one repository per store, materializes each (wall time of `materialize`), writes
# request bodies (1 entity and 100 entities, customer_profile alone and with
# customer_stats: two views of one entity, which the cluster keeps in one hash slot),
# and runs build/bin/online_read_bench on each. Prints one line per (store, request).
# Everything runs on this machine: the servers compete with the client for its cores.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="build"
customers=20000
iters=3000
while [[ $# -gt 0 ]]; do
  case "$1" in
    --customers) customers="$2"; shift 2 ;;
    --iters) iters="$2"; shift 2 ;;
    *) build="$1"; shift ;;
  esac
done
bin="$root/$build/bin/stratalake"
bench="$root/$build/bin/online_read_bench"
work="$(mktemp -d)"
redis_dir="$work/server-redis"
cluster_dir="$work/server-cluster"
trap '"$root/scripts/redis.sh" stop "$redis_dir" || true; "$root/scripts/redis_cluster.sh" stop "$cluster_dir" || true; rm -rf "$work"' EXIT
redis_url="$("$root/scripts/redis.sh" start "$redis_dir")"
seeds="$("$root/scripts/redis_cluster.sh" start "$cluster_dir")"

"$bin" init "$work/base" --customers "$customers" --as-of 2026-09-01 >/dev/null
make_repo() {  # NAME ONLINE_STORE_YAML
  cp -r "$work/base" "$work/$1"
  python3 - "$work/$1/stratalake.yaml" "$2" <<'EOF'
import sys
p, online = sys.argv[1], sys.argv[2]
t = open(p).read().replace("  type: embedded\n  path: .stratalake/online", online)
open(p, "w").write(t)
EOF
  (cd "$work/$1" && "$bin" apply >/dev/null &&
    "$bin" ingest customers data/customers.csv >/dev/null &&
    "$bin" ingest customer_daily_stats data/customer_daily_stats.parquet >/dev/null)
}
make_repo embedded "  type: embedded
  path: .stratalake/online"
make_repo redis "  type: redis
  url: $redis_url"
make_repo cluster "  type: redis
  cluster: true
  url: [${seeds//,/, }]"

python3 - "$work" "$customers" <<'EOF'
import json, random, sys
work, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
for name, feats, rows in [
    ("profile_1", ["customer_profile"], 1),
    ("profile_100", ["customer_profile"], 100),
    ("profile_stats_1", ["customer_profile", "customer_stats"], 1),
    ("profile_stats_100", ["customer_profile", "customer_stats"], 100),
]:
    with open(f"{work}/{name}.jsonl", "w") as f:
        for _ in range(200):
            ids = [rng.randrange(1, n + 1) for _ in range(rows)]
            f.write(json.dumps({"features": feats, "entities": {"customer_id": ids}}) + "\n")
EOF

for store in embedded redis cluster; do
  start=$(date +%s.%N)
  (cd "$work/$store" && "$bin" materialize 2020-01-01T00:00:00Z 2026-09-01T00:00:00Z >/dev/null 2>&1)
  end=$(date +%s.%N)
  echo "materialize $store: $(python3 -c "print(f'{$end - $start:.2f}')") s"
done
for body in profile_1 profile_100 profile_stats_1 profile_stats_100; do
  for store in embedded redis cluster; do
    echo "$store $body $("$bench" "$work/$store" "$work/$body.jsonl" --iters "$iters" --warmup 300)"
  done
done

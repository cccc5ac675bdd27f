#!/usr/bin/env bash
# The demo's object-storage variant (docs/object-storage.md): the same feature
# repository with its offline store in a bucket of a real S3-compatible server
# (versitygw, scripts/s3.sh) instead of a local folder:
#  - the bucket's endpoint and credentials in stratalake.yaml (no AWS_* variables);
#  - apply, ingest into bronze/silver/gold on s3://, quarantine, a saved training set
#    in the bucket recreated exactly, materialization and online reads;
#  - a Delta table on s3:// written by us and by delta-rs, two writers racing;
#  - the feature server's read-cache counters on /metrics.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
S="$root/build/bin/stratalake"
PY="$root/.venv/bin/python"
step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

server_dir="$(mktemp -d)"
work="$(mktemp -d)"
cleanup() {
  [[ -n "${serve_pid:-}" ]] && kill "$serve_pid" 2>/dev/null || true
  "$root/scripts/s3.sh" stop "$server_dir" || true
  rm -rf "$work"
}
trap cleanup EXIT
step "start a throwaway S3-compatible server (versitygw) with a bucket 'stratalake'" \
  "$root/scripts/s3.sh" start "$server_dir"
endpoint="$(cat "$server_dir/env" | sed -n 's/^export AWS_ENDPOINT_URL=//p')"
export STRATALAKE_CACHE_DIR="$work/cache"
# The repository's settings reach the bucket; nothing comes from the environment.
unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_REGION AWS_DEFAULT_REGION AWS_ACCESS_KEY_ID \
  AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE

repo="$work/shop"
step "create the sample feature repository" "$S" init "$repo" --customers 500
cd "$repo"
"$PY" - "$endpoint" <<'EOF'
import sys
p = "stratalake.yaml"
text = open(p).read().replace("offline_store: lake\n", f"""offline_store:
  path: s3://stratalake/shop
  endpoint: {sys.argv[1]}
  region: us-east-1
  access_key_id: stratalake
  secret_access_key: stratalake-secret
""")
open(p, "w").write(text)
EOF
step "the offline store is now a bucket" sed -n '/^offline_store:/,/^$/p' stratalake.yaml
step "apply the definitions" "$S" apply --message "initial definitions"
step "ingest customers into s3://stratalake/shop/bronze/customers" "$S" ingest customers data/customers.csv
step "ingest orders" "$S" ingest orders data/orders.csv
step "clicks with --quarantine: the bad rows go to s3://stratalake/shop/quarantine/clicks" \
  "$S" ingest clicks data/clicks.jsonl --quarantine
step "ingest the daily aggregates and the labels" \
  "$S" ingest customer_daily_stats data/customer_daily_stats.parquet
"$S" ingest churn_labels data/churn_labels.parquet >/dev/null
step "the offline store's tables, all in the bucket" "$S" tables
step "the objects the server holds for bronze/orders" find "$server_dir/data/stratalake/shop/bronze/orders" -type f
step "a training set saved as a Delta table in the bucket" \
  "$S" get-historical --entities data/churn_labels.parquet --timestamp-column label_ts \
  --feature-service churn_model --output train.parquet --save-as churn_train
step "more orders arrive" "$S" ingest orders data/orders.csv
step "the saved dataset is recreated exactly from the pinned versions" "$S" datasets recreate churn_train
step "materialize the online store from the bucket" "$S" materialize-incremental now
step "online features" "$S" get-online --feature-service churn_model --entity customer_id=17,42

printf '\n\033[1m######## A Delta table on s3://, shared with delta-rs ########\033[0m\n'
export AWS_ENDPOINT_URL="$endpoint" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=stratalake \
  AWS_SECRET_ACCESS_KEY=stratalake-secret
t=s3://stratalake/demo/events
step "create a table on s3:// (every commit is a PUT with If-None-Match: *)" \
  "$S" table create "$t" --schema "id:long,writer:string"
step "two writers append at once, 5 times each: every version has exactly one winner" \
  bash -c "for w in a b; do (for i in 1 2 3 4 5; do
    printf 'id,writer\n%s,%s\n' \"\$i\" \"\$w\" > '$work/'\$w\$i.csv
    '$S' table write '$t' --input '$work/'\$w\$i.csv --mode append >/dev/null; done) & done; wait"
step "history: versions 0..10, none lost" "$S" table history "$t" --limit 11
step "delta-rs reads the same table and appends to it" "$PY" -c "
import pyarrow as pa, deltalake
o = {'AWS_ENDPOINT_URL': '$endpoint', 'AWS_REGION': 'us-east-1', 'AWS_ACCESS_KEY_ID': 'stratalake',
     'AWS_SECRET_ACCESS_KEY': 'stratalake-secret', 'AWS_ALLOW_HTTP': 'true', 'conditional_put': 'etag'}
dt = deltalake.DeltaTable('$t', storage_options=o)
print('delta-rs sees version', dt.version(), 'with', dt.to_pyarrow_table().num_rows, 'rows')
deltalake.write_deltalake('$t', pa.table({'id': pa.array([99], pa.int64()), 'writer': ['delta-rs']}),
                          mode='append', storage_options=o)
print('delta-rs appended version', deltalake.DeltaTable('$t', storage_options=o).version())"
step "we read delta-rs's commit" "$S" table read "$t" --filter "writer = 'delta-rs'"

printf '\n\033[1m######## The read cache, on the feature server'"'"'s /metrics ########\033[0m\n'
cd "$repo"
"$S" serve --port 0 >"$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do grep -q "http://" "$work/serve.log" && break; sleep 0.1; done
port="$(grep -o '127.0.0.1:[0-9]*' "$work/serve.log" | head -1 | cut -d: -f2)"
step "materialize through the server: the bucket's data files come from the local cache (on disk, shared by the processes of this machine: the CLI's run above filled it)" \
  bash -c "curl -s -X POST -H 'Content-Type: application/json' http://127.0.0.1:$port/materialize -d '{\"disable_event_timestamp\": true}'; echo;
           curl -s http://127.0.0.1:$port/metrics | grep '^stratalake_read_cache'"

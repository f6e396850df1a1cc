# shellcheck shell=bash
# The retention purge (`scan-worker purge --once`) over BENCH_PURGE_ROWS expired attachments (default
# 100000) sharing BENCH_PURGE_BLOBS contents (default 10000, so 10 attachments per content, each with a
# real object in the bucket), and what it does to the app meanwhile. Sourced by scripts/bench, which has
# started the stack (BASE_URL, DATABASE_ADMIN_URL, S3_*, SCAN_DATABASE_URL, ...).
#
# The rows are written with SQL as the owner (retention already past: time moved by timestamps, never
# by waiting), the objects PUT with curl's SigV4. Then, with a second spinlet taking the reads (rate
# limit out of reach), the p50/p99 of GET /api/v1/attachments/{id} (4 connections, wrk) is measured
# once idle and once while the purge runs; the purge's wall clock gives rows/s and objects/s.
# Prints the figures and rewrites the section `purge` of BENCHMARKS.md (a copy in $BENCH_OUT/purge.md)
# and its summary rows.

_bench_purge_sql() { psql "$DATABASE_ADMIN_URL" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }

# _bench_purge_put KEY: a 16-byte object at KEY (path-style, SigV4 by curl).
_bench_purge_put() {
  local out code
  out=$(mktemp)
  code=$(printf 'purge bench data' | curl -sS -o "$out" -w '%{http_code}' -X PUT --data-binary @- \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    --aws-sigv4 "aws:amz:${S3_REGION:-garage}:s3" --user "$S3_ACCESS_KEY_ID:$S3_SECRET_ACCESS_KEY" \
    "${S3_ENDPOINT%/}/${S3_BUCKET:-attachments}/$1")
  [[ "$code" == 200 ]] || { echo "PUT $1: $code $(head -c 300 "$out")" >&2; rm -f "$out"; return 1; }
  rm -f "$out"
}

bench_purge() {
  local rows=${BENCH_PURGE_ROWS:-100000} nblobs=${BENCH_PURGE_BLOBS:-10000} secs=${BENCH_PURGE_WRK_SECS:-10}
  local work="$BENCH_OUT/purge" port base log pid seed_json
  mkdir -p "$work"
  [[ -x "$SCAN_WORKER_BIN" ]] || { say "purge: target/release/scan-worker is not built"; return 1; }
  command -v wrk >/dev/null || { say "purge: wrk is not installed"; return 1; }

  seed_json=$("$SEED" --database-url "$DATABASE_ADMIN_URL" --json) || return 1
  local tenant email pw msg user
  read -r tenant email pw msg user < <(python3 -c '
import json, sys
t = json.load(sys.stdin)["tenants"][0]
u = next(u for u in t["users"] if u["role"] == "user")
m = next(m for m in t["messages"] if m["ownerUserId"] == u["id"])
print(t["id"], u["email"], u["password"], m["id"], u["id"])' <<<"$seed_json")

  say "purge: writing $nblobs contents (objects in the bucket) and $rows expired attachments"
  _bench_purge_sql "
    INSERT INTO attachment_blobs (tenant_id, content_sha256, size_bytes, storage_key, ref_count, scan_status)
    SELECT '$tenant', encode(sha256(('purge-bench-' || n)::bytea), 'hex'), 16,
           'tenants/$tenant/blobs/purge-bench-' || n, $((rows / nblobs)), 'clean'
      FROM generate_series(1, $nblobs) n;
    INSERT INTO email_attachments (tenant_id, message_id, blob_id, uploader_user_id, filename, size_bytes,
                                   detected_mime, retention_expires_at)
    SELECT '$tenant', '$msg', b.id, '$user', 'bench-' || n || '.txt', 16, 'text/plain', app_now_ms() - 86400000
      FROM generate_series(0, $rows - 1) n
      JOIN attachment_blobs b ON b.storage_key = 'tenants/$tenant/blobs/purge-bench-' || (n % $nblobs + 1);" ||
    { say "purge: loading rows failed"; return 1; }
  export -f _bench_purge_put
  export S3_ENDPOINT S3_REGION S3_BUCKET S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY
  seq "$nblobs" | sed "s|^|tenants/$tenant/blobs/purge-bench-|" |
    xargs -P 8 -I{} bash -c '_bench_purge_put "$@"' _ {} || { say "purge: PUT of the objects failed"; return 1; }

  # A live attachment to read meanwhile (the app's latency): a real upload.
  port=$(pick_port "")
  base="http://127.0.0.1:$port"
  log="$STACK_DIR/logs/bench-purge-app.log"
  say "purge: spinlet up --manifest spin.toml --listen 127.0.0.1:$port (rate limit out of reach) for the reads"
  SPIN_VARIABLE_RATE_LIMIT=1000000000/1h start_bg bench-purge-app "$log" \
    "$SPINLET" up --manifest "$MANIFEST" --listen "127.0.0.1:$port" --cache-dir "$DATA_DIR/cache"
  pid=$_LAST_PID
  WAIT_PID=$pid wait_until "${APP_START_TIMEOUT:-300}" "bench purge app" app_health "$base" ||
    { tail -n 30 "$log" >&2; return 1; }
  local token id try
  # A loaded machine may answer a login 503 (its deadline): a few tries.
  for try in 1 2 3 4 5; do
    token=$(curl -fsS "$base/api/v1/auth/token" -H 'content-type: application/json' \
      -d "{\"email\":\"$email\",\"password\":\"$pw\"}" | python3 -c 'import json, sys; print(json.load(sys.stdin)["accessToken"])') &&
      break
    sleep "$try"
  done
  [[ -n "${token:-}" ]] || { say "purge: login failed"; return 1; }
  id=$(printf 'kept' | curl -fsS -X POST "$base/api/v1/emails/$msg/attachments?filename=kept.txt" \
    -H "authorization: Bearer $token" -H 'content-type: text/plain' --data-binary @- |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])') || { say "purge: upload failed"; return 1; }

  local idle during idle_out during_out ppid
  idle_out=$(bench_wrk purge-idle 4 "$secs" "$base/api/v1/attachments/$id" "authorization: Bearer $token") ||
    { say "purge: wrk failed"; return 1; }
  idle=$(bench_wrk_parse "$idle_out")

  say "purge: scan-worker purge --once over $rows attachments"
  "$SCAN_WORKER_BIN" purge --once --worker-name bench-purge >"$work/purge.log" 2>&1 &
  ppid=$!
  during_out=$(bench_wrk purge-during 4 "$secs" "$base/api/v1/attachments/$id" "authorization: Bearer $token") ||
    { kill "$ppid"; say "purge: wrk failed"; return 1; }
  wait "$ppid" || { say "purge: the purge failed (see $work/purge.log)"; return 1; }
  during=$(bench_wrk_parse "$during_out")
  stop_pid "$pid" bench-purge-app 5 || true

  local left objects wall rows_s objs_s
  left=$(_bench_purge_sql "SELECT count(*) FROM email_attachments WHERE tenant_id = '$tenant' AND filename LIKE 'bench-%'")
  objects=$(_bench_purge_sql "SELECT count(*) FROM attachment_blobs WHERE storage_key LIKE 'tenants/$tenant/blobs/purge-bench-%'")
  [[ "$left" == 0 && "$objects" == 0 ]] || { say "purge: $left rows and $objects contents left"; return 1; }
  # The run's own clock (its `purge.run` line): the process's start-up and the wrk window are not in it.
  wall=$(python3 -c '
import json, sys
ms = [json.loads(l)["ms"] for l in open(sys.argv[1]) if l.startswith("{") and "\"purge.run\"" in l]
print("%.2f" % (ms[-1] / 1000))' "$work/purge.log") || { say "purge: no purge.run line in $work/purge.log"; return 1; }
  rows_s=$(awk -v n="$rows" -v t="$wall" 'BEGIN { printf "%.0f", n / t }')
  objs_s=$(awk -v n="$nblobs" -v t="$wall" 'BEGIN { printf "%.0f", n / t }')
  read -r _ idle_p50 idle_p99 _ <<<"$idle"
  read -r _ during_p50 during_p99 _ <<<"$during"

  local md="$work/purge.md"
  cat >"$md" <<MD
## Retention purge

$(date -u +%Y-%m-%d), $(bench_machine). \`scripts/bench purge\`: the stack of scripts/test (release spinlet,
Garage 2.5 single node, Postgres). $rows attachments past retention over $nblobs contents (each with a
16-byte object in the bucket), purged by one \`scan-worker purge --once\` (batches of \`PURGE_BATCH\` = 500
rows per transaction with their audit rows, then the objects, \`PURGE_CONCURRENCY\` = 8 DeleteObject at once).

| | figure |
|---|---|
| wall clock | ${wall} s |
| attachments purged | **${rows_s} rows/s** |
| contents (objects deleted, rows forgotten) | ${objs_s} /s |

The app meanwhile (\`GET /api/v1/attachments/{id}\`, wrk, 4 connections, ${secs} s; a second spinlet on
the same database):

| | p50 | p99 |
|---|---|---|
| idle | ${idle_p50} ms | ${idle_p99} ms |
| while the purge runs | **${during_p50} ms** | ${during_p99} ms |

The reads while purging are the first ${secs} s of the run (its batches of rows; the objects follow each
batch). On a machine shared with other work (see the load above) both rows are noisy: compare them only
within one run.
MD
  say "purge: $rows rows in ${wall}s (${rows_s} rows/s); app p50 ${idle_p50} ms idle, ${during_p50} ms during"
  bench_write_section purge "$(cat "$md")"
  bench_summary_row "[Retention purge](#retention-purge): attachments purged" "no goal set" \
    "${rows_s} rows/s ($rows rows, $nblobs objects)" "—"
  bench_summary_row "[Retention purge](#retention-purge): app p50 while purging" "holds the app's p50 (issue 14)" \
    "p50 ${during_p50} ms (idle ${idle_p50} ms)" "—"
  say "purge: BENCHMARKS.md section 'purge' and its summary rows updated"
}

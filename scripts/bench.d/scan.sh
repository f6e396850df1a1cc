# shellcheck shell=bash
# The ClamAV scan worker against the stack's private clamd (test signatures). Sourced by
# scripts/bench, which has started the stack (BASE_URL, DATABASE_URL, DATABASE_ADMIN_URL, S3_*,
# CLAMD_ADDR, SCAN_CALLBACK_URL, SCAN_CALLBACK_SECRET, SPIN_VARIABLE_*).
#
# A second spinlet on spin.toml with the per-user limit out of reach takes the uploads; verdicts go
# to the stack's own app (SCAN_CALLBACK_URL). Measures, with 2 worker processes (--concurrency 1 each):
#   throughput  BENCH_SCAN_LARGE files of BENCH_SCAN_LARGE_KIB (default 48 x 2048 KiB) and
#               BENCH_SCAN_SMALL files of 4 KiB (default 300), uploaded first, then both workers
#               `--once` until the queue is empty: MiB/s and jobs/s, wall clock of the workers;
#   latency     BENCH_SCAN_LATENCY uploads (default 30, 64 KiB, one at a time, 0.1-0.4 s apart) with
#               both workers running continuously: upload-to-verdict = the content's verdict commit
#               (attachment_blobs.updated_at) minus its ingest commit (created_at), p50 and p90;
#               once with the default idle poll (SCAN_POLL_SECS=2) and once with 0.2 s.
# Prints the figures and rewrites the section `scan` of BENCHMARKS.md (a copy in $BENCH_OUT/scan.md) and its
# rows of the summary table.

_bench_scan_sql() { psql "$DATABASE_ADMIN_URL" -XAtqc "$1"; }

# Every pending job of other sections out of the way first (untimed), so the timed runs scan ours only.
_bench_scan_drain() {
  "$SCAN_WORKER_BIN" --once --concurrency 2 >>"$BENCH_OUT/scan/drain.log" 2>&1 || true
}

_bench_scan_upload() { # BASE TOKEN MESSAGE FILE NAME
  curl -fsS -o /dev/null -X POST -H "authorization: Bearer $2" -H 'content-type: application/octet-stream' \
    --data-binary @"$4" "$1/api/v1/emails/$3/attachments?filename=$5"
}

# _bench_scan_done TENANT N: true when N contents of TENANT have a verdict.
_bench_scan_done() {
  [[ "$(_bench_scan_sql "SELECT count(*) FROM attachment_blobs WHERE tenant_id = '$1' AND scan_status <> 'pending'")" -ge "$2" ]]
}

_bench_scan_workers_once() { # LOGPREFIX -> seconds of wall clock for two `--once` workers
  local start end p1 p2
  start=$(date +%s.%N)
  "$SCAN_WORKER_BIN" --once --concurrency 1 --worker-name bench-a >"$1-a.log" 2>&1 &
  p1=$!
  "$SCAN_WORKER_BIN" --once --concurrency 1 --worker-name bench-b >"$1-b.log" 2>&1 &
  p2=$!
  wait "$p1" && wait "$p2" || return 1
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }'
}

# _bench_scan_latency POLL_SECS BASE TOKEN MESSAGE TENANT N -> "p50 p90" in ms
_bench_scan_latency() {
  local poll=$1 base=$2 token=$3 message=$4 tenant=$5 n=$6 work="$BENCH_OUT/scan/lat-$1" i pa pb since
  mkdir -p "$work"
  since=$(_bench_scan_sql "SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint")
  "$SCAN_WORKER_BIN" --concurrency 1 --worker-name "lat-a-$poll" --poll-secs "$poll" >"$work/a.log" 2>&1 &
  pa=$!
  "$SCAN_WORKER_BIN" --concurrency 1 --worker-name "lat-b-$poll" --poll-secs "$poll" >"$work/b.log" 2>&1 &
  pb=$!
  sleep 1
  for ((i = 1; i <= n; i++)); do
    head -c 65536 /dev/urandom >"$work/$i.bin"
    _bench_scan_upload "$base" "$token" "$message" "$work/$i.bin" "lat-$poll-$i.bin" || { kill "$pa" "$pb"; return 1; }
    sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 0.1 + (r % 300) / 1000 }')"
  done
  local expected
  expected=$(_bench_scan_sql "SELECT count(*) FROM attachment_blobs WHERE tenant_id = '$tenant'")
  wait_until 120 "scan latency verdicts" _bench_scan_done "$tenant" "$expected" || { kill "$pa" "$pb"; return 1; }
  kill -TERM "$pa" "$pb"
  wait "$pa" "$pb" || true
  _bench_scan_sql "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY updated_at - created_at)::int || ' ' ||
                          percentile_cont(0.9) WITHIN GROUP (ORDER BY updated_at - created_at)::int
                     FROM attachment_blobs WHERE tenant_id = '$tenant' AND created_at >= $since"
}

bench_scan() {
  local large=${BENCH_SCAN_LARGE:-48} large_kib=${BENCH_SCAN_LARGE_KIB:-2048} small=${BENCH_SCAN_SMALL:-300}
  local lat_n=${BENCH_SCAN_LATENCY:-30}
  local work="$BENCH_OUT/scan" port base log pid seed_json
  mkdir -p "$work"
  [[ -x "$SCAN_WORKER_BIN" ]] || { say "scan: target/release/scan-worker is not built"; return 1; }
  port=$(pick_port "")
  base="http://127.0.0.1:$port"
  log="$STACK_DIR/logs/bench-scan-app.log"
  say "scan: spinlet up --manifest spin.toml --listen 127.0.0.1:$port (rate limit out of reach) for the uploads"
  SPIN_VARIABLE_RATE_LIMIT=1000000000/1h start_bg bench-scan-app "$log" \
    "$SPINLET" up --manifest "$MANIFEST" --listen "127.0.0.1:$port" --cache-dir "$DATA_DIR/cache"
  pid=$_LAST_PID
  WAIT_PID=$pid wait_until "${APP_START_TIMEOUT:-300}" "bench scan app" app_health "$base" ||
    { tail -n 30 "$log" >&2; return 1; }

  seed_json=$("$SEED" --database-url "$DATABASE_ADMIN_URL" --json) || return 1
  # Tenant 0 for throughput, tenant 1 for latency (each tenant's verdicts are counted on their own).
  local t0 t1 email0 pw0 msg0 email1 pw1 msg1 tok0 tok1
  read -r t0 email0 pw0 msg0 t1 email1 pw1 msg1 < <(python3 -c '
import json, sys
out = []
for t in json.load(sys.stdin)["tenants"][:2]:
    u = next(u for u in t["users"] if u["role"] == "user")
    m = next(m for m in t["messages"] if m["ownerUserId"] == u["id"])
    out += [t["id"], u["email"], u["password"], m["id"]]
print(*out)' <<<"$seed_json")
  _bench_scan_token() {
    curl -fsS "$base/api/v1/auth/token" -H 'content-type: application/json' -d "{\"email\":\"$1\",\"password\":\"$2\"}" |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["accessToken"])'
  }
  tok0=$(_bench_scan_token "$email0" "$pw0") && tok1=$(_bench_scan_token "$email1" "$pw1") ||
    { say "scan: login failed"; return 1; }

  say "scan: draining jobs left by other sections (untimed)"
  _bench_scan_drain

  # ---- throughput: large files, then small files --------------------------------------------
  local i
  mkdir -p "$work/large" "$work/small"
  for ((i = 1; i <= large; i++)); do head -c "$((large_kib * 1024))" /dev/urandom >"$work/large/$i.bin"; done
  for ((i = 1; i <= small; i++)); do head -c 4096 /dev/urandom >"$work/small/$i.bin"; done
  export -f _bench_scan_upload
  say "scan: uploading $large x ${large_kib} KiB (pending, no worker running)"
  seq "$large" | xargs -P 4 -I{} bash -c '_bench_scan_upload "$@"' _ "$base" "$tok0" "$msg0" "$work/large/{}.bin" "l{}.bin" ||
    { say "scan: uploads failed"; return 1; }
  local t_large t_small
  t_large=$(_bench_scan_workers_once "$work/large-run") || { say "scan: workers failed"; return 1; }
  _bench_scan_done "$t0" "$large" || { say "scan: not every large file got a verdict (see $work/large-run-*.log)"; return 1; }
  say "scan: $large x ${large_kib} KiB scanned by 2 workers in ${t_large}s"

  say "scan: uploading $small x 4 KiB"
  seq "$small" | xargs -P 4 -I{} bash -c '_bench_scan_upload "$@"' _ "$base" "$tok0" "$msg0" "$work/small/{}.bin" "s{}.bin" ||
    { say "scan: uploads failed"; return 1; }
  t_small=$(_bench_scan_workers_once "$work/small-run") || { say "scan: workers failed"; return 1; }
  _bench_scan_done "$t0" "$((large + small))" || { say "scan: not every small file got a verdict"; return 1; }
  say "scan: $small x 4 KiB scanned by 2 workers in ${t_small}s"
  rm -rf "$work/large" "$work/small"

  local mib_s jobs_s_large small_jobs_s clean_count
  mib_s=$(awk -v n="$large" -v k="$large_kib" -v t="$t_large" 'BEGIN { printf "%.1f", n * k / 1024 / t }')
  jobs_s_large=$(awk -v n="$large" -v t="$t_large" 'BEGIN { printf "%.1f", n / t }')
  small_jobs_s=$(awk -v n="$small" -v t="$t_small" 'BEGIN { printf "%.1f", n / t }')
  clean_count=$(_bench_scan_sql "SELECT count(*) FROM attachment_blobs WHERE tenant_id = '$t0' AND scan_status = 'clean'")

  # ---- latency ------------------------------------------------------------------------------
  local lat_default lat_fast
  lat_default=$(_bench_scan_latency 2 "$base" "$tok1" "$msg1" "$t1" "$lat_n") || { say "scan: latency run failed"; return 1; }
  lat_fast=$(_bench_scan_latency 0.2 "$base" "$tok1" "$msg1" "$t1" "$lat_n") || { say "scan: latency run failed"; return 1; }
  stop_pid "$pid" bench-scan-app 5 || true

  local engine
  engine=$(grep -h -o '"clamd_version":"[^"]*"' "$work"/large-run-a.log | head -n1 | cut -d'"' -f4)
  local md="$work/scan.md"
  cat >"$md" <<MD
## Virus scan

$(date -u +%Y-%m-%d), $(bench_machine). \`scripts/bench scan\`: the stack of scripts/test (release spinlet,
Garage 2.5 single node, Postgres), a private clamd (${engine:-ClamAV}, the project's two test signatures,
MaxThreads 4), and 2 \`scan-worker\` processes (\`--concurrency 1\` each) on the same 2 cores. A job: claim
(\`scan_claim_jobs\`), GetObject streamed to clamd INSTREAM, signed POST to the scan callback (which applies the
verdict under RLS and completes the job), \`scan_complete_job\`.

| workload (uploaded first, then both workers \`--once\` until the queue is empty) | wall clock | throughput |
|---|---|---|
| $large x ${large_kib} KiB random | ${t_large} s | **${mib_s} MiB/s**, ${jobs_s_large} jobs/s |
| $small x 4 KiB random | ${t_small} s | **${small_jobs_s} jobs/s** |

Upload-to-verdict ($lat_n uploads of 64 KiB, one at a time, both workers running; verdict commit minus ingest
commit, from the database):

| idle poll (\`SCAN_POLL_SECS\`) | p50 | p90 |
|---|---|---|
| 2 s (default) | **${lat_default%% *} ms** | ${lat_default##* } ms |
| 0.2 s | **${lat_fast%% *} ms** | ${lat_fast##* } ms |

With an idle worker the latency is mostly the poll interval; the scan itself is the difference.
MD
  say "scan: ${mib_s} MiB/s (${jobs_s_large} jobs/s) on ${large_kib} KiB files, ${small_jobs_s} jobs/s on 4 KiB files; $clean_count clean"
  say "scan: upload-to-verdict p50/p90 ${lat_default/ //} ms (poll 2 s), ${lat_fast/ //} ms (poll 0.2 s)"
  bench_write_section scan "$(cat "$md")"
  bench_summary_row "[Virus scan](#virus-scan): throughput of 2 workers, large files" "no goal set" \
    "${mib_s} MiB/s, ${jobs_s_large} jobs/s ($large x ${large_kib} KiB)" "—"
  bench_summary_row "[Virus scan](#virus-scan): throughput of 2 workers, 4 KiB files" "no goal set" \
    "${small_jobs_s} jobs/s ($small files)" "—"
  # The README promises a verdict "within a second or two" of an upload; read as p90 <= 2000 ms.
  bench_summary_row "[Virus scan](#virus-scan): upload to verdict, default idle poll (2 s)" \
    "within a second or two (README), read as p90 ≤ 2000 ms" "p50 ${lat_default%% *} ms, p90 ${lat_default##* } ms" \
    "$(bench_verdict "${lat_default##* }" '<=' 2000)"
  say "scan: BENCHMARKS.md section 'scan' and its summary rows updated"
}

# shellcheck shell=bash
# Direct-to-storage uploads against a direct PUT to the same Garage. Sourced by scripts/bench, which
# has started the stack (BASE_URL, DATABASE_ADMIN_URL, S3_*, CLAMD_ADDR, SCAN_* ...).
#
# Measures, on BENCH_DIRECT_SIZE_MIB (default 1024) of fresh random content, best of BENCH_DIRECT_ROUNDS
# (default 2): a direct PUT of the file to Garage (curl --aws-sigv4, the baseline) and the direct upload
# path as a browser does it (scripts/bench.d/direct_client.py: create the session, PUT the parts straight
# to storage through their presigned URLs, BENCH_DIRECT_CONCURRENCY at a time (default 4), complete);
# then, with one scan worker running, the time from the completion's answer to the attachment's `clean`
# verdict (the worker's one read: size, SHA-256, content policy, dedup, clamd); then that attachment
# downloaded through its signed URL (a redirect above the response cap) against a direct GET, and the
# same file through tus at 8 MiB chunks with the ingest instance's peak memory. Rewrites the section
# `direct` of BENCHMARKS.md and its rows of the summary table.

_bench_direct_put() { # FILE KEY -> seconds
  curl -fsS -o /dev/null -w '%{time_total}\n' -X PUT -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY_ID:$S3_SECRET_ACCESS_KEY" \
    -T "$1" "${S3_ENDPOINT%/}/$S3_BUCKET/$2"
}

# _bench_direct_verdict BASE TOKEN ATTACHMENT TIMEOUT: seconds until the attachment has a verdict
# (polled every 0.1 s); fails, printing its scan status, on any verdict but `clean` or after TIMEOUT s.
_bench_direct_verdict() {
  python3 - "$@" <<'PY'
import json, sys, time, urllib.request
base, token, attachment, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
start = time.monotonic()
while time.monotonic() - start < timeout:
    req = urllib.request.Request(f"{base}/api/v1/attachments/{attachment}",
                                 headers={"authorization": "Bearer " + token})
    try:
        status = json.load(urllib.request.urlopen(req))["virusScanStatus"]
    except Exception:
        status = "?"
    if status == "clean":
        print(f"{time.monotonic() - start:.2f}")
        sys.exit(0)
    if status in ("rejected", "infected", "suspicious", "error"):
        req = urllib.request.Request(f"{base}/api/v1/attachments/{attachment}/scan-status",
                                     headers={"authorization": "Bearer " + token})
        sys.exit(f"verdict {status}: {urllib.request.urlopen(req).read().decode()}")
    time.sleep(0.1)
sys.exit("no verdict in time")
PY
}

bench_direct() {
  local mib=${BENCH_DIRECT_SIZE_MIB:-1024} rounds=${BENCH_DIRECT_ROUNDS:-2} conc=${BENCH_DIRECT_CONCURRENCY:-4}
  local work="$BENCH_OUT/direct" base port log token message r t out best_direct="" best_path="" verdicts=""
  mkdir -p "$work"
  # An app of its own with the per-user limits out of reach (ingest.sh's): a tus upload of 1 GiB is
  # 128 PATCHes, and the verdict is polled every 0.1 s.
  port=$(pick_port "")
  base="http://127.0.0.1:$port"
  log="$STACK_DIR/logs/bench-direct-app.log"
  # download_mode auto (the product default; scripts/bench sets stream for the download section).
  SPIN_VARIABLE_DOWNLOAD_MODE=auto _bench_in_app spinlet bench-direct-app "$port" "$log" || return 1
  local app_pid=$_BENCH_IN_PID
  read -r token message < <(bench_seed_user "$base") && [[ -n "$token" ]] || return 1
  local client="$ROOT/scripts/bench.d/direct_client.py" worker_pid="" attachment=""
  # Whole-file scans: the worker's own cap above the file (clamd's is raised by scripts/bench).
  SCAN_MAX_BYTES=$(((mib + 32) * 1024 * 1024)) SCAN_POLL_SECS=0.2 start_bg bench-direct-worker "$work/worker.log" "$SCAN_WORKER_BIN"
  worker_pid=$_LAST_PID
  for ((r = 1; r <= rounds; r++)); do
    { printf 'bench data\n'; head -c "$((mib * 1024 * 1024 - 11))" /dev/urandom; } >"$work/big.bin"
    t=$(_bench_direct_put "$work/big.bin" "bench/direct-baseline-$r") || return 1
    say "direct: round $r direct PUT ${mib} MiB: ${t}s"
    [[ -z "$best_direct" ]] || awk -v a="$t" -v b="$best_direct" 'BEGIN { exit !(a < b) }' && best_direct=$t
    out=$(python3 "$client" "$base" "$token" "$message" "$work/big.bin" "big-$r.bin" "$conc") ||
      { say "direct: upload failed"; return 1; }
    echo "$out" >>"$work/rounds.jsonl"
    t=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["total"])' "$out")
    say "direct: round $r direct upload path ${mib} MiB (create, parts x$conc, complete): ${t}s"
    [[ -z "$best_path" ]] || awk -v a="$t" -v b="$best_path" 'BEGIN { exit !(a < b) }' && best_path=$t
    attachment=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["attachmentId"])' "$out")
    t=$(_bench_direct_verdict "$base" "$token" "$attachment" 600 2>"$work/verdict.err") ||
      { say "direct: no clean verdict: $(cat "$work/verdict.err") (worker log: $work/worker.log)"
        stop_pid "$worker_pid" bench-direct-worker 5 || true; return 1; }
    say "direct: round $r completion → clean: ${t}s"
    verdicts="$verdicts $t"
  done
  stop_pid "$worker_pid" bench-direct-worker 5 || true

  # The last round's attachment (clean, BENCH_DIRECT_SIZE_MIB) downloaded: through its signed URL
  # (download_mode auto: a 302 to a presigned storage GET above the response cap, followed by curl)
  # against a direct SigV4 GET of its object.
  local key best_get="" best_dl="" hop="" url
  key=$(psql "$DATABASE_ADMIN_URL" -XAtqc "SELECT b.storage_key FROM email_attachments a JOIN attachment_blobs b
    ON b.tenant_id = a.tenant_id AND b.id = a.blob_id WHERE a.id = '$attachment'") || return 1
  for ((r = 1; r <= rounds; r++)); do
    t=$(curl -fsS -o /dev/null -w '%{time_total}\n' -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
      --aws-sigv4 "aws:amz:$S3_REGION:s3" \
      --user "$S3_ACCESS_KEY_ID:$S3_SECRET_ACCESS_KEY" "${S3_ENDPOINT%/}/$S3_BUCKET/$key") ||
      { say "direct: direct GET of $key failed"; return 1; }
    [[ -z "$best_get" ]] || awk -v a="$t" -v b="$best_get" 'BEGIN { exit !(a < b) }' && best_get=$t
    url=$(curl -fsS -X POST "$base/api/v1/attachments/$attachment/download-url" -H "authorization: Bearer $token" \
      -H 'content-type: application/json' -d '{}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["url"])') ||
      return 1
    # The URL names the stack's public_base_url; this app (download_mode auto) answers it too: the
    # signature covers the path and query only.
    url="$base/${url#*://*/}"
    hop=$(curl -sS -o /dev/null -w '%{http_code}' "$url")
    t=$(curl -fsS -L -o /dev/null -w '%{time_total}\n' "$url") || return 1
    [[ -z "$best_dl" ]] || awk -v a="$t" -v b="$best_dl" 'BEGIN { exit !(a < b) }' && best_dl=$t
    say "direct: round $r download ${mib} MiB: direct GET ${best_get}s, signed URL (first answer $hop) ${t}s"
  done

  # The same file through tus at upload_chunk_bytes (8 MiB) chunks, and the ingest instance's peak
  # memory meanwhile (the runner's memory_high_water events of this run's app log).
  local best_tus="" tus_hwm
  for ((r = 1; r <= rounds; r++)); do
    out=$(python3 "$client" --tus "$base" "$token" "$message" "$work/big.bin" "tus-$r.bin") ||
      { say "direct: tus upload failed"; return 1; }
    echo "$out" >>"$work/tus.jsonl"
    t=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["total"])' "$out")
    say "direct: round $r tus ${mib} MiB at 8 MiB chunks: ${t}s"
    [[ -z "$best_tus" ]] || awk -v a="$t" -v b="$best_tus" 'BEGIN { exit !(a < b) }' && best_tus=$t
  done
  tus_hwm=$(python3 -c '
import json, sys
best = None
for line in open(sys.argv[1], errors="replace"):
    if "memory_high_water" not in line:
        continue
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event") == "memory_high_water" and e.get("component") == "ingest":
        best = max(best or 0, int(e["bytes"]))
print("?" if best is None else "%.1f" % (best / 1048576))' "$log" 2>/dev/null || echo "?")
  stop_pid "$app_pid" bench-direct-app 5 || true
  cp "$log" "$work/app.log" 2>/dev/null || true
  rm -f "$work/big.bin"
  local ratio verdict_best dl_ratio tus_ratio
  dl_ratio=$(awk -v a="$best_dl" -v b="$best_get" 'BEGIN { printf "%.2f", a / b }')
  tus_ratio=$(awk -v a="$best_tus" -v b="$best_direct" 'BEGIN { printf "%.2f", a / b }')
  ratio=$(awk -v a="$best_path" -v b="$best_direct" 'BEGIN { printf "%.2f", a / b }')
  verdict_best=$(tr ' ' '\n' <<<"$verdicts" | grep . | sort -n | head -n1)

  bench_write_section direct "$(
    cat <<MD
## Direct-to-storage upload

$(date -u +%Y-%m-%d), $(bench_machine). \`scripts/bench direct\`: the stack of scripts/test (release spinlet,
Garage 2.5 single node, Postgres, clamd with the test signatures), one scan worker (poll 0.2 s) whose
scan limit and clamd's (\`SCAN_MAX_BYTES\`, \`StreamMaxLength\`, \`MaxScanSize\`) are raised above the file so
that it is judged whole (the stack's defaults stop at 60 MiB and answer \`error\` beyond). The client
(scripts/bench.d/direct_client.py) does what a browser does: \`POST .../uploads\` (policy checks, CreateMultipartUpload,
one presigned URL per part), the parts PUT straight to Garage $conc at a time, each read from the file at its
offset, then \`POST .../complete\` (CompleteMultipartUpload). It writes bodies in 1 MiB pieces, as curl and
browsers write large ones (Python's default, 8 KiB, cost the client about 17 ms of CPU per 8 MiB on the two
cores that the service and Garage share). tus: \`POST .../tus\`, then one PATCH per 8 MiB chunk on one
keep-alive connection, each sent when the previous one is answered (as tus-js-client does).

| ${mib} MiB (best of $rounds, fresh content per round) | seconds |
|---|---|
| direct PUT to Garage (curl --aws-sigv4, one request) | $best_direct |
| direct upload path: create → parts → complete | $best_path |
| ratio path / direct PUT (goal ≤ 1.1) | **$ratio** |
| completion → \`clean\` (the worker's one read: size, SHA-256, policy, dedup, clamd; best round) | $verdict_best |

Per round (seconds: create, parts, complete): see \`rounds.jsonl\` in the raw output.

| the same ${mib} MiB, other paths (best of $rounds) | seconds |
|---|---|
| tus 1.0.0 through the service, 8 MiB chunks (one PATCH at a time) | $best_tus |
| ratio tus / direct PUT (goal ≤ 1.5) | **$tus_ratio** |
| ingest instance peak linear memory during the run (runner's \`memory_high_water\`; goal ≤ 32 MiB at 8 MiB chunks) | ${tus_hwm} MiB |
| direct SigV4 GET of the stored object | $best_get |
| download through its signed URL (first answer: $hop; \`curl -L\` follows the redirect) | $best_dl |
| ratio signed URL / direct GET (goal ≤ 1.05) | **$dl_ratio** |
MD
  )"
  bench_summary_row "Direct upload ${mib} MiB / direct PUT" "≤ 1.1" "$ratio" "$(bench_verdict "$ratio" '<=' 1.1)"
  bench_summary_row "Direct upload ${mib} MiB: completion to clean" "reported" "${verdict_best} s" "reported"
  bench_summary_row "tus upload ${mib} MiB (8 MiB chunks) / direct PUT" "≤ 1.5" "$tus_ratio" "$(bench_verdict "$tus_ratio" '<=' 1.5)"
  bench_summary_row "Download ${mib} MiB by signed URL (redirect) / direct GET" "≤ 1.05" "$dl_ratio" "$(bench_verdict "$dl_ratio" '<=' 1.05)"
  if [[ "$tus_hwm" != "?" ]]; then
    bench_summary_row "tus: ingest peak memory at 8 MiB chunks" "≤ 32 MiB" "$tus_hwm MiB" "$(bench_verdict "$tus_hwm" '<=' 32)"
  fi
}

# shellcheck shell=bash
# Uploads through the ingest component against a direct PUT to the same Garage. Sourced by
# scripts/bench, which has started the stack (BASE_URL, DATABASE_ADMIN_URL, S3_*, SPIN_VARIABLE_*).
#
# A second spinlet runs spin.toml with max_upload_bytes raised to 2 GiB and the per-user limit out of
# reach. Measures: one BENCH_IN_SIZE_MIB upload (default 1024) through the stack (raw body, chunked
# multipart upload to Garage, SHA-256, inspection, dedup transaction) vs `curl --aws-sigv4` PUT of the
# same file straight to Garage (best of BENCH_IN_ROUNDS, default 2, fresh content each round so no
# round is deduplicated); the spinlet's peak RSS during the run (VmHWM: an upper bound of the
# component's memory, host included); and 100 uploads of 100 KiB at concurrency 10 (distinct
# content). When a Spin CLI is found (SPIN_BIN, or spin on PATH), the same app under `spin up`: one large
# upload and the 100 small ones, in the same run. Rewrites the section `ingest` of BENCHMARKS.md and its
# rows of the summary table.

_bench_in_put_direct() { # FILE KEY -> seconds
  curl -fsS -o /dev/null -w '%{time_total}\n' -X PUT -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY_ID:$S3_SECRET_ACCESS_KEY" \
    -T "$1" "${S3_ENDPOINT%/}/$S3_BUCKET/$2"
}

_bench_in_random() { # FILE BYTES: random content behind a fixed text prefix. Bare random bytes now
  # and then start like an executable (MZ, #!, a Mach-O or LLVM magic: ~1 file in 20,000), which
  # ingest rightly refuses with 415; the prefix keeps the content binary but never executable.
  { printf 'bench data\n'; head -c "$(($2 - 11))" /dev/urandom; } >"$1"
}

_bench_in_upload() { # BASE TOKEN MESSAGE FILE NAME -> seconds (fails unless 201)
  # -T streams the file (with its Content-Length) instead of reading it into memory first.
  curl -fsS -o /dev/null -w '%{time_total}\n' -X POST -H "authorization: Bearer $2" \
    -H 'content-type: application/octet-stream' \
    -T "$4" "$1/api/v1/emails/$3/attachments?filename=$5"
}

# _bench_in_app HOST NAME PORT LOG: spin.toml on HOST (spinlet | spin) with max_upload_bytes 2 GiB and the
# per-user limits out of reach; sets _BENCH_IN_PID once healthy.
_bench_in_app() {
  local host=$1 name=$2 port=$3 log=$4 cmd
  if [[ "$host" == spin ]]; then
    mkdir -p "$STACK_DIR/$name-state"
    cmd=("$(find_spin)" up --from "$MANIFEST" --listen "127.0.0.1:$port" --state-dir "$STACK_DIR/$name-state"
      --log-dir "$STACK_DIR/$name-state/logs")
  else
    cmd=("$SPINLET" up --from "$MANIFEST" --listen "127.0.0.1:$port" --cache-dir "$DATA_DIR/cache")
  fi
  say "ingest: ${cmd[*]#"$ROOT"/} (max_upload_bytes 2 GiB)"
  SPIN_VARIABLE_MAX_UPLOAD_BYTES=2147483648 SPIN_VARIABLE_RATE_LIMIT=1000000000/1h \
    SPIN_VARIABLE_MAX_CONCURRENT_UPLOADS=1000 start_bg "$name" "$log" "${cmd[@]}"
  _BENCH_IN_PID=$_LAST_PID
  WAIT_PID=$_BENCH_IN_PID wait_until "${APP_START_TIMEOUT:-300}" "bench app ($host)" app_health "http://127.0.0.1:$port" ||
    { tail -n 30 "$log" >&2; return 1; }
}

# _bench_in_small BASE TOKEN MESSAGE DIR LOG: 100 uploads of 100 KiB (fresh content) at concurrency 10 with
# one client process; prints the seconds.
_bench_in_small() {
  local base=$1 token=$2 message=$3 dir=$4 log=$5 i start end codes
  mkdir -p "$dir"
  for ((i = 1; i <= 100; i++)); do _bench_in_random "$dir/$i.bin" 102400; done
  # One client process keeping 10 uploads in flight (curl --parallel over a config of 100
  # transfers): starting a curl per upload (xargs -P 10) kept only ~3 uploads in flight on a
  # 2-core machine, the rest of the time went to process start-up.
  : >"$dir/small.curl"
  for ((i = 1; i <= 100; i++)); do
    ((i == 1)) || echo next >>"$dir/small.curl"
    printf '%s\n' "url = \"$base/api/v1/emails/$message/attachments?filename=s$i.bin\"" \
      'output = "/dev/null"' 'write-out = "%{http_code}\n"' \
      "header = \"authorization: Bearer $token\"" 'header = "content-type: application/octet-stream"' \
      "data-binary = \"@$dir/$i.bin\"" >>"$dir/small.curl"
  done
  start=$(date +%s.%N)
  codes=$(curl -sS --parallel --parallel-max 10 -K "$dir/small.curl") ||
    { cp "$log" "$dir/app.log" 2>/dev/null; say "ingest: small uploads failed"; return 1; }
  end=$(date +%s.%N)
  [[ $(grep -c '^201$' <<<"$codes") == 100 ]] ||
    { cp "$log" "$dir/app.log" 2>/dev/null; say "ingest: small uploads: not all 201: $(sort <<<"$codes" | uniq -c | tr '\n' ' ')"; return 1; }
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f\n", b - a }'
}

bench_ingest() {
  local mib=${BENCH_IN_SIZE_MIB:-1024} rounds=${BENCH_IN_ROUNDS:-2}
  local work="$BENCH_OUT/ingest" port base log pid message token
  mkdir -p "$work"
  port=$(pick_port "")
  base="http://127.0.0.1:$port"
  log="$STACK_DIR/logs/bench-ingest-app.log"
  _bench_in_app spinlet bench-ingest-app "$port" "$log" || return 1
  pid=$_BENCH_IN_PID

  read -r token message < <(bench_seed_user "$base") && [[ -n "$token" ]] || return 1

  # Warm-up (compiled component, connections).
  _bench_in_random "$work/warm.bin" 4096
  _bench_in_upload "$base" "$token" "$message" "$work/warm.bin" warm.bin >/dev/null || return 1

  local best_stack="" best_direct="" t r
  for ((r = 1; r <= rounds; r++)); do
    _bench_in_random "$work/big.bin" "$((mib * 1024 * 1024))"
    t=$(_bench_in_put_direct "$work/big.bin" "bench/ingest-direct-$r") || return 1
    say "ingest: round $r direct PUT ${mib} MiB: ${t}s"
    [[ -z "$best_direct" ]] || awk -v a="$t" -v b="$best_direct" 'BEGIN { exit !(a < b) }' && best_direct=$t
    t=$(_bench_in_upload "$base" "$token" "$message" "$work/big.bin" "big-$r.bin") ||
      { cp "$log" "$work/app.log" 2>/dev/null; say "ingest: upload failed (app log: $work/app.log)"; return 1; }
    say "ingest: round $r upload through the stack ${mib} MiB: ${t}s"
    [[ -z "$best_stack" ]] || awk -v a="$t" -v b="$best_stack" 'BEGIN { exit !(a < b) }' && best_stack=$t
  done
  rm -f "$work/big.bin"
  local ratio hwm comp_hwm
  ratio=$(awk -v a="$best_stack" -v b="$best_direct" 'BEGIN { printf "%.2f", a / b }')
  hwm=$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status" 2>/dev/null || echo "?")
  # The ingest instances' own peak (linear memory of the composed middleware + ingest instance),
  # from the runner's memory_high_water events, when the runner logs them.
  comp_hwm=$(python3 -c '
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

  # 100 x 100 KiB at concurrency 10, distinct content.
  local start end total i
  total=$(_bench_in_small "$base" "$token" "$message" "$work/small" "$log") || return 1
  say "ingest: 100 x 100 KiB at concurrency 10: ${total}s"
  # The former client for comparison (one curl process per upload), on fresh content.
  local total_xargs
  for ((i = 1; i <= 100; i++)); do _bench_in_random "$work/small/x$i.bin" 102400; done
  start=$(date +%s.%N)
  seq 100 | xargs -P 10 -I{} curl -fsS -o /dev/null -H "authorization: Bearer $token" \
    -H 'content-type: application/octet-stream' --data-binary @"$work/small/x{}.bin" \
    "$base/api/v1/emails/$message/attachments?filename=x{}.bin" ||
    { cp "$log" "$work/app.log" 2>/dev/null; say "ingest: small uploads (xargs) failed (app log: $work/app.log)"; return 1; }
  end=$(date +%s.%N)
  total_xargs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
  say "ingest: 100 x 100 KiB, xargs -P 10 curl: ${total_xargs}s"
  stop_pid "$pid" bench-ingest-app 5 || true
  # Keep the app's log (per-request lines, guest events) with the raw output: the stack's own
  # directory goes when the benchmark ends.
  cp "$log" "$work/app.log" 2>/dev/null || true

  # The same under the real Spin CLI, when there is one: one large upload and the small ones.
  local spin_small="not run (no Spin CLI)" spin_big="not run" spin_ratio="—" spin_line=""
  if [[ -n "$(find_spin)" ]]; then
    local sport slog
    sport=$(pick_port "")
    slog="$STACK_DIR/logs/bench-ingest-spin.log"
    if _bench_in_app spin bench-ingest-spin "$sport" "$slog"; then
      _bench_in_upload "http://127.0.0.1:$sport" "$token" "$message" "$work/warm.bin" warm-spin.bin >/dev/null || true
      _bench_in_random "$work/big.bin" "$((mib * 1024 * 1024))"
      spin_big=$(_bench_in_upload "http://127.0.0.1:$sport" "$token" "$message" "$work/big.bin" big-spin.bin) ||
        spin_big="failed"
      rm -f "$work/big.bin"
      [[ "$spin_big" == failed ]] || spin_ratio=$(awk -v a="$spin_big" -v b="$best_direct" 'BEGIN { printf "%.2f", a / b }')
      spin_small=$(_bench_in_small "http://127.0.0.1:$sport" "$token" "$message" "$work/small-spin" "$slog") ||
        spin_small="failed"
      stop_pid "$_BENCH_IN_PID" bench-ingest-spin 5 || true
      cp "$slog" "$work/app-spin.log" 2>/dev/null || true
      spin_line="$("$(find_spin)" --version 2>/dev/null | head -n1)"
    fi
    say "ingest: under real Spin: ${mib} MiB ${spin_big}s (ratio $spin_ratio), 100x100KiB ${spin_small}s"
  fi

  bench_write_section ingest "$(
    cat <<MD
## Ingest

$(date -u +%Y-%m-%d), $(bench_machine). \`scripts/bench ingest\`: the stack of scripts/test (release spinlet,
Garage 2.5 single node, Postgres), a second spinlet on spin.toml with \`max_upload_bytes\` = 2 GiB. The upload
path does: middleware (token, rate limit), message check, then per chunk (read up to 512 KiB at a time) size
count + inspection + SHA-256 + 8 MiB part buffer with its CRC32 → multipart upload to Garage (SigV4 in the
component; up to 2 parts uploading while the next one fills), then one transaction (dedup upsert, scan job,
attachment, audit) and a signed download URL.

| ${mib} MiB upload (best of $rounds, fresh content per round) | seconds |
|---|---|
| direct PUT to Garage (curl --aws-sigv4, UNSIGNED-PAYLOAD) | $best_direct |
| through the stack (raw body) | $best_stack |
| ratio stack / direct (goal ≤ 1.5) | **$ratio** |
| ingest instance peak linear memory (runner's \`memory_high_water\`, middleware chain included) | ${comp_hwm} MiB |
| spinlet peak RSS during the run (VmHWM, host + all instances; upper bound of the component's memory) | ${hwm} MiB |

100 uploads of 100 KiB (distinct content) at concurrency 10 (one \`curl --parallel --parallel-max 10\`): **${total} s** (goal < 1 s; promised < 5 s).
With the former client, a curl process per upload (\`xargs -P 10\`, process start-up included): ${total_xargs} s.

The same app under the real Spin CLI (\`spin up\`${spin_line:+, $spin_line}; its defaults: instance reuse 128,
16 at once), same stack and client, in the same run:

| under \`spin up\` | seconds |
|---|---|
| ${mib} MiB upload through the stack (one round) | $spin_big (ratio to the direct PUT: **$spin_ratio**) |
| 100 uploads of 100 KiB at concurrency 10 | **$spin_small** |
MD
  )"
  bench_summary_row "[Ingest](#ingest): large upload, time through the stack / direct PUT to Garage" "≤ 1.5" \
    "$ratio (${mib} MiB: $(printf '%.2f s / %.2f s' "$best_stack" "$best_direct"))" "$(bench_verdict "$ratio" '<=' 1.5)"
  bench_summary_row "[Ingest](#ingest): ingest instance peak linear memory during that upload" \
    "no goal set (an upload's part buffers: ≤ 24 MiB)" "${comp_hwm} MiB" "—"
  bench_summary_row "[Ingest](#ingest): 100 uploads of 100 KiB at concurrency 10" "< 1 s (promised < 5 s)" \
    "${total} s" "$(bench_verdict "$total" '<' 1)"
  if [[ "$spin_small" =~ ^[0-9.]+$ ]]; then
    bench_summary_row "[Ingest](#ingest): 100 uploads of 100 KiB at concurrency 10, under \`spin up\`" "< 1 s (promised < 5 s)" \
      "${spin_small} s" "$(bench_verdict "$spin_small" '<' 1)"
  fi
  if [[ "$spin_ratio" =~ ^[0-9.]+$ ]]; then
    bench_summary_row "[Ingest](#ingest): large upload under \`spin up\`, time / direct PUT" "≤ 1.5" \
      "$spin_ratio (${mib} MiB: ${spin_big} s)" "$(bench_verdict "$spin_ratio" '<=' 1.5)"
  fi
  say "ingest: ratio $ratio (stack ${best_stack}s vs direct ${best_direct}s), ingest instance peak ${comp_hwm} MiB, peak RSS ${hwm} MiB, 100x100KiB ${total}s"
}

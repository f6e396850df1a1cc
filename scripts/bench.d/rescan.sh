# shellcheck shell=bash
# Rescans after a signature update, and what they do to a new upload's time to verdict. Sourced by
# scripts/bench, which has started the stack (BASE_URL, DATABASE_ADMIN_URL, S3_*, SCAN_CALLBACK_URL,
# SCAN_CALLBACK_SECRET, ...).
#
# A clamd of its own whose signature database has a version (a daily.cud built with
# `sigtool --build --unsigned`, beside the test signatures). BENCH_RESCAN_CONTENTS clean contents
# (default 10000, 2 KiB objects in the bucket) are written with SQL as ClamAV's verdicts under version
# 1; the database moves to version 2 (RELOAD); two workers (SCAN_CONCURRENCY 2, SCAN_RESCAN_SLOTS 1
# each, RESCAN_INTERVAL_SECS 1, poll 0.2 s) then rescan them all. Meanwhile BENCH_RESCAN_UPLOADS
# uploads (default 30, 64 KiB, one at a time, 0.1-0.4 s apart) measure upload-to-verdict (the
# content's verdict commit minus its ingest commit), p50 and p90; the same uploads with the same workers
# and no rescan give the idle figure. Prints the figures and rewrites the section `rescan` of
# BENCHMARKS.md and its summary rows.

_bench_rescan_sql() { psql "$DATABASE_ADMIN_URL" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }

_bench_rescan_put() { # KEY FILE
  local code
  code=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT --data-binary @"$2" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    --aws-sigv4 "aws:amz:${S3_REGION:-garage}:s3" --user "$S3_ACCESS_KEY_ID:$S3_SECRET_ACCESS_KEY" \
    "${S3_ENDPOINT%/}/${S3_BUCKET:-attachments}/$1")
  [[ "$code" == 200 ]] || { echo "PUT $1: $code" >&2; return 1; }
}

# _bench_rescan_db DIR VERSION [NAME:HEX...]: DIR/db/daily.cud of VERSION with these body signatures.
_bench_rescan_db() {
  local dir=$1 version=$2 build sig
  shift 2
  build="$dir/build-$version"
  mkdir -p "$build"
  echo "test signatures, never for production" >"$build/COPYING"
  : >"$build/daily.ndb"
  for sig in "$@"; do echo "${sig%%:*}:0:*:${sig#*:}" >>"$build/daily.ndb"; done
  (cd "$build" && echo bench | sigtool --build=daily.cud --unsigned --no-cdiff --cvd-version="$version" \
    --datadir="$build" >/dev/null 2>&1) || true
  [[ -f "$build/daily.cud" ]] || { say "rescan: sigtool did not build daily.cud"; return 1; }
  cp "$build/daily.cud" "$dir/db/daily.cud.new" && mv "$dir/db/daily.cud.new" "$dir/db/daily.cud"
}

_bench_rescan_clamd() { # ADDR COMMAND -> answer
  python3 -c '
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=5)
s.sendall(b"z" + sys.argv[2].encode() + b"\0")
out = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    out += b
print(out.rstrip(b"\0").decode())' "$1" "$2"
}

_bench_rescan_version_is() { [[ "$(_bench_rescan_clamd "$1" VERSION 2>/dev/null)" == *"/$2/"* ]]; }

# _bench_rescan_latency BASE TOKEN MESSAGE TENANT N LABEL -> "p50 p90" in ms
_bench_rescan_latency() {
  local base=$1 token=$2 message=$3 tenant=$4 n=$5 label=$6 work="$BENCH_OUT/rescan/lat-$6" i since want
  mkdir -p "$work"
  since=$(_bench_rescan_sql "SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint")
  for ((i = 1; i <= n; i++)); do
    head -c 65536 /dev/urandom >"$work/$i.bin"
    curl -fsS -o /dev/null -X POST -H "authorization: Bearer $token" -H 'content-type: application/octet-stream' \
      --data-binary @"$work/$i.bin" "$base/api/v1/emails/$message/attachments?filename=$label-$i.bin" || return 1
    sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 0.1 + (r % 300) / 1000 }')"
  done
  want=$n
  _bench_rescan_lat_done() {
    [[ "$(_bench_rescan_sql "SELECT count(*) FROM attachment_blobs WHERE tenant_id = '$tenant' AND created_at >= $since AND scan_status <> 'pending'")" -ge "$want" ]]
  }
  wait_until 300 "rescan bench: verdicts of the uploads" _bench_rescan_lat_done || return 1
  _bench_rescan_sql "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY updated_at - created_at)::int || ' ' ||
                            percentile_cont(0.9) WITHIN GROUP (ORDER BY updated_at - created_at)::int
                       FROM attachment_blobs WHERE tenant_id = '$tenant' AND created_at >= $since"
}

bench_rescan() {
  local n=${BENCH_RESCAN_CONTENTS:-10000} uploads=${BENCH_RESCAN_UPLOADS:-30}
  local work="$BENCH_OUT/rescan" port base log pid seed_json clamd_pid clamd_addr
  mkdir -p "$work/db" "$work/tmp"
  [[ -x "$SCAN_WORKER_BIN" ]] || { say "rescan: target/release/scan-worker is not built"; return 1; }
  command -v sigtool >/dev/null && command -v clamd >/dev/null || { say "rescan: clamd and sigtool are needed"; return 1; }

  # ---- a clamd with a versioned signature database ----------------------------------------
  cp "$ROOT"/crates/scan-worker/signatures/test.?db "$work/db/"
  local placeholder="Attachments.Bench.Placeholder:$(printf 'NO-CONTENT-HAS-THESE-BYTES' | xxd -p | tr -d '\n')"
  _bench_rescan_db "$work" 1 "$placeholder" || return 1
  port=$(pick_port "")
  clamd_addr="127.0.0.1:$port"
  cat >"$work/clamd.conf" <<CONF
Foreground yes
TCPSocket $port
TCPAddr 127.0.0.1
DatabaseDirectory $work/db
TemporaryDirectory $work/tmp
AlertExceedsMax yes
MaxThreads 4
LogFile $STACK_DIR/logs/bench-rescan-clamd.log
SelfCheck 3600
CONF
  start_bg bench-rescan-clamd "$STACK_DIR/logs/bench-rescan-clamd.out" clamd --config-file="$work/clamd.conf"
  clamd_pid=$_LAST_PID
  WAIT_PID=$clamd_pid wait_until 60 "rescan bench clamd (version 1)" _bench_rescan_version_is "$clamd_addr" 1 || return 1

  # ---- the app for the uploads, a tenant ------------------------------------------------------
  port=$(pick_port "")
  base="http://127.0.0.1:$port"
  log="$STACK_DIR/logs/bench-rescan-app.log"
  SPIN_VARIABLE_RATE_LIMIT=1000000000/1h start_bg bench-rescan-app "$log" \
    "$SPINLET" up --manifest "$MANIFEST" --listen "127.0.0.1:$port" --cache-dir "$DATA_DIR/cache"
  pid=$_LAST_PID
  WAIT_PID=$pid wait_until "${APP_START_TIMEOUT:-300}" "bench rescan app" app_health "$base" ||
    { tail -n 30 "$log" >&2; return 1; }
  seed_json=$("$SEED" --database-url "$DATABASE_ADMIN_URL" --json) || return 1
  local t0 t1 email1 pw1 msg1 token
  read -r t0 t1 email1 pw1 msg1 < <(python3 -c '
import json, sys
ts = json.load(sys.stdin)["tenants"]
u = next(u for u in ts[1]["users"] if u["role"] == "user")
m = next(m for m in ts[1]["messages"] if m["ownerUserId"] == u["id"])
print(ts[0]["id"], ts[1]["id"], u["email"], u["password"], m["id"])' <<<"$seed_json")
  token=$(curl -fsS "$base/api/v1/auth/token" -H 'content-type: application/json' \
    -d "{\"email\":\"$email1\",\"password\":\"$pw1\"}" | python3 -c 'import json, sys; print(json.load(sys.stdin)["accessToken"])') ||
    { say "rescan: login failed"; return 1; }

  # ---- N clean contents judged under version 1 ----------------------------------------------
  say "rescan: writing $n clean contents (2 KiB objects) judged by ClamAV under signature version 1"
  head -c 2048 /dev/urandom >"$work/object.bin"
  _bench_rescan_sql "
    INSERT INTO attachment_blobs (tenant_id, content_sha256, size_bytes, storage_key, ref_count, scan_status,
                                  scan_engine, scanned_at, created_at)
    SELECT '$t0', encode(sha256(('rescan-bench-' || g)::bytea), 'hex'), 2048,
           'tenants/$t0/blobs/rescan-bench-' || g, 1, 'clean', 'ClamAV 1.4.6/1/bench',
           app_now_ms() - 86400000, app_now_ms() - 86400000 + g
      FROM generate_series(1, $n) g;
    INSERT INTO scan_engine_verdicts (tenant_id, blob_id, engine, engine_version, signature_version, status, scanned_at)
    SELECT tenant_id, id, 'clamav', '1.4.6', 1, 'clean', scanned_at FROM attachment_blobs
     WHERE storage_key LIKE 'tenants/$t0/blobs/rescan-bench-%';" || { say "rescan: loading rows failed"; return 1; }
  export -f _bench_rescan_put
  export S3_ENDPOINT S3_REGION S3_BUCKET S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY
  seq "$n" | xargs -P 8 -I{} bash -c '_bench_rescan_put "tenants/'"$t0"'/blobs/rescan-bench-$1" "$2"' _ {} "$work/object.bin" ||
    { say "rescan: PUT of the objects failed"; return 1; }

  # ---- two workers on that clamd --------------------------------------------------------------
  local pa pb
  CLAMD_ADDR=$clamd_addr RESCAN_INTERVAL_SECS=1 SCAN_POLL_SECS=0.2 start_bg bench-rescan-worker-a "$work/worker-a.log" \
    "$SCAN_WORKER_BIN" --concurrency 2 --worker-name bench-rescan-a
  pa=$_LAST_PID
  CLAMD_ADDR=$clamd_addr RESCAN_INTERVAL_SECS=1 SCAN_POLL_SECS=0.2 start_bg bench-rescan-worker-b "$work/worker-b.log" \
    "$SCAN_WORKER_BIN" --concurrency 2 --worker-name bench-rescan-b
  pb=$_LAST_PID
  sleep 2
  local idle during
  say "rescan: $uploads uploads without rescans (idle)"
  idle=$(_bench_rescan_latency "$base" "$token" "$msg1" "$t1" "$uploads" idle) || { say "rescan: idle run failed"; return 1; }

  # ---- the update, and uploads while the rescans run ------------------------------------------
  local started finished left
  _bench_rescan_db "$work" 2 "$placeholder" \
    "Attachments.Bench.New:$(printf 'A-SIGNATURE-OF-THE-UPDATE' | xxd -p | tr -d '\n')" || return 1
  started=$(date +%s.%N)
  _bench_rescan_clamd "$clamd_addr" RELOAD >/dev/null
  wait_until 60 "rescan bench clamd (version 2)" _bench_rescan_version_is "$clamd_addr" 2 || return 1
  say "rescan: signature version 2; $uploads uploads while $n contents are rescanned"
  during=$(_bench_rescan_latency "$base" "$token" "$msg1" "$t1" "$uploads" during) || { say "rescan: run failed"; return 1; }
  _bench_rescan_left() {
    left=$(_bench_rescan_sql "SELECT count(*) FROM scan_engine_verdicts e JOIN attachment_blobs b ON b.id = e.blob_id
             WHERE b.storage_key LIKE 'tenants/$t0/blobs/rescan-bench-%' AND e.engine = 'clamav' AND e.signature_version < 2")
    [[ "$left" == 0 ]]
  }
  wait_until 3600 "rescan bench: every content rescanned" _bench_rescan_left || { say "rescan: $left not rescanned"; return 1; }
  finished=$(date +%s.%N)
  stop_pid "$pa" bench-rescan-worker-a 10 || true
  stop_pid "$pb" bench-rescan-worker-b 10 || true
  stop_pid "$pid" bench-rescan-app 5 || true
  stop_pid "$clamd_pid" bench-rescan-clamd 5 || true

  local wall per_s idle_p50 idle_p90 during_p50 during_p90
  wall=$(awk -v a="$started" -v b="$finished" 'BEGIN { printf "%.1f", b - a }')
  per_s=$(awk -v n="$n" -v t="$wall" 'BEGIN { printf "%.0f", n / t }')
  read -r idle_p50 idle_p90 <<<"$idle"
  read -r during_p50 during_p90 <<<"$during"
  local md="$work/rescan.md"
  cat >"$md" <<MD
## Rescans

$(date -u +%Y-%m-%d), $(bench_machine). \`scripts/bench rescan\`: the stack of scripts/test, a clamd of its
own with a versioned signature database (test signatures plus a \`daily.cud\` built with
\`sigtool --build --unsigned\`), two workers (\`SCAN_CONCURRENCY\` 2, \`SCAN_RESCAN_SLOTS\` 1 each,
\`RESCAN_INTERVAL_SECS\` 1, \`SCAN_POLL_SECS\` 0.2). $n clean contents (2 KiB objects) judged under signature
version 1; the database moves to version 2 (RELOAD) and the workers rescan them all.

| | figure |
|---|---|
| rescan of $n contents (RELOAD to the last one judged under version 2) | ${wall} s, **${per_s} contents/s** |
| new upload's time to verdict, no rescan running ($uploads uploads, 64 KiB) | p50 ${idle_p50} ms, p90 ${idle_p90} ms |
| new upload's time to verdict while the rescan runs | **p50 ${during_p50} ms**, p90 ${during_p90} ms |

Time to verdict is the content's verdict commit minus its ingest commit. First scans are claimed before any
rescan and rescans hold at most one slot per worker, so an upload waits at most for a free slot (one scan
of 2 KiB). Idle workers wait their poll interval (0.2 s) after an empty claim, busy ones claim again at once:
that is why the figure during the rescan can be lower than idle. On a machine shared with other work (see
the load above) compare the two rows only within one run.
MD
  say "rescan: $n contents in ${wall}s (${per_s}/s); upload to verdict p50 ${idle_p50} ms idle, ${during_p50} ms during"
  bench_write_section rescan "$(cat "$md")"
  bench_summary_row "[Rescans](#rescans): rescan throughput" "no goal set" "${per_s} contents/s ($n contents)" "—"
  bench_summary_row "[Rescans](#rescans): new upload's time to verdict during a rescan" "never delayed by rescans (issue 19)" \
    "p50 ${during_p50} ms (idle ${idle_p50} ms)" "—"
  say "rescan: BENCHMARKS.md section 'rescan' and its summary rows updated"
}

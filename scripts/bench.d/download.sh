# shellcheck shell=bash
# Delivery through the signed URL (download component, streaming mode) against a direct
# GET from the same Garage. Sourced by scripts/bench, which has started the stack (BASE_URL,
# DATABASE_ADMIN_URL, S3_*, SPIN_VARIABLE_* in the environment).
#
# Content is seeded like the integration tests do (object PUT with curl --aws-sigv4, rows inserted
# as the admin database user), so this section does not depend on the ingest component.
# Measures: 1 GiB GET time through the signed URL vs direct (best of BENCH_DL_ROUNDS), and time to
# first byte (curl's time_starttransfer) p50/p99 for a 100 KiB object at concurrency 1 and 32
# (BENCH_DL_TTFB_N requests each), for both paths. Rewrites the section `download` of BENCHMARKS.md
# and its rows of the summary table.
#
# Knobs: BENCH_DL_SIZE_MIB (default 1024), BENCH_DL_ROUNDS (default 3), BENCH_DL_TTFB_N (default 400).

_bench_dl_put() { # KEY FILE
  curl -fsS -X PUT -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY_ID:$S3_SECRET_ACCESS_KEY" \
    -T "$2" "${S3_ENDPOINT%/}/$S3_BUCKET/$1" >/dev/null
}

# _bench_dl_seed TENANT OWNER FILE NAME: inserts blob + attachment rows; prints the attachment id.
_bench_dl_seed() {
  local tenant=$1 owner=$2 file=$3 name=$4 key hash size msg
  key="tenants/$tenant/blobs/$(python3 -c 'import uuid; print(uuid.uuid4())')"
  _bench_dl_put "$key" "$file" || return 1
  hash=$(sha256sum "$file" | cut -d' ' -f1)
  size=$(stat -c %s "$file")
  msg=$(psql "$DATABASE_ADMIN_URL" -XAtq -c "SELECT id FROM email_messages WHERE tenant_id = '$tenant' LIMIT 1") || return 1
  psql "$DATABASE_ADMIN_URL" -XAtq -v ON_ERROR_STOP=1 -c "
    WITH b AS (INSERT INTO attachment_blobs (tenant_id, content_sha256, size_bytes, storage_key, sniffed_mime, scan_status)
               VALUES ('$tenant', '$hash', $size, '$key', 'application/octet-stream', 'clean') RETURNING id)
    INSERT INTO email_attachments (tenant_id, message_id, blob_id, uploader_user_id, filename, detected_mime, size_bytes)
    SELECT '$tenant', '$msg', b.id, '$owner', '$name', 'application/octet-stream', $size FROM b RETURNING id" | head -n1
}

_bench_dl_url() { # TOKEN ID
  curl -fsS -X POST "$BASE_URL/api/v1/attachments/$2/download-url" -H "authorization: Bearer $1" \
    -H 'content-type: application/json' -d '{"expiresIn": 86400}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["url"])'
}

_bench_dl_direct() { # KEY -> curl args for a direct signed GET
  printf '%s\n' -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' --aws-sigv4 "aws:amz:$S3_REGION:s3" \
    --user "$S3_ACCESS_KEY_ID:$S3_SECRET_ACCESS_KEY" "${S3_ENDPOINT%/}/$S3_BUCKET/$1"
}

# _bench_dl_time ARGS...: seconds of one full GET to /dev/null.
_bench_dl_time() { curl -fsS -o /dev/null -w '%{time_total}\n' "$@"; }

# _bench_dl_ttfb N CONC ARGS...: "<p50 ms> <p99 ms>" of time_starttransfer over N GETs.
_bench_dl_ttfb() {
  local n=$1 conc=$2
  shift 2
  local args
  args=$(printf '%q ' "$@")
  seq "$n" | xargs -P "$conc" -I{} sh -c "curl -fsS -o /dev/null -w '%{time_starttransfer}\n' $args" |
    sort -n | awk '{ v[NR] = $1 * 1000 } END { printf "%.2f %.2f\n", v[int(NR * 0.5 + 0.5)], v[int(NR * 0.99 + 0.5)] }'
}

bench_download() {
  local mib=${BENCH_DL_SIZE_MIB:-1024} rounds=${BENCH_DL_ROUNDS:-3} n=${BENCH_DL_TTFB_N:-400}
  local work="$BENCH_OUT/download" seed_json tenant owner email password token
  mkdir -p "$work"
  seed_json=$("$SEED" --database-url "$DATABASE_ADMIN_URL" --json) || return 1
  read -r tenant owner email password < <(python3 -c '
import json, sys
t = json.load(sys.stdin)["tenants"][0]
u = next(u for u in t["users"] if u["role"] == "user")
print(t["id"], u["id"], u["email"], u["password"])' <<<"$seed_json")
  token=$(curl -fsS "$BASE_URL/api/v1/auth/token" -H 'content-type: application/json' \
    -d "{\"email\":\"$email\",\"password\":\"$password\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["accessToken"])') || { say "download: login failed"; return 1; }

  say "download: writing ${mib} MiB and 100 KiB objects"
  head -c "$((mib * 1024 * 1024))" /dev/urandom >"$work/big.bin"
  head -c 102400 /dev/urandom >"$work/small.bin"
  local big small big_key small_key big_url small_url
  big=$(_bench_dl_seed "$tenant" "$owner" "$work/big.bin" big.bin) || return 1
  small=$(_bench_dl_seed "$tenant" "$owner" "$work/small.bin" small.bin) || return 1
  rm -f "$work/big.bin"
  big_key=$(psql "$DATABASE_ADMIN_URL" -XAtq -c "SELECT b.storage_key FROM email_attachments a JOIN attachment_blobs b ON b.id = a.blob_id WHERE a.id = '$big'")
  small_key=$(psql "$DATABASE_ADMIN_URL" -XAtq -c "SELECT b.storage_key FROM email_attachments a JOIN attachment_blobs b ON b.id = a.blob_id WHERE a.id = '$small'")
  big_url=$(_bench_dl_url "$token" "$big") || return 1
  small_url=$(_bench_dl_url "$token" "$small") || return 1
  local -a big_direct small_direct
  mapfile -t big_direct < <(_bench_dl_direct "$big_key")
  mapfile -t small_direct < <(_bench_dl_direct "$small_key")

  # Warm-up (compiled component, pooled connections).
  _bench_dl_time "$small_url" >/dev/null && _bench_dl_time "${small_direct[@]}" >/dev/null || return 1

  local best_signed="" best_direct="" t r
  for ((r = 1; r <= rounds; r++)); do
    t=$(_bench_dl_time "${big_direct[@]}") || return 1
    say "download: round $r direct ${mib} MiB: ${t}s"
    [[ -z "$best_direct" ]] || awk -v a="$t" -v b="$best_direct" 'BEGIN { exit !(a < b) }' && best_direct=$t
    t=$(_bench_dl_time "$big_url") || return 1
    say "download: round $r signed ${mib} MiB: ${t}s"
    [[ -z "$best_signed" ]] || awk -v a="$t" -v b="$best_signed" 'BEGIN { exit !(a < b) }' && best_signed=$t
  done
  local ratio
  ratio=$(awk -v a="$best_signed" -v b="$best_direct" 'BEGIN { printf "%.2f", a / b }')

  local c s1 s2 d1 d2
  declare -A ttfb
  for c in 1 32; do
    read -r s1 s2 < <(_bench_dl_ttfb "$n" "$c" "$small_url")
    read -r d1 d2 < <(_bench_dl_ttfb "$n" "$c" "${small_direct[@]}")
    ttfb[$c]="$s1|$s2|$d1|$d2"
    say "download: 100 KiB TTFB at $c: signed p50 $s1 ms p99 $s2 ms; direct p50 $d1 ms p99 $d2 ms"
  done
  local row1 row32
  IFS='|' read -r s1 s2 d1 d2 <<<"${ttfb[1]}"
  row1="| 1 | $s1 | $s2 | $d1 | $d2 |"
  IFS='|' read -r s1 s2 d1 d2 <<<"${ttfb[32]}"
  row32="| 32 | $s1 | $s2 | $d1 | $d2 |"

  bench_write_section download "$(
    cat <<MD
## Download

$(date -u +%Y-%m-%d), $(bench_machine). \`scripts/bench download\`: the stack of scripts/test (release spinlet,
Garage 2.5 single node, Postgres), content seeded directly (object PUT + rows), \`download_mode = stream\`.
The signed-URL path does: HMAC check, one tenant transaction (attachment + blob row, audit row), a SigV4
GET to Garage, and hands Garage's body to the response without buffering.

| ${mib} MiB GET (best of $rounds, curl to /dev/null) | seconds |
|---|---|
| direct from Garage (curl --aws-sigv4) | $best_direct |
| through the signed URL | $best_signed |
| ratio signed / direct (goal ≤ 1.3) | **$ratio** |

Time to first byte for a 100 KiB object (curl \`time_starttransfer\`, $n GETs per row, ms):

| concurrency | signed p50 | signed p99 | direct p50 | direct p99 |
|---|---|---|---|---|
$row1
$row32
MD
  )"
  IFS='|' read -r s1 s2 d1 d2 <<<"${ttfb[1]}"
  bench_summary_row "[Download](#download): large GET, time through the signed URL / direct from Garage" "≤ 1.3" \
    "$ratio (${mib} MiB: $(printf '%.2f s / %.2f s' "$best_signed" "$best_direct"))" "$(bench_verdict "$ratio" '<=' 1.3)"
  bench_summary_row "[Download](#download): time to first byte of 100 KiB through the signed URL, 1 at a time, p50" \
    "no goal set" "$s1 ms (direct: $d1 ms)" "—"
  say "download: ratio $ratio (signed ${best_signed}s vs direct ${best_direct}s)"
}

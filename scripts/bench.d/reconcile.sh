# shellcheck shell=bash
# Orphan repair (`scan-worker reconcile`) over a bucket of BENCH_RECONCILE_OBJECTS objects (default
# 100000). Sourced by scripts/bench, which has started the stack (DATABASE_ADMIN_URL, SCAN_DATABASE_URL,
# S3_*).
#
# A fresh tenant gets BENCH_RECONCILE_OBJECTS small objects PUT straight to the bucket
# (crates/scan-worker/examples/bench_objects.rs, 16 at a time, untimed); half of them get a blob row,
# the other half are orphans, and 1% of the rows point at no object (missing). Then, scoped to that
# tenant with the safety window at 0, each timed with /usr/bin/time (wall clock and peak RSS):
#   dry run   lists every object and checks every page against the database, changes nothing;
#   real run  the same, deleting the orphans and marking the missing blobs.
# Then the rows go and one more run deletes the rest (untimed cleanup).
# Prints the figures and rewrites the section `reconcile` of BENCHMARKS.md (a copy in
# $BENCH_OUT/reconcile.md) and its rows of the summary table.

_bench_reconcile_sql() { psql "$DATABASE_ADMIN_URL" -XAtqc "$1"; }

# _bench_reconcile_run NAME ARGS... -> "<seconds> <peak RSS KiB>"; the report is the run's last line.
_bench_reconcile_run() {
  local name=$1 work="$BENCH_OUT/reconcile"
  shift
  /usr/bin/time -f '%e %M' -o "$work/$name.time" \
    "$SCAN_WORKER_BIN" reconcile --once --tenant "$_BENCH_RECONCILE_TENANT" --reconcile-safety-secs 0 "$@" \
    >"$work/$name.log" 2>&1 || { tail -n 5 "$work/$name.log" >&2; return 1; }
  cat "$work/$name.time"
}

# _bench_reconcile_field NAME JQ -> a figure of the run's report.
_bench_reconcile_field() {
  grep '"msg":"reconcile.run"' "$BENCH_OUT/reconcile/$1.log" | tail -n1 | jq -r "$2"
}

bench_reconcile() {
  local n=${BENCH_RECONCILE_OBJECTS:-100000} work="$BENCH_OUT/reconcile" tenant known missing
  mkdir -p "$work"
  (cd "$ROOT" && cargo build --release -q -p scan-worker --example bench_objects) || return 1
  tenant=$(cat /proc/sys/kernel/random/uuid)
  _bench_reconcile_sql "INSERT INTO tenants (id, name) VALUES ('$tenant', 'reconcile-bench-$tenant')" >/dev/null || return 1
  _BENCH_RECONCILE_TENANT=$tenant
  say "reconcile: putting $n objects under tenants/$tenant/ (untimed)"
  local t0 t1
  t0=$(date +%s.%N)
  "$ROOT/target/release/examples/bench_objects" "$tenant" "$n" 16 >"$work/keys.txt" || return 1
  t1=$(date +%s.%N)
  [[ $(wc -l <"$work/keys.txt") -eq $n ]] || { say "reconcile: the loader stored fewer than $n objects"; return 1; }
  known=$((n / 2))
  missing=$((n / 100))
  # Half the objects known (blob rows), plus rows whose object was never stored (missing).
  {
    head -n "$known" "$work/keys.txt"
    for ((i = 0; i < missing; i++)); do echo "tenants/$tenant/blobs/$(cat /proc/sys/kernel/random/uuid)"; done
  } | awk -v t="$tenant" '{ printf "%s\t%064x\t16\t%s\n", t, NR, $0 }' >"$work/rows.tsv"
  psql "$DATABASE_ADMIN_URL" -Xqc "\\copy attachment_blobs (tenant_id, content_sha256, size_bytes, storage_key) FROM '$work/rows.tsv'" ||
    return 1
  _bench_reconcile_sql "ANALYZE attachment_blobs" >/dev/null
  local dry real
  dry=$(_bench_reconcile_run dry --dry-run) || return 1
  real=$(_bench_reconcile_run real) || return 1
  local listed orphans deleted found marked
  listed=$(_bench_reconcile_field real '.objects.listed')
  orphans=$(_bench_reconcile_field dry '.orphans.found')
  deleted=$(_bench_reconcile_field real '.orphans.deleted')
  found=$(_bench_reconcile_field real '.missing.found')
  marked=$(_bench_reconcile_field real '.missing.marked')
  # Cleanup: without their rows the remaining objects are orphans too.
  _bench_reconcile_sql "DELETE FROM attachment_blobs WHERE tenant_id = '$tenant'" >/dev/null
  # A storage error ends a run (a busy single-node Garage answers 503 now and then); the next
  # scripts/bench starts with a fresh bucket either way.
  _bench_reconcile_run cleanup >/dev/null || say "reconcile: the cleanup run failed (cleanup.log); its objects stay in this bench's bucket"
  local put_s rate_dry rate_real
  put_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", b - a }')
  rate_dry=$(awk -v n="$n" -v t="${dry%% *}" 'BEGIN { printf "%.0f", n / t }')
  rate_real=$(awk -v n="$n" -v t="${real%% *}" 'BEGIN { printf "%.0f", n / t }')
  local mib_dry mib_real
  mib_dry=$(awk -v k="${dry##* }" 'BEGIN { printf "%.1f", k / 1024 }')
  mib_real=$(awk -v k="${real##* }" 'BEGIN { printf "%.1f", k / 1024 }')
  local md="$work/reconcile.md"
  cat >"$md" <<MD
## Reconcile

$(date -u +%Y-%m-%d), $(bench_machine). \`scripts/bench reconcile\`: the stack of scripts/test (Garage 2.5 single
node, Postgres), one tenant's prefix holding $n objects of 16 bytes (PUT in ${put_s} s, untimed): $known known
to the database (blob rows), $((n - known)) orphans, and $missing blob rows whose object is missing.
\`scan-worker reconcile --once --tenant <t> --reconcile-safety-secs 0\`, timed by /usr/bin/time: ListObjectsV2
pages of 1,000 keys, each page's key range checked against \`reconcile_known_keys\` (batches of 1,000 rows).

| run | objects listed | wall clock | objects/s | peak RSS |
|---|---|---|---|---|
| \`--dry-run\` (reads only; $orphans orphans found) | $n | **${dry%% *} s** | $rate_dry | **${mib_dry} MiB** |
| real ($deleted orphans deleted, one DeleteObject each; $marked of $found missing blobs marked) | $listed | **${real%% *} s** | $rate_real | **${mib_real} MiB** |

Memory holds one listing page and one batch of rows, whatever the bucket's size: the peak RSS is the
process's own (runtime, TLS, HTTP client), not the number of keys.
MD
  say "reconcile: dry run ${dry%% *} s / ${mib_dry} MiB, real run ${real%% *} s / ${mib_real} MiB for $n objects"
  bench_write_section reconcile "$(cat "$md")"
  bench_summary_row "[Reconcile](#reconcile): $n objects, dry run" "streaming, bounded memory (issue 14)" \
    "${dry%% *} s, peak RSS ${mib_dry} MiB" "—"
  bench_summary_row "[Reconcile](#reconcile): $n objects, deleting $deleted orphans" "streaming, bounded memory (issue 14)" \
    "${real%% *} s, peak RSS ${mib_real} MiB" "—"
  say "reconcile: BENCHMARKS.md section 'reconcile' and its summary rows updated"
}

#!/usr/bin/env bash
# shellcheck shell=bash
# Real backing services for dev/test/bench: Postgres, Redis, Garage (S3).
#
# Rule for each: if configured by the environment, use it; else if the standard local port
# answers, use it; else start a private one under .data/ and stop it again on exit.
#
#   Postgres  DATABASE_ADMIN_URL (superuser/owner URL; its database part is ignored)
#             else 127.0.0.1:5432 if pg_isready answers (user $PG_ADMIN_USER, default postgres)
#             else a private cluster in .data/pg on $PG_PORT or a free port (trust auth).
#             A private cluster that is already running (e.g. started by scripts/dev) is reused
#             and left running.
#   Redis     REDIS_URL, else 127.0.0.1:6379 if `redis-cli ping` answers,
#             else a private redis-server (no persistence) on $REDIS_PORT or a free port.
#   Garage    S3_ENDPOINT + S3_ACCESS_KEY_ID + S3_SECRET_ACCESS_KEY (+ S3_REGION, S3_BUCKET),
#             else a private single-node Garage with data in .data/<stack>/garage, ports
#             $GARAGE_S3_PORT / $GARAGE_RPC_PORT / $GARAGE_ADMIN_PORT or free ones.
#   clamd     CLAMD_ADDR (host:port of a running clamd, checked with PING), else a private clamd
#             (Debian clamav-daemon) on $CLAMD_PORT or a free loopback port, with the project's test
#             signatures (crates/scan-worker/signatures, or CLAMD_DATABASE_DIR); config and logs in
#             .data/<stack>. Never a system clamd on 3310: its signatures are not the tests'.
#   USE_SYSTEM_SERVICES=0   never use the standard ports; always start private services.
#
# garage_cors ORIGINS (after services_up): the bucket CORS rule browsers need to PUT parts of direct
# uploads to presigned URLs, on a Garage this script started (never on an S3_ENDPOINT it was given).
#
# After `services_up STACK` these are exported: PG_ADMIN_URL, PG_HOSTPORT, REDIS_URL,
# REDIS_HOSTPORT, S3_ENDPOINT, S3_REGION, S3_BUCKET, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY,
# CLAMD_ADDR, STACK, STACK_DIR.
#
# Run directly for a services-only stack in the foreground:
#   scripts/lib/services.sh [STACK]        (Ctrl-C stops what it started)

[[ -n "${_LIB_SERVICES_LOADED:-}" ]] && return 0
_LIB_SERVICES_LOADED=1
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# ---- stack directory ---------------------------------------------------------
# stack_init NAME: .data/NAME holds this stack's private state, logs and pids.
stack_init() {
  local owner
  STACK=$1
  STACK_DIR="$DATA_DIR/$STACK"
  mkdir -p "$STACK_DIR/logs"
  owner=$(cat "$STACK_DIR/owner.pid" 2>/dev/null || true)
  if [[ -n "$owner" && "$owner" != "$$" ]] && pid_alive "$owner"; then
    die "the '$STACK' stack is already running (pid $owner); stop that one first"
  fi
  echo "$$" >"$STACK_DIR/owner.pid"
  on_exit "rm -f '$STACK_DIR/owner.pid'"
  export STACK STACK_DIR
}

# Remove leftovers of ephemeral stacks (prefix) whose owning script is gone (e.g. killed -9).
stack_sweep_stale() {
  local prefix=$1 dir owner pidfile pid
  for dir in "$DATA_DIR/$prefix"*/; do
    [[ -d "$dir" ]] || continue
    owner=$(cat "$dir/owner.pid" 2>/dev/null || true)
    pid_alive "$owner" && continue
    for pidfile in "$dir"/*.pid; do
      [[ "$pidfile" == */owner.pid || ! -f "$pidfile" ]] && continue
      pid=$(cat "$pidfile")
      # Only if that pid is still one of ours (pids get reused): its command line names this checkout.
      if pid_alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$ROOT/"; then
        stop_pid "$pid" "stale $(basename "$pidfile" .pid)" 5
      fi
    done
    rm -rf "$dir"
  done
}

# start_bg NAME LOGFILE CMD...: start CMD in its own session (so a Ctrl-C reaches the
# script, which then stops things in order), record its pid, stop it on exit.
# LOGFILE "-" keeps the script's stdout/stderr.
start_bg() {
  local name=$1 log=$2 pid
  shift 2
  if [[ "$log" == - ]]; then
    setsid "$@" </dev/null &
  else
    setsid "$@" >>"$log" 2>&1 </dev/null &
  fi
  pid=$!
  echo "$pid" >"$STACK_DIR/$name.pid"
  on_exit "stop_pid $pid $name; rm -f '$STACK_DIR/$name.pid'; say '$name: stopped'"
  _LAST_PID=$pid
}

# ---- URL helpers ---------------------------------------------------------------
# url_hostport URL: "host:port" of a scheme://[user[:pw]@]host[:port][/...] URL.
url_hostport() {
  local rest=${1#*://} default_port=${2:-}
  rest=${rest%%/*}
  rest=${rest%%\?*}
  rest=${rest##*@}
  if [[ "$rest" != *:* && -n "$default_port" ]]; then rest="$rest:$default_port"; fi
  echo "$rest"
}

# pg_url_with_db URL DBNAME: the same server URL pointing at another database.
pg_url_with_db() {
  local url=$1 db=$2
  [[ "$url" =~ ^(postgres(ql)?://[^/?]*)(/[^?]*)?(\?.*)?$ ]] || die "not a postgres URL: $url"
  echo "${BASH_REMATCH[1]}/$db${BASH_REMATCH[4]}"
}

# ---- Postgres ------------------------------------------------------------------
pg_bindir() {
  local d
  d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n1)
  [[ -n "$d" && -x "$d/pg_ctl" ]] || die "Postgres server binaries not found under /usr/lib/postgresql (run scripts/bootstrap)"
  echo "$d"
}

# Run a Postgres server binary as a non-root user (initdb/postgres refuse to run as root).
_pg_as_owner() {
  if ((EUID == 0)); then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_admin_ok() { psql "$1" -XAtqc 'select 1' >/dev/null 2>&1; }

# The URLs the scripts make for a loopback Postgres say sslmode=disable: our tools, like Spin, otherwise
# use TLS whenever the server offers it and verify its certificate, which a local server's (the
# machine's snakeoil, made for its hostname) does not pass for 127.0.0.1.
postgres_up() {
  local use_system=${USE_SYSTEM_SERVICES:-1}
  if [[ -n "${DATABASE_ADMIN_URL:-}" ]]; then
    PG_ADMIN_URL=$DATABASE_ADMIN_URL
    pg_admin_ok "$PG_ADMIN_URL" || die "postgres: DATABASE_ADMIN_URL is set but does not accept a connection"
    say "postgres: using DATABASE_ADMIN_URL ($(url_hostport "$PG_ADMIN_URL" 5432))"
  elif [[ "$use_system" != 0 ]] && pg_isready -q -h 127.0.0.1 -p 5432 -t 2; then
    PG_ADMIN_URL="postgres://${PG_ADMIN_USER:-postgres}@127.0.0.1:5432/postgres?sslmode=disable"
    pg_admin_ok "$PG_ADMIN_URL" ||
      die "postgres: 127.0.0.1:5432 answers but refuses user '${PG_ADMIN_USER:-postgres}' without a password; set DATABASE_ADMIN_URL=postgres://USER:PASSWORD@127.0.0.1:5432/postgres (a superuser)"
    say "postgres: using the server on 127.0.0.1:5432"
  else
    _postgres_private_up
  fi
  PG_HOSTPORT=$(url_hostport "$PG_ADMIN_URL" 5432)
  export PG_ADMIN_URL PG_HOSTPORT
}

_postgres_private_up() {
  local bindir base="$DATA_DIR/pg" pgdata port pid
  bindir=$(pg_bindir)
  pgdata="$base/data"
  # Already running (started by another script of this checkout)? Reuse it, leave it running.
  if [[ -f "$pgdata/postmaster.pid" ]]; then
    pid=$(sed -n 1p "$pgdata/postmaster.pid")
    port=$(sed -n 4p "$pgdata/postmaster.pid")
    if pid_alive "$pid" && pg_isready -q -h 127.0.0.1 -p "$port" -t 2; then
      PG_ADMIN_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
      say "postgres: reusing the private cluster already running in .data/pg (port $port)"
      return 0
    fi
  fi
  mkdir -p "$base"
  if ((EUID == 0)); then
    chown postgres: "$base"
    runuser -u postgres -- test -w "$base" ||
      die "postgres: user 'postgres' cannot write $base (a parent directory is not traversable); set DATABASE_ADMIN_URL"
  fi
  if [[ ! -f "$pgdata/PG_VERSION" ]]; then
    say "postgres: initdb of a private cluster in .data/pg"
    _pg_as_owner "$bindir/initdb" -D "$pgdata" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
      >"$base/initdb.log" 2>&1 || { cat "$base/initdb.log" >&2; die "postgres: initdb failed"; }
  fi
  # The port of the last start if it is free (stable URLs, and the demo tenant stays known).
  port=$(pick_port "${PG_PORT:-}" "$(cat "$base/port" 2>/dev/null || true)")
  echo "$port" >"$base/port"
  _pg_as_owner setsid "$bindir/pg_ctl" -D "$pgdata" -l "$base/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='' -c synchronous_commit=off" \
    start >/dev/null || { tail -n 20 "$base/postgres.log" >&2; die "postgres: pg_ctl start failed"; }
  on_exit "postgres_private_down '$bindir' '$pgdata'"
  PG_ADMIN_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
  say "postgres: started a private cluster in .data/pg on 127.0.0.1:$port"
}

postgres_private_down() {
  local bindir=$1 pgdata=$2
  [[ -f "$pgdata/postmaster.pid" ]] || return 0
  _pg_as_owner "$bindir/pg_ctl" -D "$pgdata" -m fast -w -t 30 stop >/dev/null 2>&1 ||
    warn "postgres: pg_ctl stop failed (see .data/pg/postgres.log)"
  say "postgres: stopped the private cluster"
}

# pg_drop_db DBNAME: drop a database on the admin server (kicking out connections).
pg_drop_db() {
  psql "$PG_ADMIN_URL" -XAtq -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null
}

# ---- Redis ---------------------------------------------------------------------
redis_up() {
  local use_system=${USE_SYSTEM_SERVICES:-1} port dir
  if [[ -n "${REDIS_URL:-}" ]]; then
    [[ "$(redis-cli -u "$REDIS_URL" ping 2>/dev/null)" == PONG ]] ||
      die "redis: REDIS_URL is set but does not answer PING"
    say "redis: using REDIS_URL ($(url_hostport "$REDIS_URL" 6379))"
  elif [[ "$use_system" != 0 ]] && [[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" == PONG ]]; then
    REDIS_URL="redis://127.0.0.1:6379"
    say "redis: using the server on 127.0.0.1:6379"
  else
    have redis-server || die "redis: redis-server not found (run scripts/bootstrap)"
    port=$(pick_port "${REDIS_PORT:-}")
    dir="$STACK_DIR/redis"
    mkdir -p "$dir"
    start_bg redis "$STACK_DIR/logs/redis.log" redis-server --bind 127.0.0.1 --port "$port" \
      --save '' --appendonly no --dir "$dir" --daemonize no
    REDIS_URL="redis://127.0.0.1:$port"
    WAIT_PID=$_LAST_PID wait_until 20 "redis" redis_ping "$REDIS_URL" ||
      { tail -n 20 "$STACK_DIR/logs/redis.log" >&2; die "redis: private server did not start"; }
    say "redis: started a private server on 127.0.0.1:$port"
  fi
  REDIS_HOSTPORT=$(url_hostport "$REDIS_URL" 6379)
  export REDIS_URL REDIS_HOSTPORT
}
redis_ping() { [[ "$(redis-cli -u "$1" ping 2>/dev/null)" == PONG ]]; }

# ---- Garage (S3) -----------------------------------------------------------------
# s3_curl METHOD KEY [curl args...]: a SigV4-signed path-style request to $S3_ENDPOINT/$S3_BUCKET/KEY.
s3_curl() {
  local method=$1 key=$2
  shift 2
  curl -sS --fail --max-time 20 -X "$method" \
    --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY_ID:$S3_SECRET_ACCESS_KEY" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@" "$S3_ENDPOINT/$S3_BUCKET/$key"
}

# s3_probe: PUT, HEAD, GET and DELETE a probe object with real SigV4 requests.
s3_probe() {
  local key body got
  key="probe/$(rand_hex 8)"
  body="probe $(rand_hex 8)"
  printf '%s' "$body" | s3_curl PUT "$key" -H 'content-type: text/plain' --data-binary @- -o /dev/null || return 1
  s3_curl HEAD "$key" -I -o /dev/null || return 1
  got=$(s3_curl GET "$key") || return 1
  s3_curl DELETE "$key" -o /dev/null || return 1
  [[ "$got" == "$body" ]]
}

# Ready when a signed round trip works; gives up at once when one of its servers died
# (garage keeps running when e.g. the S3 port is taken).
_garage_ready() {
  if grep -q 'server exited with error' "$1" 2>/dev/null; then
    kill -TERM "$WAIT_PID" 2>/dev/null || true
    return 1
  fi
  s3_probe
}

garage_up() {
  if [[ -n "${S3_ENDPOINT:-}" && -n "${S3_ACCESS_KEY_ID:-}" && -n "${S3_SECRET_ACCESS_KEY:-}" ]]; then
    S3_REGION=${S3_REGION:-garage}
    S3_BUCKET=${S3_BUCKET:-attachments}
    export S3_ENDPOINT S3_REGION S3_BUCKET S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY
    s3_probe || die "s3: S3_ENDPOINT is set but a signed PUT/HEAD/GET/DELETE in bucket '$S3_BUCKET' failed"
    say "s3: using S3_ENDPOINT ($S3_ENDPOINT, bucket $S3_BUCKET)"
    return 0
  fi
  have garage || die "garage: not installed (run scripts/bootstrap)"
  local dir="$STACK_DIR/garage" s3_port rpc_port admin_port prefer=${STACK_STANDARD_PORTS:-0}
  mkdir -p "$dir/meta" "$dir/data"
  # Secrets and keys: generated once per stack directory and kept there.
  # shellcheck disable=SC2016 # the generators are evaluated by load_or_create_env
  load_or_create_env "$dir/keys.env" \
    'GARAGE_RPC_SECRET=rand_hex 32' \
    'GARAGE_ADMIN_TOKEN=rand_hex 32' \
    'GARAGE_ACCESS_KEY=echo "GK$(rand_hex 12)"' \
    'GARAGE_SECRET_KEY=rand_hex 32'
  if [[ "$prefer" == 1 ]]; then
    s3_port=$(pick_port "${GARAGE_S3_PORT:-}" 3900)
    rpc_port=$(pick_port "${GARAGE_RPC_PORT:-}" 3901)
    admin_port=$(pick_port "${GARAGE_ADMIN_PORT:-}" 3903)
  else
    s3_port=$(pick_port "${GARAGE_S3_PORT:-}")
    rpc_port=$(pick_port "${GARAGE_RPC_PORT:-}")
    admin_port=$(pick_port "${GARAGE_ADMIN_PORT:-}")
  fi
  cat >"$dir/garage.toml" <<TOML
# Written by scripts/lib/services.sh on every start; edit the script, not this file.
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1

rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$GARAGE_RPC_SECRET"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin_port"
admin_token = "$GARAGE_ADMIN_TOKEN"
TOML
  chmod 600 "$dir/garage.toml"
  # Ours: garage_cors may configure its bucket.
  GARAGE_OURS=1
  S3_ENDPOINT="http://127.0.0.1:$s3_port"
  S3_REGION=garage
  S3_BUCKET=attachments
  S3_ACCESS_KEY_ID=$GARAGE_ACCESS_KEY
  S3_SECRET_ACCESS_KEY=$GARAGE_SECRET_KEY
  export S3_ENDPOINT S3_REGION S3_BUCKET S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY
  # --single-node creates the one-node layout; --default-bucket creates the key and bucket
  # named by these variables (garage 2.5 `garage server --help`).
  start_bg garage "$STACK_DIR/logs/garage.log" env RUST_LOG="${GARAGE_LOG:-garage=warn}" \
    GARAGE_DEFAULT_ACCESS_KEY="$S3_ACCESS_KEY_ID" GARAGE_DEFAULT_SECRET_KEY="$S3_SECRET_ACCESS_KEY" \
    GARAGE_DEFAULT_BUCKET="$S3_BUCKET" \
    garage -c "$dir/garage.toml" server --single-node --default-bucket
  WAIT_PID=$_LAST_PID wait_until "${GARAGE_START_TIMEOUT:-60}" "garage" _garage_ready "$STACK_DIR/logs/garage.log" ||
    { tail -n 30 "$STACK_DIR/logs/garage.log" >&2; die "garage: no working signed S3 round trip on $S3_ENDPOINT"; }
  say "garage: single node up, S3 on $S3_ENDPOINT (bucket $S3_BUCKET, signed round trip ok), admin on 127.0.0.1:$admin_port"
}

# header_value NAME: the value of header NAME (any case) in the HTTP head on stdin, without CR.
header_value() {
  awk -v n="$1" '{ sub(/\r$/, "") } index(tolower($0), n ":") == 1 { sub(/^[^:]*: */, ""); print; exit }'
}

# xml_text TEXT: TEXT escaped for an XML element.
xml_text() {
  local t=${1//&/&amp;}
  t=${t//</&lt;}
  printf '%s' "${t//>/&gt;}"
}

# garage_cors ORIGINS: PutBucketCors on our Garage's bucket for ORIGINS (comma-separated): methods PUT
# (the parts of a direct upload, to presigned URLs), GET and HEAD, any request header, ETag exposed (the
# client reads each part's ETag to complete the upload), preflight answers cached for an hour. Then
# checks it as a browser would meet it: an OPTIONS preflight for a PUT from the first origin must be
# allowed for that origin, and a response to that origin must expose ETag. Does nothing for an
# S3_ENDPOINT given from outside: its owner sets its CORS (README, "Bucket CORS").
garage_cors() {
  local origins=$1 o rules="" xml sha md5 key hdrs origin="" allowed list
  if [[ -z "${GARAGE_OURS:-}" ]]; then
    say "s3: bucket CORS left as it is (S3_ENDPOINT was given; see README, Bucket CORS)"
    return 0
  fi
  # One rule per origin: Garage answers a match with all of its rule's origins in one
  # Access-Control-Allow-Origin, which browsers refuse when there are several.
  IFS=, read -ra list <<<"$origins"
  for o in "${list[@]}"; do
    o=$(printf '%s' "$o" | tr -d '[:space:]')
    [[ -n "$o" ]] || continue
    [[ -n "$origin" ]] || origin=$o
    rules+="<CORSRule><AllowedOrigin>$(xml_text "$o")</AllowedOrigin><AllowedMethod>PUT</AllowedMethod>"
    rules+="<AllowedMethod>GET</AllowedMethod><AllowedMethod>HEAD</AllowedMethod><AllowedHeader>*</AllowedHeader>"
    rules+="<ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>3600</MaxAgeSeconds></CORSRule>"
  done
  [[ -n "$rules" ]] || { warn "s3: no origin for the bucket CORS rule"; return 1; }
  xml="<CORSConfiguration>$rules</CORSConfiguration>"
  # Garage refuses a bucket configuration whose body hash is not signed: sign the real SHA-256 (and
  # send Content-MD5, which AWS requires for PutBucketCors).
  sha=$(printf '%s' "$xml" | sha256sum | cut -d' ' -f1)
  md5=$(printf '%s' "$xml" | openssl dgst -md5 -binary | base64)
  curl -sS --fail --max-time 20 -X PUT --aws-sigv4 "aws:amz:$S3_REGION:s3" \
    --user "$S3_ACCESS_KEY_ID:$S3_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: $sha" -H "content-md5: $md5" \
    -H 'content-type: application/xml' --data-binary "$xml" -o /dev/null "$S3_ENDPOINT/$S3_BUCKET?cors=" ||
    { warn "s3: PutBucketCors failed"; return 1; }

  # The check: a preflight, then a real (signed) response, both from the first origin.
  hdrs=$(curl -sS --max-time 10 -X OPTIONS -o /dev/null -D - "$S3_ENDPOINT/$S3_BUCKET/cors-probe" \
    -H "Origin: $origin" -H 'Access-Control-Request-Method: PUT' -H 'Access-Control-Request-Headers: content-type') ||
    { warn "s3: the CORS preflight got no answer"; return 1; }
  allowed=$(header_value access-control-allow-origin <<<"$hdrs")
  [[ "$allowed" == "$origin" || "$allowed" == "*" ]] ||
    { warn "s3: the CORS preflight from $origin was not allowed:"$'\n'"$hdrs"; return 1; }
  key="probe/cors-$(rand_hex 8)"
  printf 'cors' | s3_curl PUT "$key" --data-binary @- -o /dev/null || return 1
  hdrs=$(s3_curl GET "$key" -H "Origin: $origin" -o /dev/null -D -) || return 1
  s3_curl DELETE "$key" -o /dev/null || true
  [[ ",$(header_value access-control-expose-headers <<<"$hdrs" | tr -d ' ' | tr '[:upper:]' '[:lower:]')," == *,etag,* ]] ||
    { warn "s3: a response to $origin does not expose ETag:"$'\n'"$hdrs"; return 1; }
  say "s3: bucket CORS for $origins (PUT GET HEAD, ETag exposed; preflight checked)"
}

# ---- ClamAV (clamd) ----------------------------------------------------------------
# clamd_ping HOST:PORT: true when clamd answers zPING with PONG.
clamd_ping() {
  local host=${1%:*} port=${1##*:}
  (
    exec 3<>"/dev/tcp/$host/$port" || exit 1
    printf 'zPING\0' >&3
    IFS= read -r -t 5 -d '' answer <&3
    [[ "$answer" == PONG ]]
  ) 2>/dev/null
}

clamd_up() {
  if [[ -n "${CLAMD_ADDR:-}" ]]; then
    clamd_ping "$CLAMD_ADDR" || die "clamd: CLAMD_ADDR is set ($CLAMD_ADDR) but does not answer PING"
    export CLAMD_ADDR
    say "clamd: using CLAMD_ADDR ($CLAMD_ADDR)"
    return 0
  fi
  local bin dir="$STACK_DIR/clamd" port db=${CLAMD_DATABASE_DIR:-$ROOT/crates/scan-worker/signatures}
  bin=$(command -v clamd || echo /usr/sbin/clamd)
  [[ -x "$bin" ]] || die "clamd: not installed (run scripts/bootstrap: Debian clamav-daemon)"
  compgen -G "$db/*.[hn]db" >/dev/null || die "clamd: no signature database in $db"
  port=$(pick_port "${CLAMD_PORT:-}")
  mkdir -p "$dir/tmp"
  # StreamMaxLength must stay above the scan worker's own cap (SCAN_MAX_BYTES, 60 MiB by default):
  # the worker refuses larger objects itself ("too large to scan") instead of streaming them.
  # AlertExceedsMax: content past clamd's other limits is reported (Heuristics.Limits.Exceeded),
  # not answered OK. No LocalSocket. The limits (CLAMD_STREAM_MAX, CLAMD_SCAN_MAX) let a scan worker
  # with a raised cap judge a 1 GiB file (the large-file tests and scripts/bench do); MaxScanSize counts
  # every byte clamd examines, normalised copies included, so it is well above the file.
  cat >"$dir/clamd.conf" <<CONF
# Written by scripts/lib/services.sh on every start; edit the script, not this file.
Foreground yes
TCPSocket $port
TCPAddr 127.0.0.1
DatabaseDirectory $db
TemporaryDirectory $dir/tmp
StreamMaxLength ${CLAMD_STREAM_MAX:-1100M}
MaxFileSize ${CLAMD_STREAM_MAX:-1100M}
MaxScanSize ${CLAMD_SCAN_MAX:-4000M}
AlertExceedsMax yes
MaxThreads ${CLAMD_MAX_THREADS:-4}
LogFile $STACK_DIR/logs/clamd.log
LogTime yes
SelfCheck 3600
CONF
  start_bg clamd "$STACK_DIR/logs/clamd.log" "$bin" --config-file="$dir/clamd.conf"
  CLAMD_ADDR="127.0.0.1:$port"
  export CLAMD_ADDR
  WAIT_PID=$_LAST_PID wait_until "${CLAMD_START_TIMEOUT:-60}" "clamd" clamd_ping "$CLAMD_ADDR" ||
    { tail -n 20 "$STACK_DIR/logs/clamd.log" >&2; die "clamd: private daemon did not answer PING on $CLAMD_ADDR"; }
  say "clamd: started a private daemon on $CLAMD_ADDR (signatures: ${db#"$ROOT"/})"
}

# ---- all of them -----------------------------------------------------------------
services_up() {
  stack_init "$1"
  postgres_up
  redis_up
  garage_up
  clamd_up
}

services_print_env() {
  local k
  for k in PG_ADMIN_URL REDIS_URL S3_ENDPOINT S3_REGION S3_BUCKET S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY CLAMD_ADDR; do
    printf '%s=%s\n' "$k" "${!k}"
  done
}

# ---- direct use ------------------------------------------------------------------
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  services_up "${1:-services}"
  services_print_env
  say "services are up; Ctrl-C stops what this started"
  sleep infinity &
  on_exit "kill $! 2>/dev/null"
  wait $!
fi

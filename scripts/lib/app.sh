# shellcheck shell=bash
# The application on top of the services: secrets, database migration, the host that serves it (our
# runner, spinlet, or the real Spin CLI) with its Spin variables, and the settings file tests and
# newcomers use (dev.env).
#
# Knobs: APP_HOST (spinlet, the default, or spin: `spin up` of the Spin CLI found by find_spin),
#        APP_PLATFORM (spinlet only: a production platform's limits, spinlet's --platform, e.g.
#        fermyon-wasm-functions; default none),
#        SPIN_BIN (the Spin CLI; else `spin` on PATH),
#        PORT (app port), APP_START_TIMEOUT (seconds, default 300), ATTACHMENTS_APP_PASSWORD,
#        ATTACHMENTS_SCANNER_PASSWORD (the scan worker's role),
#        any SPIN_VARIABLE_* already in the environment wins over the computed one.

[[ -n "${_LIB_APP_LOADED:-}" ]] && return 0
_LIB_APP_LOADED=1
# shellcheck source=scripts/lib/services.sh
source "$(dirname "${BASH_SOURCE[0]}")/services.sh"

SPINLET="$ROOT/target/release/spinlet"
: "${APP_HOST:=spinlet}"
: "${APP_PLATFORM:=none}"
MIGRATE="$ROOT/target/release/migrate"
# shellcheck disable=SC2034 # used by the scripts that source this
SEED="$ROOT/target/release/seed"
MANIFEST="$ROOT/spin.toml"
APP_DB_USER=attachments_app
SCANNER_DB_USER=attachments_scanner

KEYGEN="$ROOT/target/release/keygen"
SCAN_WORKER_BIN="$ROOT/target/release/scan-worker"

# Dev secrets: generated once into .data/secrets.env (mode 600, KEY=value lines read by
# load_or_create_env, not meant to be sourced) and reused; the environment wins.
app_secrets() {
  # shellcheck disable=SC2016 # the generators are evaluated by load_or_create_env
  load_or_create_env "$DATA_DIR/secrets.env" \
    'ATTACHMENTS_APP_PASSWORD=rand_hex 16' \
    'ATTACHMENTS_SCANNER_PASSWORD=rand_hex 16' \
    'URL_SIGNING_KEY=rand_hex 32' \
    'SCAN_CALLBACK_SECRET=rand_hex 32'
  # Auth keys come from auth-core's keygen (crates/auth-core, built by scripts/build).
  if [[ -x "$KEYGEN" ]]; then
    # shellcheck disable=SC2016
    load_or_create_env "$DATA_DIR/secrets.env" \
      'AUTH_SIGNING_KEYS="$KEYGEN" | tr -d "\n"' \
      'AUTH_CONTEXT_KEY="$KEYGEN" context-key | tr -d "\n"' \
      'AUTH_REFRESH_KEY="$KEYGEN" context-key | tr -d "\n"'
  elif [[ -f "$ROOT/crates/auth-core/Cargo.toml" ]]; then
    warn "target/release/keygen is not built (crates/auth-core): no auth keys for the app"
  fi
}

# find_spin: the path of the real Spin CLI (SPIN_BIN, else `spin` on PATH), or nothing.
find_spin() {
  if [[ -n "${SPIN_BIN:-}" ]]; then
    [[ -x "$SPIN_BIN" ]] && echo "$SPIN_BIN"
    return 0
  fi
  command -v spin 2>/dev/null || true
}

# What is missing to run the app, one line each (empty when nothing is).
app_missing_parts() {
  [[ -f "$MANIFEST" ]] || echo "spin.toml does not exist yet"
  if [[ "${APP_HOST:-spinlet}" == spin ]]; then
    [[ -n "$(find_spin)" ]] || echo "APP_HOST=spin but no Spin CLI was found (SPIN_BIN, or spin on PATH)"
  else
    [[ -x "$SPINLET" ]] || echo "target/release/spinlet is not built (tools/spinlet)"
  fi
  [[ -x "$MIGRATE" ]] || echo "target/release/migrate is not built (crates/db-tools)"
  return 0
}

# app_migrate DBNAME: create DBNAME if needed and apply the migrations; sets DATABASE_ADMIN_URL.
# migrate reads the app role's password from $ATTACHMENTS_APP_PASSWORD, the scanner role's from
# $ATTACHMENTS_SCANNER_PASSWORD.
app_migrate() {
  local db=$1
  [[ -x "$MIGRATE" ]] || { say "target/release/migrate is not built (crates/db-tools; run scripts/build)"; return 1; }
  DATABASE_ADMIN_URL=$(pg_url_with_db "$PG_ADMIN_URL" "$db") || return 1
  export DATABASE_ADMIN_URL
  "$MIGRATE" --database-url "$DATABASE_ADMIN_URL" --create-db
}

# app_export_env DBNAME PORT: the stack's settings (dev.env keys) and the Spin variables.
app_export_env() {
  local db=$1 port=$2
  export BASE_URL="http://127.0.0.1:$port"
  export DATABASE_ADMIN_URL
  DATABASE_ADMIN_URL=$(pg_url_with_db "$PG_ADMIN_URL" "$db")
  # A loopback Postgres without TLS (see postgres_up); anything else as the URL's default (verified TLS).
  local tls=""
  case "${PG_HOSTPORT%:*}" in 127.0.0.1 | localhost | "[::1]" | ::1) tls="?sslmode=disable" ;; esac
  export DATABASE_URL="postgres://$APP_DB_USER:$ATTACHMENTS_APP_PASSWORD@$PG_HOSTPORT/$db$tls"
  # The scan worker's: the scanner role, which may only claim and complete scan jobs.
  export SCAN_DATABASE_URL="postgres://$SCANNER_DB_USER:$ATTACHMENTS_SCANNER_PASSWORD@$PG_HOSTPORT/$db$tls"
  export SCAN_CALLBACK_URL="$BASE_URL/api/v1/scan/callback"
  # The scan worker's key, named: the app records `scan-worker` as the sender of what it signs.
  # (secrets.env holds the bare generated secret; an environment that already names it is kept.)
  SCAN_CALLBACK_SECRET="scan-worker:${SCAN_CALLBACK_SECRET#scan-worker:}"
  export SCAN_CALLBACK_SECRET ATTACHMENTS_APP_PASSWORD ATTACHMENTS_SCANNER_PASSWORD PG_ADMIN_URL REDIS_URL
  export S3_ENDPOINT S3_REGION S3_BUCKET S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY

  # docs/CONTRACTS.md "Application variables".
  _spinvar db_host "$PG_HOSTPORT"
  _spinvar db_name "$db"
  _spinvar db_user "$APP_DB_USER"
  _spinvar db_password "$ATTACHMENTS_APP_PASSWORD"
  # The local Postgres (ours or the machine's) listens on loopback without a certificate for that
  # address: no TLS to it. Anything else keeps the manifest's default, require (verified TLS).
  [[ -z "$tls" ]] || _spinvar db_sslmode disable
  _spinvar redis_host "$REDIS_HOSTPORT"
  _spinvar s3_endpoint "$S3_ENDPOINT"
  _spinvar s3_region "$S3_REGION"
  _spinvar s3_bucket "$S3_BUCKET"
  _spinvar s3_access_key_id "$S3_ACCESS_KEY_ID"
  _spinvar s3_secret_access_key "$S3_SECRET_ACCESS_KEY"
  _spinvar public_base_url "$BASE_URL"
  # Auth: the signing ring, its public JWKS, the internal context key.
  if [[ -n "${AUTH_SIGNING_KEYS:-}" ]]; then
    _spinvar auth_signing_keys "$AUTH_SIGNING_KEYS"
    if [[ -z "${SPIN_VARIABLE_AUTH_VERIFICATION_KEYS:-}" ]]; then
      local jwks
      jwks=$("$KEYGEN" jwks <<<"$SPIN_VARIABLE_AUTH_SIGNING_KEYS") || { say "keygen jwks failed"; return 1; }
      _spinvar auth_verification_keys "${jwks//$'\n'/}"
    fi
    _spinvar auth_context_key "$AUTH_CONTEXT_KEY"
    _spinvar auth_refresh_key "$AUTH_REFRESH_KEY"
  fi
  # Download: a key ring `kid:key[,kid:key]` (crates/signed-url); one generated key here.
  _spinvar url_signing_keys "dev1:$URL_SIGNING_KEY"
  # Scan callback: a ring of one named scanner here, the worker (the variable takes
  # `name:secret,name2:secret2`, one entry per scanner).
  _spinvar scan_callback_secrets "$SCAN_CALLBACK_SECRET"
}
# _spinvar NAME VALUE: export SPIN_VARIABLE_<NAME> unless the environment already sets it.
_spinvar() {
  local var="SPIN_VARIABLE_${1^^}"
  [[ -n "${!var:-}" ]] || export "$var=$2"
}

DEV_ENV_KEYS=(APP_HOST APP_PLATFORM BASE_URL DATABASE_URL SCAN_DATABASE_URL DATABASE_ADMIN_URL REDIS_URL S3_ENDPOINT S3_REGION S3_BUCKET
  S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY SCAN_CALLBACK_URL SCAN_CALLBACK_SECRET ATTACHMENTS_APP_PASSWORD
  ATTACHMENTS_SCANNER_PASSWORD PG_ADMIN_URL CLAMD_ADDR)

# write_env_file FILE: the dev.env keys and the app's SPIN_VARIABLE_* as shell KEY=value lines
# (single-quoted when needed; mode 600: it holds secrets).
write_env_file() {
  local file=$1 k v tmp
  tmp="$file.tmp.$$"
  (
    umask 077
    {
      echo "# Written by $_SCRIPT_NAME at $(date -u +%FT%TZ) for the running stack; source it or read KEY=value."
      for k in "${DEV_ENV_KEYS[@]}" $(compgen -v SPIN_VARIABLE_ | sort); do
        v=${!k}
        if [[ "$v" =~ ^[A-Za-z0-9_./:@%+=,-]*$ ]]; then
          printf '%s=%s\n' "$k" "$v"
        else
          printf "%s='%s'\n" "$k" "${v//\'/\'\\\'\'}"
        fi
      done
    } >"$tmp"
  )
  mv -f "$tmp" "$file"
}

app_health() { curl -fsS --max-time 2 -o /dev/null "$1/.well-known/spin/health"; }

# scan_worker_start LOGFILE: one scan worker (crates/scan-worker) in the background, stopped on exit,
# with the stack's settings from the environment (SCAN_DATABASE_URL, S3_*, CLAMD_ADDR, SCAN_CALLBACK_URL,
# SCAN_CALLBACK_SECRET = scan-worker:<secret>). Only warns when it is not built: uploads then stay pending.
scan_worker_start() {
  local log=$1
  if [[ ! -x "$SCAN_WORKER_BIN" ]]; then
    warn "target/release/scan-worker is not built (crates/scan-worker): uploads stay pending"
    return 0
  fi
  start_bg scan-worker "$log" "$SCAN_WORKER_BIN"
  say "scan-worker: running (pid $_LAST_PID, clamd $CLAMD_ADDR, log ${log#"$ROOT"/})"
}

# app_start PORT LOGFILE: start the app on APP_HOST (stopped on exit) and wait until it is healthy;
# sets APP_PID. Returns non-zero (does not exit) when it cannot.
app_start() {
  local port=$1 log=$2 missing host=${APP_HOST:-spinlet} cmd
  missing=$(app_missing_parts)
  [[ -z "$missing" ]] || { say "cannot start the app: ${missing//$'\n'/; }"; return 1; }
  ! port_in_use "$port" || { say "port $port is in use (another scripts/dev?); set PORT"; return 1; }
  if [[ "$host" == spin && "${APP_PLATFORM:-none}" != none ]]; then
    say "APP_PLATFORM=$APP_PLATFORM is our runner's (spinlet --platform); spin up has no platform limits"
    return 1
  fi
  if [[ "$host" == spin ]]; then
    # Its state (and component logs, which also go to the log file) in the stack's directory.
    mkdir -p "$STACK_DIR/spin-state"
    cmd=("$(find_spin)" up --from "$MANIFEST" --listen "127.0.0.1:$port" --state-dir "$STACK_DIR/spin-state" --log-dir "$STACK_DIR/spin-state/logs")
  else
    mkdir -p "$DATA_DIR/cache"
    cmd=("$SPINLET" up --from "$MANIFEST" --listen "127.0.0.1:$port" --cache-dir "$DATA_DIR/cache"
      --platform "${APP_PLATFORM:-none}")
  fi
  say "app: ${cmd[*]#"$ROOT"/}"
  start_bg app "$log" "${cmd[@]}"
  if ! WAIT_PID=$_LAST_PID wait_until "${APP_START_TIMEOUT:-300}" "app" app_health "http://127.0.0.1:$port"; then
    if [[ "$log" != - ]]; then tail -n 30 "$log" >&2; fi
    say "app: $host did not become healthy on 127.0.0.1:$port"
    return 1
  fi
  # shellcheck disable=SC2034 # used by the scripts that source this
  APP_PID=$_LAST_PID
  say "app: healthy on http://127.0.0.1:$port ($host)"
}

# app_stop: stop the app app_start started (before starting it again on another host).
app_stop() {
  [[ -n "${APP_PID:-}" ]] || return 0
  stop_pid "$APP_PID" app
  APP_PID=
}

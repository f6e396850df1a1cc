# shellcheck shell=bash
# Shared helpers for scripts/*: repo paths, logging, cleanup-on-exit, ports, secrets.
# Source it; do not run it.

[[ -n "${_LIB_COMMON_LOADED:-}" ]] && return 0
_LIB_COMMON_LOADED=1

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DATA_DIR="${DATA_DIR:-$ROOT/.data}"
export ROOT DATA_DIR
# `cargo install`ed tools (garage, wasm-tools) live here.
case ":$PATH:" in *":${CARGO_HOME:-$HOME/.cargo}/bin:"*) ;; *) export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH" ;; esac

# ---- logging ---------------------------------------------------------------
_SCRIPT_NAME="$(basename "$0")"
say()  { printf '%s: %s\n' "$_SCRIPT_NAME" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$_SCRIPT_NAME" "$*" >&2; }
die()  { printf '%s: error: %s\n' "$_SCRIPT_NAME" "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

# ---- cleanup on exit (LIFO), also on Ctrl-C, TERM and failure ----------------
# on_exit 'COMMANDS': eval'd at exit, last registered first; they may read $EXIT_RC.
_CLEANUP=()
on_exit() { _CLEANUP+=("$*"); }
_run_cleanup() {
  local rc=$? i
  # shellcheck disable=SC2034 # read by the on_exit commands
  EXIT_RC=$rc
  trap - EXIT INT TERM HUP
  for ((i = ${#_CLEANUP[@]} - 1; i >= 0; i--)); do
    eval "${_CLEANUP[i]}" || true
  done
  exit "$rc"
}
trap _run_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---- processes ---------------------------------------------------------------
pid_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

# stop_pid PID [NAME] [GRACE_SECONDS]: TERM, wait, then KILL; the whole process group when PID leads
# one (start_bg's setsid: `spin up` runs the app in a child process that must go too).
stop_pid() {
  local pid=$1 name=${2:-process} grace=${3:-15} i
  pid_alive "$pid" || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    pid_alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  warn "$name (pid $pid) did not stop in ${grace}s; killing it"
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# wait_until TIMEOUT_SECONDS DESCRIPTION CMD...: poll CMD until it succeeds.
# If WAIT_PID is set and that process dies, give up at once.
wait_until() {
  local timeout=$1 what=$2 start=$SECONDS
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [[ -n "${WAIT_PID:-}" ]] && ! pid_alive "$WAIT_PID"; then
      say "$what: the process exited before it was ready"
      return 1
    fi
    if ((SECONDS - start >= timeout)); then
      say "$what: not ready after ${timeout}s"
      return 1
    fi
    sleep 0.2
  done
}

# ---- ports -------------------------------------------------------------------
_PORTS_HANDED_OUT=" "
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port: prints a TCP port on 127.0.0.1 that nothing listens on (and that this
# script has not handed out before).
free_port() {
  local p n
  for ((n = 0; n < 50; n++)); do
    if have python3; then
      p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    else
      p=$((20000 + RANDOM % 40000))
    fi
    [[ "$_PORTS_HANDED_OUT" == *" $p "* ]] && continue
    port_in_use "$p" && continue
    _PORTS_HANDED_OUT+="$p "
    echo "$p"
    return 0
  done
  die "could not find a free TCP port"
}

# pick_port VALUE [PREFERRED]: VALUE if non-empty; else PREFERRED if free; else a free port.
pick_port() {
  local value=${1:-} preferred=${2:-}
  if [[ -n "$value" ]]; then echo "$value"; return 0; fi
  if [[ -n "$preferred" ]] && ! port_in_use "$preferred" && [[ "$_PORTS_HANDED_OUT" != *" $preferred "* ]]; then
    _PORTS_HANDED_OUT+="$preferred "
    echo "$preferred"
    return 0
  fi
  free_port
}

# ---- secrets -----------------------------------------------------------------
rand_hex() { od -An -vtx1 -N "$1" /dev/urandom | tr -d ' \n'; }

# load_or_create_env FILE NAME=GENERATOR...: keeps generated values in FILE (mode 600)
# so that they are generated once and reused; exports them unless already set.
load_or_create_env() {
  local file=$1 spec name gen
  shift
  mkdir -p "$(dirname "$file")"
  [[ -f "$file" ]] || (umask 077 && : >"$file")
  chmod 600 "$file"
  for spec in "$@"; do
    name=${spec%%=*}
    gen=${spec#*=}
    if ! grep -q "^${name}=" "$file"; then
      printf '%s=%s\n' "$name" "$(eval "$gen")" >>"$file"
    fi
  done
  local line key
  while IFS= read -r line; do
    [[ "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
    key=${BASH_REMATCH[1]}
    [[ -n "${!key:-}" ]] || export "$key=${BASH_REMATCH[2]}"
  done <"$file"
}

# ---- workspaces ----------------------------------------------------------------
# The product's workspace is $ROOT. The local runner (spinlet) is a workspace of its own, with its own
# Cargo.lock, that builds into the same target/ (its .cargo/config.toml).
RUNNER_DIR="$ROOT/tools/spinlet"

# runner_cargo ARGS...: cargo in the runner's workspace. It runs from tools/spinlet because cargo reads
# .cargo/config.toml from the working directory, not from --manifest-path: from $ROOT the runner would
# build into tools/spinlet/target, not target/.
runner_cargo() { (cd "$RUNNER_DIR" && cargo "$@"); }

# Directories of the product's wasm-only packages (components/*) that exist.
wasm_package_dirs() {
  local d
  for d in "$ROOT"/components/*/; do
    [[ -f "$d/Cargo.toml" ]] && echo "${d%/}"
  done
  return 0
}

# Directories of the runner's fixture components (tools/spinlet/tests/components/*: wasm-only packages of
# the runner's workspace, for its conformance tests and benchmarks) that exist.
runner_fixture_dirs() {
  local d
  for d in "$RUNNER_DIR"/tests/components/*/; do
    [[ -f "$d/Cargo.toml" ]] && echo "${d%/}"
  done
  return 0
}

# package_name DIR: the [package] name in DIR/Cargo.toml.
package_name() {
  awk '
    /^\[/ { in_pkg = ($0 ~ /^\[package\]/) }
    in_pkg && /^[[:space:]]*name[[:space:]]*=/ {
      sub(/^[^=]*=[[:space:]]*"/, ""); sub(/".*$/, ""); print; exit
    }' "$1/Cargo.toml"
}

# component_wasm DIR: where the release build of the component package in DIR lands, for either
# workspace (both build into target/; scripts/build copies the Debian fallback's output there too).
component_wasm() {
  local name
  name=$(package_name "$1")
  echo "$ROOT/target/wasm32-wasip2/release/${name//-/_}.wasm"
}

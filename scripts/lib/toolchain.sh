# shellcheck shell=bash
# The wasm32-wasip2 toolchain: rustup's target where it is installed, else Debian's
# rustc-web + rust-web-src with -Zbuild-std, for machines where rustup cannot download the target (the
# std sources rust-web-src ships are compiled for wasm32-wasip2, linked with lld-19 and wasi-libc).
#
# Knobs:
#   WASM_TOOLCHAIN=rustup|debian   force one (default: rustup if its target is installed)

[[ -n "${_LIB_TOOLCHAIN_LOADED:-}" ]] && return 0
_LIB_TOOLCHAIN_LOADED=1
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

WASM_TARGET=wasm32-wasip2
# Debian fallback pieces.
DEBIAN_RUSTC=/usr/bin/rustc
DEBIAN_CARGO=/usr/bin/cargo
DEBIAN_WASM_LD=/usr/bin/wasm-ld-19
DEBIAN_WASI_LIBDIR=/usr/lib/wasm32-wasi
TOOLCHAIN_SHIM_DIR="$DATA_DIR/toolchain/bin"
# The fallback's artifacts (host build scripts and proc-macros built by Debian's rustc)
# are kept apart from the rustup build.
WASM_FALLBACK_TARGET_DIR="$ROOT/target/wasm-debian"

# True when rustup's wasm32-wasip2 std is installed for the active toolchain.
rustup_target_installed() {
  have rustc || return 1
  local sysroot
  sysroot=$(rustc --print sysroot 2>/dev/null) || return 1
  [[ -d "$sysroot/lib/rustlib/$WASM_TARGET/lib" ]]
}

debian_toolchain_present() {
  [[ -x "$DEBIAN_RUSTC" && -x "$DEBIAN_CARGO" && -x "$DEBIAN_WASM_LD" && -d "$DEBIAN_WASI_LIBDIR" ]] &&
    [[ -d "$("$DEBIAN_RUSTC" --print sysroot 2>/dev/null)/lib/rustlib/src/rust/library" ]]
}

# Prints "rustup" or "debian" (or fails when neither is usable).
wasm_toolchain_mode() {
  case "${WASM_TOOLCHAIN:-}" in
    rustup | debian) echo "$WASM_TOOLCHAIN"; return 0 ;;
    "") ;;
    *) die "WASM_TOOLCHAIN must be 'rustup' or 'debian', not '$WASM_TOOLCHAIN'" ;;
  esac
  if rustup_target_installed; then
    echo rustup
  elif debian_toolchain_present; then
    echo debian
  else
    return 1
  fi
}

# wasm_cargo SUBCOMMAND ARGS...: run cargo for wasm32-wasip2 with whichever toolchain works, in the
# product's workspace, e.g. `wasm_cargo build --release -p auth`.
wasm_cargo() { wasm_cargo_in "$ROOT" "$@"; }

# wasm_cargo_in DIR SUBCOMMAND ARGS...: the same, run from DIR (another workspace, such as the runner's
# in tools/spinlet: cargo reads that workspace's .cargo/config.toml only from there).
wasm_cargo_in() {
  local mode dir=$1 sub=$2
  shift 2
  mode=$(wasm_toolchain_mode) || die "no wasm32-wasip2 toolchain: run scripts/bootstrap"
  if [[ "$mode" == rustup ]]; then
    (cd "$dir" && cargo "$sub" --target "$WASM_TARGET" "$@")
  else
    [[ -x "$TOOLCHAIN_SHIM_DIR/wasm-ld" && -x "$TOOLCHAIN_SHIM_DIR/wasm-component-ld" ]] ||
      die "missing wasm-ld/wasm-component-ld in ${TOOLCHAIN_SHIM_DIR#"$ROOT"/}: run scripts/bootstrap"
    (
      cd "$dir" || exit 1
      # rustup's cargo/rustc come first on PATH: call Debian's by full path.
      export PATH="$TOOLCHAIN_SHIM_DIR:$PATH"
      export RUSTC="$DEBIAN_RUSTC" RUSTC_BOOTSTRAP=1
      export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-L $DEBIAN_WASI_LIBDIR"
      export CARGO_TARGET_DIR="$WASM_FALLBACK_TARGET_DIR"
      unset RUSTUP_TOOLCHAIN
      "$DEBIAN_CARGO" "$sub" -Zbuild-std=std,panic_abort --target "$WASM_TARGET" "$@"
    )
  fi
}

# The linkers the fallback needs on PATH (in .data/toolchain/bin):
#  - `wasm-component-ld`, the linker rustc uses for wasm32-wasip2. Debian's rustc-web does not ship
#    it (it only has its source); rustup's host toolchain does, even where the wasm target cannot be
#    downloaded: link that one, else `cargo install wasm-component-ld` (the version rustc 1.96 pins).
#  - `wasm-ld`, which wasm-component-ld runs: Debian's lld-19 installs it as wasm-ld-19.
ensure_wasm_linkers() {
  mkdir -p "$TOOLCHAIN_SHIM_DIR"
  ln -sfn "$DEBIAN_WASM_LD" "$TOOLCHAIN_SHIM_DIR/wasm-ld"
  [[ -x "$TOOLCHAIN_SHIM_DIR/wasm-component-ld" ]] && return 0
  local found
  found=$(command -v wasm-component-ld 2>/dev/null ||
    find "${RUSTUP_HOME:-$HOME/.rustup}"/toolchains/*/lib/rustlib/*/bin -maxdepth 1 -name wasm-component-ld -type f 2>/dev/null |
    sort -V | tail -n1 || true)
  if [[ -z "$found" ]]; then
    say "wasm32-wasip2: cargo install wasm-component-ld --version 0.5.22 --locked"
    cargo install wasm-component-ld --version 0.5.22 --locked --root "$DATA_DIR/toolchain" \
      >"$DATA_DIR/logs/install-wasm-component-ld.log" 2>&1 || die "cargo install wasm-component-ld failed (see .data/logs)"
    return 0
  fi
  ln -sfn "$found" "$TOOLCHAIN_SHIM_DIR/wasm-component-ld"
}

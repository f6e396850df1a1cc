# shellcheck shell=bash
# Section "console": the browser side (web/). The console's first load in headless Chromium (Debian's
# chromium via puppeteer-core, a fresh profile each time, nothing cached): bytes on the wire and the
# time until the login form takes input, median of 5 loads (web/bench/first-load.mjs); and 100 uploads
# of 100 KiB through the TypeScript client (web/client) at concurrency 10 (web/bench/uploads.ts), against
# an app of its own with the per-user rate limit out of reach.

bench_console() {
  local port base log pid first up
  [[ -d "$ROOT/web/node_modules" ]] || { say "console: web/node_modules is missing (scripts/build runs npm ci)"; return 1; }
  [[ -x "${CHROMIUM:-/usr/bin/chromium}" ]] || { say "console: no chromium (scripts/bootstrap installs it)"; return 1; }
  port=$(pick_port "")
  base="http://127.0.0.1:$port"
  log="$STACK_DIR/logs/bench-console-app.log"
  say "console: spinlet up --manifest spin.toml --listen 127.0.0.1:$port (rate limit out of reach)"
  SPIN_VARIABLE_RATE_LIMIT=1000000000/1h start_bg bench-console-app "$log" \
    "$SPINLET" up --manifest "$MANIFEST" --listen "127.0.0.1:$port" --cache-dir "$DATA_DIR/cache"
  pid=$_LAST_PID
  WAIT_PID=$pid wait_until "${APP_START_TIMEOUT:-300}" "bench console app" app_health "$base" ||
    { tail -n 30 "$log" >&2; return 1; }
  first=$(cd "$ROOT/web" && BASE_URL=$base node bench/first-load.mjs) || { say "console: first load failed"; return 1; }
  up=$(cd "$ROOT/web" && BASE_URL=$base npx --no-install vite-node bench/uploads.ts | tail -n1) ||
    { say "console: uploads failed"; return 1; }
  stop_pid "$pid" bench-console-app 5 || true
  printf '%s\n%s\n' "$first" "$up" >"$BENCH_OUT/console.json"

  local kib requests tti seconds
  read -r kib requests tti seconds < <(python3 -c '
import json, sys
f, u = (json.loads(l) for l in sys.stdin.read().splitlines())
print("%.1f" % (f["bytes"] / 1024), f["requests"], f["interactiveMs"], "%.2f" % u["seconds"])' <<<"$first
$up")
  bench_write_section console "## Console

$(date -u +%Y-%m-%d), $(bench_machine). \`scripts/bench console\`: the stack of scripts/test (release spinlet),
Debian's headless Chromium driven by puppeteer-core, a fresh profile per load.

| measure | figure |
|---|---|
| first load of \`/\`: bytes on the wire (headers and bodies as sent, uncompressed: the app sends no \`Content-Encoding\`), median of 5 | **${kib} KiB** in ${requests} requests (goal < 150 KiB) |
| first load: navigation to a login form that takes input, median of 5 | **${tti} ms** |
| 100 uploads of 100 KiB through the TypeScript client (Node, fetch) at concurrency 10 | **${seconds} s** |"
  bench_summary_row "[Console](#console): first load, bytes on the wire" "< 150 KiB" "${kib} KiB (${requests} requests)" \
    "$(bench_verdict "$kib" "<" 150)"
  bench_summary_row "[Console](#console): first load, time until the login form takes input" "no goal set" "${tti} ms" "—"
  bench_summary_row "[Console](#console): 100 uploads of 100 KiB through the TypeScript client at concurrency 10" "no goal set" "${seconds} s" "—"
}

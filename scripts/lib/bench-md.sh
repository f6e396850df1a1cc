# shellcheck shell=bash
# Writing figures into BENCHMARKS.md: its sections and its summary table. Sourced by scripts/bench
# and scripts/bench-db; needs only bash and python3, no stack, so it can be tried on a copy:
#   BENCH_MD=/tmp/copy.md bash -c '. scripts/lib/bench-md.sh; bench_write_section demo "## Demo"'
#
# A generated section sits between two markers named after it (the bench_<name> function that measures
# it, or `database` for scripts/bench-db), and nothing else in the file is touched:
#   <!-- bench:ingest -->
#   ## Ingest
#   ...
#   <!-- /bench:ingest -->
# The summary table at the top sits between <!-- bench-summary --> and <!-- /bench-summary -->; each row
# is found by its first cell (the measure), so a benchmark rewrites its own rows and no one else's.
#
# Knobs: BENCH_MD (default: BENCHMARKS.md at the repository root).

[[ -n "${_LIB_BENCH_MD_LOADED:-}" ]] && return 0
_LIB_BENCH_MD_LOADED=1
_BENCH_MD_DEFAULT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/BENCHMARKS.md"

# bench_write_section NAME TEXT: replaces what lies between <!-- bench:NAME --> and <!-- /bench:NAME -->
# with TEXT, or appends TEXT between new markers at the end of the file when they are not there yet.
bench_write_section() {
  python3 - "${BENCH_MD:-$_BENCH_MD_DEFAULT}" "$1" "$2" <<'PY'
import os, re, sys
path, name, body = sys.argv[1], sys.argv[2], sys.argv[3].strip("\n")
if not re.fullmatch(r"[a-z0-9_-]+", name):
    sys.exit(f"bench_write_section: bad section name {name!r}")
start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
text = open(path, encoding="utf-8").read() if os.path.exists(path) else "# Benchmarks\n"
block = f"{start}\n\n{body}\n\n{end}"
pattern = re.compile("^" + re.escape(start) + r"\n.*?^" + re.escape(end) + "$", re.S | re.M)
found = len(pattern.findall(text))
if found > 1:
    sys.exit(f"bench_write_section: {path} has {found} sections named {name}")
if found == 1:
    text = pattern.sub(lambda _: block, text, count=1)
elif start in text or end in text:
    sys.exit(f"bench_write_section: {path} has an unpaired marker of section {name}")
else:
    text = text.rstrip("\n") + "\n\n" + block + "\n"
open(path, "w", encoding="utf-8").write(text.rstrip("\n") + "\n")
PY
}

# bench_summary_row MEASURE GOAL FIGURE VERDICT: sets the summary table's row whose first cell is MEASURE
# (appends it when there is none; creates the table under the title when there is none either).
bench_summary_row() {
  python3 - "${BENCH_MD:-$_BENCH_MD_DEFAULT}" "$@" <<'PY'
import os, sys
path, cells = sys.argv[1], [c.strip() for c in sys.argv[2:]]
if len(cells) != 4 or not all(cells) or any("|" in c or "\n" in c for c in cells):
    sys.exit("bench_summary_row: MEASURE GOAL FIGURE VERDICT, non-empty, without | or newlines")
start, end = "<!-- bench-summary -->", "<!-- /bench-summary -->"
row = "| " + " | ".join(cells) + " |"
lines = (open(path, encoding="utf-8").read() if os.path.exists(path) else "# Benchmarks\n").split("\n")
if start not in lines or end not in lines:
    if start in lines or end in lines:
        sys.exit(f"bench_summary_row: {path} has an unpaired summary marker")
    at = 1 if lines and lines[0].startswith("# ") else 0
    lines[at:at] = ["", start, "", "| measure | goal | figure | met or missed |", "|---|---|---|---|", "", end]
a, b = lines.index(start), lines.index(end)
if b < a:
    sys.exit(f"bench_summary_row: {path}: the summary markers are in the wrong order")
table = [i for i in range(a + 1, b) if lines[i].startswith("|")]
if len(table) < 2:
    sys.exit(f"bench_summary_row: {path}: no table between the summary markers")
mine = [i for i in table[2:] if lines[i].split("|")[1].strip() == cells[0]]
if len(mine) > 1:
    sys.exit(f"bench_summary_row: {path}: {len(mine)} rows for {cells[0]!r}")
if mine:
    lines[mine[0]] = row
else:
    lines.insert(table[-1] + 1, row)
open(path, "w", encoding="utf-8").write("\n".join(lines).rstrip("\n") + "\n")
PY
}

# bench_verdict VALUE OP LIMIT: "met" when VALUE OP LIMIT holds (OP: < <= > >=, numbers), else "**missed**";
# "?" when VALUE is not a number (a measurement that did not happen).
bench_verdict() {
  awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
    if (v !~ /^[0-9]+(\.[0-9]+)?$/) { print "?"; exit }
    v += 0; l += 0
    ok = (op == "<" && v < l) || (op == "<=" && v <= l) || (op == ">" && v > l) || (op == ">=" && v >= l)
    print (ok ? "met" : "**missed**")
  }'
}

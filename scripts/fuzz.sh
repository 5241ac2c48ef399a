#!/usr/bin/env bash
# Fuzzes pam_portal's parsers with cargo-fuzz (libFuzzer + AddressSanitizer, nightly toolchain).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      default: 60 s for each of the four targets
#
# Targets (fuzz/fuzz_targets/, harnesses and the properties they check in fuzz/src/lib.rs):
#   config          the TOML configuration parser and its validation
#   portal_answer   the portal's HTTP answers: wire decoding, users, questions, verdicts, phones
#   address         PAM_RHOST, CIDR entries, the portal's ipAddressRestriction, log escaping
#   lockout_record  the lockout record reader (text and on disk), the counting rules, file
#                   names, the question cache reader
#
# Each target runs for SECONDS on its corpus (fuzz/corpus/TARGET, kept in the repository and
# minimized with `cargo fuzz cmin` afterwards to the inputs covering every edge, so it stays
# small), with its dictionary (fuzz/dict/TARGET.dict). A crash or a violated property is saved to fuzz/regressions/TARGET/ (run by
# tests/fuzz_regressions.rs in CI) and the script exits 1 after all targets ran. Executions
# per target go to fuzz/stats.txt. Installs what it needs (nightly toolchain, cargo-fuzz)
# idempotently. Runs on demand, not in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config portal_answer address lockout_record)
case $secs in '' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;; esac

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

cd fuzz
# Default cargo-fuzz build: optimized, with debug assertions and overflow checks (like the
# module's debug build, where an overflow is a panic), and AddressSanitizer.
cargo +nightly fuzz build

mkdir -p logs
found=0
summary=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t" "regressions/$t"
  log="logs/$t.log"
  echo "== $t: ${secs} s"
  dict=()
  [ -f "dict/$t.dict" ] && dict=(-dict="dict/$t.dict")
  set +e
  cargo +nightly fuzz run "$t" "corpus/$t" -- \
    -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -close_fd_mask=1 "${dict[@]}" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  execs=${execs:-0}
  crashes=0
  for a in artifacts/"$t"/crash-* artifacts/"$t"/oom-* artifacts/"$t"/timeout-* artifacts/"$t"/leak-*; do
    [ -e "$a" ] || continue
    cp "$a" "regressions/$t/"
    rm -f "$a"
    crashes=$((crashes + 1))
  done
  if [ $rc -ne 0 ] || [ $crashes -gt 0 ]; then
    found=1
    echo "   FOUND a crash or violated property (exit $rc); input saved under fuzz/regressions/$t/"
    grep -m3 -E "panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer|SUMMARY" "$log" | sed 's/^/   /' || true
  fi
  # Keep the corpus small enough to commit: a minimal set of inputs that covers every edge
  # reached (hit counts and comparison features are not kept).
  cargo +nightly fuzz cmin "$t" "corpus/$t" -- -set_cover_merge=1 -use_counters=0 -use_cmp=0 \
    >/dev/null 2>&1 || true
  files=$(find "corpus/$t" -type f | wc -l)
  size=$(du -sk "corpus/$t" | cut -f1)
  echo "   $execs executions, exit $rc, corpus $files files (${size} KiB)"
  summary+=("$t $execs $secs $rc $files")
done

# Scratch directories of the harnesses (files read from disk) whose process has ended.
for d in "${TMPDIR:-/tmp}"/pam_portal-fuzz.*; do
  pid=${d##*/pam_portal-fuzz.}
  pid=${pid%%.*}
  [ -d "$d" ] && [ ! -d "/proc/$pid" ] && rm -rf "$d"
done

# fuzz/stats.txt: one line per target, the latest run of each (other targets' lines are kept).
stats="$root/fuzz/stats.txt"
stamp="$(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores"
{
  echo "# target executions seconds exit corpus_files date cores (written by scripts/fuzz.sh)"
  for line in "${summary[@]}"; do echo "$line $stamp"; done
  if [ -f "$stats" ]; then
    grep -v '^#' "$stats" | while read -r t rest; do
      printf '%s\n' "${targets[@]}" | grep -qx "$t" || echo "$t $rest"
    done
  fi
} >"$stats.new"
mv "$stats.new" "$stats"
cat "$stats"
exit $found

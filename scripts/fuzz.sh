#!/usr/bin/env bash
# `make fuzz`: runs each cargo-fuzz target in fuzz/ for a bounded time and prints how many
# inputs it executed. Exits non-zero if any target found a crash (the input is kept in
# fuzz/artifacts/<target>/; turn it into a regression test in the normal suite).
#
#   scripts/fuzz.sh [target...]            default: every target in fuzz/fuzz_targets/
#
# Environment:
#   FUZZ_SECONDS=60        time per target
#   FUZZ_SANITIZER=none    none (works on stable Rust), or address/leak/... (then nightly
#                          flags are needed: RUSTC_BOOTSTRAP=1 is set for you; a full rebuild)
#   FUZZ_JOBS=1            parallel fuzzing processes per target
#
# Needs cargo-fuzz (installed from crates.io with `cargo install cargo-fuzz --locked` when
# missing) and a C++ compiler (libFuzzer is built from source by libfuzzer-sys). The first
# build instruments every dependency, the AWS SDK included: about 10 CPU-minutes; later runs
# rebuild only what changed. The corpus grows in fuzz/corpus/<target> (not committed);
# fuzz/seeds/<target> holds a few committed starting inputs.
set -euo pipefail

LOG_TAG="fuzz"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_cmd cargo
FUZZ_DIR="$REPO_ROOT/fuzz"
seconds="${FUZZ_SECONDS:-60}"
sanitizer="${FUZZ_SANITIZER:-none}"
jobs="${FUZZ_JOBS:-1}"
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || die "FUZZ_SECONDS must be a positive whole number, not '$seconds'"
[[ "$jobs" =~ ^[0-9]+$ && "$jobs" -gt 0 ]] || die "FUZZ_JOBS must be a positive whole number, not '$jobs'"

if ! cargo fuzz --version >/dev/null 2>&1; then
  log "cargo-fuzz is not installed: cargo install cargo-fuzz --locked"
  cargo install cargo-fuzz --locked
fi
if [[ "$sanitizer" != "none" ]]; then
  # -Zsanitizer is a nightly flag; this lets the stable toolchain accept it.
  export RUSTC_BOOTSTRAP=1
fi

cd "$FUZZ_DIR"
if (($# > 0)); then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi
((${#targets[@]} > 0)) || die "no fuzz targets found in $FUZZ_DIR/fuzz_targets"

log "building ${targets[*]} (sanitizer: $sanitizer)"
cargo fuzz build -O -s "$sanitizer"

summary=()
failed=()
for target in "${targets[@]}"; do
  corpus="$FUZZ_DIR/corpus/$target"
  mkdir -p "$corpus" "$FUZZ_DIR/artifacts/$target"
  dirs=("$corpus")
  [[ -d "$FUZZ_DIR/seeds/$target" ]] && dirs+=("$FUZZ_DIR/seeds/$target")
  log_file="$FUZZ_DIR/target/fuzz-$target.log"
  log "fuzzing $target for ${seconds}s (log: $log_file)"
  status=0
  parallel=()
  ((jobs > 1)) && parallel=(-jobs="$jobs" -workers="$jobs")
  cargo fuzz run -O -s "$sanitizer" "$target" "${dirs[@]}" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    "${parallel[@]}" >"$log_file" 2>&1 || status=$?
  stats="$(cat "$log_file")"
  if ((jobs > 1)); then
    # Parallel workers write their own output to fuzz-<n>.log in the cwd.
    stats="$(cat fuzz-*.log 2>/dev/null || true)"
    cat fuzz-*.log >>"$log_file" 2>/dev/null || true
    rm -f fuzz-*.log
  fi
  runs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' <<<"$stats" | grep -oE '[0-9]+$' | awk '{ s += $1 } END { if (NR) print s }' || true)"
  rate="$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' <<<"$stats" | grep -oE '[0-9]+$' | awk '{ s += $1 } END { if (NR) print s }' || true)"
  units="$(find "$corpus" -type f | wc -l | tr -d ' ')"
  if ((status == 0)); then
    line="$target: ${runs:-?} executions in ${seconds}s (${rate:-?}/s), corpus $units inputs, no crash"
  else
    crash="$(grep -oE 'Test unit written to [^ ]+' <<<"$stats" | head -n1 | sed 's/^Test unit written to //' || true)"
    line="$target: FAILED after ${runs:-?} executions (exit $status); input: ${crash:-see $log_file}"
    failed+=("$target")
    tail -n 40 "$log_file" >&2
  fi
  summary+=("$line")
  log "$line"
done

echo
echo "fuzz summary (FUZZ_SECONDS=$seconds, sanitizer $sanitizer):"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]} > 0)); then
  die "crashes found in: ${failed[*]} (reproduce: cd fuzz && cargo fuzz run -O -s $sanitizer <target> <artifact>)"
fi

#!/usr/bin/env bash
# `make fuzz`: runs every fuzz target in fuzz/ (each [[bin]] of fuzz/Cargo.toml, so a new target
# is picked up with no change here) for a bounded time. Exits non-zero when a target does not
# build or panics (the input is kept in fuzz/artifacts/<target>/; turn it into a regression
# test in the normal suite and a seed in fuzz/seeds/<target>/).
#
#   scripts/fuzz.sh [target...]                    default: every target
#   scripts/fuzz.sh --reproduce TARGET FILE...     run exactly these inputs (stable engine)
#
# Environment:
#   FUZZ_ENGINE=stable     stable (default; what CI runs): each target built as a plain binary
#                          on the stable toolchain, no libFuzzer, reusing the main workspace's
#                          debug build (fuzz/stable/generate.py); it replays fuzz/seeds/<target>
#                          and fuzz/corpus/<target>, then runs inputs mutated at random from
#                          them for FUZZ_SECONDS. Not coverage-guided.
#                libfuzzer: cargo-fuzz and libFuzzer, coverage-guided (installed from crates.io
#                          when missing; needs a C++ compiler; the first, instrumented build of
#                          every dependency takes about 10 CPU-minutes)
#   FUZZ_SECONDS           time per target (stable: 5, libfuzzer: 60)
#   FUZZ_SEED              stable: the random sequence (printed by every run), to repeat one
#   FUZZ_SANITIZER=none    libfuzzer: none (stable Rust), or address/leak/... (then nightly
#                          flags are needed: RUSTC_BOOTSTRAP=1 is set for you; a full rebuild)
#   FUZZ_JOBS=1            libfuzzer: parallel fuzzing processes per target
#
# libfuzzer: the corpus grows in fuzz/corpus/<target> (not committed); fuzz/seeds/<target>
# holds a few committed starting inputs. Both engines replay both.
set -euo pipefail

LOG_TAG="fuzz"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_cmd cargo python3
FUZZ_DIR="$REPO_ROOT/fuzz"
engine="${FUZZ_ENGINE:-stable}"

# stable_engine [--reproduce TARGET FILE... | TARGET...]: generate, build, run.
stable_engine() {
  local seconds="${FUZZ_SECONDS:-5}" out="$REPO_ROOT/target/fuzz-stable" target status
  [[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || die "FUZZ_SECONDS must be a positive whole number, not '$seconds'"
  local all=() targets=() reproduce=()
  local listing
  listing="$(python3 "$FUZZ_DIR/stable/generate.py" "$REPO_ROOT" "$out")" ||
    die "fuzz/stable/generate.py could not generate the stable build of the targets (see above)"
  mapfile -t all <<<"$listing"
  if [[ "${1:-}" == "--reproduce" ]]; then
    (($# >= 3)) || die "usage: scripts/fuzz.sh --reproduce TARGET FILE..."
    targets=("$2")
    reproduce=("${@:3}")
  elif (($# > 0)); then
    targets=("$@")
  else
    targets=("${all[@]}")
  fi
  for target in "${targets[@]}"; do
    [[ " ${all[*]} " == *" $target "* ]] || die "no fuzz target '$target' (fuzz/Cargo.toml has: ${all[*]})"
  done

  # The main workspace's target directory: the crates the targets link are already built
  # there by `cargo build`/`make test` with the same features and profile.
  log "building ${targets[*]} on the stable toolchain (no libFuzzer; target/fuzz-stable)"
  local started=$SECONDS bins=()
  for target in "${targets[@]}"; do bins+=(--bin "fuzz-$target"); done
  CARGO_TARGET_DIR="$REPO_ROOT/target" cargo build --manifest-path "$out/Cargo.toml" "${bins[@]}" ||
    die "a fuzz target does not build (see above)"
  log "built in $((SECONDS - started))s"

  local summary=() failed=()
  for target in "${targets[@]}"; do
    local bin="$REPO_ROOT/target/debug/fuzz-$target" log_file="$REPO_ROOT/target/fuzz-stable/$target.log"
    status=0
    if ((${#reproduce[@]} > 0)); then
      FUZZ_DIR="$FUZZ_DIR" "$bin" "${reproduce[@]}" || status=$?
      return "$status"
    fi
    log "fuzzing $target: seeds and corpus, then ${seconds}s of mutated inputs"
    # A hang is a failure too: the driver stops on its own after FUZZ_SECONDS.
    FUZZ_DIR="$FUZZ_DIR" FUZZ_SECONDS="$seconds" timeout "$((seconds + 60))" "$bin" >"$log_file" 2>&1 || status=$?
    if ((status == 0)); then
      summary+=("$(tail -n 1 "$log_file")")
    else
      ((status == 124)) && echo "$target: still running $((seconds + 60))s after its ${seconds}s budget (a hang?)" >>"$log_file"
      summary+=("$target: FAILED (exit $status), log $log_file")
      failed+=("$target")
      tail -n 40 "$log_file" >&2
    fi
  done
  echo
  echo "fuzz summary (stable engine, FUZZ_SECONDS=$seconds):"
  printf '  %s\n' "${summary[@]}"
  if ((${#failed[@]} > 0)); then
    die "fuzz targets failed: ${failed[*]} (the input is in fuzz/artifacts/<target>/; scripts/fuzz.sh --reproduce <target> <file>)"
  fi
}

case "$engine" in
  stable)
    stable_engine "$@"
    exit 0
    ;;
  libfuzzer) ;;
  *) die "FUZZ_ENGINE must be stable or libfuzzer, not '$engine'" ;;
esac

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

#!/usr/bin/env bash
# `make test`: the whole workspace's tests against a real AWS emulator
# (scripts/with-emulator.sh starts one when none answers, and stops it afterwards).
#
#   scripts/test.sh [cargo test args...]      e.g. scripts/test.sh --lib, scripts/test.sh dlq
# (args go to `cargo test --workspace`: use filters; -p does not narrow it)
#   TEST_ARGS='-- --nocapture' scripts/test.sh
#   TEST_AUTH_MODE=jwks scripts/test.sh --test api -- write_api:: read_api::   (ingest in jwks mode)
#
# After the tests, scripts/scan-test-logs.py looks for the tokens the run minted in every log
# it produced (the binaries' logs, the in-process apps' logs, cargo test's own output, the
# emulator's log and its CloudWatch Logs, where the Lambda functions it runs write). It runs
# whether the tests passed or not. An empty list of minted tokens fails it, except in a
# filtered run outside CI (which may mint none: then it says so and still looks for Bearer
# and Authorization values).
set -euo pipefail

LOG_TAG="test"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ "${1:-}" != "--inside-emulator" ]]; then
  export LOG_TAG
  exec bash "$REPO_ROOT/scripts/with-emulator.sh" bash "$REPO_ROOT/scripts/test.sh" --inside-emulator "$@"
fi
shift
cd "$REPO_ROOT"

extra=()
if [[ -n "${TEST_ARGS:-}" ]]; then
  # TEST_ARGS is split on whitespace on purpose (e.g. "-p worker -- --nocapture").
  read -r -a extra <<<"$TEST_ARGS"
fi
args=("$@" "${extra[@]}")

# End-to-end and Lambda-mode tests start the real binaries; build them first.
log "cargo build --workspace --bins"
cargo build --workspace --bins

# The tests this run selects, `module::test` a line: `--list` with the run's own arguments and
# filters (it builds the test targets, which the run then reuses). The set-up only some tests
# need is skipped when none of them is selected; a test binary holds many areas (one module a
# file in tests/tests/<binary>/), so its name alone does not say whether they run.
list_args=("${args[@]}" --)
for arg in "${args[@]}"; do
  if [[ "$arg" == "--" ]]; then
    list_args=("${args[@]}") # `--list` goes after the run's own `--`
    break
  fi
done
log "cargo test --workspace ${list_args[*]} --list (which tests this run selects)"
selected_tests="$(cargo test --workspace "${list_args[@]}" --list)" ||
  die "listing the tests failed (do the test targets build?)"

# runs_tests_of MODULE: true when this run selects a test of tests/tests/*/MODULE.rs.
runs_tests_of() {
  grep -q "^$1::" <<<"$selected_tests"
}

# The deployed-stack tests (tests/tests/binaries/deployed_stack.rs) deploy infra/template.yaml
# into an emulator that runs Lambda functions; install the pinned deploy tools once, here, not
# from each test at the same time. On moto those tests say they are skipped.
runs_lambda=0
emulator_runs_lambda "$AWS_ENDPOINT_URL" && runs_lambda=1
if ! runs_tests_of deployed_stack; then
  log "deployed_stack is not in this run: not installing the deploy tools"
elif ((runs_lambda == 1)); then
  bash "$REPO_ROOT/infra/deploy-local.sh" --ensure-tools
else
  log "the emulator runs no Lambda functions: the deployed-stack tests will be skipped"
fi

# The image tests (tests/tests/binaries/images.rs) run what `make image` builds: binaries in
# images from scratch. Here from the debug binaries just built: the images' layout (the
# libraries ldd lists, the CA bundle, the nonroot user, SIGTERM) is what is tested, and a
# release build of both would add minutes; `make image` builds the release ones. Without
# buildah the tests skip with the reason, except under CI=true.
if ! runs_tests_of images; then
  log "images is not in this run: not building the images"
elif command -v buildah >/dev/null 2>&1; then
  log "images from the debug binaries (IMAGE_PROFILE=debug images/build-local.sh; needs buildah)"
  IMAGE_PROFILE=debug IMAGE_CARGO_BUILD=0 bash "$REPO_ROOT/images/build-local.sh"
elif [[ "${CI:-}" == true ]]; then
  log "buildah is not installed and CI=true: the image tests will fail (apt-get install -y buildah)"
else
  log "buildah is not installed: the image tests will skip (apt-get install -y buildah to run them)"
fi

# Every token a test mints is recorded; after the suite no log of this run may hold one.
scan_dir="$REPO_ROOT/target/test-log-scan"
mkdir -p "$scan_dir"
export MINTED_TOKENS_FILE="$scan_dir/minted-tokens.txt"
: >"$MINTED_TOKENS_FILE"
touch "$scan_dir/started"
cargo_log="$scan_dir/cargo-test.log"
# Tests that skip in this mode write why here (tests/src/lib.rs); listed after the run.
export SKIPPED_TESTS_FILE="$scan_dir/skipped-tests.txt"
: >"$SKIPPED_TESTS_FILE"

log "cargo test --workspace ${args[*]} (AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL, AWS_REGION=$AWS_REGION${TEST_AUTH_MODE:+, TEST_AUTH_MODE=$TEST_AUTH_MODE})"
cargo_status=0
# cargo test's own output is a log of this run too (a failing test's captured output, panics).
cargo test --workspace "${args[@]}" 2>&1 | tee "$cargo_log" || cargo_status=$?

if [[ -s "$SKIPPED_TESTS_FILE" ]]; then
  log "skipped, each saying why:"
  sort "$SKIPPED_TESTS_FILE" | sed 's/^/  /' >&2
fi

scan_opts=(--dump-dir "$scan_dir/emulator-logs")
if ((${#args[@]} > 0)) && [[ "${CI:-}" != true ]]; then
  # A filtered run may mint no token at all (scripts/test.sh --lib); under CI every run
  # must, and an unfiltered run always does.
  scan_opts+=(--allow-no-tokens)
fi
# The emulator's CloudWatch Logs hold the output of the Lambda functions it ran (MiniStack
# writes each invocation's output to /aws/lambda/<function>, and API Gateway's access logs);
# on an emulator that runs no functions (moto) there is nothing of ours there.
if ((runs_lambda == 1)); then
  scan_opts+=(--cloudwatch-logs "$AWS_ENDPOINT_URL")
  if [[ "${REQUIRE_LAMBDA_EMULATOR:-}" == 1 ]] && runs_tests_of deployed_stack; then
    scan_opts+=(--require-function-logs)
  fi
fi
log "scanning this run's logs for the tokens it minted ($(wc -l <"$MINTED_TOKENS_FILE" | tr -d ' ') recorded)"
scan_status=0
python3 "$REPO_ROOT/scripts/scan-test-logs.py" "${scan_opts[@]}" "$MINTED_TOKENS_FILE" \
  "$scan_dir/started" "$REPO_ROOT"/target/*/test-logs "$cargo_log" \
  "$RUN_DIR/emulator-$(emulator_port).log" || scan_status=$?
if ((cargo_status == 0 && scan_status == 0)); then
  log "tests passed, and the log scan found no token"
  exit 0
fi
log "tests FAILED (cargo test exit status $cargo_status, log scan exit status $scan_status)"
exit $((cargo_status != 0 ? cargo_status : scan_status))

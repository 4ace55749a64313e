#!/usr/bin/env bash
# `make test`: the whole workspace's tests against a real AWS emulator
# (scripts/with-emulator.sh starts one when none answers, and stops it afterwards).
#
#   scripts/test.sh [cargo test args...]      e.g. scripts/test.sh --lib, scripts/test.sh dlq
# (args go to `cargo test --workspace`: use filters; -p does not narrow it)
#   TEST_ARGS='-- --nocapture' scripts/test.sh
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

# The deployed-stack tests (tests/tests/deployed_stack.rs) deploy infra/template.yaml into
# an emulator that runs Lambda functions; install the pinned deploy tools once, here, not
# from each test at the same time. On moto those tests say they are skipped.
if emulator_runs_lambda "$AWS_ENDPOINT_URL"; then
  bash "$REPO_ROOT/infra/deploy-local.sh" --ensure-tools
else
  log "the emulator runs no Lambda functions: the deployed-stack tests will be skipped"
fi

# The image tests (tests/tests/images.rs) run what `make image` builds: binaries in images
# from scratch. Here from the debug binaries just built: the images' layout (the libraries
# ldd lists, the CA bundle, the nonroot user, SIGTERM) is what is tested, and a release build
# of both would add minutes; `make image` builds the release ones. Without buildah the tests
# skip with the reason, except under CI=true.
if command -v buildah >/dev/null 2>&1; then
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

log "cargo test --workspace ${args[*]} (AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL, AWS_REGION=$AWS_REGION)"
status=0
cargo test --workspace "${args[@]}" || status=$?
if ((status == 0)) && [[ -s "$MINTED_TOKENS_FILE" ]]; then
  python3 "$REPO_ROOT/scripts/scan-test-logs.py" "$MINTED_TOKENS_FILE" "$scan_dir/started" \
    "$REPO_ROOT"/target/*/test-logs || status=$?
fi
if ((status == 0)); then
  log "tests passed"
else
  log "tests FAILED (cargo exit status $status)"
fi
exit "$status"

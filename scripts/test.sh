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

# The image tests (tests/tests/images.rs) run what `make image` builds: release binaries in
# images from scratch. Without buildah they skip with the reason, except under CI=true.
if command -v buildah >/dev/null 2>&1; then
  log "make image (release build of both binaries, then the images; needs buildah)"
  bash "$REPO_ROOT/images/build-local.sh"
elif [[ "${CI:-}" == true ]]; then
  log "buildah is not installed and CI=true: the image tests will fail (apt-get install -y buildah)"
else
  log "buildah is not installed: the image tests will skip (apt-get install -y buildah to run them)"
fi

log "cargo test --workspace ${args[*]} (AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL, AWS_REGION=$AWS_REGION)"
status=0
cargo test --workspace "${args[@]}" || status=$?
if ((status == 0)); then
  log "tests passed"
else
  log "tests FAILED (cargo exit status $status)"
fi
exit "$status"

#!/usr/bin/env bash
# `make test`: the whole workspace's tests against a real AWS emulator.
#
# Starts the emulator (localstack/start.sh) when nothing answers on its port and
# stops it again on exit, pass or fail; an emulator that was already running is
# reused and left running. Exits with cargo's status.
#
#   scripts/test.sh [cargo test args...]      e.g. scripts/test.sh --lib, scripts/test.sh dlq
# (args go to `cargo test --workspace`: use filters; -p does not narrow it)
#   TEST_ARGS='-- --nocapture' scripts/test.sh
#
# Environment (each kept when already set):
#   AWS_ENDPOINT_URL=http://127.0.0.1:$EMULATOR_PORT (EMULATOR_PORT default 4566)
#   AWS_REGION=us-east-1  AWS_ACCESS_KEY_ID=test  AWS_SECRET_ACCESS_KEY=test
set -euo pipefail

LOG_TAG="test"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$REPO_ROOT"
require_cmd cargo curl

local_url="$(emulator_url)"
started_emulator=0

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if ((started_emulator == 1)); then
    bash "$REPO_ROOT/localstack/stop.sh" || warn "localstack/stop.sh failed"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -n "${AWS_ENDPOINT_URL:-}" && "${AWS_ENDPOINT_URL%/}" != "$local_url" ]]; then
  log "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL is set: using that emulator as it is (not starting one)"
elif emulator_answers; then
  log "an emulator already answers on $local_url: reusing it (it will be left running)"
else
  log "starting the emulator on $local_url"
  started_emulator=1
  bash "$REPO_ROOT/localstack/start.sh" >/dev/null
fi

export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-$local_url}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
# Tests run outside Lambda whatever the calling shell has.
unset AWS_LAMBDA_RUNTIME_API

extra=()
if [[ -n "${TEST_ARGS:-}" ]]; then
  # TEST_ARGS is split on whitespace on purpose (e.g. "-p worker -- --nocapture").
  read -r -a extra <<<"$TEST_ARGS"
fi
args=("$@" "${extra[@]}")

# End-to-end and Lambda-mode tests start the real binaries; build them first.
log "cargo build --workspace --bins"
cargo build --workspace --bins

log "cargo test --workspace ${args[*]} (AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL, AWS_REGION=$AWS_REGION)"
status=0
cargo test --workspace "${args[@]}" || status=$?
if ((status == 0)); then
  log "tests passed"
else
  log "tests FAILED (cargo exit status $status)"
fi
exit "$status"

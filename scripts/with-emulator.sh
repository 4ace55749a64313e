#!/usr/bin/env bash
# Runs a command with an AWS emulator answering, then cleans up:
#
#   scripts/with-emulator.sh COMMAND [ARGS...]
#
# Starts the emulator (localstack/start.sh) when nothing answers on its port and stops it
# again on exit, pass or fail; an emulator that was already running is reused and left
# running. Exports the AWS variables the command needs (each kept when already set):
#   AWS_ENDPOINT_URL=http://127.0.0.1:$EMULATOR_PORT (EMULATOR_PORT default 4566)
#   AWS_REGION=us-east-1  AWS_ACCESS_KEY_ID=test  AWS_SECRET_ACCESS_KEY=test
# Exits with the command's status.
set -euo pipefail

LOG_TAG="${LOG_TAG:-emulator}"
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
  bash "$REPO_ROOT/localstack/start.sh" >/dev/null
  # Only now: a start that failed cleaned up after itself, and must not stop another's.
  started_emulator=1
fi

export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-$local_url}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
# The command runs outside Lambda whatever the calling shell has.
unset AWS_LAMBDA_RUNTIME_API


status=0
"$@" || status=$?
exit "$status"

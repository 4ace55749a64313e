#!/usr/bin/env bash
# Create the queue, the DLQ (with its redrive policy) and the table when they
# are missing, by running `worker provision` (the Rust worker binary), and print
#   QUEUE_URL=...
#   DLQ_URL=...
#   TABLE_NAME=...
# on stdout, so that `eval "$(localstack/provision.sh)"` works. Logs go to stderr.
#
# Environment:
#   AWS_ENDPOINT_URL   the emulator (e.g. http://127.0.0.1:4566); unset for real AWS
#   AWS_REGION         default: $AWS_DEFAULT_REGION, else us-east-1
#   AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
#                      set to test/test only when the endpoint is on loopback and
#                      no credentials are set
#   QUEUE_NAME, DLQ_NAME, TABLE_NAME   name overrides (defaults chosen by the worker)
#   WORKER_BIN         a built worker binary; default: cargo run -p worker
set -euo pipefail

LOG_TAG="provision"
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

cd "$REPO_ROOT"

export AWS_REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}"

# Which endpoints are set, and are they all on loopback?
endpoints=()
for var in AWS_ENDPOINT_URL AWS_ENDPOINT_URL_SQS AWS_ENDPOINT_URL_DYNAMODB; do
  if [[ -n "${!var:-}" ]]; then
    endpoints+=("${!var}")
  fi
done
local_endpoint=0
if ((${#endpoints[@]} > 0)); then
  local_endpoint=1
  for url in "${endpoints[@]}"; do
    is_loopback_url "$url" || local_endpoint=0
  done
fi

if ((local_endpoint == 1)); then
  if [[ -z "${AWS_ACCESS_KEY_ID:-}" && -z "${AWS_SECRET_ACCESS_KEY:-}" && -z "${AWS_PROFILE:-}" ]]; then
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
    log "using dummy credentials for the local emulator"
  fi
  log "provisioning against ${endpoints[*]} (region $AWS_REGION)"
elif ((${#endpoints[@]} > 0)); then
  log "provisioning against ${endpoints[*]} (region $AWS_REGION; not loopback, using your credentials)"
else
  log "no AWS_ENDPOINT_URL: provisioning in real AWS (region $AWS_REGION, your credentials)"
fi
for var in QUEUE_NAME DLQ_NAME TABLE_NAME; do
  if [[ -n "${!var:-}" ]]; then
    export "${var?}"
    log "$var=${!var}"
  fi
done

if [[ -n "${WORKER_BIN:-}" ]]; then
  [[ -x "$WORKER_BIN" ]] || die "WORKER_BIN=$WORKER_BIN is not an executable file"
  cmd=("$WORKER_BIN" provision)
else
  require_cmd cargo
  log "building and running the worker (cargo run -p worker -- provision)"
  cmd=(cargo run --quiet -p worker -- provision)
fi

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
status=0
"${cmd[@]}" >"$out" </dev/null || status=$?
if ((status != 0)); then
  # Anything the worker printed on stdout may explain the failure.
  sed 's/^/    /' "$out" >&2
  die "'${cmd[*]}' failed with exit status $status"
fi

queue_url="" dlq_url="" table_name=""
while IFS= read -r line || [[ -n "$line" ]]; do
  case "$line" in
    QUEUE_URL=*) queue_url="${line#QUEUE_URL=}" ;;
    DLQ_URL=*) dlq_url="${line#DLQ_URL=}" ;;
    TABLE_NAME=*) table_name="${line#TABLE_NAME=}" ;;
    *) printf '%s\n' "$line" >&2 ;; # anything else is a log line: keep stdout clean
  esac
done <"$out"

[[ -n "$queue_url" ]] || die "'${cmd[*]}' did not print QUEUE_URL=..."
[[ -n "$dlq_url" ]] || die "'${cmd[*]}' did not print DLQ_URL=..."
[[ -n "$table_name" ]] || die "'${cmd[*]}' did not print TABLE_NAME=..."

log "ready: queue, DLQ and table exist"
# %q keeps plain values as they are and quotes anything the shell would
# misread, so `eval "$(localstack/provision.sh)"` is safe.
printf 'QUEUE_URL=%q\nDLQ_URL=%q\nTABLE_NAME=%q\n' "$queue_url" "$dlq_url" "$table_name"

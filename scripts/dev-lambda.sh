#!/usr/bin/env bash
# `make dev-lambda`: the deployed stack, locally. Builds both functions for this machine,
# starts MiniStack (no Docker), deploys infra/template.yaml into it as `sam deploy` would
# (API Gateway HTTP API -> ingest Lambda -> SQS -> event source mapping -> worker Lambda ->
# DynamoDB), with the dev User Service on loopback, and prints the API URL and a curl that
# works. Running it again updates the stack in place. `make dev` is the quicker loop (the
# binaries as plain processes); this one runs what AWS runs.
#
#   scripts/dev-lambda.sh          deploy (or update) and return; everything keeps running
#   scripts/dev-lambda.sh stop     stop the dev User Service and the emulator it started
#
# Environment:
#   EMULATOR_PORT          emulator port (default 4566)
#   EMULATOR               ministack (default) | localstack (Docker; API Gateway v2 needs an
#                          auth token there, see localstack/README.md). moto cannot run Lambda.
#   DEV_LAMBDA_STACK       stack name (default credit-scores-dev)
#   DEV_LAMBDA_BUILD       release (default: the deployment profiles) | debug (faster build)
#   DEV_USER_SERVICE_PORT  dev User Service port (default 4113)
#   DEV_USER               the user a token is minted for (default alice)
#   DEV_LAMBDA_PARAMS      more template parameters, KEY=VALUE separated by spaces
set -euo pipefail

LOG_TAG="dev-lambda"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$REPO_ROOT"
STACK="${DEV_LAMBDA_STACK:-credit-scores-dev}"
DUS_PORT="${DEV_USER_SERVICE_PORT:-4113}"
DUS_URL="http://127.0.0.1:$DUS_PORT"
DEV_USER="${DEV_USER:-alice}"
BUILD="${DEV_LAMBDA_BUILD:-release}"
DUS_PID_FILE="$RUN_DIR/dev-lambda-user-service.pid"
DUS_LOG="$RUN_DIR/dev-lambda-user-service.log"
EMULATOR_MARKER="$RUN_DIR/dev-lambda-emulator-started"
KEY_FILE="$RUN_DIR/dev-lambda-cursor-key"
ENV_FILE="$RUN_DIR/dev-lambda.env"
EMU_URL="$(emulator_url)"

case "${1:-deploy}" in
  deploy) ;;
  stop)
    stop_pidfile "dev User Service" "$DUS_PID_FILE" dev-user-service 10
    if [[ -f "$EMULATOR_MARKER" ]]; then
      rm -f "$EMULATOR_MARKER"
      bash "$REPO_ROOT/localstack/stop.sh" || warn "localstack/stop.sh failed"
    fi
    rm -f "$ENV_FILE"
    log "stopped (the emulator keeps nothing: the next make dev-lambda deploys afresh)"
    exit 0
    ;;
  -h | --help)
    sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *) die "unknown command '$1' (use: deploy | stop)" ;;
esac

require_cmd cargo curl python3
ensure_run_dir
case "$BUILD" in release | debug) ;; *) die "DEV_LAMBDA_BUILD must be release or debug, got '$BUILD'" ;; esac
case "$(uname -m)" in
  x86_64 | amd64) ARCH=x86_64 ;;
  aarch64 | arm64) ARCH=arm64 ;;
  *) die "no Lambda architecture for this machine ($(uname -m)); Lambda runs x86_64 and arm64" ;;
esac
started=$SECONDS

# 1. Emulator: one that runs Lambda functions ---------------------------------------
if emulator_answers; then
  log "an emulator already answers on $EMU_URL: deploying into it (it will be left running)"
else
  bash "$REPO_ROOT/localstack/start.sh" >/dev/null
  : >"$EMULATOR_MARKER"
fi
if ! emulator_runs_lambda "$EMU_URL"; then
  die "the emulator on $EMU_URL runs no Lambda functions (moto?): stop it (make emulator-down) and run make dev-lambda again, which starts MiniStack"
fi
export AWS_ENDPOINT_URL="$EMU_URL" AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
unset AWS_SESSION_TOKEN AWS_PROFILE

# 2. Build: the deployment profiles (infra/package.sh), for this machine -------------
if [[ "$BUILD" == release ]]; then
  log "building worker (release) and ingest (release-size) for $ARCH; a cold build takes minutes"
  cargo build --release -p worker --bin worker || die "cargo build failed (see above)"
  cargo build --profile release-size -p ingest --bin ingest || die "cargo build failed (see above)"
  WORKER_BIN="$REPO_ROOT/target/release/worker"
  INGEST_BIN="$REPO_ROOT/target/release-size/ingest"
else
  log "building worker and ingest (debug) for $ARCH"
  cargo build -p worker -p ingest --bins || die "cargo build failed (see above)"
  WORKER_BIN="$REPO_ROOT/target/debug/worker"
  INGEST_BIN="$REPO_ROOT/target/debug/ingest"
fi
cargo build -p pipeline-tests --bin dev-user-service || die "cargo build failed (see above)"
DUS_BIN="$REPO_ROOT/target/debug/dev-user-service"

# 3. The dev User Service, on loopback: the functions run as local processes and reach it.
if http_answers "$DUS_URL/validate"; then
  log "something already answers on $DUS_URL: using it as the User Service"
else
  DEV_USER_SERVICE_PORT="$DUS_PORT" nohup "$DUS_BIN" serve >"$DUS_LOG" 2>&1 </dev/null &
  printf '%s\n' "$!" >"$DUS_PID_FILE"
  for _ in $(seq 1 50); do
    http_answers "$DUS_URL/validate" && break
    sleep 0.1
  done
  http_answers "$DUS_URL/validate" || die "the dev User Service did not start (see $DUS_LOG)"
  log "dev User Service on $DUS_URL (log ${DUS_LOG#"$REPO_ROOT"/})"
fi

# 4. Deploy -----------------------------------------------------------------------------
# One cursor key per checkout, kept so an update does not invalidate cursors.
if [[ ! -s "$KEY_FILE" ]]; then
  (
    umask 077
    python3 -c 'import secrets; print(secrets.token_urlsafe(48))' >"$KEY_FILE"
  )
fi
params=(
  --param "UserServiceUrl=$DUS_URL"
  --param "CursorSigningKey=@$KEY_FILE"
  --param "Architecture=$ARCH"
)
if [[ -n "${DEV_LAMBDA_PARAMS:-}" ]]; then
  read -r -a extra <<<"$DEV_LAMBDA_PARAMS"
  for p in "${extra[@]}"; do params+=(--param "$p"); done
fi
result="$(bash "$REPO_ROOT/infra/deploy-local.sh" deploy --stack "$STACK" \
  --ingest "$INGEST_BIN" --worker "$WORKER_BIN" "${params[@]}")" || die "the deploy failed (see above)"
# json_field KEY... -> the value at that path of the deploy's JSON result
json_field() {
  python3 -c 'import json, sys
d = json.load(sys.stdin)
for key in sys.argv[1:]:
    d = d[key]
print(d)' "$@" <<<"$result"
}
API_URL="$(json_field apiUrl)"
QUEUE_URL="$(json_field outputs QueueUrl)"
DLQ_URL="$(json_field outputs DeadLetterQueueUrl)"
TABLE_NAME="$(json_field outputs TableName)"
DEPLOY_SECONDS="$(json_field deploySeconds)"

# 5. A token and the commands to try ------------------------------------------------------
TOKEN="$("$DUS_BIN" mint --sub "$DEV_USER" | tr -d '[:space:]')"
[[ -n "$TOKEN" ]] || die "dev-user-service mint printed no token"
(
  umask 077
  {
    printf '# written by scripts/dev-lambda.sh for the deployed dev stack; source it: . .run/dev-lambda.env\n'
    printf 'export AWS_ENDPOINT_URL=%q AWS_REGION=%q\n' "$AWS_ENDPOINT_URL" "$AWS_REGION"
    printf 'export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test\n'
    printf 'export API_URL=%q QUEUE_URL=%q DLQ_URL=%q TABLE_NAME=%q TOKEN=%q\n' \
      "$API_URL" "$QUEUE_URL" "$DLQ_URL" "$TABLE_NAME" "$TOKEN"
  } >"$ENV_FILE"
)
now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
cat <<EOF

  Stack '$STACK' is deployed in the emulator (${DEPLOY_SECONDS} s; $((SECONDS - started)) s in all).
    API (HTTP API, \$default stage)  $API_URL
    queue / DLQ / table              $QUEUE_URL  $DLQ_URL  $TABLE_NAME
    functions                        $STACK-ingest, $STACK-worker ($ARCH, $BUILD build)

  Post a score through API Gateway (the worker Lambda writes it a moment later):

export TOKEN='$TOKEN'
curl -i -X POST '$API_URL/v1/users/$DEV_USER/credit-scores' -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' -d '{"bureau":"experian","score":742,"reportedAt":"$now"}'

  Read it back, and the API's own documentation:

curl -s '$API_URL/v1/users/$DEV_USER/credit-scores/latest' -H "Authorization: Bearer \$TOKEN"
curl -s '$API_URL/docs/swagger.json' | head -c 200

  Settings for another shell: . ${ENV_FILE#"$REPO_ROOT"/}     Run again to update; stop: make dev-lambda-stop

EOF

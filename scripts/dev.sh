#!/usr/bin/env bash
# The local dev loop (`make dev`): emulator, provisioning, the dev User Service,
# ingest (HTTP on 127.0.0.1:$PORT) and the worker (long-polling consumer), with
# ready-to-paste curl commands. Stays in the foreground tailing the logs; Ctrl-C
# stops everything it started.
#
#   scripts/dev.sh          start (foreground; DEV_DETACH=1 leaves it running)
#   scripts/dev.sh stop     stop what a detached run left running (`make dev-stop`)
#
# Environment:
#   EMULATOR_PORT          emulator port (default 4566)
#   PORT                   ingest port (default 4112)
#   DEV_USER_SERVICE_PORT  dev User Service port (default 4113)
#   USER_SERVICE_URL       default http://127.0.0.1:$DEV_USER_SERVICE_PORT
#   DEV_USER               the user a token is minted for (default alice)
#   DEV_DETACH=1           return once everything is up, leave it running
#   DEV_WAIT_SECONDS       readiness bound (default 30)
#   DEV_NO_BUILD=1         skip `cargo build` (use binaries already built)
#   DEV_BIN_DIR            where the binaries are (default $CARGO_TARGET_DIR/debug or target/debug)
#   DEV_RUN_DIR            where pids, logs, dev.env and dev-token go (default .run)
#
# Ingest listens on 127.0.0.1 only (BIND_ADDRESS): a dev stack is not for the network.
# .run/dev.env holds everything the printed commands need, for `. .run/dev.env` in a new shell.
set -euo pipefail

LOG_TAG="dev"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$REPO_ROOT"
RUN_DIR="${DEV_RUN_DIR:-$RUN_DIR}"

EMULATOR_MARKER="$RUN_DIR/dev-emulator-started"
TOKEN_FILE="$RUN_DIR/dev-token"
ENV_FILE="$RUN_DIR/dev.env"
# name:pattern-in-its-command-line, in stop order (worker first: it finishes its batches).
SERVICES=("worker:worker" "ingest:ingest" "dev-user-service:dev-user-service")

pidfile_of() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }
logfile_of() { printf '%s/%s.log' "$RUN_DIR" "$1"; }

# stop_services: stop the three processes by their pid files (safe to repeat).
stop_services() {
  local entry name pattern grace
  for entry in "${SERVICES[@]}"; do
    name="${entry%%:*}"
    pattern="${entry#*:}"
    grace=10
    if [[ "$name" == worker ]]; then grace=30; fi
    stop_pidfile "$name" "$(pidfile_of "$name")" "$pattern" "$grace"
  done
  rm -f "$TOKEN_FILE" "$ENV_FILE"
}

stop_emulator_if_ours() {
  if [[ -f "$EMULATOR_MARKER" ]]; then
    rm -f "$EMULATOR_MARKER"
    bash "$REPO_ROOT/localstack/stop.sh" || warn "localstack/stop.sh failed"
  fi
}

running_services() {
  local entry name pid out=()
  for entry in "${SERVICES[@]}"; do
    name="${entry%%:*}"
    pid="$(read_pidfile "$(pidfile_of "$name")")"
    if [[ -n "$pid" ]] && pid_matches "$pid" "${entry#*:}"; then
      out+=("$name (pid $pid)")
    fi
  done
  if ((${#out[@]} > 0)); then
    printf '%s\n' "${out[@]}"
  fi
}

cmd_stop() {
  local running
  running="$(running_services)"
  if [[ -z "$running" && ! -f "$EMULATOR_MARKER" ]]; then
    log "the dev stack is not running; nothing to stop"
    stop_services
    return 0
  fi
  stop_services
  stop_emulator_if_ours
  log "dev stack stopped"
}

case "${1:-start}" in
  stop)
    cmd_stop
    exit 0
    ;;
  start) ;;
  -h | --help)
    sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *) die "unknown command '$1' (use: start | stop)" ;;
esac

# ----------------------------------------------------------------------------
# start
# ----------------------------------------------------------------------------
require_cmd curl tail nohup
INGEST_PORT="${PORT:-4112}"
DUS_PORT="${DEV_USER_SERVICE_PORT:-4113}"
DEV_USER="${DEV_USER:-alice}"
WAIT_SECONDS="${DEV_WAIT_SECONDS:-30}"
BIN_DIR="${DEV_BIN_DIR:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug}"
INGEST_URL="http://127.0.0.1:$INGEST_PORT"
DUS_URL="http://127.0.0.1:$DUS_PORT"
EMU_URL="$(emulator_url)"

ensure_run_dir

already="$(running_services)"
if [[ -n "$already" ]]; then
  die "the dev stack is already running: $(tr '\n' ' ' <<<"$already")- stop it with 'make dev-stop'"
fi
for url in "$INGEST_URL/health" "$DUS_URL/validate"; do
  if http_answers "$url"; then
    die "something already answers on ${url%/*}; stop it or pick another port (PORT / DEV_USER_SERVICE_PORT)"
  fi
done

detached=0
tail_pid=""
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if ((detached == 1)); then
    exit "$status"
  fi
  if [[ -n "$tail_pid" ]]; then
    kill "$tail_pid" 2>/dev/null || true
    wait "$tail_pid" 2>/dev/null || true
  fi
  log "shutting down"
  stop_services
  stop_emulator_if_ours
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. Emulator ------------------------------------------------------------------
if emulator_answers; then
  log "an emulator already answers on $EMU_URL: using it (it will be left running)"
else
  bash "$REPO_ROOT/localstack/start.sh" >/dev/null
  : >"$EMULATOR_MARKER"
fi
export AWS_ENDPOINT_URL="$EMU_URL"
export AWS_REGION="${AWS_REGION:-us-east-1}"
# The emulator takes any credentials: always dummy ones, so real keys in the calling shell
# never reach it, nor .run/dev.env.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
unset AWS_SESSION_TOKEN AWS_PROFILE
# Never run as a Lambda function here, whatever the parent shell has.
unset AWS_LAMBDA_RUNTIME_API

# 2. Build -----------------------------------------------------------------------
if [[ "${DEV_NO_BUILD:-0}" != "1" ]]; then
  require_cmd cargo
  log "building ingest, worker and dev-user-service (debug)"
  cargo build -p ingest -p worker -p pipeline-tests --bins ||
    die "cargo build failed (see above)"
fi
for bin in ingest worker dev-user-service; do
  [[ -x "$BIN_DIR/$bin" ]] || die "$BIN_DIR/$bin is missing; build it (cargo build -p ingest -p worker -p pipeline-tests --bins)"
done

# 3. Provision -------------------------------------------------------------------
provisioned="$(WORKER_BIN="$BIN_DIR/worker" bash "$REPO_ROOT/localstack/provision.sh")" ||
  die "provisioning failed (see above)"
QUEUE_URL="" DLQ_URL="" TABLE_NAME=""
eval "$provisioned"
[[ -n "$QUEUE_URL" && -n "$DLQ_URL" && -n "$TABLE_NAME" ]] || die "provision.sh printed no QUEUE_URL/DLQ_URL/TABLE_NAME"
export QUEUE_URL DLQ_URL TABLE_NAME
export USER_SERVICE_URL="${USER_SERVICE_URL:-$DUS_URL}"
export DEV_USER_SERVICE_PORT="$DUS_PORT"

# 4. Start the three processes ---------------------------------------------------
start_bg() {
  local name="$1"
  shift
  local log_file
  log_file="$(logfile_of "$name")"
  nohup "$@" >"$log_file" 2>&1 </dev/null &
  printf '%s\n' "$!" >"$(pidfile_of "$name")"
  log "started $name (pid $!, log ${log_file#"$REPO_ROOT"/})"
}

# wait_for NAME URL WANT_REGEX: wait until URL answers with a status matching
# WANT_REGEX while all started processes stay alive.
wait_for() {
  local what="$1" url="$2" want="$3" deadline code entry name pid
  deadline=$((SECONDS + WAIT_SECONDS))
  while ((SECONDS < deadline)); do
    code="$(http_status "$url" 1)"
    if [[ "$code" =~ ^($want)$ ]]; then
      return 0
    fi
    for entry in "${SERVICES[@]}"; do
      name="${entry%%:*}"
      pid="$(read_pidfile "$(pidfile_of "$name")")"
      if [[ -n "$pid" ]] && ! pid_alive "$pid"; then
        log_tail "$(logfile_of "$name")" 30
        die "$name exited during start-up (see $(logfile_of "$name"))"
      fi
    done
    sleep 0.2
  done
  for entry in "${SERVICES[@]}"; do
    name="${entry%%:*}"
    if [[ -f "$(pidfile_of "$name")" ]]; then log_tail "$(logfile_of "$name")" 20; fi
  done
  die "$what did not answer $url with $want within ${WAIT_SECONDS}s (last status: $code)"
}

start_bg dev-user-service "$BIN_DIR/dev-user-service" serve
wait_for "dev-user-service" "$DUS_URL/validate" '2[0-9][0-9]|401|403'
PORT="$INGEST_PORT" BIND_ADDRESS=127.0.0.1 start_bg ingest "$BIN_DIR/ingest"
start_bg worker "$BIN_DIR/worker"
wait_for "ingest" "$INGEST_URL/health" '200'

# The worker has no port: give it a moment to fail on bad configuration.
sleep 1
worker_pid="$(read_pidfile "$(pidfile_of worker)")"
if ! pid_alive "$worker_pid"; then
  log_tail "$(logfile_of worker)" 30
  die "worker exited during start-up (see $(logfile_of worker))"
fi

# 5. A token and the commands to try -----------------------------------------------
TOKEN="$("$BIN_DIR/dev-user-service" mint --sub "$DEV_USER")" || die "dev-user-service mint failed"
TOKEN="$(tr -d '[:space:]' <<<"$TOKEN")"
[[ -n "$TOKEN" ]] || die "dev-user-service mint printed no token"
(
  umask 077
  printf '%s\n' "$TOKEN" >"$TOKEN_FILE"
  # Everything the commands printed below need, for a new shell (`. .run/dev.env`); the
  # credentials are the emulator's dummy ones, so without them the SDK would go looking for
  # real ones (the EC2 metadata endpoint) and fail.
  {
    printf '# written by scripts/dev.sh for the running dev stack; source it: . .run/dev.env\n'
    printf 'export AWS_ENDPOINT_URL=%q AWS_REGION=%q\n' "$AWS_ENDPOINT_URL" "$AWS_REGION"
    printf 'export AWS_ACCESS_KEY_ID=%q AWS_SECRET_ACCESS_KEY=%q\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"
    printf 'export QUEUE_URL=%q DLQ_URL=%q TABLE_NAME=%q\n' "$QUEUE_URL" "$DLQ_URL" "$TABLE_NAME"
    printf 'export USER_SERVICE_URL=%q DEV_USER_SERVICE_PORT=%q\n' "$USER_SERVICE_URL" "$DUS_PORT"
    printf 'export INGEST_URL=%q TOKEN=%q\n' "$INGEST_URL" "$TOKEN"
    printf 'unset AWS_LAMBDA_RUNTIME_API\n'
  } >"$ENV_FILE"
)
now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

cat <<EOF

  Dev stack is up.
    ingest            $INGEST_URL   (Swagger UI: $INGEST_URL/docs/)
    dev User Service  $DUS_URL
    worker            long-polling $QUEUE_URL
    emulator          $AWS_ENDPOINT_URL   table $TABLE_NAME, DLQ $DLQ_URL
    logs              .run/ingest.log .run/worker.log .run/dev-user-service.log

  A dev token for '$DEV_USER' (also in .run/dev-token; more: $BIN_DIR/dev-user-service mint --sub NAME):

export TOKEN='$TOKEN'

  Post a score:

curl -i -X POST $INGEST_URL/v1/users/$DEV_USER/credit-scores -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' -d '{"bureau":"experian","score":742,"reportedAt":"$now"}'

  Read it back (once the worker has written it):

curl -s $INGEST_URL/v1/users/$DEV_USER/credit-scores -H "Authorization: Bearer \$TOKEN"

  Scan the table through the emulator:

curl -s $AWS_ENDPOINT_URL/ -H 'X-Amz-Target: DynamoDB_20120810.Scan' -H 'Content-Type: application/x-amz-json-1.0' -H 'Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/$AWS_REGION/dynamodb/aws4_request, SignedHeaders=host, Signature=0' -d '{"TableName":"$TABLE_NAME"}'

  From another shell, load this stack's settings (token included), then inspect the DLQ:

. ${ENV_FILE#"$REPO_ROOT"/}
$BIN_DIR/worker dlq stats

EOF

if [[ "${DEV_DETACH:-0}" == "1" ]]; then
  detached=1
  log "detached: everything keeps running; stop it with 'make dev-stop' (or scripts/dev.sh stop)"
  log "environment for other shells: . ${ENV_FILE#"$REPO_ROOT"/}"
  exit 0
fi

# 6. Foreground: follow the logs until Ctrl-C / SIGTERM or a process dies ---------
log "following the logs; Ctrl-C stops everything"
tail -n 0 -F "$(logfile_of dev-user-service)" "$(logfile_of ingest)" "$(logfile_of worker)" &
tail_pid=$!
while true; do
  for entry in "${SERVICES[@]}"; do
    name="${entry%%:*}"
    pid="$(read_pidfile "$(pidfile_of "$name")")"
    if ! pid_alive "$pid"; then
      warn "$name (pid ${pid:-?}) exited; stopping the rest"
      exit 1
    fi
  done
  # Backgrounded sleep + wait so a signal is handled at once.
  sleep 1 &
  wait $! || true
done

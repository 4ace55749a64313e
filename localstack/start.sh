#!/usr/bin/env bash
# Start a local AWS emulator on 127.0.0.1:${EMULATOR_PORT:-4566}.
#
#   EMULATOR=ministack (default) -> MiniStack from a pinned virtualenv ($REPO/.venv-ministack):
#                                   SQS, DynamoDB, Lambda, API Gateway, CloudFormation, S3, no
#                                   Docker; runs the deployed stack's functions (make dev-lambda)
#   EMULATOR=moto                -> moto server from a pinned virtualenv ($REPO/.venv-emulator):
#                                   SQS and DynamoDB only
#   EMULATOR=localstack          -> LocalStack via localstack/docker-compose.yml (needs Docker;
#                                   LOCALSTACK_AUTH_TOKEN is passed through when set)
#   something already answers on the port -> reuse it (and never stop it later)
# docs/emulators.md compares them and says why MiniStack is the default.
#
# Idempotent. Logs go to stderr; the last line on stdout is
#   AWS_ENDPOINT_URL=http://127.0.0.1:PORT
#
# Environment:
#   EMULATOR_PORT          port on 127.0.0.1 (default 4566)
#   EMULATOR               ministack (default) | moto | localstack
#   EMULATOR_WAIT_SECONDS  readiness bound (default 30, 180 for LocalStack)
#   EMULATOR_PYTHON        python used to create the venv (default python3)
set -euo pipefail

LOG_TAG="emulator"
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

MOTO_VERSION="5.2.5"
MOTO_REQUIREMENTS=("moto[dynamodb,sqs]==$MOTO_VERSION" "flask" "flask-cors")
# MiniStack pins its own botocore: it gets a virtualenv of its own.
MINISTACK_VERSION="1.5.33"
MINISTACK_REQUIREMENTS=("ministack==$MINISTACK_VERSION")
# Per port, so emulators on different ports (MiniStack and moto side by side) each have theirs.
PID_FILE="$RUN_DIR/emulator-$(emulator_port).pid"
KIND_FILE="$RUN_DIR/emulator-$(emulator_port).kind"
DOCKER_MARKER="$RUN_DIR/emulator-$(emulator_port).docker"
LOG_FILE="$RUN_DIR/emulator-$(emulator_port).log"
COMPOSE_FILE="$REPO_ROOT/localstack/docker-compose.yml"
COMPOSE_PROJECT="credit-score-emulator"

PORT="$(emulator_port)"
URL="$(emulator_url)"
MODE="${EMULATOR:-ministack}"

if ! [[ "$PORT" =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then
  die "EMULATOR_PORT must be a TCP port number, got '$PORT'"
fi
case "$MODE" in ministack | moto | localstack) ;; *) die "EMULATOR must be ministack, moto or localstack, got '$MODE'" ;; esac
require_cmd curl

finish() {
  printf 'AWS_ENDPOINT_URL=%s\n' "$URL"
  exit 0
}

describe_server() {
  if [[ "$(http_status "$URL/_ministack/health")" == "200" ]]; then
    printf 'MiniStack'
  elif [[ "$(http_status "$URL/_localstack/health")" == "200" ]]; then
    printf 'LocalStack'
  elif [[ "$(http_status "$URL/moto-api/data.json")" == "200" ]]; then
    printf 'moto server'
  else
    printf 'an unknown HTTP server'
  fi
}

docker_engine_answers() {
  command -v docker >/dev/null 2>&1 || return 1
  timeout 5 docker info >/dev/null 2>&1
}

# Prints the compose command ("docker compose" or "docker-compose"), fails when none.
compose_cmd() {
  if docker compose version >/dev/null 2>&1; then
    printf 'docker compose'
  elif command -v docker-compose >/dev/null 2>&1; then
    printf 'docker-compose'
  else
    return 1
  fi
}

# --- 1. Something already there? -------------------------------------------
ensure_run_dir
existing_kind="$(cat "$KIND_FILE" 2>/dev/null || printf 'moto')"
case "$existing_kind" in
  ministack) existing_pattern=ministack ;;
  *) existing_pattern=moto_server ;;
esac
existing_pid="$(read_pidfile "$PID_FILE")"
if [[ -n "$existing_pid" ]] && ! pid_matches "$existing_pid" "$existing_pattern"; then
  log "removing stale pid file (pid $existing_pid is no longer $existing_kind)"
  rm -f "$PID_FILE" "$KIND_FILE"
  existing_pid=""
fi

if emulator_answers; then
  if [[ -n "$existing_pid" ]]; then
    log "$existing_kind already running on $URL (pid $existing_pid, started by start.sh)"
  elif [[ -f "$DOCKER_MARKER" ]]; then
    log "LocalStack already running on $URL (started by start.sh via docker compose)"
  else
    kind="$(describe_server)"
    log "reusing $kind already answering on $URL (not started by start.sh: stop.sh will leave it alone)"
    if [[ "$kind" == "an unknown HTTP server" ]]; then
      warn "it does not look like MiniStack, LocalStack or moto; AWS calls may fail"
    fi
  fi
  finish
fi

wait_until_ready() {
  # wait_until_ready SECONDS PID_OR_EMPTY CHECK_FN
  local limit="$1" pid="$2" check="$3" deadline
  deadline=$((SECONDS + limit))
  while ((SECONDS < deadline)); do
    if "$check"; then
      return 0
    fi
    if [[ -n "$pid" ]] && ! pid_alive "$pid"; then
      log_tail "$LOG_FILE" 40
      die "the emulator process (pid $pid) exited before answering on $URL; see $LOG_FILE"
    fi
    sleep 0.2
  done
  log_tail "$LOG_FILE" 40
  die "the emulator did not answer on $URL within ${limit}s; see $LOG_FILE"
}

# Our emulator process is alive but not answering yet: wait for it instead of
# starting a second one.
if [[ -n "$existing_pid" ]]; then
  log "$existing_kind (pid $existing_pid) is starting; waiting for it"
  wait_until_ready "${EMULATOR_WAIT_SECONDS:-30}" "$existing_pid" emulator_answers
  finish
fi

# --- 2. LocalStack through Docker -------------------------------------------
# shellcheck disable=SC2317  # called indirectly through wait_until_ready
localstack_ready() {
  local body
  body="$(curl -s --max-time 2 "$URL/_localstack/health" 2>/dev/null)" || return 1
  grep -Eq '"sqs": *"(running|available)"' <<<"$body" &&
    grep -Eq '"dynamodb": *"(running|available)"' <<<"$body"
}

start_localstack() {
  local compose
  compose="$(compose_cmd)" || return 1
  log "Docker engine found: starting LocalStack with $compose (port $PORT; the first run pulls the image)"
  # Word splitting of $compose is intended ("docker compose").
  # shellcheck disable=SC2086
  if ! EMULATOR_PORT="$PORT" $compose -p "$COMPOSE_PROJECT" -f "$COMPOSE_FILE" up -d >"$LOG_FILE" 2>&1; then
    log_tail "$LOG_FILE" 40
    die "docker compose could not start LocalStack; see $LOG_FILE (or run with EMULATOR=moto)"
  fi
  printf '%s\n' "$compose" >"$DOCKER_MARKER"
  log "waiting for LocalStack (sqs, dynamodb) on $URL"
  if ! (wait_until_ready "${EMULATOR_WAIT_SECONDS:-180}" "" localstack_ready); then
    # shellcheck disable=SC2086
    $compose -p "$COMPOSE_PROJECT" -f "$COMPOSE_FILE" logs --tail 40 >&2 || true
    # shellcheck disable=SC2086
    $compose -p "$COMPOSE_PROJECT" -f "$COMPOSE_FILE" down >>"$LOG_FILE" 2>&1 || true
    rm -f "$DOCKER_MARKER"
    exit 1
  fi
  log "LocalStack is ready on $URL"
  return 0
}

if [[ "$MODE" == "localstack" ]]; then
  docker_engine_answers || die "EMULATOR=localstack but no Docker engine answers 'docker info'"
  start_localstack && finish
  die "EMULATOR=localstack but neither 'docker compose' nor 'docker-compose' is installed"
fi

# --- 3. MiniStack or moto server from a pinned virtualenv --------------------
if [[ "$MODE" == "ministack" ]]; then
  VENV="$REPO_ROOT/.venv-ministack"
  PACKAGE=ministack
  VERSION="$MINISTACK_VERSION"
  REQUIREMENTS=("${MINISTACK_REQUIREMENTS[@]}")
  EXECUTABLE=ministack
else
  VENV="$REPO_ROOT/.venv-emulator"
  PACKAGE=moto
  VERSION="$MOTO_VERSION"
  REQUIREMENTS=("${MOTO_REQUIREMENTS[@]}")
  EXECUTABLE=moto_server
fi
VENV_STAMP="$VENV/.emulator-requirements"

venv_python_works() { [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; }

ensure_venv() {
  local python="${EMULATOR_PYTHON:-python3}" wanted have
  if [[ -d "$VENV" ]] && ! venv_python_works; then
    log "virtualenv $VENV is broken (its python does not run); recreating it"
    rm -rf "$VENV"
  fi
  if [[ ! -d "$VENV" ]]; then
    require_cmd "$python"
    log "creating virtualenv $VENV with $($python --version 2>&1)"
    if ! "$python" -m venv "$VENV" >"$RUN_DIR/venv.log" 2>&1; then
      rm -rf "$VENV"
      log_tail "$RUN_DIR/venv.log" 20
      die "'$python -m venv' failed. On Debian/Ubuntu: apt-get install -y python3-venv"
    fi
  fi
  wanted="${REQUIREMENTS[*]}"
  have="$(cat "$VENV_STAMP" 2>/dev/null || true)"
  if [[ "$have" == "$wanted" ]] && [[ -x "$VENV/bin/$EXECUTABLE" ]] &&
    [[ "$("$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('$PACKAGE'))" 2>/dev/null)" == "$VERSION" ]]; then
    log "$PACKAGE $VERSION already installed in $VENV"
    return 0
  fi
  log "installing ${REQUIREMENTS[*]} into $VENV (10-30 s)"
  if ! PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$VENV/bin/python" -m pip install --quiet "${REQUIREMENTS[@]}" >"$RUN_DIR/pip.log" 2>&1; then
    log_tail "$RUN_DIR/pip.log" 30
    die "pip could not install $PACKAGE into $VENV (is PyPI reachable?); see $RUN_DIR/pip.log"
  fi
  [[ -x "$VENV/bin/$EXECUTABLE" ]] || die "pip finished but $VENV/bin/$EXECUTABLE is missing"
  printf '%s' "$wanted" >"$VENV_STAMP"
}

# shellcheck disable=SC2317  # called indirectly through wait_until_ready
ministack_ready() { [[ "$(http_status "$URL/_ministack/health")" == "200" ]]; }

ensure_venv
log "starting $PACKAGE on $URL (log: $LOG_FILE)"
if [[ "$MODE" == "ministack" ]]; then
  # AWS_ENDPOINT_URL set to itself: only then does MiniStack give the functions it runs an
  # endpoint, and the SDK in them reaches the emulator instead of real AWS hosts. Its
  # persistence stays off: every start is empty, as moto's.
  GATEWAY_PORT="$PORT" BIND_HOST=127.0.0.1 MINISTACK_HOST=127.0.0.1 AWS_ENDPOINT_URL="$URL" MINISTACK_REGION=us-east-1 \
    LOG_LEVEL="${MINISTACK_LOG_LEVEL:-WARNING}" \
    nohup "$VENV/bin/ministack" >"$LOG_FILE" 2>&1 </dev/null &
  ready_check=ministack_ready
else
  nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$LOG_FILE" 2>&1 </dev/null &
  ready_check=emulator_answers
fi
emulator_pid=$!
printf '%s\n' "$emulator_pid" >"$PID_FILE"
printf '%s\n' "$MODE" >"$KIND_FILE"
if ! (wait_until_ready "${EMULATOR_WAIT_SECONDS:-30}" "$emulator_pid" "$ready_check"); then
  stop_pid "$PACKAGE" "$emulator_pid" 5
  rm -f "$PID_FILE" "$KIND_FILE"
  exit 1
fi
log "$PACKAGE $VERSION is ready on $URL (pid $emulator_pid)"
finish

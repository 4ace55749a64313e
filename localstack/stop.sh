#!/usr/bin/env bash
# Stop the emulator that localstack/start.sh started (moto by its pid file, or
# LocalStack by docker compose down). Leaves alone anything start.sh only
# reused. Safe to run any number of times.
set -euo pipefail

LOG_TAG="emulator"
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

PID_FILE="$RUN_DIR/emulator-$(emulator_port).pid"
KIND_FILE="$RUN_DIR/emulator-$(emulator_port).kind"
DOCKER_MARKER="$RUN_DIR/emulator-$(emulator_port).docker"
COMPOSE_FILE="$REPO_ROOT/localstack/docker-compose.yml"
COMPOSE_PROJECT="credit-score-emulator"

stopped=0

if [[ -f "$PID_FILE" ]]; then
  kind="$(cat "$KIND_FILE" 2>/dev/null || printf 'moto')"
  case "$kind" in
    ministack) name=MiniStack pattern=ministack ;;
    *) name="moto server" pattern=moto_server ;;
  esac
  pid="$(read_pidfile "$PID_FILE")"
  if [[ -n "$pid" ]] && pid_matches "$pid" "$pattern"; then
    stop_pidfile "$name" "$PID_FILE" "$pattern" 10
    log "$name stopped"
  else
    log "$name (pid ${pid:-?}) was not running any more"
    rm -f "$PID_FILE"
  fi
  rm -f "$KIND_FILE"
  stopped=1
fi

if [[ -f "$DOCKER_MARKER" ]]; then
  compose="$(head -n1 "$DOCKER_MARKER")"
  case "$compose" in
    "docker compose" | "docker-compose") ;;
    *) compose="docker compose" ;;
  esac
  log "stopping LocalStack ($compose down)"
  # Word splitting of $compose is intended ("docker compose").
  # shellcheck disable=SC2086
  if EMULATOR_PORT="$(emulator_port)" $compose -p "$COMPOSE_PROJECT" -f "$COMPOSE_FILE" down >&2; then
    log "LocalStack stopped"
  else
    warn "'$compose down' failed (is the Docker engine still up?); remove the container by hand if it remains"
  fi
  rm -f "$DOCKER_MARKER"
  stopped=1
fi

if ((stopped == 0)); then
  log "nothing to stop: start.sh has no emulator running (anything else on port $(emulator_port) is left alone)"
fi

# shellcheck shell=bash
# Helpers shared by scripts/*.sh and localstack/*.sh. Source it, don't run it:
#   . "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
# It sets REPO_ROOT (absolute, resolved from this file's location) and RUN_DIR
# ($REPO_ROOT/.run, where pids and logs of background processes live).

if [[ -n "${_PIPELINE_LIB_LOADED:-}" ]]; then
  return 0
fi
_PIPELINE_LIB_LOADED=1

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
RUN_DIR="$REPO_ROOT/.run"
export REPO_ROOT RUN_DIR

# The prefix printed before every message: the calling script's name.
LOG_TAG="${LOG_TAG:-$(basename "$0" .sh)}"

# Messages go to stderr so stdout stays clean for machine-readable output.
log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&2; }
warn() { printf '[%s] WARNING: %s\n' "$LOG_TAG" "$*" >&2; }
die() {
  printf '[%s] ERROR: %s\n' "$LOG_TAG" "$*" >&2
  exit 1
}

# require_cmd CMD...: dies naming every CMD not on PATH at once, with what provides it
# (the README's Prerequisites section lists them all).
require_cmd() {
  local cmd missing=()
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("'$cmd' ($(install_hint "$cmd"))")
  done
  if ((${#missing[@]} > 0)); then
    die "required but not found on PATH: ${missing[*]}; see Prerequisites in README.md"
  fi
}

# install_hint CMD: where CMD comes from, briefly.
install_hint() {
  case "$1" in
    cargo | rustc) printf 'the Rust toolchain, installed with rustup' ;;
    python3 | python*) printf 'apt-get install python3 python3-venv' ;;
    curl | make | git) printf 'apt-get install %s' "$1" ;;
    tee | tail | nohup | timeout | mktemp) printf 'coreutils' ;;
    *) printf 'install %s' "$1" ;;
  esac
}

ensure_run_dir() { mkdir -p "$RUN_DIR"; }

emulator_port() { printf '%s' "${EMULATOR_PORT:-4566}"; }
emulator_url() { printf 'http://127.0.0.1:%s' "$(emulator_port)"; }

# http_status URL [MAX_SECONDS]: prints the HTTP status code, "000" when nothing
# answered (refused, timed out, not HTTP). Never fails.
http_status() {
  local code
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time "${2:-2}" "$1" 2>/dev/null)" || true
  printf '%s' "${code:-000}"
}

# http_answers URL: true when anything speaking HTTP answers at URL (any status).
http_answers() {
  local code
  code="$(http_status "$1" "${2:-2}")"
  [[ "$code" != "000" ]]
}

# emulator_answers: true when something speaks HTTP on the emulator port.
emulator_answers() { http_answers "$(emulator_url)/"; }

# emulator_runs_lambda URL: true when the emulator at URL runs Lambda functions (MiniStack or
# LocalStack answer their health paths; moto has neither), so the template can be deployed.
emulator_runs_lambda() {
  [[ "$(http_status "$1/_ministack/health")" == "200" || "$(http_status "$1/_localstack/health")" == "200" ]]
}

# pid_alive PID: true when the process exists.
pid_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

# read_pidfile FILE: prints the pid recorded in FILE (empty when missing or junk).
read_pidfile() {
  local pid=""
  if [[ -f "$1" ]]; then
    pid="$(tr -cd '0-9' <"$1")"
  fi
  printf '%s' "$pid"
}

# pid_matches PID PATTERN: true when the process is alive and its command line
# contains PATTERN (guards against killing a recycled pid).
pid_matches() {
  local pid="$1" pattern="$2" cmdline
  pid_alive "$pid" || return 1
  if [[ -r "/proc/$pid/cmdline" ]]; then
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  else
    cmdline="$(ps -o args= -p "$pid" 2>/dev/null)" || return 1
  fi
  [[ "$cmdline" == *"$pattern"* ]]
}

# stop_pid NAME PID [GRACE_SECONDS]: SIGTERM, wait up to GRACE_SECONDS
# (default 10), then SIGKILL. Safe on a pid that is already gone.
stop_pid() {
  local name="$1" pid="$2" grace="${3:-10}" waited=0
  if ! pid_alive "$pid"; then
    return 0
  fi
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  while pid_alive "$pid" && ((waited < grace * 10)); do
    sleep 0.1
    waited=$((waited + 1))
  done
  if pid_alive "$pid"; then
    warn "$name (pid $pid) did not stop within ${grace}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  # Reap it when it is our child; harmless otherwise.
  wait "$pid" 2>/dev/null || true
}

# stop_pidfile NAME PIDFILE PATTERN [GRACE]: stop the process recorded in
# PIDFILE if its command line contains PATTERN, then remove PIDFILE.
stop_pidfile() {
  local name="$1" pidfile="$2" pattern="$3" grace="${4:-10}" pid
  pid="$(read_pidfile "$pidfile")"
  if [[ -z "$pid" ]]; then
    rm -f "$pidfile"
    return 0
  fi
  if pid_matches "$pid" "$pattern"; then
    stop_pid "$name" "$pid" "$grace"
  elif pid_alive "$pid"; then
    warn "pid $pid in $pidfile is not $name any more; leaving that process alone"
  fi
  rm -f "$pidfile"
}

# log_tail FILE [LINES]: the last lines of a log, indented, to stderr.
log_tail() {
  local file="$1" lines="${2:-30}"
  if [[ -s "$file" ]]; then
    printf '[%s] --- last %s lines of %s ---\n' "$LOG_TAG" "$lines" "$file" >&2
    tail -n "$lines" "$file" | sed 's/^/    /' >&2
    printf '[%s] --- end of %s ---\n' "$LOG_TAG" "$file" >&2
  else
    printf '[%s] (%s is empty or missing)\n' "$LOG_TAG" "$file" >&2
  fi
}

# is_loopback_url URL: true for http(s)://127.x.x.x, localhost or [::1].
is_loopback_url() {
  local url="$1" host
  host="${url#*://}"
  host="${host%%/*}"
  host="${host##*@}"
  case "$host" in
    \[::1\] | \[::1\]:*) return 0 ;;
  esac
  host="${host%%:*}"
  case "$host" in
    localhost | 127.*) return 0 ;;
    *) return 1 ;;
  esac
}

#!/usr/bin/env bash
# Property-based API testing with schemathesis (PyPI, pinned) against the real local stack:
# the emulator, a provisioned queue/DLQ/table, the dev User Service, ingest and the worker.
# First the served document is validated against the OpenAPI 3.1 schema
# (openapi-spec-validator, pinned). Then schemathesis reads ingest's own /docs/swagger.json
# and generates requests from it in four phases: the documented examples, boundary
# ("coverage") cases, random fuzzing (valid and invalid data), and stateful sequences that
# follow the document's links (a write, then reading its report and the user's list). Every
# response is checked: no 5xx, status codes, content types, headers and bodies as documented,
# invalid input rejected with a 4xx, and requests without valid auth refused.
#
#   scripts/schemathesis.sh            (make schemathesis)
#   SCHEMATHESIS_AUTH_MODE=jwks scripts/schemathesis.sh   ingest in AUTH_MODE=jwks (docs/auth.md)
#
# Everything it starts it stops again, pass or fail; an emulator already running is reused
# and left running. Reports (JUnit XML, NDJSON events) go to .run/schemathesis/. About 25 s
# with everything installed and built; a first run adds the venv (about 10 s) and the build.
#
# One schemathesis worker: with two, CPython 3.11 (3.11.7 here) sometimes failed inside
# hypothesis with "SystemError: AST constructor recursion depth mismatch" from ast.parse
# running in two threads at once.
#
# Environment:
#   SCHEMATHESIS_MAX_EXAMPLES   cases per operation in the fuzzing phase (default 100)
#   SCHEMATHESIS_SEED           random seed (default: fixed, so a failure can be replayed)
#   SCHEMATHESIS_WAIT_SECONDS   readiness bound for each process (default 30)
#   SCHEMATHESIS_NO_BUILD=1     use binaries already built
#   EMULATOR_PORT               emulator port (default 4566)
set -euo pipefail

LOG_TAG="schemathesis"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$REPO_ROOT"
require_cmd curl python3

SCHEMATHESIS_VERSION="4.32.5"
REQUIREMENTS=("schemathesis==$SCHEMATHESIS_VERSION" "openapi-spec-validator==0.9.0")
VENV="$REPO_ROOT/.venv-tools"
VENV_STAMP="$VENV/.schemathesis-requirements"
OUT_DIR="$RUN_DIR/schemathesis"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-100}"
SEED="${SCHEMATHESIS_SEED:-20261128}"
WAIT_SECONDS="${SCHEMATHESIS_WAIT_SECONDS:-30}"
BIN_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug"
# What is checked, and why each matters:
#   not_a_server_error            no 5xx for any input
#   status_code_conformance       every status answered is documented for that operation
#   content_type_conformance      bodies come with the documented media type
#   response_headers_conformance  documented headers are present and well-formed
#   response_schema_conformance   every body matches its documented schema
#   negative_data_rejection       input the document calls invalid gets a 4xx
#   ignored_auth                  operations that need a token refuse requests without one
CHECKS="not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,ignored_auth"

ensure_run_dir
mkdir -p "$OUT_DIR"

# --- 1. the tools, in a pinned virtualenv --------------------------------------------
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  rm -rf "$VENV"
  log "creating virtualenv $VENV"
  python3 -m venv "$VENV" || die "'python3 -m venv' failed. On Debian/Ubuntu: apt-get install -y python3-venv"
fi
if [[ "$(cat "$VENV_STAMP" 2>/dev/null || true)" != "${REQUIREMENTS[*]}" ]] ||
  [[ ! -x "$VENV/bin/schemathesis" || ! -x "$VENV/bin/openapi-spec-validator" ]]; then
  log "installing ${REQUIREMENTS[*]} into $VENV (about 10 s)"
  PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$VENV/bin/python" -m pip install --quiet "${REQUIREMENTS[@]}" >"$OUT_DIR/pip.log" 2>&1 ||
    {
      log_tail "$OUT_DIR/pip.log" 30
      die "pip could not install ${REQUIREMENTS[*]} (is PyPI reachable?)"
    }
  printf '%s' "${REQUIREMENTS[*]}" >"$VENV_STAMP"
fi

# --- 2. cleanup of whatever this run starts ----------------------------------------
started_emulator=0
pids=()
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local status=$? i
  trap - EXIT INT TERM
  # Reverse start order: the worker finishes its batches, then ingest, then the User Service.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    stop_pid "${pids[i]%%:*}" "${pids[i]#*:}" 20
  done
  if ((started_emulator == 1)); then
    bash "$REPO_ROOT/localstack/stop.sh" || warn "localstack/stop.sh failed"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_bg NAME COMMAND...: runs it in the background, logging to $OUT_DIR/NAME.log.
start_bg() {
  local name="$1"
  shift
  "$@" >"$OUT_DIR/$name.log" 2>&1 </dev/null &
  pids+=("$name:$!")
  log "started $name (pid $!)"
}

# wait_for NAME URL: until URL answers 2xx, while the process stays alive.
wait_for() {
  local name="$1" url="$2" deadline pid entry
  deadline=$((SECONDS + WAIT_SECONDS))
  while ((SECONDS < deadline)); do
    if [[ "$(http_status "$url" 1)" == 2* ]]; then
      return 0
    fi
    for entry in "${pids[@]}"; do
      pid="${entry#*:}"
      if ! pid_alive "$pid"; then
        log_tail "$OUT_DIR/${entry%%:*}.log" 30
        die "${entry%%:*} exited during start-up"
      fi
    done
    sleep 0.2
  done
  log_tail "$OUT_DIR/$name.log" 30
  die "$name did not answer $url within ${WAIT_SECONDS}s"
}

# --- 3. emulator, binaries, resources ------------------------------------------------
if emulator_answers; then
  log "an emulator already answers on $(emulator_url): reusing it"
else
  started_emulator=1
  bash "$REPO_ROOT/localstack/start.sh" >/dev/null
fi
AWS_ENDPOINT_URL="$(emulator_url)"
export AWS_ENDPOINT_URL AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
unset AWS_LAMBDA_RUNTIME_API

if [[ "${SCHEMATHESIS_NO_BUILD:-0}" != "1" ]]; then
  require_cmd cargo
  log "cargo build -p ingest -p worker -p pipeline-tests --bins"
  cargo build -q -p ingest -p worker -p pipeline-tests --bins || die "cargo build failed"
fi
for bin in ingest worker dev-user-service; do
  [[ -x "$BIN_DIR/$bin" ]] || die "$BIN_DIR/$bin is missing (cargo build -p ingest -p worker -p pipeline-tests --bins)"
done

# Names of its own, so a run never touches the dev stack's data.
run_id="$(date +%s)-$$"
provisioned="$(QUEUE_NAME="schemathesis-$run_id" DLQ_NAME="schemathesis-$run_id-dlq" \
  TABLE_NAME="schemathesis-$run_id" WORKER_BIN="$BIN_DIR/worker" \
  bash "$REPO_ROOT/localstack/provision.sh")" || die "provisioning failed"
QUEUE_URL="" DLQ_URL="" TABLE_NAME=""
eval "$provisioned"
export QUEUE_URL DLQ_URL TABLE_NAME

# --- 4. dev User Service, ingest, worker ----------------------------------------------
dus_port="$(free_port)"
ingest_port="$(free_port)"
base="http://127.0.0.1:$ingest_port"
start_bg dev-user-service "$BIN_DIR/dev-user-service" serve --port "$dus_port"
wait_for dev-user-service "http://127.0.0.1:$dus_port/health"
# SCHEMATHESIS_AUTH_MODE=jwks: ingest verifies RS256 tokens against the stand-in's JWKS
# issuer instead of asking it (docs/auth.md).
auth_mode="${SCHEMATHESIS_AUTH_MODE:-user-service}"
case "$auth_mode" in
  user-service) jwks_issuer="" ;;
  jwks) jwks_issuer="$(curl -sf "http://127.0.0.1:$dus_port/jwks-issuer")" || die "no JWKS issuer URL" ;;
  *) die "SCHEMATHESIS_AUTH_MODE must be user-service or jwks, not '$auth_mode'" ;;
esac
log "auth mode: $auth_mode"
CURSOR_SIGNING_KEY="$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')" \
  USER_SERVICE_URL="http://127.0.0.1:$dus_port" PORT="$ingest_port" \
  AUTH_MODE="$auth_mode" AUTH_ISSUER="$jwks_issuer" AUTH_CLIENT_IDS=test-client \
  start_bg ingest "$BIN_DIR/ingest"
start_bg worker "$BIN_DIR/worker"
wait_for ingest "$base/health"

# A service-scope token: it may read and write any user, so generated user ids get real
# answers (200/202/404) rather than a 403 for every one.
if [[ "$auth_mode" == jwks ]]; then
  token="$(curl -sf "http://127.0.0.1:$dus_port/dev-jwt?sub=alice&scope=credit-scores:service" | tr -d '[:space:]')"
else
  token="$("$BIN_DIR/dev-user-service" mint --sub alice --scope credit-scores:service --ttl-seconds 3600 | tr -d '[:space:]')"
fi
[[ -n "$token" ]] || die "dev-user-service mint printed no token"

# --- 5. seed reports, so reads return real items ---------------------------------------
# 25 scores for alice (the documented example user), one under the documented example
# reportId, so list pages carry items and a nextCursor and the by-id example answers 200.
example_report="01JDQ6W8ZK3M5N7P9R1S3T5V7X"
for i in $(seq 1 25); do
  key="seed-$i"
  if ((i == 25)); then key="$example_report"; fi
  code="$(curl -s -o /dev/null -w '%{http_code}' -X POST "$base/v1/users/alice/credit-scores" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -H "Idempotency-Key: $key" \
    -d "{\"bureau\":\"$(printf 'experian\nequifax\ntransunion' | sed -n "$((i % 3 + 1))p")\",\"score\":$((500 + i)),\"reportedAt\":\"2026-10-$(printf '%02d' "$i")T10:00:00Z\"}")"
  [[ "$code" == 202 ]] || die "seeding score $i answered $code"
done
deadline=$((SECONDS + WAIT_SECONDS))
until [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H "Authorization: Bearer $token" \
  "$base/v1/users/alice/credit-scores/$example_report")" == 200 ]]; do
  ((SECONDS < deadline)) || die "the worker did not write the seeded reports within ${WAIT_SECONDS}s"
  sleep 0.3
done
log "seeded 25 reports for alice"

# --- 6. the document against the OpenAPI 3.1 schema, then schemathesis -------------------
curl -sf "$base/docs/swagger.json" -o "$OUT_DIR/openapi.json" || die "GET /docs/swagger.json failed"
"$VENV/bin/openapi-spec-validator" --schema 3.1 "$OUT_DIR/openapi.json" ||
  die "the served document is not valid OpenAPI 3.1 (${OUT_DIR#"$REPO_ROOT"/}/openapi.json)"

log "schemathesis $SCHEMATHESIS_VERSION: checks $CHECKS; up to $MAX_EXAMPLES fuzzed cases per operation"
status=0
"$VENV/bin/schemathesis" --config-file "$REPO_ROOT/scripts/schemathesis.toml" run "$base/docs/swagger.json" \
  --header "Authorization: Bearer $token" \
  --checks "$CHECKS" \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --workers 1 \
  --request-timeout 10 \
  --suppress-health-check too_slow \
  --report junit,ndjson --report-dir "$OUT_DIR" \
  --warnings off ||
  status=$?
if ((status != 0)); then
  log_tail "$OUT_DIR/ingest.log" 20
  die "schemathesis found problems (exit $status); reports in ${OUT_DIR#"$REPO_ROOT"/}"
fi
log "schemathesis passed; reports in ${OUT_DIR#"$REPO_ROOT"/}"

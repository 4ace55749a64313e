#!/usr/bin/env bash
# `make soak`: the spike test (tests/tests/binaries/soak.rs), minutes long, so not in `make test`.
#
# 100,000 writes (SOAK_WRITES) from 10,000 users by 32 concurrent clients through one ingest
# binary in server mode onto ONE queue, while 2 worker binaries in poller mode, at their
# default batching (POLLER_RECEIVE_LOOPS 10, POLLER_BATCH_SIZE 100, POLLER_BATCH_WINDOW_MS 100,
# POLLER_BATCHES_IN_FLIGHT 4), drain it as the writes arrive. Before the writes, the same
# clients call SendMessage directly for 10 s on the same emulator: the baseline ingest's rate
# is compared with (the ratio is printed; 0.8 is the bar), then GetItem + SendMessage for 10 s
# (the emulator calls ingest makes per keyed write). It asserts that every write was
# answered 2xx, or 503 and retried with the same Idempotency-Key; that every accepted write is
# exactly one item in the table (read back by user partition, one byte per write) and the DLQ
# is empty.
# Prints accepted/s, queue depth, table size and latency per second, drain time and end-to-end
# lag (p50, p99, max). Output is also kept in .run/soak.log, and the run is drawn (accepted/s,
# queue depth, written/s, end-to-end lag) to target/soak/spike.svg (and spike-<unix time>.svg).
#
#   scripts/soak.sh                                       defaults, on MiniStack
#   SOAK_WRITES=1000000 scripts/soak.sh                   a million: memory stays flat, but
#                                                         at ~400 writes/s, about 45 minutes
#   SOAK_WRITES=5000 SOAK_BASELINE_SECONDS=3 scripts/soak.sh   a quick look
#   EMULATOR_PORT=4606 scripts/soak.sh                    a dedicated emulator: cleaner figures
#   EMULATOR=moto SOAK_SHARDS=16 SOAK_WRITES=20000 scripts/soak.sh
#       moto: its ReceiveMessage cost grows with queue depth, so spread the load over queues
#       (docs/emulators.md); SOAK_PROBE_DEPTH=3000 measures that growth at the end
#   SOAK_BREAK=drop|double scripts/soak.sh                must fail: shows the check bites
#   SOAK_TARGET=deployed scripts/soak.sh                  (`make soak-deployed`) the same spike
#       through infra/template.yaml deployed into MiniStack: API Gateway route, ingest Lambda,
#       event source mapping, worker Lambda; 20,000 writes by default; lag and written/s from
#       the worker Lambda's EMF lines in the emulator's CloudWatch Logs; no SendMessage
#       baseline. SOAK_STACK_PARAMS='WorkerMaximumConcurrency=20' changes stack parameters.
#
# Knobs: SOAK_TARGET (server | deployed), SOAK_PROFILE (release | dev: how ingest and the
# pollers are built; release by default, fat LTO takes minutes from cold), SOAK_STACK_PARAMS, SOAK_WRITES, SOAK_CLIENTS, SOAK_USERS, SOAK_WORKERS, SOAK_SHARDS,
# SOAK_SQS_SEND_TIMEOUT_MS, SOAK_BASELINE_SECONDS, SOAK_MIN_RATIO, SOAK_MAX_ATTEMPTS,
# SOAK_SCAN_SEGMENTS (0: a Query per user, n: a parallel Scan), SOAK_TIMEOUT_SECONDS,
# SOAK_PROBE_DEPTH, SOAK_BREAK (see tests/tests/binaries/soak.rs).
# Traffic goes only to 127.0.0.1. The emulator is reused or started (and then stopped)
# exactly as scripts/test.sh does.
set -euo pipefail

LOG_TAG="soak"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$REPO_ROOT"
require_cmd cargo tee
ensure_run_dir

# ingest and the pollers run as built for deployment (release): a debug ingest spends several
# times the CPU per write, and on two cores it competes with the emulator it is measured
# against. SOAK_PROFILE=dev runs debug builds (quicker to build, slower to run).
SOAK_PROFILE="${SOAK_PROFILE:-release}"
case "$SOAK_PROFILE" in
  release) profile_dir=release ;;
  dev) profile_dir=debug ;;
  *) die "SOAK_PROFILE must be release or dev, got '$SOAK_PROFILE'" ;;
esac
log "building the binaries the test starts (cargo build --profile $SOAK_PROFILE --workspace --bins)"
cargo build --profile "$SOAK_PROFILE" --workspace --bins
export PIPELINE_BIN_DIR="$REPO_ROOT/target/$profile_dir"

# MiniStack, the project's default emulator, unless told otherwise: its SQS costs stay flat as
# one queue grows, so the spike goes through a single queue as it would on AWS.
export EMULATOR="${EMULATOR:-ministack}"
export SOAK_TARGET="${SOAK_TARGET:-server}"
case "$SOAK_TARGET" in
  server) ;;
  deployed)
    # The deployed stack runs its functions as emulator processes: only MiniStack does that
    # without Docker. The test deploys with the pinned tools; install them once, here.
    [[ "$EMULATOR" == ministack ]] || die "SOAK_TARGET=deployed needs EMULATOR=ministack, got '$EMULATOR'"
    bash "$REPO_ROOT/infra/deploy-local.sh" --ensure-tools
    ;;
  *) die "SOAK_TARGET must be server or deployed, got '$SOAK_TARGET'" ;;
esac

log "running the spike test ($SOAK_TARGET) on $EMULATOR; output also in .run/soak.log"
bash "$REPO_ROOT/scripts/test.sh" --test binaries -- --ignored --nocapture soak:: 2>&1 |
  tee "$RUN_DIR/soak.log"

#!/usr/bin/env bash
# `make soak`: the spike test (tests/tests/soak.rs), minutes long, so not in `make test`.
#
# 20,000 writes through the ingest binary by concurrent clients while worker pollers drain;
# every write must be answered 2xx and land in the table exactly once. Prints drain time,
# latency, queue depth and table size every second, and how the emulator's SQS slows as one
# queue grows. Output is also kept in .run/soak.log, and the run is drawn (accepted/s, queue
# depth, written/s, end-to-end lag) to target/soak/spike.svg (and spike-<unix time>.svg).
#
#   scripts/soak.sh                         defaults
#   SOAK_WRITES=5000 SOAK_PROBE_DEPTH=0 scripts/soak.sh
#   EMULATOR_PORT=4600 scripts/soak.sh      a dedicated emulator: cleaner figures
#
# Knobs: SOAK_WRITES, SOAK_CLIENTS, SOAK_SHARDS, SOAK_WORKERS_PER_SHARD, SOAK_USERS,
# SOAK_SQS_SEND_TIMEOUT_MS, SOAK_PROBE_DEPTH, SOAK_TIMEOUT_SECONDS (see tests/tests/soak.rs).
# The emulator is reused or started (and then stopped) exactly as scripts/test.sh does.
set -euo pipefail

LOG_TAG="soak"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$REPO_ROOT"
require_cmd cargo tee
ensure_run_dir

log "building the binaries the test starts (cargo build --workspace --bins)"
cargo build --workspace --bins

log "running the spike test; output also in .run/soak.log"
# moto unless told otherwise: the figures in docs/reliability.md, and its probe of how one
# queue's receive cost grows, are moto's. EMULATOR=ministack make soak for the other.
export EMULATOR="${EMULATOR:-moto}"
bash "$REPO_ROOT/scripts/test.sh" --test soak -- --ignored --nocapture 2>&1 | tee "$RUN_DIR/soak.log"

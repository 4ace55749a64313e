#!/usr/bin/env bash
# `make bench`: the performance budgets (docs/benchmarks.md), measured against the emulator
# with release binaries, each figure printed beside the baseline measured in the same run.
#   BENCH_SECTIONS=cpu,requests,drain,poller,ingest,auth,init,zip   a subset (default: all)
#   BENCH_POLLER_MESSAGES=2000                                   messages in the poller drain
set -euo pipefail

LOG_TAG="bench"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ "${1:-}" != "--inside-emulator" ]]; then
  export LOG_TAG
  # MiniStack unless told otherwise, as everywhere else: the recorded figures
  # (docs/benchmarks.md) are MiniStack's. moto's ReceiveMessage slows down as a queue grows,
  # so on moto (EMULATOR=moto) the poller section takes minutes; trim it with
  # BENCH_POLLER_MESSAGES.
  export EMULATOR="${EMULATOR:-ministack}"
  exec bash "$REPO_ROOT/scripts/with-emulator.sh" bash "$REPO_ROOT/scripts/bench.sh" --inside-emulator "$@"
fi
cd "$REPO_ROOT"

log "cargo build --release --workspace --bins (fat LTO: several minutes from cold)"
cargo build --release --workspace --bins
log "cargo build --profile release-size -p ingest (ingest as deployed: optimised for size)"
cargo build --profile release-size -p ingest --bin ingest
log "cargo bench -p pipeline-tests --bench pipeline"
# The in-process sections (auth, ingest) run the router in this process: at info it would log
# two lines per request to this terminal, and time that. The binaries the bench starts get
# their own RUST_LOG (info, as deployed).
RUST_LOG="${RUST_LOG:-warn}" cargo bench -p pipeline-tests --bench pipeline

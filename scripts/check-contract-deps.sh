#!/usr/bin/env bash
# `make lint`: the contract knows nothing of how it travels or is stored. `contract` may not
# depend, even indirectly, on an AWS SDK crate, an async runtime or an HTTP stack; the
# crates that only need the contract (test-support, and the fuzz harness's parsers) may not
# depend on the infrastructure crate `platform`. Checked on the resolved dependency tree
# (normal and build dependencies), so a feature that drags one in fails too.
set -euo pipefail

LOG_TAG="contract-deps"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

# Crate names (as cargo tree prints them) that mean infrastructure.
FORBIDDEN='^(aws-[a-z0-9-]+|tokio|tokio-[a-z-]+|mio|hyper|hyper-[a-z-]+|axum|axum-core|reqwest|lambda_runtime|lambda_http|tower|platform|ingest|worker)$'

failed=0
check() {
  local package="$1"
  local tree found
  # On its own line, so that a failing cargo tree fails the check instead of finding nothing.
  tree="$(cargo tree --locked -p "$package" -e normal,build --prefix none --format '{p}')"
  found="$(awk '{print $1}' <<<"$tree" | sort -u | grep -E "$FORBIDDEN" || true)"
  if [[ -n "$found" ]]; then
    log "FAIL: $package depends on infrastructure crates: $(echo "$found" | tr '\n' ' ')"
    log "      (cargo tree -p $package -i <crate> shows the path)"
    failed=1
  else
    log "$package: no AWS SDK, async runtime, HTTP stack or infrastructure crate in its tree"
  fi
}

check contract
check test-support
exit "$failed"

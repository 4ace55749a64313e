#!/usr/bin/env bash
# Deploys infra/template.yaml into the local emulator as `sam deploy` would, through
# infra/deploy_local.py, with pinned tools in the repo's tools venv (.venv-tools):
#
#   infra/deploy-local.sh deploy --stack NAME --ingest BIN --worker BIN [--param KEY=VALUE ...]
#   infra/deploy-local.sh delete --stack NAME
#   infra/deploy-local.sh --ensure-tools     install the pinned tools only (make test does)
#
# AWS_ENDPOINT_URL must point at the emulator on loopback (deploy_local.py refuses anything
# else). `make dev-lambda` (scripts/dev-lambda.sh) builds the binaries and calls this.
set -euo pipefail

# The SAM translator infra/lint.sh pins, and the boto3 it runs with.
SAM_TRANSLATOR_VERSION=1.115.0
BOTO3_VERSION=1.35.49

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv-tools"

if [[ ! -x "$venv/bin/python" ]]; then
  echo "deploy-local: creating $venv" >&2
  python3 -m venv "$venv"
fi
installed() { # NAME VERSION -> true when exactly that version is in the venv
  [[ "$("$venv/bin/python" -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p')" == "$2" ]]
}
if ! installed aws-sam-translator "$SAM_TRANSLATOR_VERSION" || ! installed boto3 "$BOTO3_VERSION"; then
  echo "deploy-local: installing aws-sam-translator $SAM_TRANSLATOR_VERSION and boto3 $BOTO3_VERSION into $venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "aws-sam-translator==$SAM_TRANSLATOR_VERSION" "boto3==$BOTO3_VERSION"
fi

if [[ "${1:-}" == "--ensure-tools" ]]; then
  exit 0
fi
exec "$venv/bin/python" "$root/infra/deploy_local.py" "$@"

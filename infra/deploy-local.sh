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

# The SAM translator infra/lint.sh pins, the boto3 it runs with (the one checkov pins), and
# PyYAML, which the translator imports without declaring it.
SAM_TRANSLATOR_VERSION=1.115.0
BOTO3_VERSION=1.35.49
PYYAML_VERSION=6.0.4

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv-tools"

# shellcheck source-path=SCRIPTDIR source=../scripts/tools-venv.sh
. "$root/scripts/tools-venv.sh"
tools_venv deploy-local "aws-sam-translator==$SAM_TRANSLATOR_VERSION" "boto3==$BOTO3_VERSION" \
  "PyYAML==$PYYAML_VERSION"

if [[ "${1:-}" == "--ensure-tools" ]]; then
  exit 0
fi
exec "$venv/bin/python" "$root/infra/deploy_local.py" "$@"

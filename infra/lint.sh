#!/usr/bin/env bash
# Lints infra/template.yaml with pinned tools, twice:
#   1. cfn-lint on the SAM template itself (cfn-lint checks SAM resources against SAM schemas);
#   2. the AWS SAM translator expands it offline (as `sam deploy` would, minus uploads) and
#      cfn-lint checks the resulting plain CloudFormation, so a template SAM cannot expand, or
#      that expands into something invalid, fails here and not at deploy time.
# infra/template-lmi.yaml, the Lambda Managed Instances variant that infra/lmi_variant.py derives
# from template.yaml, must be what the script derives now (regenerate it when not), and gets the
# same passes. infra/ecs.yaml (plain CloudFormation: the ECS Fargate services) gets cfn-lint and
# checkov too.
# Then checkov, the IaC security scanner adopters run, scans both forms (the SAM form sees
# what we wrote, the expanded one what SAM generates from it, e.g. the API stage). Checks
# that do not apply are skipped in the template, beside the resource, with the reason.
# Tools go into the repo's tools venv (.venv-tools), installed when missing or at another
# version, so a fresh machine needs only python3 and access to PyPI. Any finding, including
# informational ones, fails the script: the template must lint clean.
set -euo pipefail

CFN_LINT_VERSION=1.58.0
SAM_TRANSLATOR_VERSION=1.115.0
CHECKOV_VERSION=3.3.30

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv-tools"
template="$root/infra/template.yaml"
lmi="$root/infra/template-lmi.yaml"
ecs="$root/infra/ecs.yaml"

# shellcheck source-path=SCRIPTDIR source=../scripts/tools-venv.sh
. "$root/scripts/tools-venv.sh"
tools_venv lint "cfn-lint==$CFN_LINT_VERSION" "aws-sam-translator==$SAM_TRANSLATOR_VERSION" \
  "checkov==$CHECKOV_VERSION"

expanded=$(mktemp --suffix=.json)
expanded_lmi=$(mktemp --suffix=.json)
trap 'rm -f "$expanded" "$expanded_lmi"' EXIT

echo "lint: infra/template-lmi.yaml is what infra/lmi_variant.py derives from $template" >&2
"$venv/bin/python" "$root/infra/lmi_variant.py" --check

# lint_sam TEMPLATE EXPANDED: cfn-lint on the SAM form, then on its expansion into EXPANDED.
lint_sam() {
  echo "lint: cfn-lint $CFN_LINT_VERSION on $1" >&2
  "$venv/bin/cfn-lint" --include-checks I -- "$1"

  echo "lint: expanding its SAM transform (aws-sam-translator $SAM_TRANSLATOR_VERSION) and linting the result" >&2
  "$venv/bin/python" "$root/infra/sam_transform.py" "$1" "$2"
  "$venv/bin/cfn-lint" --include-checks I -- "$2"
}
lint_sam "$template" "$expanded"
lint_sam "$lmi" "$expanded_lmi"

echo "lint: cfn-lint $CFN_LINT_VERSION on $ecs" >&2
"$venv/bin/cfn-lint" --include-checks I -- "$ecs"

# Offline: no policy download from the vendor's platform, no PyPI version check. Any failed
# check fails the script.
echo "lint: checkov $CHECKOV_VERSION on both templates, their expansions and the ECS template" >&2
for scanned in "$template" "$expanded" "$lmi" "$expanded_lmi" "$ecs"; do
  CKV_SKIP_PACKAGE_UPDATE_CHECK=true BC_SKIP_MAPPING=TRUE "$venv/bin/checkov" \
    --framework cloudformation --skip-download --quiet --compact --file "$scanned"
done

echo "lint: clean"

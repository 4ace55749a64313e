# shellcheck shell=bash
# Sourced by the scripts that run pinned Python tools (infra/lint.sh, infra/deploy-local.sh,
# infra/package.sh, scripts/lint-deploy.sh): one virtualenv for all of them, .venv-tools.
#
#   tools_venv TAG NAME==VERSION...
# creates the venv when missing and installs each pin that is missing or at another version
# (pip resolves them together, so tools that share a dependency agree on it). TAG prefixes
# its messages. Afterwards "$TOOLS_VENV/bin/..." holds the tools.

TOOLS_VENV="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv-tools"

tools_venv() {
  local tag="$1" pin have missing=()
  shift
  if [[ ! -x "$TOOLS_VENV/bin/python" ]]; then
    echo "$tag: creating $TOOLS_VENV" >&2
    python3 -m venv "$TOOLS_VENV"
  fi
  for pin in "$@"; do
    # pip show fails for a package not installed: that is "missing", not an error.
    have="$("$TOOLS_VENV/bin/python" -m pip show "${pin%%==*}" 2>/dev/null | sed -n 's/^Version: //p')" || have=""
    [[ "$have" == "${pin#*==}" ]] || missing+=("$pin")
  done
  if ((${#missing[@]} > 0)); then
    echo "$tag: installing ${missing[*]} into $TOOLS_VENV" >&2
    "$TOOLS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${missing[@]}"
  fi
}

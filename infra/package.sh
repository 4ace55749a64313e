#!/usr/bin/env bash
# Builds the two Lambda functions as deployment zips, cross-compiled for arm64 (Graviton) with
# cargo-lambda, each zipped as `bootstrap` for the provided.al2023 runtime: `worker` with the
# `release` profile, `ingest` with `release-size` (the same, optimised for size: ingest waits
# on the network, and so fits its zip budget; see the workspace Cargo.toml):
#
#   target/lambda/ingest/bootstrap.zip
#   target/lambda/worker/bootstrap.zip
#
# infra/template.yaml points its CodeUri at exactly these files; `sam deploy` uploads them.
# Prints each zip's size and fails if one is larger than MAX_ZIP_BYTES (the 4 MB budget in
# docs/architecture.md).
#
# cargo-lambda (pinned, from PyPI, bundles zig as the cross linker; about 500 MB) is installed
# into the repo's tools venv (.venv-tools) when missing. The Rust standard library for
# aarch64-unknown-linux-gnu must be installed in the toolchain (`rustup target add
# aarch64-unknown-linux-gnu`); this script tries that once when it is missing.
#
# PACKAGE_ARCH=x86_64 builds x86_64 zips instead (into the same place, where CodeUri points),
# for a stack deployed with the template parameter Architecture=x86_64 (arm64 is the default).
#
# A cold release build (fat LTO, one codegen unit) takes many minutes on 2 cores.
set -euo pipefail

CARGO_LAMBDA_VERSION=1.9.2
MAX_ZIP_BYTES=4000000 # 4 MB
FUNCTIONS=(ingest worker)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv-tools"
arch=${PACKAGE_ARCH:-arm64}

die() {
  echo "package: $*" >&2
  exit 1
}

case "$arch" in
  arm64)
    target=aarch64-unknown-linux-gnu
    arch_flag=--arm64
    lambda_dir="$root/target/lambda"
    ;;
  x86_64)
    target=x86_64-unknown-linux-gnu
    arch_flag=--x86-64
    lambda_dir="$root/target/lambda"
    echo "package: x86_64 zips: deploy them with the template parameter Architecture=x86_64" >&2
    ;;
  *) die "PACKAGE_ARCH must be arm64 (default) or x86_64, not '$arch'" ;;
esac

# cargo-lambda, pinned, in the tools venv.
# shellcheck source-path=SCRIPTDIR source=../scripts/tools-venv.sh
. "$root/scripts/tools-venv.sh"
tools_venv package "cargo-lambda==$CARGO_LAMBDA_VERSION" # about 500 MB
# cargo finds `cargo-lambda` on PATH; cargo-lambda finds zig (python-zig) there too.
export PATH="$venv/bin:$PATH"

# The standard library for the target. Checked here so a missing one fails with the fix
# spelled out, not deep inside the build.
has_target() { [[ -d "$(rustc --print sysroot)/lib/rustlib/$target/lib" ]]; }
if ! has_target; then
  echo "package: the Rust standard library for $target is missing; trying rustup" >&2
  if ! { command -v rustup >/dev/null && timeout 300 rustup target add "$target"; } || ! has_target; then
    die "cannot build for $target: its Rust standard library is not installed and could not" \
      "be fetched. Run 'rustup target add $target' on a machine that can reach the Rust" \
      "distribution server, or build on an arm64 machine."
  fi
fi

profile_of() { # FUNCTION -> the cargo profile flag its deployment build uses
  case "$1" in
    ingest) echo "--profile=release-size" ;;
    *) echo "--release" ;;
  esac
}
for f in "${FUNCTIONS[@]}"; do
  profile=$(profile_of "$f")
  echo "package: cargo lambda build $profile $arch_flag --output-format zip -p $f" >&2
  (
    cd "$root"
    cargo lambda build "$profile" "$arch_flag" --output-format zip \
      --lambda-dir "$lambda_dir" -p "$f"
  )
done

status=0
for f in "${FUNCTIONS[@]}"; do
  zip="$lambda_dir/$f/bootstrap.zip"
  [[ -f "$zip" ]] || die "expected $zip after the build, but it is not there"
  bytes=$(wc -c <"$zip")
  mb=$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1000000 }')
  verdict=ok
  if ((bytes > MAX_ZIP_BYTES)); then
    verdict="TOO LARGE (budget $MAX_ZIP_BYTES bytes)"
    status=1
  fi
  printf '%-7s %s  %10d bytes  %6s MB  %s\n' "$f" "${zip#"$root"/}" "$bytes" "$mb" "$verdict"
done
((status == 0)) || die "a zip exceeds the $MAX_ZIP_BYTES-byte budget"

#!/usr/bin/env bash
# `make image`: builds localhost/credit-score-ingest:local and localhost/credit-score-worker:local
# without pulling any base image, with buildah (vfs storage, chroot isolation: no daemon, no
# root-only kernel features, works inside a container):
#   1. cargo build --release of both binaries (IMAGE_CARGO_BUILD=0 uses those already built;
#      IMAGE_PROFILE=debug takes the debug ones, which is what make test's image tests run);
#   2. per function, a root filesystem under target/image/<function>/rootfs holding the
#      binary, exactly the shared libraries `ldd` lists for it (glibc, libm, libgcc_s, the
#      loader), the CA bundle, and passwd/group entries for the nonroot user (65532);
#   3. images/Containerfile.local on `scratch` over it, then an OCI archive of each image in
#      target/image/<function>.oci.tar for pushing (`skopeo copy oci-archive:... docker://...`).
# Images live in a storage of this checkout's own, target/containers (IMAGE_STORAGE), so
# several checkouts on one machine do not share or lock each other's. Prints each image's size.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
storage=${IMAGE_STORAGE:-"$root/target/containers"}
target_dir=${CARGO_TARGET_DIR:-"$root/target"}
functions=("$@")
profile=${IMAGE_PROFILE:-release}
case "$profile" in
  release) cargo_profile=(--release) ;;
  debug) cargo_profile=() ;;
  *) echo "image: IMAGE_PROFILE must be release or debug, not '$profile'" >&2; exit 1 ;;
esac
((${#functions[@]})) || functions=(ingest worker)
ca_bundle=/etc/ssl/certs/ca-certificates.crt

die() { echo "image: $*" >&2; exit 1; }

command -v buildah >/dev/null || die "buildah is not installed (apt-get install -y buildah)"
command -v ldd >/dev/null || die "ldd is not installed (it comes with libc-bin)"
[[ -f "$ca_bundle" ]] || die "no CA bundle at $ca_bundle (apt-get install -y ca-certificates)"
for f in "${functions[@]}"; do
  [[ "$f" == ingest || "$f" == worker ]] || die "unknown function '$f' (ingest or worker)"
done

bah() { buildah --root "$storage/storage" --runroot "$storage/run" --storage-driver vfs "$@"; }

if [[ "${IMAGE_CARGO_BUILD:-1}" != 0 ]]; then
  packages=()
  for f in "${functions[@]}"; do packages+=(-p "$f" --bin "$f"); done
  echo "image: cargo build ${cargo_profile[*]} ${packages[*]}" >&2
  (cd "$root" && cargo build "${cargo_profile[@]}" --locked "${packages[@]}")
fi

for f in "${functions[@]}"; do
  binary="$target_dir/$profile/$f"
  [[ -x "$binary" ]] || die "$binary is missing (run without IMAGE_CARGO_BUILD=0)"
  context="$root/target/image/$f"
  rootfs="$context/rootfs"
  rm -rf "$context"
  mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs"
  cp "$binary" "$rootfs/usr/local/bin/$f"
  # Every library the dynamic loader will map, at the path it will look for it (the vDSO is
  # the kernel's and has no file). A new dependency shows up here by itself.
  while read -r lib; do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done < <(ldd "$binary" | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p')
  cp -L "$ca_bundle" "$rootfs$ca_bundle"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
  # Root owns everything and nothing is writable by the runtime user.
  chmod -R go-w "$rootfs"

  image="localhost/credit-score-$f:local"
  echo "image: building $image from $rootfs" >&2
  bah build --quiet --isolation chroot --target "$f" -f "$root/images/Containerfile.local" \
    -t "$image" "$context" >/dev/null
  rm -f "$context.oci.tar"
  bah push --quiet "$image" "oci-archive:$root/target/image/$f.oci.tar:$image"
  size=$(bah images --format '{{.Size}}' "$image" 2>/dev/null | head -n 1 || true)
  files=$(du -sb "$rootfs" | cut -f1)
  echo "image: $image  root filesystem $(numfmt --to=iec --suffix=B "$files")  archive $(numfmt --to=iec --suffix=B "$(stat -c %s "$root/target/image/$f.oci.tar")")${size:+  buildah images: $size}"
done

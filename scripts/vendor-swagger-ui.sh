#!/usr/bin/env bash
# Refreshes ingest/assets/swagger-ui/ from the swagger-ui-dist npm package (pinned below):
# only the files /docs/ serves, the large ones gzip-compressed (-9, no name or time stamp,
# so the output is reproducible). Run it by hand when upgrading Swagger UI; nothing fetches
# assets at build or run time. Needs npm, tar and gzip.
#
#   scripts/vendor-swagger-ui.sh            # SWAGGER_UI_VERSION=5.17.14
set -euo pipefail

VERSION="${SWAGGER_UI_VERSION:-5.17.14}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="ingest/assets/swagger-ui"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for cmd in npm tar gzip; do
  command -v "$cmd" >/dev/null || { echo "vendor-swagger-ui: $cmd is required" >&2; exit 1; }
done

(cd "$work" && npm pack --silent "swagger-ui-dist@$VERSION" >/dev/null)
tar -xzf "$work/swagger-ui-dist-$VERSION.tgz" -C "$work"
dist="$work/package"

mkdir -p "$out"
for file in swagger-ui-bundle.js swagger-ui.css; do
  gzip -9 -n -c "$dist/$file" >"$out/$file.gz"
done
for file in index.css favicon-16x16.png favicon-32x32.png LICENSE NOTICE; do
  cp "$dist/$file" "$out/$file"
done
printf '%s\n' "$VERSION" >"$out/VERSION"
echo "vendored Swagger UI $VERSION into $out:"
ls -l "$out"

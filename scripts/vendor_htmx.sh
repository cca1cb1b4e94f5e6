#!/usr/bin/env bash
# Re-vendor htmx and its server-sent-events extension from their npm packages (never a CDN).
# Usage: scripts/vendor_htmx.sh [HTMX_VERSION] [SSE_VERSION]
# The extension's major version follows htmx's (htmx-ext-sse 2.x is for htmx 2.x).
set -euo pipefail
version=${1:-2.0.11}
sse_version=${2:-2.2.4}
if [ "${version%%.*}" != "${sse_version%%.*}" ]; then
  echo "htmx-ext-sse $sse_version is not for htmx $version (the major versions differ)" >&2
  exit 1
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
(cd "$dir" && npm pack --silent "htmx.org@$version" "htmx-ext-sse@$sse_version" >/dev/null)
mkdir "$dir/htmx" "$dir/sse"
tar xzf "$dir"/htmx.org-*.tgz -C "$dir/htmx"
tar xzf "$dir"/htmx-ext-sse-*.tgz -C "$dir/sse"
dest="$(dirname "$0")/../static/vendor"
rm -f "$dest"/htmx-[0-9]*.min.js "$dest"/htmx-ext-sse-*.min.js
cp "$dir/htmx/package/dist/htmx.min.js" "$dest/htmx-$version.min.js"
cp "$dir/sse/package/dist/sse.min.js" "$dest/htmx-ext-sse-$sse_version.min.js"
echo "vendored htmx $version and htmx-ext-sse $sse_version into static/vendor/"

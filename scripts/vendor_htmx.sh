#!/usr/bin/env bash
# Re-vendor htmx from the npm package (never a CDN). Usage: scripts/vendor_htmx.sh [VERSION]
set -euo pipefail
version=${1:-2.0.11}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
(cd "$dir" && npm pack "htmx.org@$version" >/dev/null && tar xzf htmx.org-*.tgz)
dest="$(dirname "$0")/../static/vendor"
rm -f "$dest"/htmx-*.min.js
cp "$dir/package/dist/htmx.min.js" "$dest/htmx-$version.min.js"
echo "vendored htmx $version into static/vendor/"

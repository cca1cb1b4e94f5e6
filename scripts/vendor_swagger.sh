#!/usr/bin/env bash
# Re-vendor the OpenAPI page's assets (Swagger UI) from the swagger-ui-dist npm package (never a CDN),
# so /docs works on a studio without internet. app/main.py serves them through get_swagger_ui_html.
# Usage: scripts/vendor_swagger.sh [VERSION]
set -euo pipefail
version=${1:-5.35.0}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
(cd "$dir" && npm pack --silent "swagger-ui-dist@$version" >/dev/null)
tar xzf "$dir"/swagger-ui-dist-*.tgz -C "$dir"
dest="$(dirname "$0")/../static/vendor"
rm -f "$dest"/swagger-ui-bundle-*.js "$dest"/swagger-ui-*.css "$dest"/swagger-ui-LICENSE*
cp "$dir/package/swagger-ui-bundle.js" "$dest/swagger-ui-bundle-$version.js"
cp "$dir/package/swagger-ui.css" "$dest/swagger-ui-$version.css"
cp "$dir/package/LICENSE" "$dest/swagger-ui-LICENSE"  # Apache-2.0: it travels with the copy
echo "vendored swagger-ui-dist $version into static/vendor/ (update SWAGGER_UI_VERSION in app/main.py)"

#!/bin/sh
# Re-vendor pdf.js from the npm registry and rewrite vendor.lock.
# Usage: web/vendor.sh [version]   (run from anywhere; needs npm)
# The test TestVendoredFiles fails when static/vendor differs from vendor.lock,
# so an edited or half-updated copy never goes unnoticed.
set -eu
version=${1:-6.5.438}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm pack --silent "pdfjs-dist@$version" >/dev/null
tar xzf "pdfjs-dist-$version.tgz"
integrity=$(npm view "pdfjs-dist@$version" dist.integrity)
dst="$here/static/vendor/pdfjs"
rm -rf "$dst"
mkdir -p "$dst/standard_fonts"
cp package/build/pdf.min.mjs package/build/pdf.worker.min.mjs package/LICENSE "$dst/"
cp package/standard_fonts/* "$dst/standard_fonts/"
cd "$here/static"
{
	echo "# Vendored third-party files under web/static/vendor, checked by TestVendoredFiles."
	echo "# Regenerate with web/vendor.sh; never edit a vendored file by hand."
	echo "package pdfjs-dist $version"
	echo "integrity $integrity"
	find vendor -type f | LC_ALL=C sort | xargs sha256sum
} >"$here/vendor.lock"
echo "vendored pdfjs-dist $version"

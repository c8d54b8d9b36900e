#!/usr/bin/env bash
# Fetches the console's charting library from the npm registry, pinned and checked against
# the registry's integrity hash, into this folder. The files are committed: building the
# console needs neither node nor the network. Run it only to move to another version.
set -euo pipefail
cd "$(dirname "$0")"
VERSION=1.6.32
INTEGRITY=sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -fsSL "https://registry.npmjs.org/uplot/-/uplot-$VERSION.tgz" -o "$work/uplot.tgz"
got="sha512-$(openssl dgst -sha512 -binary "$work/uplot.tgz" | base64 -w0)"
[[ $got == "$INTEGRITY" ]] || { echo "uplot $VERSION: integrity $got, expected $INTEGRITY" >&2; exit 1; }
tar -xzf "$work/uplot.tgz" -C "$work"
cp "$work/package/dist/uPlot.iife.min.js" "$work/package/dist/uPlot.min.css" .
cp "$work/package/LICENSE" uPlot.LICENSE
echo "uplot $VERSION in $(pwd)"

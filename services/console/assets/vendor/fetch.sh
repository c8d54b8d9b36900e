#!/usr/bin/env bash
# Fetches the console's libraries from the npm registry, pinned and checked against the
# registry's integrity hash, into this folder: uPlot (the charts) and rrweb-player (the
# replay player). The files are committed: building the console needs neither node nor the
# network. Run it only to move to another version.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# fetch NAME VERSION INTEGRITY: the package's tarball, checked, unpacked in $work/NAME.
fetch() {
  local name=$1 version=$2 integrity=$3 got
  curl -fsSL "https://registry.npmjs.org/$name/-/$name-$version.tgz" -o "$work/$name.tgz"
  got="sha512-$(openssl dgst -sha512 -binary "$work/$name.tgz" | base64 -w0)"
  [[ $got == "$integrity" ]] || { echo "$name $version: integrity $got, expected $integrity" >&2; exit 1; }
  mkdir -p "$work/$name"
  tar -xzf "$work/$name.tgz" -C "$work/$name"
  echo "$name $version in $(pwd)"
}

fetch uplot 1.6.32 sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==
cp "$work/uplot/package/dist/uPlot.iife.min.js" "$work/uplot/package/dist/uPlot.min.css" .
cp "$work/uplot/package/LICENSE" uPlot.LICENSE

# The UMD build defines the global `rrwebPlayer`; the package ships no licence file (MIT,
# per its package.json).
fetch rrweb-player 2.1.6 sha512-b/RAp32d93btucB5bX5VFxYS+Zm34B0n2ARFcLMAgrtqsECUqpIaHpQLHHf8rJwhMCEeNvW0BHV9BpF5aE6jtg==
cp "$work/rrweb-player/package/dist/rrweb-player.umd.min.cjs" rrweb-player.min.js
cp "$work/rrweb-player/package/dist/style.min.css" rrweb-player.min.css
printf 'rrweb-player 2.1.6: MIT licence (package.json), https://github.com/rrweb-io/rrweb\n' >rrweb-player.LICENSE

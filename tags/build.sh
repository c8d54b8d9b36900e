#!/usr/bin/env bash
# Builds the served tags: dist/tag.js = src/core.js + src/tag.js, dist/conversion.js =
# src/core.js + src/conversion.js, each wrapped in one function and minified with terser
# (pinned in package-lock.json). The output is committed, so building the collector needs
# no node; each file's first line carries the SHA-256 of its sources, which the
# collector's unit tests compare with src/ to catch a forgotten rebuild.
#   tags/build.sh            (needs node and npm)
set -euo pipefail
cd "$(dirname "$0")"
npm ci --silent --no-audit --no-fund
for tag in tag conversion; do
  sources=(src/core.js "src/$tag.js")
  hash=$(cat "${sources[@]}" | sha256sum | cut -c1-64)
  {
    printf '/*! Exatom %s.js | sources sha256:%s */\n' "$tag" "$hash"
    { printf '(function(){"use strict";\n'; cat "${sources[@]}"; printf '\n})();\n'; } |
      npx terser --ecma 2020 --compress passes=2 --mangle --toplevel
    printf '\n'
  } >"dist/$tag.js"
  printf '%-16s %5d bytes, %5d gzipped\n' "dist/$tag.js" "$(wc -c <"dist/$tag.js")" "$(gzip -9 -c "dist/$tag.js" | wc -c)"
done

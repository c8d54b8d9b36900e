#!/usr/bin/env bash
# Builds the served tags. dist/tag.js = src/privacy.js + src/core.js + src/tag.js, and
# dist/conversion.js = src/privacy.js + src/core.js + src/conversion.js, each wrapped in one
# function and minified with terser; dist/replay.js = src/privacy.js + src/replay.js bundled
# with @rrweb/record by esbuild. Every tool and library is pinned in package-lock.json. The
# output is committed, so building the collector needs no node; each file's first line
# carries the SHA-256 of its sources, which the collector's unit tests compare with src/ to
# catch a forgotten rebuild.
#   tags/build.sh            (needs node and npm)
set -euo pipefail
cd "$(dirname "$0")"
npm ci --silent --no-audit --no-fund
for tag in tag conversion; do
  sources=(src/privacy.js src/core.js "src/$tag.js")
  hash=$(cat "${sources[@]}" | sha256sum | cut -c1-64)
  {
    printf '/*! Exatom %s.js | sources sha256:%s */\n' "$tag" "$hash"
    { printf '(function(){"use strict";\n'; cat "${sources[@]}"; printf '\n})();\n'; } |
      npx terser --ecma 2020 --compress passes=2 --mangle --toplevel
    printf '\n'
  } >"dist/$tag.js"
  printf '%-16s %5d bytes, %5d gzipped\n' "dist/$tag.js" "$(wc -c <"dist/$tag.js")" "$(gzip -9 -c "dist/$tag.js" | wc -c)"
done

# The recorder: rrweb's own code is bundled, and privacy.js's rules reach it as the same
# top-level constants the other tags use (imports are hoisted above them).
mkdir -p .build
sources=(src/privacy.js src/replay.js)
hash=$(cat "${sources[@]}" | sha256sum | cut -c1-64)
cat "${sources[@]}" >.build/replay.entry.js
{
  printf '/*! Exatom replay.js | sources sha256:%s | includes rrweb (MIT licence, github.com/rrweb-io/rrweb) */\n' "$hash"
  npx esbuild .build/replay.entry.js --bundle --format=iife --minify --target=es2019 --legal-comments=none --log-level=warning
} >dist/replay.js
printf '%-16s %5d bytes, %5d gzipped\n' "dist/replay.js" "$(wc -c <dist/replay.js)" "$(gzip -9 -c dist/replay.js | wc -c)"

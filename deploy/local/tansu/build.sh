#!/usr/bin/env bash
# Builds the local broker: tansu 0.6.0 from the crate registry, with this folder's patch to
# its storage crate (README.md here says what it changes and why), into $TANSU_HOME.
#   deploy/local/tansu/build.sh        (install.sh runs it when the binary or patch changed)
# Both crates are checked against the checksums of tansu 0.6.0's own Cargo.lock, and the
# build keeps that lock file (cargo only re-points tansu-storage at the patched copy), so
# every machine builds the same broker. About 15 minutes on 2 cores the first time; the
# target folder is kept, so a new patch rebuilds in a few.
set -euo pipefail
source "$(dirname "$0")/../common.sh"
here=$ROOT/deploy/local/tansu
patch_file=$here/tansu-storage-0.6.0-exatom.patch
src=$TANSU_HOME/src

fetch_crate() { # name version sha256
  local crate=$src/$1-$2.crate
  curl -sSfL --retry 3 -o "$crate" "https://static.crates.io/crates/$1/$1-$2.crate"
  echo "$3  $crate" | sha256sum -c --quiet - || { log "checksum mismatch for $1 $2"; return 1; }
  rm -rf "$src/$1-$2"
  tar -xzf "$crate" -C "$src"
}

mkdir -p "$src" "$TANSU_HOME/bin"
fetch_crate tansu 0.6.0 4fdd85473ec265140488cf8d55e82b844f5c051c8916fabdd4a71156ac053f6d
fetch_crate tansu-storage 0.6.0 720d2ed8e6010c70f7f06e5af5a7274ebbf6e42fdcd9e46de542b10dc4d2f35d
patch -s -p1 -d "$src/tansu-storage-0.6.0" <"$patch_file"
cat >>"$src/tansu-0.6.0/Cargo.toml" <<'EOF'

[patch.crates-io]
tansu-storage = { path = "../tansu-storage-0.6.0" }
EOF
cargo build --release --features libsql \
  --manifest-path "$src/tansu-0.6.0/Cargo.toml" --target-dir "$TANSU_HOME/target"
install -m 755 "$TANSU_HOME/target/release/tansu" "$TANSU_HOME/bin/tansu"
sha256sum <"$patch_file" | cut -c1-64 >"$TANSU_HOME/bin/tansu.patch"
log "tansu 0.6.0 with $(basename "$patch_file") installed in $TANSU_HOME/bin"

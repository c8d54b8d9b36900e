#!/usr/bin/env bash
# Builds the Exatom image (deploy/container/Containerfile) from the release binaries.
#
#   make build && deploy/container/base.sh && deploy/container/build.sh
#   EXATOM_IMAGE=registry.example.com/exatom:1.4.0 deploy/container/build.sh
#   BASE=docker.io/library/debian:bookworm-slim deploy/container/build.sh   # a registry's base
#
# Stages target/container/ (the build context): the six binaries with their debug info
# stripped (`debug = 1` in the release profile is for profiling here; symbols stay, so a
# panic's backtrace still names functions), the IP → country database install.sh
# downloaded (pinned by version and sha512: deploy/local/common.sh), its licence, and the
# image's passwd and group (one user, 65532, no shell). Then `podman build`.
# Extra podman flags: PODMAN_BUILD_FLAGS (e.g. `--squash`).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
image=${EXATOM_IMAGE:-localhost/exatom:latest}
base=${BASE:-localhost/exatom-debian:bookworm}
ctx=$ROOT/target/container
bins=(collector anonymizer sessionizer aggregator console admin)

# The geo database's place, as the local stack has it (without sourcing common.sh, which
# makes the stack's state folders).
geo_version=$(sed -n 's/^GEO_VERSION=//p' "$ROOT/deploy/local/common.sh")
geo_home=${GEO_HOME:-${CARGO_HOME:-$HOME/.cargo}/exatom-geo/$geo_version}

command -v podman >/dev/null || { echo "build.sh: podman is missing: apt-get install -y podman" >&2; exit 1; }
for b in "${bins[@]}"; do
  [[ -x $ROOT/target/release/exatom-$b ]] || {
    echo "build.sh: target/release/exatom-$b is missing: run make build first" >&2
    exit 1
  }
done
[[ -s $geo_home/geo-whois-asn-country.mmdb ]] || {
  echo "build.sh: no geo database in $geo_home: deploy/local/install.sh downloads it" >&2
  exit 1
}
podman image exists "$base" || [[ $base != localhost/* ]] || {
  echo "build.sh: no base image $base: run deploy/container/base.sh first" >&2
  exit 1
}

rm -rf "$ctx"
mkdir -p "$ctx/bin" "$ctx/geo"
for b in "${bins[@]}"; do
  objcopy --strip-debug "$ROOT/target/release/exatom-$b" "$ctx/bin/exatom-$b"
done
cp "$geo_home/geo-whois-asn-country.mmdb" "$geo_home/NRO_LICENSE" "$ctx/geo/"
cat >"$ctx/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
exatom:x:65532:65532:exatom:/nonexistent:/sbin/nologin
EOF
cat >"$ctx/group" <<'EOF'
root:x:0:
exatom:x:65532:
EOF

# shellcheck disable=SC2086
podman build ${PODMAN_BUILD_FLAGS:-} --build-arg "BASE=$base" \
  -f "$ROOT/deploy/container/Containerfile" -t "$image" "$ctx"
podman image ls "$image"

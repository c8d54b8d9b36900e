#!/usr/bin/env bash
# Makes the Debian 12 base image the Containerfile starts from, without any image registry:
# a minimal Debian bookworm root file system (debootstrap, from the Debian mirror apt already
# uses) imported into podman's local storage as localhost/exatom-debian:bookworm.
#
#   deploy/container/base.sh              # once per machine (about a minute; ~120 MB)
#   EXATOM_BASE_IMAGE=my/debian:12 ...    # another name
#   DEBIAN_MIRROR=http://... ...          # another mirror
#
# Where a registry is reachable, `podman pull docker.io/library/debian:bookworm-slim` and
# `--build-arg BASE=docker.io/library/debian:bookworm-slim` (deploy/container/build.sh
# passes BASE through) do the same job. The base is only the build stage: the image that
# runs holds the binaries, the few libraries they link and nothing else (Containerfile).
set -euo pipefail

image=${EXATOM_BASE_IMAGE:-localhost/exatom-debian:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

for tool in debootstrap podman; do
  command -v "$tool" >/dev/null || {
    echo "base.sh: $tool is missing: apt-get install -y debootstrap podman" >&2
    exit 1
  }
done

if podman image exists "$image"; then
  echo "base.sh: $image exists (podman image rm $image to make it again)"
  exit 0
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
echo "base.sh: debootstrap bookworm (minbase) from $mirror into $root"
# minbase: essential packages and apt; that is all the build stage needs (it copies libraries).
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
  tail -n 20 "$root.log" >&2
  exit 1
}
rm -f "$root.log"
# Nothing of the build host's apt state or caches in the image.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar --numeric-owner -C "$root" -c . |
  podman import --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
echo "base.sh: imported $image"
podman image ls "$image"

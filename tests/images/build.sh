#!/usr/bin/env bash
# Build the images the Docker tests run in, locally (no registry is reachable here):
#   opscraft-test/busybox:1   a busybox-static root filesystem (seconds)
#   opscraft-test/runner:1    Debian minbase + bash, python3, ansible-core and a `terraform`
#                             stand-in that records its arguments (no Terraform binary can be had here)
# An image is rebuilt only when this script changes (its hash is kept as a label).
set -euo pipefail
cd "$(dirname "$0")"
HASH=$(cat build.sh terraform-standin | sha256sum | cut -c1-12)
WORK=${OPSCRAFT_TEST_STATE:-/tmp/opscraft-test}/images
mkdir -p "$WORK"

have() { [ "$(docker image inspect -f '{{index .Config.Labels "opscraft.build"}}' "$1" 2>/dev/null)" = "$HASH" ]; }

if ! have opscraft-test/busybox:1; then
  echo "building opscraft-test/busybox:1" >&2
  root=$(mktemp -d "$WORK/busybox.XXXX")
  mkdir -p "$root/bin" "$root/tmp" "$root/work" "$root/etc"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  echo 'nobody:x:65534:65534:nobody:/nonexistent:/bin/sh' >"$root/etc/passwd"
  echo 'nogroup:x:65534:' >"$root/etc/group"
  tar -C "$root" -c . | docker import -c "LABEL opscraft.build=$HASH" -c 'CMD ["/bin/sh"]' - opscraft-test/busybox:1 >/dev/null
  rm -rf "$root"
fi

if ! have opscraft-test/runner:1; then
  echo "building opscraft-test/runner:1 (debootstrap, about a minute)" >&2
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -oE "https?://deb\.debian\.org/debian/?" | head -n 1 || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  root="$WORK/runner-root"
  rm -rf "$root"
  debootstrap --variant=minbase --include=python3-minimal,python3-cffi-backend,ansible-core bookworm "$root" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 30 "$WORK/debootstrap.log" >&2; exit 1; }
  install -m 0755 terraform-standin "$root/usr/local/bin/terraform"
  mkdir -p "$root/work"
  rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/*
  tar -C "$root" -c . | docker import -c "LABEL opscraft.build=$HASH" -c 'CMD ["/bin/bash"]' - opscraft-test/runner:1 >/dev/null
  rm -rf "$root"
fi
echo "test images ready" >&2

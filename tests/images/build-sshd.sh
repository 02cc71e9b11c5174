#!/usr/bin/env bash
# Build opscraft-test/sshd:1: an SSH target for the Ansible privilege-escalation tests
# (tests/executions/test_ansible_become.py): Debian minbase with openssh-server, sudo and
# python3 (Ansible's modules run with it), and two login users:
#   deploy  sudo without a password   (sudoers: deploy ALL=(ALL) NOPASSWD: ALL)
#   ops     sudo asks for its password (sudoers: ops ALL=(ALL) ALL; the test sets the password)
# The test puts its public key in their authorized_keys and sets ops's password when it starts
# a container. Only from the Debian mirror apt uses (debootstrap), no registry. Separate from
# build.sh so that adding it rebuilds none of the other images; rebuilt when this script changes.
set -euo pipefail
cd "$(dirname "$0")"
HASH=$(sha256sum <build-sshd.sh | cut -c1-12)
WORK=${OPSCRAFT_TEST_STATE:-/tmp/opscraft-test}/images
image=opscraft-test/sshd:1
mkdir -p "$WORK"
if [ "$(docker image inspect -f '{{index .Config.Labels "opscraft.build"}}' "$image" 2>/dev/null)" != "$HASH" ]; then
  echo "building $image (debootstrap, about a minute)" >&2
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -oE "https?://deb\.debian\.org/debian/?" | head -n 1 || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  root=$(mktemp -d "$WORK/sshd-root.XXXX")
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase --include=python3,openssh-server,sudo bookworm "$root" "$mirror" >"$WORK/debootstrap-sshd.log" 2>&1 \
    || { tail -n 30 "$WORK/debootstrap-sshd.log" >&2; exit 1; }
  for user in deploy ops; do
    chroot "$root" useradd --create-home --shell /bin/bash "$user"
    install -d -m 0700 -o "$(chroot "$root" id -u "$user")" -g "$(chroot "$root" id -g "$user")" "$root/home/$user/.ssh"
  done
  printf 'deploy ALL=(ALL) NOPASSWD: ALL\nops ALL=(ALL) ALL\n' >"$root/etc/sudoers.d/opscraft-test"
  chmod 0440 "$root/etc/sudoers.d/opscraft-test"
  printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\n' >"$root/etc/ssh/sshd_config.d/opscraft-test.conf"
  rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/*
  tar -C "$root" -c . | docker import -c "LABEL opscraft.build=$HASH" -c 'EXPOSE 22' \
    -c 'CMD ["/bin/sh", "-c", "mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e"]' - "$image" >/dev/null
fi
echo "$image ready" >&2

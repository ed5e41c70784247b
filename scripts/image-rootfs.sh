#!/usr/bin/env bash
# Stages the image's root filesystem: dist/bin/ovsplane and its links (ovsplane-ipam, ovsplanectl,
# ovsplane-agent), the host tools ovsplane-agent runs for the node's host state (ip, iptables-save,
# iptables-restore: this build host's iptables variant, nft or legacy, with its extensions), and the
# shared libraries ldd names for all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist/image-rootfs}
rm -rf "$out"
mkdir -p "$out"
cp dist/bin/ovsplane "$out/ovsplane"
for l in ovsplane-ipam ovsplanectl ovsplane-agent; do ln -s ovsplane "$out/$l"; done

# Copies a file to the same path under $out (following links), once.
put() { [ -e "$out$1" ] || { mkdir -p "$out$(dirname "$1")"; cp -L "$1" "$out$1"; }; }
libs() { ldd "$1" 2>/dev/null | grep -o '/[^ ]*' | while read -r lib; do put "$lib"; done; }

libs dist/bin/ovsplane
ip=$(readlink -f "$(command -v ip)")
put "$ip"; libs "$ip"
mkdir -p "$out/usr/sbin"
[ -e "$out/usr/sbin/ip" ] || ln -s "$ip" "$out/usr/sbin/ip"
# iptables: the multi-call binary behind this host's iptables-restore alternative, linked under the names the agent calls.
xt=$(readlink -f "$(command -v iptables-restore)")
put "$xt"; libs "$xt"
for n in iptables iptables-save iptables-restore; do
  [ -e "$out/usr/sbin/$n" ] || ln -s "$xt" "$out/usr/sbin/$n"
done
# Its extensions are dlopen'ed from the compiled-in directory (ldd does not name them).
for d in /usr/lib/*/xtables /usr/lib/xtables /usr/lib64/xtables; do
  [ -d "$d" ] || continue
  mkdir -p "$out$d"
  cp -L "$d"/*.so "$out$d/"
  for so in "$d"/*.so; do libs "$so"; done
done
mkdir -p "$out/tmp" "$out/run"
echo "staged $out"

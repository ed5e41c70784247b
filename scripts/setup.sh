#!/usr/bin/env bash
# Installs what the demo, tests and benchmark need on Debian 12 (as root), idempotently:
# Debian packages (OVS, iproute2, reference CNI plugins, Go + libcni for the libcni driver), npm ci,
# the libcni driver. No Debian OVS service is used: tests and demo start their own daemons.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

PKGS=(openvswitch-switch iperf3 python3 iproute2 iputils-ping ethtool util-linux procps coreutils netcat-openbsd time
  containernetworking-plugins iptables golang-go golang-github-appc-cni-dev make ca-certificates git podman runc busybox-static openssl)

if [[ $(id -u) -ne 0 ]]; then
  echo "setup: run as root (network namespaces, OVS daemons, apt-get)" >&2
  exit 1
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# kubectl (the fake API server's second client in tests): Debian's kubernetes-client only when none is installed,
# since it clashes with a kubectl that came from elsewhere (e.g. the Google Cloud SDK).
command -v kubectl >/dev/null || missing+=(kubernetes-client)
if ((${#missing[@]})); then
  echo "== apt-get install ${missing[*]}"
  # Keep Debian's OVS service from starting during the install: nothing relies on it.
  policy=/usr/sbin/policy-rc.d own_policy=0
  if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1; fi
  trap '[[ $own_policy == 1 ]] && rm -f "$policy"' EXIT
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v node >/dev/null || ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then
  echo "setup: Node.js >= 20 is required (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "== npm ci"
  npm ci --no-audit --no-fund
fi
bash scripts/build-libcni-driver.sh

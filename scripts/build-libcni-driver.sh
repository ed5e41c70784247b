#!/usr/bin/env bash
# Builds the libcni test driver (test/libcni/main.go) to dist/test/cnidriver with Debian's Go + libcni.
set -euo pipefail
cd "$(dirname "$0")/.."
src=test/libcni/main.go
out=dist/test/cnidriver
if [[ -x $out && $out -nt $src ]]; then
  exit 0
fi
gocode=/usr/share/gocode
if [[ ! -d $gocode/src/github.com/containernetworking/cni/libcni ]]; then
  echo "build-libcni-driver: libcni source missing (apt-get install golang-github-appc-cni-dev)" >&2
  exit 1
fi
command -v go >/dev/null || { echo "build-libcni-driver: go missing (apt-get install golang-go)" >&2; exit 1; }
mkdir -p dist/test
export GO111MODULE=off GOPATH=$gocode GOFLAGS=
export GOCACHE=${GOCACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/go-build}
go build -o "$out.tmp" ./test/libcni
mv -f "$out.tmp" "$out"
echo "built $out"

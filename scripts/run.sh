#!/usr/bin/env bash
# The README's commands: `bash scripts/run.sh demo` and `bash scripts/run.sh test` on a fresh Debian 12 (root).
set -euo pipefail
cd "$(dirname "$0")/.."
case ${1:-} in
  demo | test | bench) ;;
  *) echo "usage: bash scripts/run.sh demo|test|bench" >&2; exit 2 ;;
esac
bash scripts/setup.sh
exec make --no-print-directory "$1"

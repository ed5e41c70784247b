#!/usr/bin/env bash
# Runs the uvu test files one process each (unit, integration or all); last line: "N passed, N failed[, N skipped]".
# Env: TEST_TIMEOUT (seconds per file, default 900), TEST_FILTER (regex on file paths), VERBOSE=1 (full output).
set -uo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
case $what in
  unit) suites=(unit) ;;
  integration) suites=(integration) ;;
  all) suites=(unit integration) ;;
  *) echo "usage: scripts/test.sh [unit|integration|all]" >&2; exit 2 ;;
esac

per_file_timeout=${TEST_TIMEOUT:-900}
filter=${TEST_FILTER:-}
uvu=node_modules/.bin/uvu
tsx=node_modules/.bin/tsx
passed=0 failed=0 skipped=0
logdir=$(mktemp -d /tmp/ovsplane-test-logs.XXXXXX)
strip_ansi() { sed -e 's/\x1b\[[0-9;]*[A-Za-z]//g'; }

sweep() {
  # Leftovers of crashed runs (namespaces, daemons, dirs); live parallel runs are left alone.
  timeout 120 "$tsx" test/harness/sweep-cli.ts "$@" || echo "warning: leftover sweep failed" >&2
}

run_file() { # suite dir, file name relative to it
  local dir=$1 rel=$2 log rc total pass skip out
  log=$logdir/${dir//\//_}_${rel//\//_}.log
  local pattern="^${rel//./\\.}\$"
  timeout --kill-after=30 "$per_file_timeout" "$uvu" -r tsx "test/$dir" "$pattern" >"$log" 2>&1 </dev/null
  rc=$?
  out=$(strip_ansi <"$log")
  total=$(sed -n 's/^ *Total: *\([0-9]*\).*/\1/p' <<<"$out" | tail -1)
  pass=$(sed -n 's/^ *Passed: *\([0-9]*\).*/\1/p' <<<"$out" | tail -1)
  skip=$(sed -n 's/^ *Skipped: *\([0-9]*\).*/\1/p' <<<"$out" | tail -1)
  total=${total:-0} pass=${pass:-0} skip=${skip:-0}
  local fail=$((total - pass))
  local note=""
  if [[ $rc -eq 124 || $rc -eq 137 ]]; then
    note=" (timed out after ${per_file_timeout}s)"; fail=$((fail + 1))
  elif [[ $rc -ne 0 && $fail -eq 0 ]]; then
    note=" (exit $rc without a failing test: crashed)"; fail=$((fail + 1))
  elif [[ $total -eq 0 && $rc -eq 0 && ! $out =~ Total: ]]; then
    note=" (no uvu summary)"; fail=$((fail + 1))
  elif [[ $fail -gt 0 && ! $out =~ FAIL ]]; then
    note=" (no test failed by itself: a before/after hook threw, and uvu 0.5 hides hook errors)"
  fi
  passed=$((passed + pass)) failed=$((failed + fail)) skipped=$((skipped + skip))
  printf '%-50s %3d passed, %3d failed%s\n' "test/$dir/$rel" "$pass" "$fail" "$note"
  if [[ $fail -gt 0 || ${VERBOSE:-0} == 1 ]]; then
    sed 's/^/    | /' <<<"$out" | grep -v '^    | *$' | tail -n 200
  fi
}

for suite in "${suites[@]}"; do
  mapfile -t files < <(cd "test/$suite" 2>/dev/null && find . -name '*.test.ts' -type f | sed 's|^\./||' | sort)
  [[ -n $filter ]] && mapfile -t files < <(printf '%s\n' "${files[@]}" | grep -E -- "$filter" || true)
  [[ ${#files[@]} -eq 0 || -z ${files[0]:-} ]] && continue
  echo "== $suite (${#files[@]} files)"
  if [[ $suite == integration ]]; then
    if [[ $(id -u) -ne 0 ]]; then
      echo "integration tests need root (network namespaces, OVS daemons): counting ${#files[@]} files as failed"
      failed=$((failed + ${#files[@]}))
      continue
    fi
    sweep
  fi
  for f in "${files[@]}"; do
    run_file "$suite" "$f"
    [[ $suite == integration ]] && sweep --quiet
  done
done

rm -rf "$logdir"
summary="$passed passed, $failed failed"
[[ $skipped -gt 0 ]] && summary+=", $skipped skipped"
echo "$summary"
[[ $failed -eq 0 ]]

#!/usr/bin/env bash
# Runs every test: unit binaries (build/tests/unit/*) and integration scripts
# (tests/integration/*.sh). Each prints one line per case:
#   ok NAME            passed
#   FAIL NAME: why     failed
#   skip NAME: why     skipped, with the reason
# A test file that exits non-zero without printing a FAIL line counts as one
# failure. The last line is the total: "N passed, N failed, N skipped".
#
#   tests/run.sh [NAME]          every test whose file name contains NAME
#   tests/run.sh --unit [NAME]   the unit binaries only
set -u
cd "$(dirname "$0")/.."
export BUILD="${BUILD:-build}"
export GPUMEM_TOP="$PWD"
unit_only=0
if [ "${1:-}" = --unit ]; then
    unit_only=1
    shift
fi
filter="${1:-}"
passed=0 failed=0 skipped=0
failures=()

run_one() {
    local name="$1"; shift
    local out rc
    out=$(timeout "${TEST_TIMEOUT:-600}" "$@" 2>&1); rc=$?
    local p f s
    p=$(grep -c '^ok ' <<<"$out"); f=$(grep -c '^FAIL ' <<<"$out"); s=$(grep -c '^skip ' <<<"$out")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1; out+=$'\n'"FAIL $name: exited with status $rc"
    fi
    if [ "$f" -gt 0 ] || [ -n "${VERBOSE:-}" ]; then
        printf '%s\n' "$out" | sed "s|^|  [$name] |"
    else
        grep -E '^(ok|skip) ' <<<"$out" | sed "s|^|  [$name] |"
    fi
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    [ "$f" -gt 0 ] && failures+=("$name")
}

for t in "$BUILD"/tests/unit/*; do
    [ -x "$t" ] || continue
    case "$(basename "$t")" in *"$filter"*) ;; *) continue ;; esac
    run_one "unit/$(basename "$t")" "$t"
done
for t in tests/integration/*.sh; do
    [ "$unit_only" = 1 ] && break
    [ -f "$t" ] || continue
    case "$(basename "$t")" in *"$filter"*) ;; *) continue ;; esac
    run_one "integration/$(basename "$t" .sh)" bash "$t"
done

if [ "${#failures[@]}" -gt 0 ]; then
    echo "failed test files: ${failures[*]}"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]

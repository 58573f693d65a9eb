#!/usr/bin/env bash
# Runs every test: unit binaries (build/tests/unit/*) and integration scripts
# (tests/integration/*.sh). Each prints one line per case:
#   ok NAME            passed
#   FAIL NAME: why     failed
#   skip NAME: why     skipped, with the reason
# A test file that exits non-zero without printing a FAIL line counts as one
# failure. The last line is the total: "N passed, N failed, N skipped".
# With STRICT_SKIPS=1 (CI), a skip that tests/allowed-skips.txt does not
# allow for this run (plain, or SAN=1) fails the run: each is printed as
# "FAIL unexpected skip [FILE] skip NAME: why" and counted in "unexpected skips: N", the line before the total.
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
failures=() unexpected=() seen_skips=()
run_kind=plain
[ "${SAN:-0}" = 1 ] && run_kind=san
ALLOWED_SKIPS=tests/allowed-skips.txt

# allowed_skip FILE NAME: whether the list allows that skip in this run.
allowed_skip() {
    local r f n rest
    [ -f "$ALLOWED_SKIPS" ] || return 1
    while read -r r f n rest; do
        case "$r" in "" | "#"*) continue ;; esac
        [ "$r" = any ] || [ "$r" = "$run_kind" ] || continue
        # shellcheck disable=SC2053
        [ "$f" = "$1" ] && [[ $2 == $n ]] && return 0
    done <"$ALLOWED_SKIPS"
    return 1
}

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
    local line case_name
    while IFS= read -r line; do
        [ -n "$line" ] || continue
        case_name=${line#skip }; case_name=${case_name%%:*}
        seen_skips+=("$name $case_name")
        if [ "${STRICT_SKIPS:-0}" = 1 ] && ! allowed_skip "$name" "$case_name"; then
            unexpected+=("[$name] $line")
        fi
    done < <(grep '^skip ' <<<"$out")
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
if [ "${STRICT_SKIPS:-0}" = 1 ]; then
    for u in "${unexpected[@]}"; do
        echo "FAIL unexpected skip $u (not allowed in the $run_kind run by $ALLOWED_SKIPS)"
    done
    # A full run also names the allowed skips that did not happen: a line
    # there that no longer applies should go.
    if [ -z "$filter" ] && [ -f "$ALLOWED_SKIPS" ]; then
        while read -r r f n rest; do
            case "$r" in "" | "#"*) continue ;; esac
            [ "$r" = any ] || [ "$r" = "$run_kind" ] || continue
            hit=""
            for s in "${seen_skips[@]}"; do
                # shellcheck disable=SC2053
                [ "${s%% *}" = "$f" ] && [[ ${s#* } == $n ]] && hit=1 && break
            done
            [ -n "$hit" ] || echo "note: allowed skip did not happen in this run: $r $f $n"
        done <"$ALLOWED_SKIPS"
    fi
    # The last line keeps the plain form CI reads; the count comes before it.
    echo "unexpected skips: ${#unexpected[@]}"
    echo "$passed passed, $failed failed, $skipped skipped"
    [ "$failed" -eq 0 ] && [ "${#unexpected[@]}" -eq 0 ]
    exit
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]

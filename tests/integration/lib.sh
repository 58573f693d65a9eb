# Sourced by integration tests: paths, a private state per test file, and
# the output protocol of tests/run.sh ("ok NAME", "FAIL NAME: why",
# "skip NAME: why").
set -u
TOP=$PWD
BUILD=${BUILD:-build}
GPUMEM="$TOP/$BUILD/bin/gpumem"
SIMDIR="$TOP/$BUILD/sim"
SHIM="$TOP/$BUILD/lib/libgpumem.so"
PROGS="$TOP/$BUILD/tests/progs"
CLIENT="$PROGS/alloc_client"
T=$(mktemp -d /tmp/gpumem-test.XXXXXX)
export GPUMEM_STATE_DIR="$T/state" GPUMEM_SIM_STATE="$T/sim"
export GPUMEM_SIM_DIR="$SIMDIR"
# Sanitizer builds: the shim carries the ASan runtime into programs that
# preload it; the runtime cannot be first in their link order then.
if [ "${SAN:-0}" = 1 ]; then
    export ASAN_OPTIONS="verify_asan_link_order=0:detect_leaks=0:${ASAN_OPTIONS:-}"
fi
# Every process this test started carries its private state dir in its
# environment: kill exactly those, however deep they were started.
kill_ours() {
    local e p
    for e in /proc/[0-9]*/environ; do
        p=${e#/proc/}; p=${p%/environ}
        [ "$p" = $$ ] && continue
        { tr '\0' '\n' <"$e"; } 2>/dev/null | grep -qx "GPUMEM_STATE_DIR=$T/state" && kill -KILL "$p" 2>/dev/null
    done
}
cleanup() {
    kill_ours
    rm -rf "$T"
}
trap cleanup EXIT

ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; FAILED=1; }
skip() { echo "skip $1: $2"; }

# run_sim ARGS... : gpumem run --sim with the test's private state.
run_sim() { "$GPUMEM" run --sim "$@"; }

# expect_out NAME "substring" OUTPUT
expect_in() {
    case "$3" in
    *"$2"*) ok "$1" ;;
    *) fail "$1" "expected \"$2\" in: $(printf '%s' "$3" | tr '\n' '|' | cut -c1-600)" ;;
    esac
}

# Runs the simulated-GPU driver client outside any group.
sim_client() { LD_LIBRARY_PATH="$SIMDIR" "$CLIENT" "$@"; }

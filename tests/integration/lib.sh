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
# Sanitizer builds (SAN=1): the shim, the CLI and the simulated driver are
# the instrumented ones; the programs they run are the plain ones from build/
# with the ASan runtime preloaded first, which is how an instrumented library
# is injected into an uninstrumented process (an instrumented program with an
# instrumented preloaded shim is a combination ASan does not support: its
# runtime must come first, and it then sees a broken environment).
ASAN_RT=""
# The programs run under the shim (applications of a group).
APP_PROGS="$PROGS"
if [ "${SAN:-0}" = 1 ]; then
    APP_PROGS="$TOP/build/tests/progs"
    CLIENT="$APP_PROGS/alloc_client"
    ASAN_RT="$(${CC:-cc} -print-file-name=libasan.so)"
    export ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}"
    # Only the processes under test get the runtime, never the test's own
    # tools (pgrep, grep...).
    gpumem_san() { LD_PRELOAD="$ASAN_RT${LD_PRELOAD:+:$LD_PRELOAD}" "$TOP/$BUILD/bin/gpumem" "$@"; }
    GPUMEM=gpumem_san
fi

# What to preload for a process of a group: the shim (after the sanitizer
# runtime in SAN runs).
SHIM_PRELOAD="${ASAN_RT:+$ASAN_RT:}$SHIM"

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

# with_env NAME=VALUE CMD...: CMD (which may be a function) with one more
# variable in its environment.
with_env() { local kv=$1; shift; ( export "$kv"; "$@" ); }

# Runs the simulated-GPU driver client outside any group.
sim_client() { LD_PRELOAD="$ASAN_RT" LD_LIBRARY_PATH="$SIMDIR" "$CLIENT" "$@"; }

#!/usr/bin/env bash
# What gpumem's own commands cost to start, exec to exit, against a bare exec
# of the same program in the same run (issue 18). Informational: prints
# figures and the issue's targets, never fails on them; exits non-zero only
# when a command could not run.
#
#   bench/cli.sh              # BUILD=build; knobs BENCH_CLI_RUNS (50), BENCH_CLI_GROUPS (10),
#                             # BENCH_CLI_TMP (where groups and bundles go; default $TMPDIR or /tmp)
#
# build/bench/cmdtime runs every command once per round, in order, for 3
# warm-up rounds and BENCH_CLI_RUNS timed ones, and reports each one's
# median (and quartiles) from posix_spawn to waitpid. Commands:
#   true          /bin/true: the cost of any exec on this machine
#   prog          the 1-pair driver program alone: build/bench/alloc_pairs
#                 -n 1 (dlopen libcuda.so.1, cuInit, a context, one
#                 cuMemAlloc+cuMemFree) on the simulated driver, found
#                 through LD_LIBRARY_PATH as a real one would be
#   in-group      the same inside an existing group (LD_PRELOAD=libgpumem.so,
#                 GPUMEM_GROUP_DIR): the shim's own start-up
#   env-prog      env prog: what one more exec in front of prog costs
#   timeout-prog  timeout 60 prog: what any wrapper that starts prog and
#                 waits for it costs (an exec, a fork, a wait)
#   run           gpumem run --limit 8G -- prog, the driver found the same way
#   run-sim       gpumem run --sim --limit 8G -- prog
#   help          gpumem --help
#   ps            gpumem ps with BENCH_CLI_GROUPS groups (bench/mkgroups)
#   limit-show    gpumem limit GROUP
#   limit-set     gpumem limit GROUP 8G
#   rt-bare       the OCI runtime alone (a stand-in: /bin/true create ...)
#   rt-nolimit    gpumem-runtime create, a container without a limit
#   rt-create     gpumem-runtime create, a container with a limit: the group
#   rt-delete     gpumem-runtime delete of that container: the group removed
set -u
cd "$(dirname "$0")/.."
BUILD="${BUILD:-build}"
B="$(cd "$BUILD" 2>/dev/null && pwd)" || { echo "bench: no $BUILD (run make first)" >&2; exit 1; }
RUNS="${BENCH_CLI_RUNS:-50}" NG="${BENCH_CLI_GROUPS:-10}"
CT="$B/bench/cmdtime" AP="$B/bench/alloc_pairs" GM="$B/bin/gpumem" RT="$B/bin/gpumem-runtime"
SHIM="$B/lib/libgpumem.so"
for f in "$CT" "$AP" "$GM" "$RT" "$SHIM" "$B/bench/mkgroups" "$B/sim/libcuda.so.1"; do
    [ -x "$f" ] || [ -f "$f" ] || { echo "bench: $f missing (run make first)" >&2; exit 1; }
done

W="$(mktemp -d -p "${BENCH_CLI_TMP:-${TMPDIR:-/tmp}}")" || exit 1
GPUMEM_SIM_STATE="$W/sim" GPUMEM_STATE_DIR="$W/state"
export GPUMEM_SIM_STATE GPUMEM_STATE_DIR GPUMEM_SIM_DEVICES=1x80G
unset LD_PRELOAD GPUMEM_GROUP_DIR GPUMEM_LIMIT NVIDIA_GPU_MEMORY_LIMIT GPUMEM_SIM_DIR GPUMEM_SHIM
mkdir -p "$GPUMEM_SIM_STATE" "$GPUMEM_STATE_DIR"
sleeper=""
cleanup() { [ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

# Groups for ps and limit, their slots naming one live process.
sleep 3600 & sleeper=$!
"$B/bench/mkgroups" "$NG" GPU-00000000-0000-0000-0000-000000000000 "$sleeper" || exit 1
"$GM" run --sim --keep --name inside --limit 8G -- true || exit 1

# The OCI runtime: a stand-in real runtime, one bundle per start (create
# rewrites config.json).
echo "runtime = /bin/true" >"$W/runtime.conf"
echo "shim = $SHIM" >>"$W/runtime.conf"
export GPUMEM_RUNTIME_CONFIG="$W/runtime.conf"
spec() { printf '{"ociVersion":"1.0.2","process":{"env":["PATH=/bin"%s]},"root":{"path":"rootfs"},"mounts":[{"destination":"/proc","type":"proc","source":"proc"}]}\n' "$1"; }
mkdir -p "$W/plain/rootfs/etc" && spec '' >"$W/plain/config.json"
for ((i = 0; i < RUNS + 3; i++)); do
    mkdir -p "$W/b$i/rootfs/etc" && spec ',"NVIDIA_GPU_MEMORY_LIMIT=4096"' >"$W/b$i/config.json"
done

echo "gpumem start-up benchmark: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M UTC'), $RUNS runs"
echo "state directory and bundles on $(stat -f -c %T "$W")"
echo "gpumem links: $(ldd "$GM" | awk '$1 !~ /^(linux-vdso|\/)/ { printf "%s ", $1 }')"
echo
out=$("$CT" -n "$RUNS" \
    true /bin/true ::: \
    prog LD_LIBRARY_PATH="$B/sim" "$AP" -n 1 -r 1 -w 0 ::: \
    env-prog env LD_LIBRARY_PATH="$B/sim" "$AP" -n 1 -r 1 -w 0 ::: \
    timeout-prog LD_LIBRARY_PATH="$B/sim" timeout 60 "$AP" -n 1 -r 1 -w 0 ::: \
    in-group LD_LIBRARY_PATH="$B/sim" LD_PRELOAD="$SHIM" GPUMEM_GROUP_DIR="$GPUMEM_STATE_DIR/inside" "$AP" -n 1 -r 1 -w 0 ::: \
    run LD_LIBRARY_PATH="$B/sim" "$GM" run --limit 8G -- "$AP" -n 1 -r 1 -w 0 ::: \
    run-sim "$GM" run --sim --limit 8G -- "$AP" -n 1 -r 1 -w 0 ::: \
    help "$GM" --help ::: \
    ps "$GM" ps ::: \
    limit-show "$GM" limit bench-0000 ::: \
    limit-set "$GM" limit bench-0000 8G ::: \
    rt-bare /bin/true create --bundle "$W/plain" x ::: \
    rt-nolimit "$RT" create --bundle "$W/plain" plain ::: \
    rt-create "$RT" create --bundle "$W/b%n" c%n ::: \
    rt-delete "$RT" delete c%n) || exit 1
printf '%s\n' "$out" >"$W/raw.txt"

med() { sed -n "s/^name=$1 .*median_us=\([^ ]*\).*/\1/p" <<<"$out"; }
q() { sed -n "s/^name=$1 .*q1_us=\([^ ]*\) q3_us=\([^ ]*\).*/\1-\2/p" <<<"$out"; }
ms() { awk "BEGIN { printf \"%.2f\", $1 / 1000 }"; }
printf '%-34s %9s %9s %9s %8s  %-14s %s\n' "median ms, exec -> exit" "base" "command" "added" "ratio" "target" "q1-q3 us"
printf '%s\n' "---------------------------------- --------- --------- --------- --------  -------------- ----------"
line() { # LABEL NAME BASE TARGET
    local m b
    m=$(med "$2") b=$(med "$3")
    printf '%-34s %9s %9s %9s %8s  %-14s %s\n' "$1" "$(ms "$b")" "$(ms "$m")" \
        "$(awk "BEGIN { printf \"%+.2f\", ($m - $b) / 1000 }")" "$(awk "BEGIN { printf \"x%.2f\", $m / $b }")" "$4" "$(q "$2")"
}
line "prog in a group (base: prog)" in-group prog ""
line "env prog (base: prog)" env-prog prog "(reference)"
line "timeout 60 prog (base: prog)" timeout-prog prog "(reference)"
line "gpumem run (base: prog)" run prog "<= +2 ms"
line "gpumem run --sim (base: prog)" run-sim prog "<= +2 ms"
line "gpumem --help (base: true)" help true "< 5 ms"
line "gpumem ps, $NG groups (base: true)" ps true "< 5 ms"
line "gpumem limit GROUP (base: true)" limit-show true "< 5 ms"
line "gpumem limit GROUP 8G (base: true)" limit-set true "< 5 ms"
line "runtime create, no limit (base: rt)" rt-nolimit rt-bare ""
line "runtime create + group (base: rt)" rt-create rt-bare "<= +5 ms"
line "runtime delete + group (base: rt)" rt-delete rt-bare ""
echo
printf '%s\n' "$out"

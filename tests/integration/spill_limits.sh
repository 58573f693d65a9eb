# Host-memory spill (docs/spill.md): the swap allowance holds, frees give
# bytes back to the pool that was charged, new allocations go to the device
# whenever it has room, promotion moves spilled memory back (same pointer,
# data intact) and the simulated GPU then counts it; the host-memory checks
# refuse what the host cannot give (the machine's real MemAvailable, and a
# real memory cgroup where one can be made).
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=128M
SPILL="$APP_PROGS/spill_client"
M=$((1024 * 1024))
check() { # NAME RUN-OPTIONS -- OPS...
    local name=$1 out; shift
    local opts=()
    while [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    if out=$(run_sim --limit 1G "${opts[@]}" -- "$SPILL" init "$@" 2>&1); then ok "$name"
    else fail "$name" "$(printf '%s' "$out" | tr '\n' '|' | cut -c1-700)"; fi
    LAST_OUT=$out
}
# 896 MiB of the 1 GiB limit are left after the context.
check swap_limit_enforced --swap 300M -- alloc 800M expect 0 alloc 200M expect 0 where 1 alloc 200M expect 2 \
    free 1 expect 0 alloc 200M expect 0
printf '%s\n' "$LAST_OUT" | grep -q 'where 1 managed=1 preferred=cpu' && ok spilled_is_managed_on_host ||
    fail spilled_is_managed_on_host "$(printf '%s' "$LAST_OUT" | tr '\n' '|')"
printf '%s\n' "$LAST_OUT" | grep -q 'its swap is full (200 MiB of 300 MiB used)' && ok swap_full_said ||
    fail swap_full_said "$(printf '%s' "$LAST_OUT" | tr '\n' '|')"

# Frees: a device free makes device room (the 500 MiB that follows cannot be
# swap: 100 MiB of it are left), a spilled free makes swap room.
check frees_uncharge_the_right_pool --swap 400M -- alloc 800M expect 0 alloc 300M expect 0 alloc 200M expect 2 \
    free 0 expect 0 alloc 500M expect 0 where 2 alloc 300M expect 0 where 3 alloc 200M expect 2 \
    free 1 expect 0 alloc 200M expect 0 where 4
printf '%s\n' "$LAST_OUT" | grep -q 'where 2 managed=0' && printf '%s\n' "$LAST_OUT" | grep -q 'where 3 managed=0' &&
    printf '%s\n' "$LAST_OUT" | grep -q 'where 4 managed=1 preferred=cpu' && ok new_allocations_go_to_the_device ||
    fail new_allocations_go_to_the_device "$(printf '%s' "$LAST_OUT" | tr '\n' '|')"

# cuMemAllocManaged spills too, and keeps its flags.
check managed_spills --swap 400M -- managed 800M expect 0 managed 300M expect 0 where 1 fill 1 7 check 1 7 expect 0
printf '%s\n' "$LAST_OUT" | grep -q 'where 1 managed=1 preferred=cpu' && ok managed_spill_on_host ||
    fail managed_spill_on_host "$(printf '%s' "$LAST_OUT" | tr '\n' '|')"

# Promotion: a free that makes room moves the spilled allocation back; the
# device (NVML) then holds it, its pointer and data unchanged.
truths() { printf '%s\n' "$LAST_OUT" | sed -n 's/^truth=//p' | tr '\n' ' '; }
check promotion --swap 1G --swap-promote -- alloc 800M fill 0 1 alloc 300M fill 1 2 truth where 1 \
    free 0 expect 0 where 1 truth check 1 2 expect 0
set -- $(truths)
if [ "${1:-0}" = $((928 * M)) ] && [ "${2:-0}" = $((428 * M)) ] &&
    [ "$(printf '%s\n' "$LAST_OUT" | grep -c 'where 1 ')" = 2 ] &&
    printf '%s\n' "$LAST_OUT" | grep 'where 1 ' | tail -1 | grep -q 'managed=1 preferred=0'; then
    ok promoted_back_to_device
else fail promoted_back_to_device "truths=$(truths) $(printf '%s' "$LAST_OUT" | grep where | tr '\n' '|')"; fi
check no_promotion_without_the_option --swap 1G -- alloc 800M fill 0 1 alloc 300M fill 1 2 free 0 where 1 truth
set -- $(truths)
printf '%s\n' "$LAST_OUT" | grep -q 'where 1 managed=1 preferred=cpu' && [ "${1:-0}" = $((128 * M)) ] &&
    ok stays_on_host_without_promotion || fail stays_on_host_without_promotion "truth=$1 $(printf '%s' "$LAST_OUT" | tr '\n' '|')"
# A promoted allocation is charged to the device: freeing it gives the
# device room back, and the swap stays free.
check promoted_free_uncharges_device --swap 300M --swap-promote -- alloc 800M alloc 300M free 0 expect 0 \
    alloc 500M expect 0 where 2 free 1 expect 0 alloc 300M expect 0 where 3
printf '%s\n' "$LAST_OUT" | grep -q 'where 2 managed=0' && printf '%s\n' "$LAST_OUT" | grep -q 'where 3 managed=0' &&
    ok promoted_bytes_are_the_devices || fail promoted_bytes_are_the_devices "$(printf '%s' "$LAST_OUT" | tr '\n' '|')"

# The host: more than the machine's MemAvailable is refused, whatever the
# allowance (the real /proc/meminfo, no override).
avail_g=$(( $(sed -n 's/^MemAvailable: *\([0-9]*\) kB/\1/p' /proc/meminfo) / 1024 / 1024 + 4 ))
out=$(run_sim --limit 1G --swap 4T -- "$SPILL" init alloc "${avail_g}G" expect 2 alloc 100M expect 0 2>&1)
if [ $? = 0 ] && printf '%s\n' "$out" | grep -q 'the host cannot give it (.* left: MemAvailable in /proc/meminfo'; then
    ok host_memavailable_refuses
else fail host_memavailable_refuses "$(printf '%s' "$out" | tr '\n' '|' | cut -c1-600)"; fi

# A memory cgroup with 256 MiB: 400 MiB cannot spill, 100 MiB can.
cg="" procs=""
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    cg=/sys/fs/cgroup/gpumem-spill-$$
    mkdir "$cg" 2>/dev/null && echo 256M >"$cg/memory.max" 2>/dev/null || cg=""
elif [ -d /sys/fs/cgroup/memory ]; then
    cg=/sys/fs/cgroup/memory/gpumem-spill-$$
    mkdir "$cg" 2>/dev/null && echo $((256 * M)) >"$cg/memory.limit_in_bytes" 2>/dev/null || cg=""
fi
if [ -n "$cg" ]; then
    # This subshell moves into the cgroup; what it starts is born there.
    out=$(echo "$BASHPID" >"$cg/cgroup.procs" && run_sim --limit 1G --swap 2G -- \
        "$SPILL" init alloc 800M expect 0 alloc 400M expect 2 alloc 100M expect 0 where 1 2>&1)
    if [ $? = 0 ] && printf '%s\n' "$out" | grep -q "the host cannot give it (.* left: $cg/memory" &&
        printf '%s\n' "$out" | grep -q 'where 1 managed=1 preferred=cpu'; then ok host_cgroup_refuses
    else fail host_cgroup_refuses "$(printf '%s' "$out" | tr '\n' '|' | cut -c1-600)"; fi
    rmdir "$cg" 2>/dev/null
else
    skip host_cgroup_refuses "no memory cgroup can be made here (not root, or no memory controller)"
fi
exit ${FAILED:-0}

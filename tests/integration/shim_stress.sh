# Threads x processes churning random allocations (freed as often by
# another thread of the process as by the one that made them) in one group under a
# storm of SIGKILLs (some inside the shim's start-up), injected driver
# faults, workers whose main thread ends in pthread_exit (they live on in
# their other threads) and workers that exit while their threads allocate.
# For the whole run, every 2 ms, the simulated driver's own per-process
# truth must show the group within its limit; at the end everything returns
# to 0, in the driver and in the group's accounting. Each run prints its
# seed; STRESS_SEED=N reruns the judge's choices.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=64M GPUMEM_SIM_DEVICES=1x16G GPUMEM_SIM_ALLOC_DELAY_US=${STRESS_DELAY_US:-200}
secs=${STRESS_SECONDS:-12}
"$GPUMEM" run --sim --limit 2G --name storm --keep -- true || { fail stress_setup "group"; exit 1; }
LD_PRELOAD="$ASAN_RT" GPUMEM_GROUP_DIR="$GPUMEM_STATE_DIR/storm" STRESS_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" \
    "$APP_PROGS/stress" judge 6 "$secs" 2048 2 256
json=$("$GPUMEM" ps -a --format json)
case "$json" in
*'"group":"storm"'*'"used":0,'*) ok stress_group_accounting_back_to_zero ;;
*) fail stress_group_accounting_back_to_zero "$json" ;;
esac
case "$json" in
*'"group":"storm"'*'"processes":0'*) ok stress_no_slot_left_behind ;;
*) fail stress_no_slot_left_behind "$json" ;;
esac
# The peak is what the group held, never charges in flight that were refused.
peak=$(sed -n 's/.*"group":"storm".*"peak":\([0-9]*\).*/\1/p' <<<"$json")
[ -n "$peak" ] && [ "$peak" -le $((2 << 30)) ] && ok stress_peak_within_limit ||
    fail stress_peak_within_limit "peak $peak of limit $((2 << 30))"

# The same with small allocations (1-512 KiB, the allocation table's and
# the 512-byte rounding's regime) against a 16 MiB limit.
export GPUMEM_SIM_CTX_OVERHEAD=1M
"$GPUMEM" run --sim --limit 16M --name storm-small --keep -- true || { fail stress_setup "group"; exit 1; }
LD_PRELOAD="$ASAN_RT" GPUMEM_GROUP_DIR="$GPUMEM_STATE_DIR/storm-small" STRESS_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" \
    "$APP_PROGS/stress" judge 6 "$secs" 16 2 -512 | sed 's/^\(ok\|FAIL\) stress_/\1 stress_small_/'
json=$("$GPUMEM" ps -a --format json)
case "$json" in
*'"group":"storm-small"'*'"used":0,'*) ok stress_small_group_accounting_back_to_zero ;;
*) fail stress_small_group_accounting_back_to_zero "$json" ;;
esac

# Many threads: 3 processes of 6 threads, so each has every owned
# accounting lane taken and three threads on its shared lane (group.h),
# with allocations freed across lanes.
export GPUMEM_SIM_CTX_OVERHEAD=16M
"$GPUMEM" run --sim --limit 1G --name storm-threads --keep -- true || { fail stress_setup "group"; exit 1; }
LD_PRELOAD="$ASAN_RT" GPUMEM_GROUP_DIR="$GPUMEM_STATE_DIR/storm-threads" STRESS_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" \
    "$APP_PROGS/stress" judge 3 "$secs" 1024 6 64 | sed 's/^\(ok\|FAIL\) stress_/\1 stress_threads_/'
json=$("$GPUMEM" ps -a --format json)
case "$json" in
*'"group":"storm-threads"'*'"used":0,'*) ok stress_threads_group_accounting_back_to_zero ;;
*) fail stress_threads_group_accounting_back_to_zero "$json" ;;
esac

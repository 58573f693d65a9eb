# What applications see inside a group: the limit is the GPU's size
# (cuMemGetInfo, cuDeviceTotalMem, NVML v1/v2), free = limit - group usage,
# NVML lists the group's processes, and the shim's accounting of a process
# equals the simulated driver's own per-process truth.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=128M GPUMEM_SIM_DEVICES=1x16G
G=1073741824 M=1048576
out=$(run_sim --limit 1G -- "$CLIENT" init info total alloc 512M info 2>&1)
expect_in meminfo_total_is_limit "info free=$((G - 128 * M)) total=$G" "$out"
expect_in device_total_is_limit "total=$G" "$out"
expect_in free_is_limit_minus_group_usage "info free=$((G - 640 * M)) total=$G" "$out"
out=$(sim_client init info total 2>&1)
expect_in no_group_sees_physical_size "total=$((16 * G))" "$out"
out=$(run_sim --limit 64G -- "$CLIENT" init info 2>&1)
expect_in limit_above_device_reports_device "total=$((16 * G))" "$out"
# The 32-bit forms (still exported by libcuda): the same view, clamped to
# 32 bits as the driver clamps them; outside a group the driver's clamp.
out=$(run_sim --limit 1G -- "$CLIENT" init info32 total32 alloc 512M info32 2>&1)
expect_in meminfo_v1_total_is_limit "info32 free=$((G - 128 * M)) total=$G" "$out"
expect_in device_total_v1_is_limit "total32=$G" "$out"
expect_in meminfo_v1_free_follows_usage "info32 free=$((G - 640 * M)) total=$G" "$out"
out=$(sim_client init total32 2>&1)
expect_in device_total_v1_clamped_outside "total32=4294967295" "$out"
out=$(run_sim --limit 6G -- "$CLIENT" init total32 2>&1)
expect_in device_total_v1_clamps_a_big_limit "total32=4294967295" "$out"

# NVML inside the group, while a group process holds 300 MiB.
run_sim --limit 1G --name viewg --keep -- "$CLIENT" init alloc 300M hold >"$T/holder" 2>&1 &
for i in $(seq 100); do grep -q holding "$T/holder" && break; sleep 0.05; done
D="$GPUMEM_STATE_DIR/viewg"
inside=$(GPUMEM_GROUP_DIR="$D" LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" "$APP_PROGS/nvml_view" 2>&1)
outside=$(LD_PRELOAD="$ASAN_RT" LD_LIBRARY_PATH="$SIMDIR" "$APP_PROGS/nvml_view" 2>&1)
expect_in nvml_v1_total_is_limit "mem total=$G free=$((G - 428 * M)) used=$((428 * M))" "$inside"
expect_in nvml_v2_total_is_limit "mem2 total=$G free=$((G - 428 * M))" "$inside"
expect_in nvml_outside_sees_device "mem total=$((16 * G))" "$outside"
hpid=$(pgrep -f "^$CLIENT init alloc 300M hold" | head -1)
expect_in nvml_lists_group_process "proc pid=$hpid used=$((428 * M))" "$inside"
# The shim's own count for that process equals the driver's truth.
ps=$("$GPUMEM" ps -p --format json)
expect_in accounting_equals_driver_truth "\"pid\":$hpid,\"host_pid\":$hpid,\"command\":\"alloc_client\",\"used\":$((428 * M))" "$ps"
# A process in another group is not listed inside this one. Not vacuous: the
# other process must be holding, and listed where no group filters (outside),
# and this group's own process must still be listed next to its absence.
run_sim --limit 1G --name other --keep -- "$CLIENT" init alloc 64M hold >"$T/other" 2>&1 &
for i in $(seq 200); do grep -q holding "$T/other" && break; sleep 0.05; done
opid=$(pgrep -f "^$CLIENT init alloc 64M hold" | head -1)
inside=$(GPUMEM_GROUP_DIR="$D" LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" "$APP_PROGS/nvml_view" 2>&1)
outside=$(LD_PRELOAD="$ASAN_RT" LD_LIBRARY_PATH="$SIMDIR" "$APP_PROGS/nvml_view" 2>&1)
if ! grep -q holding "$T/other" || [ -z "$opid" ]; then
    fail nvml_hides_other_groups "no process of the other group to hide: $(tr '\n' '|' <"$T/other")"
elif [ -z "$hpid" ]; then
    fail nvml_hides_other_groups "no process of this group found"
else
    case "$outside|$inside" in
    *"pid=$opid "*"|"*"pid=$opid "*) fail nvml_hides_other_groups "pid $opid listed inside: $(tr '\n' '|' <<<"$inside")" ;;
    *"pid=$opid "*"|"*"pid=$hpid "*) ok nvml_hides_other_groups ;;
    *) fail nvml_hides_other_groups "expected pid $opid outside and pid $hpid inside: outside: $(tr '\n' '|' <<<"$outside") inside: $(tr '\n' '|' <<<"$inside")" ;;
    esac
fi

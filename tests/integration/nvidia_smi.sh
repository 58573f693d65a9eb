#!/usr/bin/env bash
# NVIDIA's own nvidia-smi (Debian's nvidia-smi 550.163.01, unpacked by
# tools/fetch-nvidia-driver.sh into $GPUMEM_NVIDIA_DIR/bin, default
# /var/cache/gpumem/nvidia/bin; or $GPUMEM_NVIDIA_SMI) on the simulated GPU:
#   - it starts and shows the simulated devices (default view, -L, -q,
#     --query-gpu, --query-compute-apps), with the driver version the
#     simulator reports (GPUMEM_SIM_DRIVER_VERSION);
#   - on the host (no group) its memory and processes are the simulated
#     driver's truth, as our own NVML client (nvml_view) reads it: every
#     process, the whole device;
#   - in a group limited to 4 GiB it shows 4096 MiB, the group's used memory
#     and only the group's processes, and agrees with `gpumem ps`; another
#     group's process, listed on the host, is not listed there.
# Written for 550; 535 (bookworm's) passes too.
# Skips when nvidia-smi is not there, unless GPUMEM_REQUIRE_NVIDIA=1 (CI),
# which makes that a failure.
. tests/integration/lib.sh
NV=${GPUMEM_NVIDIA_DIR:-/var/cache/gpumem/nvidia}
SMI=${GPUMEM_NVIDIA_SMI:-$NV/bin/nvidia-smi}
if [ ! -x "$SMI" ]; then
    why="NVIDIA's nvidia-smi not at $SMI (tools/fetch-nvidia-driver.sh fetches it)"
    if [ "${GPUMEM_REQUIRE_NVIDIA:-0}" = 1 ]; then fail nvidia_smi "$why"; else skip nvidia_smi "$why"; fi
    exit 0
fi
M=$((1 << 20))
export GPUMEM_SIM_CTX_OVERHEAD=300M
# nvidia-smi on the host (simulated NVML, no shim) and in the group D.
smi_host() { LD_PRELOAD="$ASAN_RT" LD_LIBRARY_PATH="$SIMDIR" "$SMI" "$@"; }
smi_group() { GPUMEM_GROUP_DIR="$1" LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" "$SMI" "${@:2}"; }
py() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# wait_holding FILE: until the client writing FILE holds its memory; its pid.
wait_holding() {
    for _ in $(seq 200); do grep -q '^holding pid=' "$1" && break; sleep 0.05; done
    sed -n 's/^holding pid=\([0-9]*\).*/\1/p' "$1"
}

# The version: --version (550), the help's first line (535 has no --version).
out=$(smi_host -h 2>&1 | head -1)
expect_in runs_on_sim "NVIDIA System Management Interface -- v" "$out"
smi_version=${out##*-- v}
out=$(smi_host --query-gpu=driver_version --format=csv,noheader 2>&1)
if [ "$out" = 550.163.01 ]; then ok default_driver_version; else fail default_driver_version "got '$out'"; fi
out=$(GPUMEM_SIM_DRIVER_VERSION=580.95.05 smi_host --query-gpu=driver_version --format=csv,noheader 2>&1)
if [ "$out" = 580.95.05 ]; then ok driver_version_settable; else fail driver_version_settable "got '$out'"; fi
out=$(GPUMEM_SIM_DEVICES=H200:141G,A100:40G smi_host -L 2>&1)
if grep -q '^GPU 0: NVIDIA H200 (UUID: GPU-' <<<"$out" && grep -q '^GPU 1: NVIDIA A100' <<<"$out"; then
    ok list_gpus
else
    fail list_gpus "$(tr '\n' '|' <<<"$out")"
fi

# A process outside any group, and one in a group limited to 4 GiB.
sim_client init alloc 600M hold >"$T/outside" 2>&1 &
opid=$(wait_holding "$T/outside")
run_sim --limit 4G --name smi --keep -- "$CLIENT" init alloc 1G hold >"$T/inside" 2>&1 &
gpid=$(wait_holding "$T/inside")
D="$GPUMEM_STATE_DIR/smi"
if [ -z "$opid" ] || [ -z "$gpid" ]; then
    fail holders "the clients did not start: $(cat "$T/outside" "$T/inside" | tr '\n' '|')"
    exit 0
fi
o_used=$(((600 + 300) * M)) g_used=$(((1024 + 300) * M))

# The simulated driver's truth, read by our own NVML client outside any group.
truth=$(LD_PRELOAD="$ASAN_RT" LD_LIBRARY_PATH="$SIMDIR" "$APP_PROGS/nvml_view" 2>&1)
expect_in truth_outside_process "proc pid=$opid used=$o_used" "$truth"
expect_in truth_group_process "proc pid=$gpid used=$g_used" "$truth"
t_total=$(sed -n 's/^mem total=\([0-9]*\) .*/\1/p' <<<"$truth")
t_used=$(sed -n 's/^mem total=.* used=\([0-9]*\)$/\1/p' <<<"$truth")

# Host: the whole device and every process.
out=$(smi_host --query-gpu=memory.total,memory.used --format=csv,noheader,nounits 2>&1)
want="$((t_total / M)), $((t_used / M))"
if [ "$out" = "$want" ]; then ok host_memory_is_truth; else fail host_memory_is_truth "nvidia-smi '$out', truth '$want'"; fi
out=$(smi_host --query-compute-apps=pid,used_memory --format=csv,noheader,nounits 2>&1 | sort)
want=$(printf '%s, %s\n' "$opid" $((o_used / M)) "$gpid" $((g_used / M)) | sort)
if [ "$out" = "$want" ]; then ok host_lists_every_process; else
    fail host_lists_every_process "nvidia-smi '$(tr '\n' '|' <<<"$out")', truth '$(tr '\n' '|' <<<"$want")'"; fi

# In the group: 4096 MiB, the group's usage and processes, as gpumem ps says.
ps=$("$GPUMEM" ps -p --format json)
ps_used=$(py "[g for g in d if g['name'] == 'smi'][0]['devices'][0]['used']" <<<"$ps" 2>/dev/null)
ps_limit=$(py "[g for g in d if g['name'] == 'smi'][0]['devices'][0]['limit']" <<<"$ps" 2>/dev/null)
out=$(smi_group "$D" --query-gpu=memory.total,memory.used --format=csv,noheader,nounits 2>&1)
want="$((${ps_limit:-0} / M)), $((${ps_used:-0} / M))"
if [ -n "$ps_used" ] && [ "$out" = "$want" ] && [ "$out" = "4096, $((g_used / M))" ]; then
    ok group_memory_is_limit_and_group_usage
else
    fail group_memory_is_limit_and_group_usage "nvidia-smi '$out', gpumem ps '$want', expected '4096, $((g_used / M))'"
fi
out=$(smi_group "$D" --query-compute-apps=pid,used_memory --format=csv,noheader,nounits 2>&1)
ps_procs=$(py "'\n'.join('%d, %d' % (p['host_pid'], p['used'] >> 20) for g in d if g['name'] == 'smi' for p in g['process_list'])" \
    <<<"$ps" 2>/dev/null)
if [ "$out" = "$gpid, $((g_used / M))" ] && [ "$out" = "$ps_procs" ]; then
    ok group_lists_only_its_processes
else
    fail group_lists_only_its_processes "nvidia-smi '$(tr '\n' '|' <<<"$out")', gpumem ps '$(tr '\n' '|' <<<"$ps_procs")', expected '$gpid, $((g_used / M))'"
fi

# The default screen, in the group and on the host.
screen=$(smi_group "$D" 2>&1)
if grep -qE " $((g_used / M))MiB / +4096MiB " <<<"$screen"; then ok group_screen_total; else
    fail group_screen_total "$(tr '\n' '|' <<<"$screen")"; fi
if grep -qE "^\|    0 +N/A +N/A +$gpid +C +.*alloc_client +$((g_used / M))MiB \|$" <<<"$screen" &&
    ! grep -qE "^\|.* $opid +C " <<<"$screen"; then
    ok group_screen_processes
else
    fail group_screen_processes "$(tr '\n' '|' <<<"$screen")"
fi
screen=$(smi_host 2>&1)
if grep -qE "$(((o_used + g_used) / M))MiB / +16384MiB" <<<"$screen" && grep -qE "^\|.* $opid +C " <<<"$screen" &&
    grep -qE "^\|.* $gpid +C " <<<"$screen"; then
    ok host_screen
else
    fail host_screen "$(tr '\n' '|' <<<"$screen")"
fi
# -q: the full report runs to its end, with the group's view of memory.
out=$(smi_group "$D" -q 2>&1)
rc=$?
if [ $rc = 0 ] && grep -A2 'FB Memory Usage' <<<"$out" | grep -q 'Total *: 4096 MiB' &&
    grep -q "Process ID *: $gpid" <<<"$out" && ! grep -q "Process ID *: $opid" <<<"$out"; then
    ok group_query_report
else
    fail group_query_report "rc=$rc $(grep -A4 -E 'FB Memory Usage|Process ID' <<<"$out" | tr '\n' '|' | cut -c1-600)"
fi

# A fresh `gpumem run` group: nothing of its own yet, the outside process hidden.
out=$(run_sim --limit 4G -- "$SMI" 2>&1)
if grep -qE ' 0MiB / +4096MiB ' <<<"$out" && grep -q 'No running processes found' <<<"$out" &&
    ! grep -qE "^\|.* ($opid|$gpid) +C " <<<"$out"; then
    ok gpumem_run_nvidia_smi
else
    fail gpumem_run_nvidia_smi "$(tr '\n' '|' <<<"$out")"
fi
echo "# nvidia-smi $smi_version"
kill "$opid" "$gpid" 2>/dev/null
exit 0

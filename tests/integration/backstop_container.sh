# The backstop's cgroup join (docs/backstop.md): a container group (made by
# gpumem-runtime with a fake real runtime, as daemon_gc.sh does) whose
# cgroup names the container's 64-hex id, as Docker's and containerd's do.
# A process in that cgroup that dropped the shim (no slot) is "unaccounted"
# with reason no_slot_in_cgroup and the container's group, and is killed
# under --backstop kill; the honest shimmed process beside it lives. The
# cgroups are made for the test (root: cgroup v2 at /sys/fs/cgroup, else
# the v1 pids controller) and removed at the end.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=64M GPUMEM_SIM_DEVICES=1x16G
. tests/integration/daemon_lib.sh
command -v curl >/dev/null || { skip backstop_container "curl is not installed"; exit 0; }
if [ -e /sys/fs/cgroup/cgroup.procs ]; then CGROOT=/sys/fs/cgroup
elif [ -e /sys/fs/cgroup/pids/cgroup.procs ]; then CGROOT=/sys/fs/cgroup/pids
else CGROOT=""; fi
id=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
CG="$CGROOT/gpumem-test-docker-$id.scope"
if [ -z "$CGROOT" ] || ! mkdir "$CG" 2>/dev/null; then
    skip backstop_container "cannot make a cgroup here (needs root and a writable cgroup file system)"
    exit 0
fi
# Processes leave with the test (kill_ours), then the cgroup goes.
cleanup_cg() { { kill_ours; wait; } 2>/dev/null; for i in $(seq 50); do rmdir "$CG" 2>/dev/null && break; sleep 0.1; done; rm -rf "$T"; }
trap cleanup_cg EXIT

RT="$TOP/$BUILD/bin/gpumem-runtime"
[ "${SAN:-0}" = 1 ] && RT_RUN() { LD_PRELOAD="$ASAN_RT" "$RT" "$@"; } || RT_RUN() { "$RT" "$@"; }
printf '#!/bin/sh\nexit 0\n' >"$T/fake-runc"; chmod +x "$T/fake-runc"
printf 'runtime = %s\nshim = %s\n' "$T/fake-runc" "$SHIM" >"$T/runtime.conf"
export GPUMEM_RUNTIME_CONFIG="$T/runtime.conf"
mkdir -p "$GPUMEM_STATE_DIR" "$T/runc" "$T/bundle/rootfs/etc"
printf '{"ociVersion":"1.0.2","process":{"env":["PATH=/bin","NVIDIA_GPU_MEMORY_LIMIT=1024"]},"root":{"path":"rootfs"}}\n' \
    >"$T/bundle/config.json"
RT_RUN --root "$T/runc" create --bundle "$T/bundle" "$id" || { fail container_group_created "rc=$?"; exit 0; }
gdir=$(grep -l "bundle=$T/bundle" "$GPUMEM_STATE_DIR"/*/container 2>/dev/null | head -1)
gdir=${gdir%/container}
group=${gdir##*/}
[ -n "$group" ] && ok container_group_created || { fail container_group_created "$(ls "$GPUMEM_STATE_DIR")"; exit 0; }

# in_cgroup OUT CMD...: CMD inside the container's cgroup, output to OUT.
in_cgroup() {
    local out=$1; shift
    sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "$@" >"$out" 2>&1 &
}
start_daemon --backstop kill
in_cgroup "$T/honest" env GPUMEM_GROUP_DIR="$gdir" LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" \
    "$CLIENT" init alloc 128M hold
in_cgroup "$T/escaper" env LD_PRELOAD="$ASAN_RT" LD_LIBRARY_PATH="$SIMDIR" "$CLIENT" init alloc 256M hold
wait_for holding "$T/honest" || fail honest_started "$(cat "$T/honest")"
wait_for holding "$T/escaper" || fail escaper_started "$(cat "$T/escaper")"
HPID=$(sed -n 's/^holding pid=//p' "$T/honest")
EPID=$(sed -n 's/^holding pid=//p' "$T/escaper")
# Hang guard only (10 s).
wait_for "\"event\":\"backstop\".*\"pid\":$EPID," "$DLOG" 200 && ok cgroup_escaper_event ||
    fail cgroup_escaper_event "$(cat "$DLOG")"
ev=$(grep "\"event\":\"backstop\".*\"pid\":$EPID," "$DLOG" | head -1)
expect_in cgroup_event_kind '"kind":"unaccounted","reason":"no_slot_in_cgroup"' "$ev"
expect_in cgroup_event_group "\"group\":\"$group\"" "$ev"
expect_in cgroup_event_cgroup "\"cgroup\":\"${CG#"$CGROOT"}\"" "$ev"
expect_in cgroup_event_action '"action":"killed"' "$ev"
for i in $(seq 100); do [ -e "/proc/$EPID" ] || break; sleep 0.05; done
[ -e "/proc/$EPID" ] && fail cgroup_escaper_killed "pid $EPID lives" || ok cgroup_escaper_killed
[ -e "/proc/$HPID" ] && ok cgroup_honest_lives || fail cgroup_honest_lives "pid $HPID is gone"
grep -q "\"event\":\"backstop\".*\"pid\":$HPID," "$DLOG" && fail cgroup_honest_not_flagged "$(grep backstop "$DLOG")" ||
    ok cgroup_honest_not_flagged
stop_daemon

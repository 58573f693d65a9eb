# gpumem daemon removes groups whose container is gone (bundle and the real
# runtime's state both missing, recorded by gpumem-runtime in
# <group>/container), never one with a live process, never one without a
# record; each removal is a "group_removed" event. Host pids: a process of a
# group is shown with its host pid (here the same pid namespace).
. tests/integration/lib.sh
. tests/integration/daemon_lib.sh
RT="$TOP/$BUILD/bin/gpumem-runtime"
[ "${SAN:-0}" = 1 ] && RT_RUN() { LD_PRELOAD="$ASAN_RT" "$RT" "$@"; } || RT_RUN() { "$RT" "$@"; }
fake="$T/fake-runc"
printf '#!/bin/sh\nexit 0\n' >"$fake"; chmod +x "$fake"
echo "runtime = $fake" >"$T/runtime.conf"
echo "shim = $SHIM" >>"$T/runtime.conf"
export GPUMEM_RUNTIME_CONFIG="$T/runtime.conf"
mkdir -p "$GPUMEM_STATE_DIR" "$T/runc"
mkctr() { # ID: a bundle asking for a limit, created through the runtime
    local b="$T/bundle-$1"
    mkdir -p "$b/rootfs/etc"
    printf '{"ociVersion":"1.0.2","process":{"env":["PATH=/bin","NVIDIA_GPU_MEMORY_LIMIT=1024"]},"root":{"path":"rootfs"},"annotations":{"io.kubernetes.cri.container-name":"ctr-%s"}}\n' "$1" >"$b/config.json"
    RT_RUN --root "$T/runc" create --bundle "$b" "$1" || fail "create_$1" "rc=$?"
}
for c in alive gone busy; do mkctr "$c"; done
[ -f "$GPUMEM_STATE_DIR/gone/container" ] && grep -qx "bundle=$T/bundle-gone" "$GPUMEM_STATE_DIR/gone/container" \
    && grep -qx "state=$T/runc/gone" "$GPUMEM_STATE_DIR/gone/container" && ok runtime_records_container \
    || fail runtime_records_container "$(cat "$GPUMEM_STATE_DIR/gone/container" 2>&1)"
# A group of `gpumem run` (no container id) is never the daemon's to remove.
run_sim --limit 1G --name plain --keep -- true
# busy: a live process of the group holds memory.
GPUMEM_GROUP_DIR="$GPUMEM_STATE_DIR/busy" LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" "$CLIENT" init alloc 100M hold >"$T/busy.out" 2>&1 &
hold=$!
for i in $(seq 200); do grep -q holding "$T/busy.out" && break; sleep 0.05; done
out=$("$GPUMEM" ps -p --format json)
python3 - "$out" "$hold" <<'PY' && ok ps_name_and_host_pid || fail ps_name_and_host_pid "$out"
import json, sys
g = [g for g in json.loads(sys.argv[1]) if g["group"] == "busy"][0]
assert g["name"] == "ctr-busy" and g["container_id"] == "busy", g
p = g["process_list"][0]
assert p["host_pid"] == int(sys.argv[2]) and p["pid"] == int(sys.argv[2]), p
PY
out=$("$GPUMEM" ps -p)
expect_in ps_table_shows_name "ctr-busy" "$out"
expect_in ps_table_shows_host_pid "host pid $hold" "$out"
rm -rf "$T/bundle-gone" "$T/bundle-busy"
start_daemon
wait_for '"event":"group_removed".*"group":"gone"' "$DLOG" && [ ! -e "$GPUMEM_STATE_DIR/gone" ] && ok gone_container_group_removed \
    || fail gone_container_group_removed "$(ls -A "$GPUMEM_STATE_DIR/gone" 2>&1); $(cat "$DLOG")"
sleep 0.5
[ -e "$GPUMEM_STATE_DIR/busy/limits" ] && ok group_with_live_process_kept || fail group_with_live_process_kept "removed"
[ -e "$GPUMEM_STATE_DIR/alive/limits" ] && ok group_with_bundle_kept || fail group_with_bundle_kept "removed"
[ -e "$GPUMEM_STATE_DIR/plain/limits" ] && ok group_without_container_kept || fail group_without_container_kept "removed"
kill -KILL "$hold"; wait "$hold" 2>/dev/null
wait_for '"event":"group_removed".*"group":"busy"' "$DLOG" && [ ! -e "$GPUMEM_STATE_DIR/busy" ] && ok removed_after_last_process \
    || fail removed_after_last_process "$(ls -A "$GPUMEM_STATE_DIR/busy" 2>&1)"
stop_daemon
[ -e "$GPUMEM_STATE_DIR/alive/limits" ] && ok bundle_present_still_kept || fail bundle_present_still_kept "removed"
exit 0

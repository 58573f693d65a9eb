#!/usr/bin/env bash
# gpumem-k8s against a fake kubelet that is not our code: grpc-go from
# Debian with Go code generated from our .proto checked against upstream
# (tests/k8s/fakekubelet/, built by tests/k8s/build-fakekubelet.sh). On two
# simulated 16 GiB GPUs with 1 GiB units:
#   - Register: the request as the kubelet checks it, the plugin already
#     serving when the kubelet calls back before answering;
#   - GetDevicePluginOptions; ListAndWatch: the first list, then an update
#     when a simulated GPU falls off the bus (and when it comes back);
#   - GetPreferredAllocation: best fit, fragmentation, must-include;
#   - Allocate: env, mounts, devices, annotations and the group's limits
#     match the units, a request spanning GPUs gets a limit per GPU;
#   - bad input: malformed bytes, unknown IDs, zero units, a repeated ID,
#     units of a GPU that is gone: clear gRPC errors, the plugin lives on;
#   - the answer applied to a process as a runtime would (env, the group
#     mounted at /run/gpumem/self in a private mount namespace): held to
#     the granted limit on the simulated GPU, seen in gpumem ps;
#   - the kubelet restarting (socket directory emptied, or only kubelet.sock
#     replaced): registered again; kill -9 and a restart over the stale
#     socket; SIGTERM: exit 0, socket removed;
#   - groups Allocate made: kept while the kubelet's checkpoint names them,
#     removed once it does not and no process uses them.
# In SAN runs the plugin is the instrumented build, with leak checking on.
source "$(dirname "$0")/lib.sh"
K8S="$TOP/$BUILD/bin/gpumem-k8s"
FK="$TOP/build/tests/k8s/fakekubelet"
PY=/usr/bin/python3
if [ ! -x "$K8S" ]; then
    skip k8s_plugin "$K8S not built"
    exit 0
fi
if ! why=$("$TOP/tests/k8s/build-fakekubelet.sh" "$FK" 2>&1); then
    skip k8s_plugin "cannot build the fake kubelet: $why"
    exit 0
fi
export GPUMEM_SIM_DEVICES=2x16G GPUMEM_SIM_CTX_OVERHEAD=64M
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
D="$T/dp"
mkdir -p "$D" "$T/dev"
KLOG="$T/kubelet.log" PLOG="$T/plugin.log"
S="$D/gpumem-memory.sock"

# wait_for SECONDS CMD...: polls CMD every 50 ms until it succeeds.
wait_for() {
    local n=$(($1 * 20)); shift
    while [ "$n" -gt 0 ]; do
        "$@" && return 0
        sleep 0.05
        n=$((n - 1))
    done
    return 1
}
count() { grep -c "$1" "$2" 2>/dev/null || true; }
# jq-like: the Python expression $2 over the JSON in $1 (v is the value).
jget() { "$PY" -c 'import json,sys; v=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }

kubelet_pid=""
start_kubelet() {
    "$FK" serve -dir "$D" "$@" >>"$KLOG" 2>&1 &
    kubelet_pid=$!
    wait_for 10 test -S "$D/kubelet.sock"
}
stop_kubelet() { kill -TERM "$kubelet_pid" 2>/dev/null; wait "$kubelet_pid" 2>/dev/null; }
plugin_pid=""
start_plugin() {
    "$K8S" --kubelet-dir "$D" --sim --unit 1G --health-interval 50 --dev-dir "$T/dev" "$@" >>"$PLOG" 2>&1 &
    plugin_pid=$!
}
registrations() { count '"event":"register"' "$KLOG"; }
# more PATTERN N: the kubelet's log has more than N lines matching PATTERN.
more() { [ "$(count "$1" "$KLOG")" -gt "$2" ]; }

# Device nodes the way the driver makes them (NVML minor = index on the
# simulated GPU): Allocate passes on those that exist.
mknod "$T/dev/nvidiactl" c 195 255 2>/dev/null && mknod "$T/dev/nvidia0" c 195 0 2>/dev/null
have_nodes=$?

start_kubelet || { fail kubelet_starts "$(cat "$KLOG")"; exit 1; }
start_plugin --grace 3600
if wait_for 10 grep -q '"event":"list"' "$KLOG"; then ok first_list_after_register; else
    fail first_list_after_register "$(cat "$KLOG" "$PLOG" | tr '\n' '|')"; exit 1; fi

reg=$(grep -m1 '"event":"register"' "$KLOG")
if [ "$(jget "$reg" '(v["version"], v["endpoint"], v["resource"], v["preferred"])')" = \
     "('v1beta1', 'gpumem-memory.sock', 'gpumem.io/memory', True)" ]; then ok register_request; else
    fail register_request "$reg"; fi
# The kubelet called GetDevicePluginOptions before it answered Register.
opt=$(grep -m1 '"event":"options"' "$KLOG")
expect_in called_back_before_register_answered '"preferred":true' "$opt"

out=$("$FK" options -sock "$S" 2>&1)
expect_in get_device_plugin_options '"get_preferred_allocation_available":true' "$out"

first=$(grep -m1 '"event":"list"' "$KLOG")
[ "$(jget "$first" '(v["healthy"], v["unhealthy"])')" = "(32, 0)" ] && ok list_and_watch_initial ||
    fail list_and_watch_initial "$first"

mapfile -t U < <(grep -o 'GPU GPU-[0-9a-f-]*' "$PLOG" | head -2 | cut -d' ' -f2)
A=${U[0]} B=${U[1]}
ids() { local g=$1 from=$2 to=$3 i s=""; for ((i = from; i <= to; i++)); do s+="${s:+,}$g-m$i"; done; echo "$s"; }

# ---- GetPreferredAllocation -------------------------------------------------
out=$("$FK" preferred -sock "$S" -available "$(ids "$A" 0 2),$(ids "$B" 0 1)" -size 2)
[ "$(jget "$out" 'sorted(v["container_responses"][0]["deviceIDs"])')" = "['$B-m0', '$B-m1']" ] &&
    ok preferred_best_fit || fail preferred_best_fit "$out"
out=$("$FK" preferred -sock "$S" -available "$(ids "$A" 0 4),$(ids "$B" 5 7)" -size 6)
[ "$(jget "$out" '[x.rsplit("-m",1)[0] for x in v["container_responses"][0]["deviceIDs"]].count("'"$A"'")')" = 5 ] &&
    [ "$(jget "$out" 'len(v["container_responses"][0]["deviceIDs"])')" = 6 ] && ok preferred_fragmented_fewest_gpus || fail preferred_fragmented_fewest_gpus "$out"
out=$("$FK" preferred -sock "$S" -available "$(ids "$A" 0 2),$(ids "$B" 0 1)" -must "$A-m1" -size 3)
[ "$(jget "$out" 'sorted(v["container_responses"][0]["deviceIDs"])')" = "['$A-m0', '$A-m1', '$A-m2']" ] &&
    ok preferred_keeps_must_include_gpu || fail preferred_keeps_must_include_gpu "$out"

# ---- Allocate ---------------------------------------------------------------
out=$("$FK" allocate -sock "$S" -ids "$A-m0,$A-m1,$B-m3" 2>&1)
r=$(jget "$out" 'json.dumps(v["response"]["container_responses"][0])' 2>/dev/null)
group=$(jget "$r" 'v["annotations"]["gpumem.io/group"]' 2>/dev/null)
if [ -n "$group" ] && [ -d "$GPUMEM_STATE_DIR/$group" ]; then ok allocate_makes_group; else
    fail allocate_makes_group "$out"; fi
[ "$(jget "$r" 'v["envs"]["GPUMEM_LIMIT"]')" = "$A=2048M,$B=1024M" ] && ok allocate_env_limits ||
    fail allocate_env_limits "$r"
[ "$(jget "$r" 'v["envs"]["NVIDIA_VISIBLE_DEVICES"]')" = "$A,$B" ] && ok allocate_env_visible ||
    fail allocate_env_visible "$r"
[ "$(jget "$r" 'v["annotations"]["gpumem.io/limits"]')" = "$A=2147483648,$B=1073741824" ] &&
    ok allocate_annotation_limits || fail allocate_annotation_limits "$r"
G="$GPUMEM_STATE_DIR/$group"
mounts=$(jget "$r" '"|".join("%s=%s:%s" % (m["container_path"], m["host_path"], "ro" if m.get("read_only") else "rw") for m in v["mounts"])')
want="/run/gpumem/self=$G:ro|/run/gpumem/self/usage=$G/usage:rw|/run/gpumem/self/limits=$G/limits:ro"
want+="|/usr/lib/gpumem/libgpumem.so=$SHIM:ro|/etc/ld.so.preload=$G/ld.so.preload:ro"
expect_in allocate_mounts_as_runtime "$want" "$mounts"
[ "$(head -1 "$G/ld.so.preload")" = /usr/lib/gpumem/libgpumem.so ] && ok allocate_preload_names_shim ||
    fail allocate_preload_names_shim "$(cat "$G/ld.so.preload")"
if [ "$have_nodes" = 0 ]; then
    devs=$(jget "$r" '",".join(sorted(d["container_path"] + "=" + d["host_path"] + ":" + d["permissions"] for d in v["devices"]))')
    [ "$devs" = "/dev/nvidia0=$T/dev/nvidia0:rw,/dev/nvidiactl=$T/dev/nvidiactl:rw" ] && ok allocate_device_nodes ||
        fail allocate_device_nodes "$devs"
else
    skip allocate_device_nodes "mknod failed (not root?)"
fi
out=$("$FK" allocate -sock "$S" -ids "$B-m0;$B-m1,$B-m2" 2>&1)
[ "$(jget "$out" 'len(set(c["annotations"]["gpumem.io/group"] for c in v["response"]["container_responses"]))')" = 2 ] &&
    ok allocate_group_per_container || fail allocate_group_per_container "$out"

# ---- bad input --------------------------------------------------------------
out=$("$FK" raw -sock "$S" -method /v1beta1.DevicePlugin/Allocate -hex 0aff 2>&1)
expect_in malformed_request_invalid_argument '"code":"InvalidArgument"' "$out"
out=$("$FK" allocate -sock "$S" -ids "GPU-00000000-0000-0000-0000-000000000000-m0" 2>&1)
expect_in unknown_gpu_refused 'names a GPU this node does not have' "$out"
out=$("$FK" allocate -sock "$S" -ids "$A-m99" 2>&1)
expect_in unit_past_gpu_refused "$A-m99\\\": $A has 16 units" "$out"
out=$("$FK" allocate -sock "$S" -ids "$A-x1" 2>&1)
expect_in malformed_id_refused 'is not a memory unit' "$out"
out=$("$FK" allocate -sock "$S" -ids "" 2>&1)
expect_in zero_units_refused 'zero units' "$out"
out=$("$FK" allocate -sock "$S" -ids "$A-m4,$A-m4" 2>&1)
expect_in repeated_id_refused 'listed twice' "$out"
out=$("$FK" preferred -sock "$S" -available "$A-m0" -size 0 2>&1)
expect_in preferred_zero_size_refused '"code":"InvalidArgument"' "$out"
groups_before=$(ls "$GPUMEM_STATE_DIR" | wc -l)
out=$("$FK" allocate -sock "$S" -ids "$A-m5;$A-m6,bogus" 2>&1)
[ "$(ls "$GPUMEM_STATE_DIR" | wc -l)" = "$groups_before" ] && expect_in failed_allocate_leaves_no_group \
    '"code":"InvalidArgument"' "$out" || fail failed_allocate_leaves_no_group "$(ls "$GPUMEM_STATE_DIR") $out"

# ---- health -----------------------------------------------------------------
touch "$GPUMEM_SIM_STATE/lost-1"
if wait_for 10 grep -q "\"unhealthy\":16,\"unhealthy_gpus\":\[\"$B\"\]" "$KLOG"; then ok list_and_watch_gpu_lost; else
    fail list_and_watch_gpu_lost "$(tail -3 "$KLOG" | tr '\n' '|')"; fi
out=$("$FK" allocate -sock "$S" -ids "$B-m9" 2>&1)
expect_in gone_gpu_refused '"code":"FailedPrecondition"' "$out"
n=$(count '"healthy":32,"resource"' "$KLOG")
rm -f "$GPUMEM_SIM_STATE/lost-1"
if wait_for 10 more '"healthy":32,"resource"' "$n"; then ok list_and_watch_gpu_back; else
    fail list_and_watch_gpu_back "$(tail -3 "$KLOG" | tr '\n' '|')"; fi
"$FK" options -sock "$S" >/dev/null 2>&1 && kill -0 "$plugin_pid" && ok survives_bad_input ||
    fail survives_bad_input "$(tail -5 "$PLOG")"

# ---- the answer applied to a process ------------------------------------------
if unshare -m true 2>/dev/null; then
    # What a runtime does with the answer: its environment, and its mounts
    # under /run (a fresh tmpfs there, in a private mount namespace). The
    # shim and ld.so.preload are not bound over the host's files: the shim
    # is preloaded by path instead, as ld.so.preload would load it.
    envs=$(jget "$r" '" ".join("%s=%s" % kv for kv in v["envs"].items())')
    binds=$(jget "$r" '" ".join("%s:%s:%s" % (m["host_path"], m["container_path"], "ro" if m.get("read_only") else "rw") for m in v["mounts"] if m["container_path"].startswith("/run/"))')
    # shellcheck disable=SC2086
    out=$(env $envs BINDS="$binds" unshare -m sh -c '
        mount -t tmpfs gpumem-test /run || exit 99
        for b in $BINDS; do
            src=${b%%:*}; rest=${b#*:}; dst=${rest%:*}; mode=${rest##*:}
            [ -d "$src" ] && mkdir -p "$dst"
            mount --bind "$src" "$dst" || exit 99
            [ "$mode" = ro ] && { mount -o remount,bind,ro "$dst" || exit 99; }
        done
        exec "$@"' sh env LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" \
        "$CLIENT" init info alloc 1500M expect 0 alloc 600M expect 2 device 1 alloc 900M expect 0 alloc 200M expect 2 2>&1)
    rc=$?
    [ "$rc" = 0 ] && expect_in applied_held_to_granted_limit "total=2147483648" "$out" ||
        fail applied_held_to_granted_limit "status $rc: $(tr '\n' '|' <<<"$out")"
    # gpumem ps shows the group, with its limit and the refusal on each GPU.
    ps_json=$("$GPUMEM" ps -a --format json 2>&1)
    seen=$(jget "$ps_json" '" ".join("%s=%s/%s" % (d["uuid"], d["limit"], d["refusals"]) for g in v if g["group"] == "'"$group"'" for d in g["devices"])' 2>&1)
    [ "$seen" = "$A=2147483648/1 $B=1073741824/1" ] && ok applied_group_in_ps || fail applied_group_in_ps "$seen"
else
    skip applied_held_to_granted_limit "unshare -m failed (needs root or CAP_SYS_ADMIN)"
fi

# ---- kubelet restarts -----------------------------------------------------------
n=$(registrations)
stop_kubelet
start_kubelet -clean
if wait_for 15 more '"event":"register"' "$n"; then ok reregister_after_kubelet_restart; else
    fail reregister_after_kubelet_restart "$(tail -5 "$PLOG" | tr '\n' '|')"; fi
n=$(registrations)
stop_kubelet
start_kubelet
if wait_for 15 more '"event":"register"' "$n"; then ok reregister_after_kubelet_sock_replaced; else
    fail reregister_after_kubelet_sock_replaced "$(tail -5 "$PLOG" | tr '\n' '|')"; fi

# ---- kill -9, restart over the stale socket, SIGTERM ----------------------------
kill -KILL "$plugin_pid"
wait "$plugin_pid" 2>/dev/null
test -S "$S" && ok stale_socket_left || fail stale_socket_left "no socket after kill -9"
n=$(registrations)
ckpt="$D/kubelet_internal_checkpoint"
start_plugin --grace 0 --collect-interval 1
if wait_for 15 more '"event":"register"' "$n" && "$FK" options -sock "$S" >/dev/null 2>&1; then
    ok restart_over_stale_socket; else fail restart_over_stale_socket "$(tail -5 "$PLOG" | tr '\n' '|')"; fi

# ---- lifetime of the groups Allocate made ---------------------------------------
# The checkpoint appears: groups it does not name (all of the above, with
# no process left) are removed; the one allocated for pod p1 stays.
out=$("$FK" allocate -sock "$S" -ids "$A-m7" -checkpoint "$ckpt" -pod p1 2>&1)
kept=$(jget "$out" 'v["response"]["container_responses"][0]["annotations"]["gpumem.io/group"]' 2>/dev/null)
if wait_for 15 test ! -d "$G"; then ok unnamed_group_collected; else fail unnamed_group_collected "$(ls "$GPUMEM_STATE_DIR")"; fi
[ -n "$kept" ] && [ -d "$GPUMEM_STATE_DIR/$kept" ] && ok checkpointed_group_kept ||
    fail checkpointed_group_kept "$kept: $(ls "$GPUMEM_STATE_DIR")"
"$FK" forget -checkpoint "$ckpt" -pod p1
if wait_for 15 test ! -d "$GPUMEM_STATE_DIR/$kept"; then ok forgotten_group_collected; else
    fail forgotten_group_collected "$(ls "$GPUMEM_STATE_DIR")"; fi

kill -TERM "$plugin_pid"
wait "$plugin_pid"
rc=$?
[ "$rc" = 0 ] && [ ! -e "$S" ] && ok sigterm_clean_exit || fail sigterm_clean_exit "status $rc, socket $(ls "$D")"
# ---- whole GPUs beside memory units ---------------------------------------------
start_plugin --grace 3600 --gpu-resource gpumem.io/gpu
SG="$D/gpumem-gpu.sock"
if wait_for 15 grep -q '"healthy":2,"resource":"gpumem.io/gpu","unhealthy":0' "$KLOG"; then ok whole_gpus_listed; else
    fail whole_gpus_listed "$(tail -5 "$KLOG" | tr '\n' '|')"; fi
out=$("$FK" allocate -sock "$SG" -resource gpumem.io/gpu -ids "$A" 2>&1)
expect_in whole_gpu_limit "\"gpumem.io/limits\":\"$A=17179869184\"" "$out"
if wait_for 10 grep -q "\"healthy\":16,\"resource\":\"gpumem.io/memory\",\"unhealthy\":16,\"unhealthy_gpus\":\[\"$A\"\]" "$KLOG"
then ok whole_gpu_hides_its_units; else fail whole_gpu_hides_its_units "$(tail -3 "$KLOG" | tr '\n' '|')"; fi
out=$("$FK" allocate -sock "$S" -ids "$A-m0" 2>&1)
expect_in units_of_whole_gpu_refused 'is allocated whole' "$out"
"$FK" allocate -sock "$S" -ids "$B-m0" >/dev/null 2>&1
if wait_for 10 grep -q "\"healthy\":1,\"resource\":\"gpumem.io/gpu\",\"unhealthy\":1,\"unhealthy_gpus\":\[\"$B\"\]" "$KLOG"
then ok shared_gpu_not_offered_whole; else fail shared_gpu_not_offered_whole "$(tail -3 "$KLOG" | tr '\n' '|')"; fi
out=$("$FK" allocate -sock "$SG" -resource gpumem.io/gpu -ids "$B" 2>&1)
expect_in whole_shared_gpu_refused 'has memory units allocated' "$out"
kill -TERM "$plugin_pid"
wait "$plugin_pid" && [ ! -e "$SG" ] && ok whole_gpu_plugin_stops || fail whole_gpu_plugin_stops "$(ls "$D")"

stop_kubelet
if grep -q 'Sanitizer' "$PLOG"; then fail plugin_sanitizers "$(grep -A20 'Sanitizer' "$PLOG" | head -40 | tr '\n' '|')"; fi
exit 0

# gpumem-runtime on a real Docker engine: limits inside containers, shared by
# every process of a container (docker exec included), read-only from inside,
# visible and changeable from the host, gone with the container; the mounted
# group wins over GPUMEM_GROUP_DIR naming a forged one; containers
# without a limit untouched; bad limits refused with a clear message; the
# runtime's sim mode (the simulated driver and its state mounted in).
. tests/integration/lib.sh
. tests/docker/engine.sh
export GPUMEM_SIM_CTX_OVERHEAD=64M
docker_engine docker_e2e e2e

out=$(docker run --rm "${GPU[@]}" -e NVIDIA_GPU_MEMORY_LIMIT=1024 "$IMG" alloc_client init info alloc 600M expect 0 alloc 600M expect 2 2>&1)
[ $? = 0 ] && expect_in limit_enforced_inside "total=1073741824" "$out" || fail limit_enforced_inside "$out"

cid=$(docker run -d --name "$P-hold" "${GPU[@]}" -e NVIDIA_GPU_MEMORY_LIMIT=1024 "$IMG" alloc_client init alloc 600M expect 0 hold)
short=${cid:0:12}
for i in $(seq 100); do docker logs "$P-hold" 2>&1 | grep -q holding && break; sleep 0.1; done
[ -e "$GPUMEM_STATE_DIR/$short/limits" ] && ok group_created_for_container || fail group_created_for_container "no $GPUMEM_STATE_DIR/$short"
out=$(docker exec "$P-hold" alloc_client init alloc 600M expect 2 2>&1)
[ $? = 0 ] && ok exec_shares_the_limit || fail exec_shares_the_limit "$out"
# A group forged with a 64 GiB limit (made on the host, copied in: anything
# in the container could write those bytes) and named by GPUMEM_GROUP_DIR:
# the mounted group still wins, and the shim says it ignored the variable.
GPUMEM_STATE_DIR="$T/forge" "$GPUMEM" run --sim --limit 64G --name forged --keep -- true &&
    docker cp "$T/forge/forged" "$P-hold:/tmp/forged" >/dev/null || fail forged_group_copied_in "docker cp failed"
out=$(docker exec -e GPUMEM_GROUP_DIR=/tmp/forged "$P-hold" alloc_client init info alloc 600M expect 2 2>&1)
[ $? = 0 ] && expect_in forged_group_dir_stays_limited "total=1073741824" "$out" ||
    fail forged_group_dir_stays_limited "$(tr '\n' '|' <<<"$out")"
expect_in forged_group_dir_ignored_with_warning "GPUMEM_GROUP_DIR=/tmp/forged ignored" "$out"
# Nothing inside can take the mount away or put its own over it: no
# CAP_SYS_ADMIN for umount, and the default seccomp profile refuses a new
# user namespace (in which it would get one for a mount namespace).
out=$(docker exec "$P-hold" sh -c 'umount /run/gpumem/self && echo unmounted; unshare -U -r -m true && echo unshared' 2>&1)
case "$out" in
*unmounted*|*unshared*) fail mount_cannot_be_removed_inside "$(tr '\n' '|' <<<"$out")" ;;
*umount*"not permitted"*unshare*"not permitted"*) ok mount_cannot_be_removed_inside ;;
*) fail mount_cannot_be_removed_inside "expected both refused: $(tr '\n' '|' <<<"$out")" ;;
esac
out=$("$GPUMEM" ps -p --format json)
python3 - "$cid" "$out" <<'PY' && ok ps_shows_container_bytes || fail ps_shows_container_bytes "$out"
import json, sys
g = [g for g in json.loads(sys.argv[2]) if g["container_id"] == sys.argv[1]][0]
assert g["devices"][0]["used"] >= 600 << 20 and g["processes"] >= 1, g
PY
hostpid=$(docker inspect -f '{{.State.Pid}}' "$P-hold")
out=$("$GPUMEM" ps -p --format json)
python3 - "$cid" "$P-hold" "$short" "$hostpid" "$out" <<'PY' && ok ps_names_container_and_host_pid || fail ps_names_container_and_host_pid "$out"
import json, sys
cid, name, short, hostpid, out = sys.argv[1:]
g = [g for g in json.loads(out) if g["container_id"] == cid][0]
assert g["name"] == name and g["group"] == short, g
p = [p for p in g["process_list"] if p["pid"] == 1][0]
assert p["host_pid"] == int(hostpid), p
PY
out=$("$GPUMEM" ps -p)
case "$out" in *"$P-hold"*"$short"*"host pid $hostpid "*"pid in group 1 "*) ok ps_table_shows_name_and_pids ;;
*) fail ps_table_shows_name_and_pids "$out" ;; esac
# inspect by container name: the container's process is read by its host
# pid, and its call site named from the image's binary (through map_files).
out=$("$GPUMEM" inspect --format json "$P-hold" 2>&1)
python3 - "$hostpid" "$out" <<'PY' && ok inspect_container_allocations || fail inspect_container_allocations "$out"
import json, sys
p = json.loads(sys.argv[2])["processes"][0]
assert p["host_pid"] == int(sys.argv[1]) and p["pid"] == 1 and p["sites"], p
assert [(a["api"], a["bytes"]) for a in p["by_api"]] == [("cuMemAlloc", 600 << 20)], p
assert p["sites"][0]["site"].startswith("alloc_client(main+0x"), p
PY
out=$(docker exec "$P-hold" sh -c 'echo x >/run/gpumem/self/limits' 2>&1)
[ $? != 0 ] && expect_in limits_read_only_inside "Read-only" "$out" || fail limits_read_only_inside "write succeeded"
out=$(docker exec "$P-hold" sh -c 'rm /run/gpumem/self/usage' 2>&1)
[ $? != 0 ] && ok usage_cannot_be_replaced || fail usage_cannot_be_replaced "rm succeeded"
"$GPUMEM" limit "$short" 2G >/dev/null
out=$(docker exec "$P-hold" alloc_client init info alloc 600M expect 0 2>&1)
[ $? = 0 ] && expect_in limit_changed_while_running "total=2147483648" "$out" || fail limit_changed_while_running "$out"
"$GPUMEM" limit "$P-hold" 3G >/dev/null && out=$(docker exec "$P-hold" alloc_client init info 2>&1)
expect_in limit_by_container_name "total=3221225472" "$out"
"$GPUMEM" limit "$cid" 2G >/dev/null && out=$(docker exec "$P-hold" alloc_client init info 2>&1)
expect_in limit_by_full_container_id "total=2147483648" "$out"
docker rm -f "$P-hold" >/dev/null
for i in $(seq 50); do [ -e "$GPUMEM_STATE_DIR/$short" ] || break; sleep 0.1; done
[ ! -e "$GPUMEM_STATE_DIR/$short" ] && ok group_gone_after_rm || fail group_gone_after_rm "$(ls "$GPUMEM_STATE_DIR/$short" 2>&1)"

out=$(docker run --rm "${GPU[@]}" "$IMG" sh -c 'test ! -e /etc/ld.so.preload && ! grep -e /run/gpumem -e libgpumem /proc/self/mountinfo && echo untouched' 2>&1)
expect_in no_limit_untouched "untouched" "$out"

before=$(ls "$GPUMEM_STATE_DIR" 2>/dev/null)
out=$(docker run --rm "${GPU[@]}" -e NVIDIA_GPU_MEMORY_LIMIT=lots "$IMG" true 2>&1); rc=$?
case "$out" in *gpumem*NVIDIA_GPU_MEMORY_LIMIT*lots*) [ $rc != 0 ] && ok bad_limit_refused || fail bad_limit_refused "started: $out" ;;
*) fail bad_limit_refused "message: $out" ;; esac
[ "$(ls "$GPUMEM_STATE_DIR" 2>/dev/null)" = "$before" ] && ok bad_limit_leaves_nothing || fail bad_limit_leaves_nothing "$(ls "$GPUMEM_STATE_DIR")"

# Sim mode (runtime.conf "sim = on"): an image without the simulated driver,
# no -v, no GPUMEM_SIM_STATE: gpumem-runtime mounts the driver and the
# host's simulated-GPU state directory in, and the container's simulated
# driver keeps its state there. Registered as a second runtime whose wrapper names
# its own runtime.conf (dockerd's /etc/gpumem is left alone). Last: reloading
# daemon.json drops a "gpumem" that dockerd only kept from an earlier load.
simrt="gpumem-sim-$$" simstate="$T/simshared"
printf '#!/bin/sh\nGPUMEM_RUNTIME_CONFIG=%s exec %s "$@"\n' "$T/sim.conf" "$RT" >"$T/sim-runtime"
chmod 755 "$T/sim-runtime" "$T"
printf 'sim = on\nsim-state = %s\n' "$simstate" >"$T/sim.conf"
# NVIDIA's nvidia-smi (tools/fetch-nvidia-driver.sh), mounted in by the
# runtime as NVIDIA's toolkit does.
smi=${GPUMEM_NVIDIA_DIR:-/var/cache/gpumem/nvidia}/bin/nvidia-smi
[ -x "$smi" ] && echo "nvidia-smi = $smi" >>"$T/sim.conf" || smi=""
finish_extra() {
    docker ps -aq --filter "name=$P" | xargs -r docker rm -f >/dev/null 2>&1
    docker rmi -f "$IMG-nosim" >/dev/null 2>&1
    python3 - "$engine_daemon_json" "$simrt" <<'PY' && kill -HUP $(pidof dockerd) 2>/dev/null
import json, sys
j = json.load(open(sys.argv[1]))
if j.get("runtimes", {}).pop(sys.argv[2], None) is None:
    sys.exit(1)
json.dump(j, open(sys.argv[1], "w"), indent=4)
PY
}
python3 - "$engine_daemon_json" "$simrt" "$T/sim-runtime" <<'PY' && kill -HUP $(pidof dockerd)
import json, sys
j = json.load(open(sys.argv[1]))
j.setdefault("runtimes", {})[sys.argv[2]] = {"path": sys.argv[3]}
json.dump(j, open(sys.argv[1], "w"), indent=4)
PY
for i in $(seq 50); do docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -qF "\"$simrt\"" && break; sleep 0.2; done
if GPUMEM_IMAGE_NO_SIM=1 GPUMEM_IMAGE_LIBS_OF="$smi" tests/docker/build-image.sh "$TOP/$BUILD" "$IMG-nosim"; then
    out=$(docker run --rm --runtime="$simrt" --network none "$IMG-nosim" alloc_client init 2>&1)
    case "$out" in *"init -> 0"*) fail sim_image_has_no_driver "init worked without sim mode's mounts?" ;;
    *) ;; esac
    docker run -d --name "$P-sim" --runtime="$simrt" --network none -e NVIDIA_GPU_MEMORY_LIMIT=1024 \
        "$IMG-nosim" alloc_client init info alloc 600M expect 0 hold >/dev/null
    for i in $(seq 100); do docker logs "$P-sim" 2>&1 | grep -q holding && break; sleep 0.1; done
    out=$(docker logs "$P-sim" 2>&1)
    expect_in sim_mode_container_limited "total=1073741824" "$out"
    out=$(docker exec "$P-sim" alloc_client init alloc 600M expect 2 2>&1)
    [ $? = 0 ] && ok sim_mode_exec_shares_limit || fail sim_mode_exec_shares_limit "$out"
    # Its simulated driver keeps its state in the host's directory (the
    # host's own simulated driver has not touched it).
    ls "$simstate"/state-v* >/dev/null 2>&1 && ok sim_mode_state_on_host ||
        fail sim_mode_state_on_host "$(ls -la "$simstate" 2>&1 | tr '\n' '|')"
    # nvidia-smi inside the limited container: the limit as the GPU's
    # memory, the container's usage, and its process.
    if [ -n "$smi" ]; then
        out=$(docker exec "$P-sim" nvidia-smi --query-gpu=memory.total,memory.used --format=csv,noheader,nounits 2>&1)
        case "$out" in
        "1024, "*) ok nvidia_smi_in_container_shows_limit ;;
        *) fail nvidia_smi_in_container_shows_limit "$out" ;;
        esac
        # The whole screen, for the record (docs/docker.md shows one).
        docker exec "$P-sim" nvidia-smi 2>&1 | sed 's/^/# /'
        docker exec "$P-sim" nvidia-smi --query-gpu=memory.total,memory.used --format=csv 2>&1 | sed 's/^/# /'
        out=$(docker exec "$P-sim" nvidia-smi --query-compute-apps=used_memory --format=csv,noheader,nounits 2>&1)
        [ "$(echo "$out" | wc -l)" = 1 ] && [ "${out:-0}" -ge 600 ] 2>/dev/null &&
            ok nvidia_smi_in_container_lists_its_process || fail nvidia_smi_in_container_lists_its_process "$out"
    elif [ "${GPUMEM_REQUIRE_NVIDIA:-0}" = 1 ]; then
        fail nvidia_smi_in_container "no $smi (tools/fetch-nvidia-driver.sh)"
    else
        skip nvidia_smi_in_container "no nvidia-smi (tools/fetch-nvidia-driver.sh fetches it)"
    fi
    docker rm -f "$P-sim" >/dev/null
else
    fail sim_mode_image "build-image.sh (no sim) failed"
fi
exit 0

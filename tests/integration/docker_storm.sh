# `docker run --rm --runtime=gpumem` under a kill storm leaves no stale
# group: containers holding GPU memory are killed in quick succession, by
# `docker kill` and by SIGKILL of their processes from the host, and every
# one of their groups must be gone once the engine has removed them. Then a
# group left behind as if the engine had crashed before `delete` (a copy of
# a live container's group, outliving the container) is removed by
# `gpumem daemon` on its interval.
. tests/integration/lib.sh
. tests/integration/daemon_lib.sh
. tests/docker/engine.sh
N=${STORM_CONTAINERS:-8}
finish_extra() {
    [ -n "${DPID:-}" ] && kill -TERM "$DPID" 2>/dev/null
    rm -rf "$GPUMEM_STATE_DIR/storm-leftover-$$"
}
docker_engine docker_storm storm

start=$SECONDS
ids=()
for i in $(seq "$N"); do
    ids+=("$(docker run -d --rm --name "$P-$i" "${GPU[@]}" -e NVIDIA_GPU_MEMORY_LIMIT=512 "$IMG" alloc_client init alloc 100M expect 0 hold)")
done
# Each one holding memory, with its group in place.
for id in "${ids[@]}"; do
    for i in $(seq 100); do docker logs "$id" 2>&1 | grep -q holding && break; sleep 0.1; done
done
n=0
for id in "${ids[@]}"; do [ -e "$GPUMEM_STATE_DIR/${id:0:12}/limits" ] && n=$((n + 1)); done
[ "$n" = "$N" ] && ok storm_groups_created || fail storm_groups_created "$n of $N groups"
# A leftover to be: a copy of the first container's group, as an engine
# crash before `delete` would leave it (same container id and record).
cp -a "$GPUMEM_STATE_DIR/${ids[0]:0:12}" "$GPUMEM_STATE_DIR/storm-leftover-$$"
# The storm: half by `docker kill`, half by SIGKILL from the host, all at once.
pids=()
for k in "${!ids[@]}"; do
    if [ $((k % 2)) = 0 ]; then
        docker kill "${ids[$k]}" >/dev/null 2>&1 &
    else
        kill -KILL "$(docker inspect -f '{{.State.Pid}}' "${ids[$k]}" 2>/dev/null)" 2>/dev/null &
    fi
    pids+=($!)
done
wait "${pids[@]}" 2>/dev/null
for i in $(seq 300); do [ -z "$(docker ps -aq --filter "name=$P-")" ] && break; sleep 0.1; done
[ -z "$(docker ps -aq --filter "name=$P-")" ] && ok storm_containers_removed || fail storm_containers_removed "$(docker ps -a --filter "name=$P-")"
"$GPUMEM" ps -a >/dev/null
left=""
for id in "${ids[@]}"; do [ -e "$GPUMEM_STATE_DIR/${id:0:12}" ] && left="$left ${id:0:12}"; done
[ -z "$left" ] && ok storm_leaves_no_stale_group || fail storm_leaves_no_stale_group "left:$left"
# The daemon removes the leftover: its container is gone.
start_daemon
wait_for '"event":"group_removed".*"group":"storm-leftover-'$$'"' "$DLOG" && [ ! -e "$GPUMEM_STATE_DIR/storm-leftover-$$" ] \
    && ok daemon_removes_group_of_vanished_container || fail daemon_removes_group_of_vanished_container "$(cat "$DLOG")"
stop_daemon
DPID=""
secs=$((SECONDS - start))
[ "$secs" -le 90 ] && ok storm_under_90s || fail storm_under_90s "${secs}s"
exit 0

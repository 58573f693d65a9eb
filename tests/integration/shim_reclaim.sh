# A process's slot, and the bytes it holds, go back to the group only on
# proof that the process is gone: never while any of its threads runs (the
# driver frees a process's memory when its last thread ends), never because
# /proc could not be read. And once it is gone, every view shows it at once.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=64M
# (exec: a process started in the background is then the client itself, so
# $! is its pid)
in_group() { # GROUP CMD...
    local g=$1; shift
    GPUMEM_GROUP_DIR="$GPUMEM_STATE_DIR/$g" LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" exec "$@"
}
wait_for() { for _ in $(seq 400); do grep -q "$1" "$2" && return 0; sleep 0.05; done; return 1; }

"$GPUMEM" run --sim --limit 1G --name pexit --keep -- true || { fail setup "group"; exit 1; }

# Main calls pthread_exit while a second thread holds 600 MiB: the process
# (a zombie leader beside a live thread) still holds it, and the group with it.
(in_group pexit "$CLIENT" init talloc 600M mainexit) >"$T/a" 2>&1 &
apid=$!
wait_for mainexit "$T/a" || fail pexit_started "$(cat "$T/a")"
state=$(awk '{print $3, $20}' /proc/$apid/stat 2>/dev/null)
[ "$state" = "Z 2" ] && ok pexit_leader_is_zombie_beside_thread || fail pexit_leader_is_zombie_beside_thread "stat: $state"
out=$( (in_group pexit "$CLIENT" init alloc 600M expect 2 2>&1) ) &&
    ok pexit_thread_bytes_still_count || fail pexit_thread_bytes_still_count "$(echo "$out" | tr '\n' '|')"
json=$("$GPUMEM" ps -a --format json)
case "$json" in
*'"processes":1,'*) ok pexit_process_still_listed ;;
*) fail pexit_process_still_listed "$json" ;;
esac
out=$( (in_group pexit "$CLIENT" init alloc 600M expect 2 2>&1) ) &&
    ok pexit_still_refused_after_ps || fail pexit_still_refused_after_ps "$(echo "$out" | tr '\n' '|')"
kill -KILL "$apid"; wait "$apid" 2>/dev/null
out=$( (in_group pexit "$CLIENT" init alloc 600M expect 0 2>&1) ) &&
    ok pexit_bytes_back_when_last_thread_gone || fail pexit_bytes_back_when_last_thread_gone "$(echo "$out" | tr '\n' '|')"

# After a SIGKILL, a new process's first cuMemGetInfo already leaves the
# dead process out (no allocation needed to trigger the reclaim).
"$GPUMEM" run --sim --limit 1G --name view --keep -- true
(in_group view "$CLIENT" init alloc 600M hold) >"$T/b" 2>&1 &
bpid=$!
wait_for holding "$T/b" || fail view_holder_started "$(cat "$T/b")"
kill -KILL "$bpid"; wait "$bpid" 2>/dev/null
out=$( (in_group view "$CLIENT" init info 2>&1) )
# 1 GiB less this process's own 64 MiB context.
expect_in view_fresh_after_sigkill "info free=$(( (1024 - 64) << 20 )) total=$((1 << 30))" "$out"

# A process that could not read /proc when it claimed its slot (here: its
# own mount namespace with /proc unmounted) is never reclaimed on that
# missing evidence: gpumem ps and other processes leave its bytes counted.
if unshare -m true 2>/dev/null; then
    "$GPUMEM" run --sim --limit 1G --name noproc --keep -- true
    GPUMEM_GROUP_DIR="$GPUMEM_STATE_DIR/noproc" LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" \
        unshare -m sh -c 'umount -l /proc && exec "$0" init alloc 600M hold' "$CLIENT" >"$T/c" 2>&1 &
    cpid=$!
    if wait_for holding "$T/c"; then
        "$GPUMEM" ps -a >/dev/null
        out=$( (in_group noproc "$CLIENT" init alloc 600M expect 2 2>&1) ) &&
            ok unknown_start_time_never_reclaimed || fail unknown_start_time_never_reclaimed "$(echo "$out" | tr '\n' '|')"
    else
        fail unknown_start_time_never_reclaimed "holder did not start: $(cat "$T/c")"
    fi
    kill -KILL "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null || true
else
    skip unknown_start_time_never_reclaimed "unshare -m not permitted here (needs root)"
fi

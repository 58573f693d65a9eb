# GPUMEM_OOM=wait:SECONDS (docs/shim.md, "Waiting for memory"): an
# allocation past the group's limit waits for the group's other processes
# to free; without it, it is refused at once; a wait that runs out is
# refused; a process killed while it waits leaves nothing charged. The
# setting is the group's, from its creator: a process's own env is ignored.
. tests/integration/lib.sh
export GPUMEM_SIM_DEVICES=1x16G

# ctx 300M per process on the simulated GPU: 2G holds A (1000M) and a
# context for B, not B's 800M too until A frees. B's first refusal is
# counted (gpumem ps) when it starts to wait; only then does A free.
run_sim --limit 2G --oom wait:60 --name w -- sh -c "'$CLIENT' init alloc 1000M await '$T/freeit' free 0 sleep 200 >'$T/a.out' 2>&1 & \
    until grep -q awaiting '$T/a.out' 2>/dev/null; do sleep 0.05; done; \
    '$CLIENT' init alloc 800M expect 0 >'$T/b.out' 2>&1; echo \$? >'$T/b.rc'; wait" >/dev/null 2>&1 &
gjob=$!
refused() { "$GPUMEM" ps --format json | /usr/bin/python3 -c 'import json,sys
g=[g for g in json.load(sys.stdin) if g["group"]=="w"]
print(sum(d["refusals"] for d in g[0]["devices"]) if g else 0)' 2>/dev/null; }
for i in $(seq 400); do [ "$(refused)" -ge 1 ] 2>/dev/null && break; sleep 0.05; done
[ -e "$T/b.rc" ] && fail blocked_while_group_full "B returned before anything was freed: $(cat "$T/b.out")" \
    || ok blocked_while_group_full
touch "$T/freeit"
wait $gjob
[ "$(cat "$T/b.rc" 2>/dev/null)" = 0 ] && ok blocked_allocation_satisfied_by_a_free \
    || fail blocked_allocation_satisfied_by_a_free "$(cat "$T/b.out" "$T/a.out" 2>&1)"

# Without a wait: refused at once.
out=$(run_sim --limit 1G --name nowait -- "$CLIENT" init alloc 900M expect 2 2>&1) && ok refused_without_wait \
    || fail refused_without_wait "$out"
# The process's own GPUMEM_OOM is not the group's setting.
out=$(GPUMEM_OOM=fail run_sim --limit 1G --name envless -- env GPUMEM_OOM=wait:30 "$CLIENT" init alloc 900M expect 2 2>&1) \
    && ok process_env_ignored || fail process_env_ignored "$out"
# A wait that runs out is refused, and counted as one refusal.
out=$(run_sim --limit 1G --oom wait:0.3 --summary --name short -- "$CLIENT" init alloc 900M expect 2 2>&1) \
    && ok wait_runs_out || fail wait_runs_out "$out"
expect_in one_refusal_per_waited_call '1 refused allocation' "$out"

# Killed while it waits: nothing stays charged, nothing blocks the others.
run_sim --limit 2G --oom wait:60 --keep --name killed -- sh -c "'$CLIENT' init alloc 1500M hold" >"$T/k1.out" 2>&1 &
for i in $(seq 200); do grep -q holding "$T/k1.out" && break; sleep 0.05; done
GPUMEM_GROUP_DIR="$GPUMEM_STATE_DIR/killed" LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" "$CLIENT" init alloc 1G \
    >"$T/k2.out" 2>&1 &
waiter=$!
for i in $(seq 200); do grep -q 'init -> 0' "$T/k2.out" && break; sleep 0.05; done
sleep 0.3
kill -KILL $waiter; wait $waiter 2>/dev/null
used=$("$GPUMEM" ps --format json | /usr/bin/python3 -c 'import json,sys
g=[g for g in json.load(sys.stdin) if g["group"]=="killed"][0]
print(sum(d["used"] for d in g["devices"]))' 2>&1)
exp=$(( (1500 + 300) << 20 ))
[ "$used" = "$exp" ] && ok killed_waiter_leaves_nothing_charged || fail killed_waiter_leaves_nothing_charged "used=$used expected $exp"
pid=$(sed -n 's/.*holding pid=\([0-9]*\).*/\1/p' "$T/k1.out")
kill -KILL "$pid" 2>/dev/null
exit 0

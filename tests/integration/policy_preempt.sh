# Preemption (docs/policy.md): a group within its request that finds the
# GPU full makes the daemon reclaim: borrowers first, lowest priority
# first, then lower priorities, never a higher one; SIGTERM by default, or
# the hook, then SIGKILL after the grace period.
. tests/integration/lib.sh
. tests/integration/daemon_lib.sh
export GPUMEM_SIM_DEVICES=1x16G
mkdir -p "$GPUMEM_STATE_DIR"

# hold NAME PRIO REQUEST SIZE: a group holding SIZE until killed.
hold() {
    run_sim --request "$3" --priority "$2" --name "$1" -- "$CLIENT" init alloc "$4" hold >"$T/$1.out" 2>&1 &
    eval "job_$1=$!"
    for i in $(seq 200); do grep -q holding "$T/$1.out" && break; sleep 0.05; done
    eval "pid_$1=$(sed -n 's/.*holding pid=\([0-9]*\).*/\1/p' "$T/$1.out" | head -1)"
}
# gone NAME: the holder is killed and its group gone.
gone() {
    kill -KILL "$(eval echo \$pid_$1)" 2>/dev/null
    wait "$(eval echo \$job_$1)" 2>/dev/null
    for i in $(seq 200); do [ -e "$GPUMEM_STATE_DIR/$1" ] || break; sleep 0.05; done
}
# need NAME PRIO REQUEST SIZE: allocates SIZE, waiting up to 60 s for it.
need() {
    run_sim --request "$3" --priority "$2" --oom wait:60 --name "$1" -- "$CLIENT" init alloc "$4" expect 0 \
        >"$T/$1.out" 2>&1 &
    eval "job_$1=$!"
}
alive() { kill -0 "$(eval echo \$pid_$1)" 2>/dev/null; }

# 1. Two borrowers (low and normal), a normal within its request in need:
#    the low borrower goes (SIGTERM), the normal one stays.
start_daemon --sim --preempt-grace 30
hold lowb low 1G 5G
hold normb normal 1G 6G
need n1 normal 8G 5G
wait_for '"event":"preempt","victim":"lowb","for":"n1","reason":"borrowed"' "$DLOG" && ok borrower_lowest_priority_first \
    || fail borrower_lowest_priority_first "$(grep preempt "$DLOG")"
wait $job_n1 && ok blocked_allocation_satisfied || fail blocked_allocation_satisfied "$(cat "$T/n1.out")"
wait $job_lowb; rc=$?
[ $rc = 143 ] && ok victim_got_sigterm || fail victim_got_sigterm "rc=$rc"
alive normb && ok other_borrower_kept || fail other_borrower_kept "normb died"
grep -q '"victim":"normb"' "$DLOG" && fail only_what_is_needed "$(grep preempt "$DLOG")" || ok only_what_is_needed
wait_for '"event":"reclaim_done","victim":"lowb"' "$DLOG" && ok reclaim_done || fail reclaim_done "$(cat "$DLOG")"
gone normb
stop_daemon

# 2. Never a higher priority: a high borrower holds the GPU; a normal
#    group within its request finds it full and is refused in the end.
start_daemon --sim --preempt-grace 30
hold highb high 1G 12G
run_sim --request 8G --priority normal --oom wait:1 --name n2 -- "$CLIENT" init alloc 6G expect 2 >"$T/n2.out" 2>&1 \
    && ok refused_without_victim || fail refused_without_victim "$(cat "$T/n2.out")"
wait_for '"event":"preempt_impossible","for":"n2"' "$DLOG" && ok impossible_logged || fail impossible_logged "$(cat "$DLOG")"
alive highb && ok higher_priority_never_picked || fail higher_priority_never_picked "highb died"
grep -q '"event":"preempt"' "$DLOG" && fail no_preempt_of_higher "$(grep preempt "$DLOG")" || ok no_preempt_of_higher
# ... but a higher one may take its borrowing from a high-priority peer? No:
# a high group in need takes from the high borrower (same priority, borrowing).
need h2 high 8G 6G
wait_for '"event":"preempt","victim":"highb","for":"h2","reason":"borrowed"' "$DLOG" && ok same_priority_borrower_reclaimed \
    || fail same_priority_borrower_reclaimed "$(grep preempt "$DLOG")"
wait $job_h2 && ok borrowed_memory_reclaimed || fail borrowed_memory_reclaimed "$(cat "$T/h2.out")"
gone highb
stop_daemon

# 3. The hook instead of SIGTERM, and the grace period: the victim is told
#    through the hook (which here ignores it), lives on until the grace
#    ends, then is SIGKILLed; a lower priority within its request gives way
#    to a higher one's start.
start_daemon --sim --preempt-grace 1 --preempt-hook "echo \"\$GPUMEM_VICTIM \$GPUMEM_FOR \$GPUMEM_REASON \$GPUMEM_VICTIM_PIDS\" >>'$T/hook.out'"
hold lowin low 12G 11G
# (its request does not fit beside lowin's: it waits in the queue, and the
# daemon reclaims the lower priority's request for it)
run_sim --request 8G --priority high --wait --name h3 -- "$CLIENT" init alloc 6G expect 0 >"$T/h3.out" 2>&1 &
job_h3=$!
wait_for 'lowin h3 lower_priority [0-9]' "$T/hook.out" && ok hook_called_with_decision || fail hook_called_with_decision "$(cat "$T/hook.out" 2>&1)"
if ! grep -q '"event":"preempt_kill"' "$DLOG"; then
    alive lowin && ok grace_honoured || fail grace_honoured "victim gone before its kill"
else # (a slow machine: the kill came first; it says when it was due)
    grep -q '"event":"preempt_kill".*"grace_seconds":1.000' "$DLOG" && ok grace_honoured || fail grace_honoured "$(cat "$DLOG")"
fi
wait_for '"event":"preempt_kill","victim":"lowin"' "$DLOG" && ok killed_after_grace || fail killed_after_grace "$(cat "$DLOG")"
wait $job_lowin; rc=$?
[ $rc = 137 ] && ok victim_sigkilled || fail victim_sigkilled "rc=$rc"
wait $job_h3 && ok lower_priority_reclaimed || fail lower_priority_reclaimed "$(cat "$T/h3.out")"
curl -s "$URL/metrics" | grep -q 'gpumem_policy_decisions_total{event="preempt_kill"} 1' && ok preempt_metric \
    || fail preempt_metric "$(curl -s "$URL/metrics" | grep policy)"
stop_daemon
exit 0

# The queue (docs/policy.md): starts that wait for their request are
# admitted by priority, then arrival; gpumem queue shows them in that
# order; a timeout gives up with a clear message; a daemon killed and
# restarted mid-way loses no queue entry and no reclaim decision.
. tests/integration/lib.sh
. tests/integration/daemon_lib.sh
export GPUMEM_SIM_DEVICES=1x16G
mkdir -p "$GPUMEM_STATE_DIR"

run_sim --request 10G --priority high --name holder -- "$CLIENT" init await "$T/go-holder" >"$T/holder.out" 2>&1 &
hjob=$!
for i in $(seq 200); do grep -q awaiting "$T/holder.out" && break; sleep 0.05; done

# Four waiters of 10G each (one fits at a time), arriving in this order.
jobs_=""
for w in w1:low w2:normal w3:normal w4:high; do
    name=${w%%:*} prio=${w#*:}
    run_sim --request 10G --priority "$prio" --wait --name "$name" -- sh -c "echo $name >>'$T/order'" \
        >"$T/$name.out" 2>&1 &
    jobs_="$jobs_ $!"
    for i in $(seq 200); do grep -q 'waits in the queue' "$T/$name.out" && break; sleep 0.05; done
done
names=$("$GPUMEM" queue --no-headers | awk '{print $2}' | tr '\n' ' ')
[ "$names" = "w4 w2 w3 w1 " ] && ok queue_shows_order || fail queue_shows_order "$names: $("$GPUMEM" queue)"
"$GPUMEM" ps | grep -q '^policy: 4 starts waiting (first: w4' && ok ps_shows_queue || fail ps_shows_queue "$("$GPUMEM" ps)"
js=$("$GPUMEM" queue --format json)
/usr/bin/python3 - "$js" <<'PY' && ok queue_json || fail queue_json "$js"
import json, sys
q = json.loads(sys.argv[1])["queue"]
assert [e["name"] for e in q] == ["w4", "w2", "w3", "w1"], q
assert q[0]["priority_name"] == "high" and q[0]["request"] == 10 << 30 and q[0]["timeout"] is None, q[0]
assert "holder 10 GiB (high)" in q[0]["why"] and all(e["why"] for e in q), q
PY
"$GPUMEM" queue --help | grep -q 'higher priority first' && ok queue_help || fail queue_help "no help"
out=$("$GPUMEM" queue --format yaml 2>&1); [ $? = 2 ] && expect_in queue_bad_format '"yaml"' "$out" || fail queue_bad_format "$out"

# A newcomer without --wait does not jump the queue, even where it fits.
out=$(run_sim --request 1G --name jumper -- true 2>&1)
expect_in newcomer_behind_queue 'behind w4' "$out"

# A timeout gives up cleanly: its entry goes, the others stay.
out=$(run_sim --request 10G --wait=0.5 --name impatient -- true 2>&1); rc=$?
[ $rc = 1 ] && expect_in wait_timeout_message 'group impatient not started: gave up after waiting' "$out" \
    || fail wait_timeout_message "rc=$rc $out"
"$GPUMEM" queue | grep -q impatient && fail timeout_entry_removed "$("$GPUMEM" queue)" || ok timeout_entry_removed

# The daemon killed (SIGKILL) and restarted while they wait: the queue is
# the waiters' files, so nothing is lost.
start_daemon --sim
wait_for '"event":"queued","group":"w1"' "$DLOG" && ok queued_read_from_journal || fail queued_read_from_journal "$(cat "$DLOG")"
kill -KILL "$DPID"; wait "$DJOB" 2>/dev/null
n=$("$GPUMEM" queue --no-headers | wc -l)
[ "$n" = 4 ] && ok queue_survives_daemon_kill || fail queue_survives_daemon_kill "$("$GPUMEM" queue)"
start_daemon --sim

touch "$T/go-holder"
wait $hjob
for j in $jobs_; do wait "$j"; done
order=$(tr '\n' ' ' <"$T/order")
[ "$order" = "w4 w2 w3 w1 " ] && ok admitted_by_priority_then_arrival || fail admitted_by_priority_then_arrival "$order"
for n in w1 w2 w3 w4; do
    wait_for "\"event\":\"admitted\",\"group\":\"$n\"" "$DLOG" || { fail admissions_in_event_log "$n: $(grep admitted "$DLOG")"; break; }
done && ok admissions_in_event_log
grep -q '"event":"queued"' "$DLOG" && fail journal_not_logged_twice "$(grep queued "$DLOG")" || ok journal_not_logged_twice
curl -s "$URL/metrics" | grep -q 'gpumem_policy_decisions_total{event="admitted"} [1-9]' && ok decisions_metric \
    || fail decisions_metric "$(curl -s "$URL/metrics" | grep policy)"
stop_daemon

# A reclaim decided by a daemon that is then SIGKILLed is carried out by
# the next one: a low borrower, notified by a hook that does nothing, is
# SIGKILLed when the grace period ends, by the restarted daemon.
run_sim --request 1G --priority low --name victim -- "$CLIENT" init alloc 12G hold >"$T/victim.out" 2>&1 &
vjob=$!
for i in $(seq 200); do grep -q holding "$T/victim.out" && break; sleep 0.05; done
start_daemon --sim --preempt-grace 2 --preempt-hook true
run_sim --request 8G --oom wait:60 --name needy -- "$CLIENT" init alloc 6G expect 0 >"$T/needy.out" 2>&1 &
njob=$!
wait_for '"event":"preempt"' "$DLOG" && ok preempt_decided || fail preempt_decided "$(cat "$DLOG")"
kill -KILL "$DPID"; wait "$DJOB" 2>/dev/null
ls "$GPUMEM_STATE_DIR/.policy/" | grep -q reclaim-victim && ok decision_recorded || fail decision_recorded "$(ls -a "$GPUMEM_STATE_DIR/.policy")"
"$GPUMEM" queue | grep -q 'reclaiming victim for needy' && ok queue_shows_reclaim || fail queue_shows_reclaim "$("$GPUMEM" queue)"
"$GPUMEM" ps | grep -q '^policy: reclaiming victim for needy (borrowed)' && ok ps_shows_reclaim || fail ps_shows_reclaim "$("$GPUMEM" ps)"
start_daemon --sim --preempt-grace 2 --preempt-hook true
wait_for '"event":"preempt_kill","victim":"victim"' "$DLOG" 200 && ok restarted_daemon_kills || fail restarted_daemon_kills "$(cat "$DLOG")"
wait $vjob; rc=$?
[ $rc = 137 ] && ok victim_sigkilled || fail victim_sigkilled "rc=$rc"
wait_for '"event":"reclaim_done","victim":"victim"' "$DLOG" && ok reclaim_done_logged || fail reclaim_done_logged "$(cat "$DLOG")"
wait $njob && ok blocked_allocation_gets_the_memory || fail blocked_allocation_gets_the_memory "$(cat "$T/needy.out")"
stop_daemon
exit 0

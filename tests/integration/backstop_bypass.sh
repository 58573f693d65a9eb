# The backstop (docs/backstop.md): a process on the simulated GPU that
# bypasses the shim (the driver client run without LD_PRELOAD, in no group)
# is detected and, under --backstop kill, killed, while an honest group's
# process next to it lives on; under alert it is reported (event, metrics)
# and left alone; an exempt cgroup is left alone. Bad --backstop* values
# are refused. Timing is only a hang guard here: bench/backstop.sh measures
# the detection latency.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=64M GPUMEM_SIM_DEVICES=1x16G
. tests/integration/daemon_lib.sh

for bad in "--backstop maybe" "--backstop-interval 0" "--backstop-interval 61" "--backstop-grace -1" \
    "--backstop-tolerance 12Q" "--backstop-exempt system.slice"; do
    # shellcheck disable=SC2086
    out=$("$GPUMEM" daemon $bad 2>&1); rc=$?
    if [ "$rc" = 2 ] && [[ "$out" == *backstop* ]] && [[ "$out" == *"${bad#* }"* ]]; then ok "rejects_${bad//[^a-z0-9]/_}"
    else fail "rejects_${bad//[^a-z0-9]/_}" "rc=$rc: $out"; fi
done
expect_in help_describes_backstop "--backstop-tolerance" "$("$GPUMEM" daemon --help)"
command -v curl >/dev/null || { skip backstop_bypass "curl is not installed"; exit 0; }

# alive PID: the process runs and is not a zombie.
alive() { [ -e "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

# ---- kill ----
start_daemon --backstop kill
expect_in start_names_backstop '"backstop":"kill","backstop_interval":0.25,"backstop_grace":0.5,"backstop_tolerance":268435456' \
    "$(head -1 "$DLOG")"
run_sim --limit 1G --name honest --keep -- "$CLIENT" init alloc 256M hold >"$T/honest" 2>&1 &
HJOB=$!
wait_for holding "$T/honest" || fail honest_started "$(cat "$T/honest")"
sim_client init alloc 300M hold >"$T/bypass" 2>&1 &
BJOB=$!
wait_for holding "$T/bypass" || fail bypass_started "$(cat "$T/bypass")"
BPID=$(sed -n 's/^holding pid=//p' "$T/bypass")
# Hang guard only (10 s): the latency is bench/backstop.sh's.
if wait_for "\"event\":\"backstop\".*\"pid\":$BPID," "$DLOG" 200; then ok kill_event; else fail kill_event "$(cat "$DLOG")"; fi
ev=$(grep "\"event\":\"backstop\".*\"pid\":$BPID," "$DLOG" | head -1)
for f in '"kind":"unaccounted"' '"reason":"no_group"' '"group":""' '"comm":"alloc_client"' '"action":"killed"' \
    '"policy":"kill"' '"gpu":0' '"accounted":0'; do
    expect_in "kill_event_has_${f//[^a-z_]/}" "$f" "$ev"
done
wait "$BJOB" 2>/dev/null
rc=$?
[ "$rc" = 137 ] && ok bypass_got_sigkill || fail bypass_got_sigkill "exit status $rc"
HPID=$(sed -n 's/^holding pid=//p' "$T/honest")
alive "$HPID" && ok honest_lives || fail honest_lives "pid $HPID is gone"
grep -q "\"event\":\"backstop\".*\"group\":\"honest\"" "$DLOG" && fail honest_not_flagged "$(grep backstop "$DLOG")" ||
    ok honest_not_flagged
wait_for '"event":"backstop_cleared".*"kind":"unaccounted"' "$DLOG" && ok cleared_after_kill ||
    fail cleared_after_kill "$(grep backstop "$DLOG")"
m=$(curl -sf "$URL/metrics")
grep -q '^gpumem_backstop_actions_total{kind="unaccounted",action="killed"} 1$' <<<"$m" && ok metric_killed_1 ||
    fail metric_killed_1 "$(grep backstop_actions <<<"$m")"
grep -Eq '^gpumem_group_unaccounted_bytes\{group="honest",container="",pod="",namespace="",gpu="0",uuid="GPU-[0-9a-f-]+"\} 0$' <<<"$m" &&
    ok metric_honest_unaccounted_0 || fail metric_honest_unaccounted_0 "$(grep unaccounted <<<"$m")"
if command -v promtool >/dev/null; then
    out=$(promtool check metrics <<<"$m" 2>&1) && ok promtool_check_metrics || fail promtool_check_metrics "$out"
fi
stop_daemon
[ "$DRC" = 0 ] && ok kill_daemon_exits_0 || fail kill_daemon_exits_0 "status $DRC"

# ---- alert: reported, left running, counted as ungrouped ----
start_daemon --backstop alert
sim_client init alloc 300M hold >"$T/bypass2" 2>&1 &
BJOB=$!
wait_for holding "$T/bypass2" || fail bypass2_started "$(cat "$T/bypass2")"
BPID=$(sed -n 's/^holding pid=//p' "$T/bypass2")
if wait_for "\"event\":\"backstop\".*\"pid\":$BPID," "$DLOG" 200; then ok alert_event; else fail alert_event "$(cat "$DLOG")"; fi
expect_in alert_event_action '"action":"alert"' "$(grep "\"event\":\"backstop\".*\"pid\":$BPID," "$DLOG")"
alive "$BPID" && ok alert_leaves_it_running || fail alert_leaves_it_running "pid $BPID is gone"
m=$(curl -sf "$URL/metrics")
grep -Eq '^gpumem_ungrouped_processes\{gpu="0",uuid="GPU-[0-9a-f-]+"\} 1$' <<<"$m" && ok metric_ungrouped_1 ||
    fail metric_ungrouped_1 "$(grep ungrouped <<<"$m")"
used=$(sed -n 's/^gpumem_ungrouped_used_bytes{gpu="0",[^}]*} //p' <<<"$m")
[ "$used" = $(((300 + 64) << 20)) ] && ok metric_ungrouped_used || fail metric_ungrouped_used "$used"
grep -q '^gpumem_backstop_actions_total{kind="unaccounted",action="alert"} 1$' <<<"$m" && ok metric_alert_1 ||
    fail metric_alert_1 "$(grep backstop_actions <<<"$m")"
ps_out=$("$GPUMEM" ps -p)
expect_in ps_shows_none "(none)" "$ps_out"
expect_in ps_none_pid "host pid $BPID" "$ps_out"
json=$("$GPUMEM" ps --format json)
expect_in ps_json_none "\"group\":null,\"name\":\"(none)\"" "$json"
# gpumem top: a "(none)" line for the GPU, and the process when expanded
# (it sorts first by name).
if command -v tmux >/dev/null; then
    sock="$T/tmux.sock"
    # screen_with TEXT: the screen once it shows TEXT (5 s at most).
    screen_with() {
        local i s=""
        for i in $(seq 100); do
            s=$(tmux -S "$sock" capture-pane -p -t bs)
            [[ "$s" == *"$1"* ]] && break
            sleep 0.05
        done
        printf '%s' "$s"
    }
    # The binary itself (under SAN with its runtime preloaded, as top_tmux.sh
    # runs it) and the test's state passed explicitly: a tmux server does
    # not reliably inherit its client's environment.
    pre=""
    [ "${SAN:-0}" = 1 ] && pre="LD_PRELOAD=$ASAN_RT ASAN_OPTIONS=$ASAN_OPTIONS"
    tmux -S "$sock" -f /dev/null new-session -d -s bs -x 100 -y 24 \
        "env $pre TERM=xterm-256color GPUMEM_STATE_DIR=$GPUMEM_STATE_DIR GPUMEM_SIM_STATE=$GPUMEM_SIM_STATE \
GPUMEM_SIM_DIR=$GPUMEM_SIM_DIR GPUMEM_SIM_DEVICES=$GPUMEM_SIM_DEVICES $TOP/$BUILD/bin/gpumem top -d 0.3 -a"
    expect_in top_shows_none "(none)" "$(screen_with "(none)")"
    tmux -S "$sock" send-keys -t bs n
    sleep 0.5
    tmux -S "$sock" send-keys -t bs Enter
    expect_in top_none_expands_to_pid "$BPID alloc_client" "$(screen_with "$BPID alloc_client")"
    tmux -S "$sock" kill-server
else
    fail top_shows_none "tmux is not installed (tools/install-deps.sh installs it)"
fi
stop_daemon
kill -KILL "$BPID"; wait "$BJOB" 2>/dev/null

# ---- an exempt cgroup: counted as ungrouped, never acted on ----
cg=$(sed -n 's/^0:://p' /proc/self/cgroup)
start_daemon --backstop kill --backstop-exempt "${cg:-/}"
sim_client init alloc 300M hold >"$T/bypass3" 2>&1 &
BJOB=$!
wait_for holding "$T/bypass3" || fail bypass3_started "$(cat "$T/bypass3")"
BPID=$(sed -n 's/^holding pid=//p' "$T/bypass3")
# Three times the grace and a few passes: long enough to have acted.
sleep 1.5
alive "$BPID" && ok exempt_left_alone || fail exempt_left_alone "$(grep backstop "$DLOG")"
grep -q '"event":"backstop"' "$DLOG" && fail exempt_no_event "$(grep backstop "$DLOG")" || ok exempt_no_event
stop_daemon
kill -KILL "$BPID" "$HPID" 2>/dev/null
wait

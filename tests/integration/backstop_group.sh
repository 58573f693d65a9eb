# The backstop against a group that passes its limit behind the shim's back
# (docs/backstop.md): a gpumem run group of 512 MiB whose command starts an
# honest shimmed process (64 MiB) and a child that drops LD_PRELOAD and
# takes 768 MiB straight from the simulated driver. The child is joined to
# the group by its process tree: under alert both the child (unaccounted,
# no_slot_in_tree) and the group (over_limit: real usage over the limit and
# over the shim's count) are reported; under kill the child alone is
# killed, the honest process lives. A limit lowered under an honest group's
# usage is no offence.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=64M GPUMEM_SIM_DEVICES=1x16G
. tests/integration/daemon_lib.sh
command -v curl >/dev/null || { skip backstop_group "curl is not installed"; exit 0; }

alive() { [ -e "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

# The group's command: an honest process in the background, and a child
# without the shim (exec'd, so gpumem run is its parent). Its LD_PRELOAD is
# only the sanitizer runtime in SAN runs (the simulated driver is
# instrumented there), else empty.
group_cmd() {
    run_sim --limit 512M --name "$1" -- bash -c '"$0" init alloc 64M hold >"$1.honest" 2>&1 &
        exec env LD_PRELOAD="$2" "$0" init alloc 768M hold >"$1.escaper" 2>&1' "$CLIENT" "$T/$1" "$ASAN_RT" \
        2>"$T/$1.run" &
}

for policy in alert kill; do
    start_daemon --backstop "$policy"
    g=over-$policy
    group_cmd "$g"
    wait_for holding "$T/$g.honest" || fail "${policy}_honest_started" "$(cat "$T/$g.honest")"
    wait_for holding "$T/$g.escaper" || fail "${policy}_escaper_started" "$(cat "$T/$g.escaper")"
    HPID=$(sed -n 's/^holding pid=//p' "$T/$g.honest")
    EPID=$(sed -n 's/^holding pid=//p' "$T/$g.escaper")
    # Hang guard only (10 s).
    wait_for "\"event\":\"backstop\",.*\"kind\":\"over_limit\".*\"group\":\"$g\"" "$DLOG" 200 &&
        ok "${policy}_over_limit_event" || fail "${policy}_over_limit_event" "$(cat "$DLOG")"
    wait_for "\"event\":\"backstop\",.*\"kind\":\"unaccounted\",\"reason\":\"no_slot_in_tree\",\"group\":\"$g\".*\"pid\":$EPID," \
        "$DLOG" 200 && ok "${policy}_escaper_event" || fail "${policy}_escaper_event" "$(cat "$DLOG")"
    ev=$(grep "\"kind\":\"over_limit\".*\"group\":\"$g\"" "$DLOG" | head -1)
    expect_in "${policy}_over_limit_limit" "\"limit\":$((512 << 20))" "$ev"
    expect_in "${policy}_over_limit_accounted" "\"accounted\":$(((64 + 64) << 20))" "$ev"
    expect_in "${policy}_over_limit_real" "\"real\":$(((64 + 64 + 768 + 64) << 20))" "$ev"
    grep -q "\"event\":\"backstop\".*\"pid\":$HPID," "$DLOG" && fail "${policy}_honest_not_flagged" "$(grep backstop "$DLOG")" ||
        ok "${policy}_honest_not_flagged"
    if [ "$policy" = kill ]; then
        for i in $(seq 100); do alive "$EPID" || break; sleep 0.05; done
        alive "$EPID" && fail kill_escaper_killed "pid $EPID lives" || ok kill_escaper_killed
        expect_in kill_escaper_action '"action":"killed"' "$(grep "\"pid\":$EPID," "$DLOG")"
        expect_in kill_over_limit_names_it "\"killed\":[$EPID],\"policy\":\"kill\",\"action\":\"killed\"" "$ev"
    else
        alive "$EPID" && ok alert_escaper_left || fail alert_escaper_left "pid $EPID is gone"
        m=$(curl -sf "$URL/metrics")
        grep -Eq "^gpumem_group_unaccounted_bytes\\{group=\"$g\",.*\\} $(((768 + 64) << 20))\$" <<<"$m" &&
            ok alert_metric_unaccounted || fail alert_metric_unaccounted "$(grep unaccounted <<<"$m")"
        grep -q '^gpumem_backstop_actions_total{kind="over_limit",action="alert"} 1$' <<<"$m" &&
            ok alert_metric_over_limit || fail alert_metric_over_limit "$(grep backstop_actions <<<"$m")"
    fi
    alive "$HPID" && ok "${policy}_honest_lives" || fail "${policy}_honest_lives" "pid $HPID is gone"
    stop_daemon
    kill -KILL "$HPID" "$EPID" 2>/dev/null
done

# A limit lowered under an honest group's usage: over the limit, but the
# shim accounts every byte; no offence.
start_daemon --backstop kill
run_sim --limit 1G --name lowered --keep -- "$CLIENT" init alloc 600M hold >"$T/lowered" 2>&1 &
wait_for holding "$T/lowered" || fail lowered_started "$(cat "$T/lowered")"
LPID=$(sed -n 's/^holding pid=//p' "$T/lowered")
"$GPUMEM" limit lowered 256M >/dev/null 2>&1 || fail lowered_limit "gpumem limit failed"
sleep 1.5 # three times the grace: long enough to have acted
grep -q '"event":"backstop"' "$DLOG" && fail lowered_no_offence "$(grep backstop "$DLOG")" || ok lowered_no_offence
alive "$LPID" && ok lowered_lives || fail lowered_lives "pid $LPID is gone"
stop_daemon

# No false positive from the backstop under churn (docs/backstop.md): with
# the daemon in kill mode at its default interval, grace and tolerance, a
# storm of shimmed processes in one group (tests/progs/stress: threads
# allocating and freeing across threads, a SIGKILL every 50-200 ms, some
# inside the shim's start-up, workers that exit while their threads
# allocate) and, beside it, short-lived `gpumem run`s that create a context,
# allocate, free and exit, four at a time. Nothing honest may be reported
# or killed: no backstop event at all, and every short-lived run exits 0.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=64M GPUMEM_SIM_DEVICES=1x16G GPUMEM_SIM_ALLOC_DELAY_US=200
. tests/integration/daemon_lib.sh
command -v curl >/dev/null || { skip backstop_churn "curl is not installed"; exit 0; }
secs=${CHURN_SECONDS:-4}

# CHURN_DAEMON_ARGS: more daemon options, for experiments (a grace of 0 shows what it protects from).
start_daemon --backstop kill ${CHURN_DAEMON_ARGS:-}
"$GPUMEM" run --sim --limit 2G --name storm --keep -- true || { fail churn_setup "group"; exit 1; }
LD_PRELOAD="$ASAN_RT" GPUMEM_GROUP_DIR="$GPUMEM_STATE_DIR/storm" STRESS_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" \
    "$APP_PROGS/stress" judge 6 "$secs" 2048 2 256 >"$T/stress" 2>&1 &
SJOB=$!

# Short-lived runs: start, context, allocations, free, exit.
runner() {
    local end=$((SECONDS + secs)) n=0 bad=0
    while [ "$SECONDS" -lt "$end" ]; do
        run_sim --limit 1G -- "$CLIENT" init alloc 128M loop 20 alloc 32M free 0 alloc 64M >/dev/null 2>&1 || bad=$((bad + 1))
        n=$((n + 1))
    done
    echo "$n $bad" >"$T/runner.$1"
}
RJOBS=()
for i in 1 2 3 4; do runner "$i" & RJOBS+=($!); done
wait "$SJOB" "${RJOBS[@]}"
# The storm is load here: its judge's own checks (shim_stress.sh) sum every
# process on the device, the short runs' too, so they do not apply.
grep -q '^ok stress_device_back_to_zero' "$T/stress" && ok churn_storm_ran || fail churn_storm_ran "$(tail -5 "$T/stress")"
runs=0 failed=0
for i in 1 2 3 4; do read -r n bad <"$T/runner.$i"; runs=$((runs + n)); failed=$((failed + bad)); done
[ "$runs" -gt 0 ] && [ "$failed" = 0 ] && ok "churn_short_runs_all_exit_0" ||
    fail churn_short_runs_all_exit_0 "$failed of $runs failed"
# A last pass after the storm, so that anything still pending is judged.
sleep 1
m=$(curl -sf "$URL/metrics")
passes=$(sed -n 's/^gpumem_backstop_passes_total //p' <<<"$m")
[ "${passes:-0}" -gt 4 ] && ok churn_backstop_ran || fail churn_backstop_ran "passes: $passes"
if grep -q '"event":"backstop"' "$DLOG"; then fail churn_no_false_positive "$(grep '"event":"backstop"' "$DLOG" | head -5)"
else ok churn_no_false_positive; fi
grep -q '^gpumem_backstop_actions_total{kind="[a-z_]*",action="[a-z_]*"} [1-9]' <<<"$m" &&
    fail churn_no_action_counted "$(grep backstop_actions <<<"$m")" || ok churn_no_action_counted
stop_daemon
echo "# churn: $runs short runs, $passes backstop passes"

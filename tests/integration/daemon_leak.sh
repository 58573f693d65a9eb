# Live leak detection in gpumem daemon, with short windows: a process that
# allocates 32 MiB every 0.3 s and never frees is flagged (metric 1, a
# leak_suspected event with its evidence, then leak_cleared once it stops
# growing); a holder (one allocation, held) and a cache warm-up (growth with
# alloc/free churn) are not. Bad --leak-* values are refused.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=128M GPUMEM_SIM_DEVICES=1x16G
M=1048576
. tests/integration/daemon_lib.sh

for bad in "--leak-window 0" "--leak-window abc" "--leak-long-window -5" "--leak-min-growth 12Q" \
    "--leak-window 100 --leak-long-window 50"; do
    # shellcheck disable=SC2086
    out=$("$GPUMEM" daemon $bad 2>&1); rc=$?
    if [ "$rc" = 2 ] && [[ "$out" == *leak* ]]; then ok "rejects_${bad// /_}"; else fail "rejects_${bad// /_}" "rc=$rc: $out"; fi
done
expect_in help_describes_leak "--leak-min-growth" "$("$GPUMEM" daemon --help)"

command -v curl >/dev/null || { skip daemon_leak "curl is not installed"; exit 0; }

start_daemon --leak-window 3 --leak-long-window 30 --leak-min-growth 64M
expect_in start_names_leak_settings '"leak_window":3,"leak_long_window":30,"leak_min_growth":67108864' "$(head -1 "$DLOG")"

leak_args=(init) warm_args=(init)
for i in $(seq 30); do
    leak_args+=(alloc 32M sleep 300)
    warm_args+=(alloc 32M loop 4 alloc 8M sleep 300)
done
run_sim --limit 4G --name holdg --keep -- "$CLIENT" init alloc 256M hold >"$T/hold" 2>&1 &
run_sim --limit 4G --name warmg --keep -- "$CLIENT" "${warm_args[@]}" hold >"$T/warm" 2>&1 &
run_sim --limit 4G --name leakg --keep -- "$CLIENT" "${leak_args[@]}" hold >"$T/leak" 2>&1 &

wait_for '"event":"leak_suspected".*"group":"leakg"' "$DLOG" 200 && ok leak_event ||
    fail leak_event "$(cat "$DLOG")"
m=$(curl -sf "$URL/metrics")
grep -Eq '^gpumem_group_leak_suspected\{group="leakg",container="",pod="",namespace="",gpu="0",uuid="GPU-[0-9a-f-]+"\} 1$' <<<"$m" &&
    ok leak_metric_1 || fail leak_metric_1 "$(grep leak_suspected <<<"$m")"
grep -q '^# TYPE gpumem_group_leak_suspected gauge$' <<<"$m" && ok leak_metric_type || fail leak_metric_type "no TYPE"
ev=$(grep '"leak_suspected"' "$DLOG" | head -1)
for f in '"reason":"idle_growth"' '"window_seconds":' '"start_used":' '"end_used":' '"rate_bytes_per_second":' \
    '"frees":0' '"comm":"alloc_client"' '"gpu":0'; do
    expect_in "leak_event_has_${f//[^a-z_]/}" "$f" "$ev"
done
if command -v python3 >/dev/null; then
    python3 - "$ev" <<'PY' && ok leak_event_evidence || fail leak_event_evidence "$ev"
import json, sys
e = json.loads(sys.argv[1])
assert e["end_used"] - e["start_used"] >= 64 << 20, e
assert e["window_seconds"] >= 3, e
assert 30e6 < e["rate_bytes_per_second"] < 200e6, e   # 32 MiB / 0.3 s ~ 112 MB/s
# The oldest live allocations, out of the leaker's own table: its first
# 32 MiB allocations, oldest first, 0.3 s apart.
o = e["oldest"]
assert len(o) == 5 and e["live_allocations"] >= 5, e
assert all(a["bytes"] == 32 << 20 and a["api"] == "cuMemAlloc" for a in o), o
assert all(o[i]["age_seconds"] >= o[i + 1]["age_seconds"] for i in range(4)), o
assert o[0]["age_seconds"] - o[4]["age_seconds"] >= 0.9, o
PY
fi

# The leaker stops after 30 allocations and holds: cleared.
wait_for holding "$T/leak" 400 || fail leaker_done "$(tail -3 "$T/leak")"
wait_for holding "$T/warm" 400 || fail warmer_done "$(tail -3 "$T/warm")"
wait_for '"event":"leak_cleared".*"group":"leakg".*"reason":"stopped_growing"' "$DLOG" 200 && ok leak_cleared_event ||
    fail leak_cleared_event "$(grep leak "$DLOG")"
sleep 0.5
m=$(curl -sf "$URL/metrics")
grep -Eq '^gpumem_group_leak_suspected\{group="leakg".*\} 0$' <<<"$m" && ok leak_metric_back_to_0 ||
    fail leak_metric_back_to_0 "$(grep leak_suspected <<<"$m")"
for g in holdg warmg; do
    grep -q "\"group\":\"$g\"" <(grep '"leak_' "$DLOG") && fail "not_flagged_$g" "$(grep "\"$g\"" "$DLOG")" ||
        ok "not_flagged_$g"
    grep -Eq "^gpumem_group_leak_suspected\\{group=\"$g\".*\\} 0\$" <<<"$m" && ok "metric_0_$g" ||
        fail "metric_0_$g" "$(grep leak_suspected <<<"$m")"
done
if command -v promtool >/dev/null; then
    out=$(promtool check metrics <<<"$m" 2>&1) && ok promtool_check_metrics || fail promtool_check_metrics "$out"
fi
stop_daemon
[ "$DRC" = 0 ] && ok sigterm_exits_0 || fail sigterm_exits_0 "status $DRC"

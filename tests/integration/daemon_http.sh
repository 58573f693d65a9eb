# gpumem daemon against groups made by real shimmed processes on the
# simulated GPU: /metrics values (limit, used, peak, refusals, processes,
# drift, device totals), /healthz, 404 and 405, malformed --listen, a corrupt
# group skipped with a warning, events as JSON lines (refusal, threshold up
# and down, reclaim of a killed process), SIGTERM, `promtool check metrics`.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=128M GPUMEM_SIM_DEVICES=1x16G
G=1073741824 M=1048576
. tests/integration/daemon_lib.sh

# Malformed --listen: an error that quotes the value, before anything starts.
for bad in 127.0.0.1:99999 garbage 127.0.0.1:abc :-1 1.2.3:80 '[::1:80' 127.0.0.1: ''; do
    out=$("$GPUMEM" daemon --listen "$bad" 2>&1); rc=$?
    if [ "$rc" = 2 ] && [[ "$out" == *"--listen \"$bad\""* ]]; then ok "listen_rejects_${bad:-empty}"
    else fail "listen_rejects_${bad:-empty}" "rc=$rc: $out"; fi
done
out=$("$GPUMEM" daemon --interval 0 2>&1); rc=$?
[ "$rc" = 2 ] && expect_in interval_rejects_zero '--interval "0"' "$out" || fail interval_rejects_zero "rc=$rc: $out"
out=$("$GPUMEM" daemon --help); rc=$?
[ "$rc" = 0 ] && expect_in help_describes_metrics "gpumem_group_accounting_drift_bytes" "$out" || fail help_describes_metrics "rc=$rc"

command -v curl >/dev/null || { skip daemon_http "curl is not installed"; exit 0; }

# A holder: 300 MiB + the context's 128 MiB under a 1 GiB limit.
run_sim --limit 1G --name holdg --keep -- "$CLIENT" init alloc 300M hold >"$T/holder" 2>&1 &
wait_for holding "$T/holder" || fail holder_started "$(cat "$T/holder")"
start_daemon
m=$(curl -sf "$URL/metrics") || fail metrics_served "curl failed"
lbl='group="holdg",container="",pod="",namespace="",gpu="0",uuid="GPU-'
has_series() { # NAME VALUE: a holdg series with that value
    if grep -Eq "^$1\{$lbl[0-9a-f-]+\"\} $2\$" <<<"$m"; then ok "$3"; else fail "$3" "no $1 = $2 in: $(grep "^$1" <<<"$m" | head -3)"; fi
}
has_series gpumem_group_limit_bytes $G metrics_group_limit
has_series gpumem_group_used_bytes $((428 * M)) metrics_group_used
has_series gpumem_group_peak_bytes $((428 * M)) metrics_group_peak
has_series gpumem_group_refusals_total 0 metrics_group_refusals
has_series gpumem_group_processes 1 metrics_group_processes
has_series gpumem_group_accounting_drift_bytes 0 metrics_drift_zero_when_shim_matches_driver
expect_in metrics_device_total "gpumem_device_total_bytes{gpu=\"0\",uuid=\"GPU-" "$m"
grep -Eq '^gpumem_device_total_bytes\{gpu="0",uuid="GPU-[0-9a-f-]+"\} '"$((16 * G))"'$' <<<"$m" &&
    ok metrics_device_total_value || fail metrics_device_total_value "$(grep device_total <<<"$m")"
grep -Eq '^gpumem_device_used_bytes\{gpu="0",uuid="GPU-[0-9a-f-]+"\} '"$((428 * M))"'$' <<<"$m" &&
    ok metrics_device_used_from_nvml || fail metrics_device_used_from_nvml "$(grep device_used <<<"$m")"
grep -Eq '^gpumem_device_granted_limit_bytes\{gpu="0",uuid="GPU-[0-9a-f-]+"\} '"$G"'$' <<<"$m" &&
    ok metrics_device_granted || fail metrics_device_granted "$(grep granted <<<"$m")"
for fam in gpumem_group_limit_bytes gpumem_group_refusals_total gpumem_device_free_bytes; do
    grep -q "^# HELP $fam " <<<"$m" && grep -q "^# TYPE $fam " <<<"$m" || fail "help_type_$fam" "missing"
done
grep -q '^# TYPE gpumem_group_refusals_total counter$' <<<"$m" && ok metrics_help_and_type || fail metrics_help_and_type "no counter type"

hdr=$(curl -sf -D - -o /dev/null "$URL/metrics")
expect_in metrics_content_type "Content-Type: text/plain; version=0.0.4; charset=utf-8" "$hdr"
expect_in healthz_ok "ok" "$(curl -sf "$URL/healthz")"
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/nope")
[ "$code" = 404 ] && ok unknown_path_404 || fail unknown_path_404 "got $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -d x=1 "$URL/metrics")
[ "$code" = 405 ] && ok post_is_405 || fail post_is_405 "got $code"

if command -v promtool >/dev/null; then
    out=$(curl -sf "$URL/metrics" | promtool check metrics 2>&1) && ok promtool_check_metrics ||
        fail promtool_check_metrics "$out"
else
    skip promtool_check_metrics "promtool is not installed"
fi

# Corrupt groups: skipped with a warning, the rest still served.
mkdir "$GPUMEM_STATE_DIR/broken" "$GPUMEM_STATE_DIR/trunc"
head -c 3000 /dev/urandom >"$GPUMEM_STATE_DIR/broken/limits"
printf 'junk' >"$GPUMEM_STATE_DIR/broken/usage"
cp "$GPUMEM_STATE_DIR/holdg/limits" "$GPUMEM_STATE_DIR/trunc/limits"
head -c 100 "$GPUMEM_STATE_DIR/holdg/usage" >"$GPUMEM_STATE_DIR/trunc/usage"
wait_for '"group_skipped","group":"trunc"' "$DLOG" && wait_for '"group_skipped","group":"broken"' "$DLOG" &&
    ok corrupt_group_warned || fail corrupt_group_warned "$(cat "$DLOG")"
m=$(curl -sf "$URL/metrics")
expect_in corrupt_group_others_served 'gpumem_group_limit_bytes{group="holdg"' "$m"
expect_in corrupt_groups_counted 'gpumem_groups_skipped 2' "$m"
case "$m" in *'group="broken"'* | *'group="trunc"'*) fail corrupt_group_not_exported "$m" ;; *) ok corrupt_group_not_exported ;; esac
sleep 0.5
n=$(grep -c '"group_skipped","group":"trunc"' "$DLOG")
[ "$n" = 1 ] && ok corrupt_group_warned_once || fail corrupt_group_warned_once "$n warnings"
rm -rf "$GPUMEM_STATE_DIR/broken" "$GPUMEM_STATE_DIR/trunc"

# Events: a refusal and a crossing of 80% (428 of 512 MiB) ...
run_sim --limit 512M --name refg --keep -- "$CLIENT" init alloc 600M alloc 300M hold >"$T/ref" 2>&1 &
wait_for holding "$T/ref" || fail refusing_holder "$(cat "$T/ref")"
wait_for '"event":"refusal".*"group":"refg"' "$DLOG" && ok event_refusal || fail event_refusal "$(cat "$DLOG")"
expect_in event_refusal_fields "\"count\":1,\"new\":1,\"last_refused_size\":$((600 * M))" "$(grep '"refusal"' "$DLOG")"
wait_for '"event":"threshold".*"group":"refg".*"direction":"up"' "$DLOG" && ok event_threshold_up ||
    fail event_threshold_up "$(cat "$DLOG")"
m=$(curl -sf "$URL/metrics")
expect_in metrics_refusals_counted 'gpumem_group_refusals_total{group="refg",container="",pod="",namespace="",gpu="0"' "$m"
grep -Eq '^gpumem_group_refusals_total\{group="refg".*\} 1$' <<<"$m" && ok metrics_refusals_value ||
    fail metrics_refusals_value "$(grep refusals_total <<<"$m")"
# ... then the process is killed: its slot is reclaimed, usage drops below.
rpid=$(pgrep -f "^$CLIENT init alloc 600M alloc 300M hold" | head -1)
kill -KILL "$rpid"
wait_for '"event":"reclaim","group":"refg","slots":1' "$DLOG" && ok event_reclaim_dead || fail event_reclaim_dead "$(cat "$DLOG")"
wait_for '"event":"threshold".*"group":"refg".*"direction":"down"' "$DLOG" && ok event_threshold_down ||
    fail event_threshold_down "$(cat "$DLOG")"
grep -v '^{"time":"[^"]*","level":"[a-z]*","event":"[a-z_]*"' "$DLOG" | grep -q . &&
    fail events_are_json_lines "$(cat "$DLOG")" || ok events_are_json_lines
if command -v python3 >/dev/null; then
    python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$DLOG" && ok events_parse_as_json ||
        fail events_parse_as_json "$(cat "$DLOG")"
fi

stop_daemon
[ "$DRC" = 0 ] && ok sigterm_exits_0 || fail sigterm_exits_0 "status $DRC"
expect_in sigterm_logged '"event":"stop","signal":"SIGTERM"' "$(tail -1 "$DLOG")"
curl -s -m 2 "$URL/healthz" >/dev/null && fail stopped_daemon_closed_port "still answering" || ok stopped_daemon_closed_port

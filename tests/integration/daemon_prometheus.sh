# A real Prometheus server (tests/integration/prom_lib.sh: on loopback, with
# a private config and storage dir, scraping every second) scrapes `gpumem
# daemon`: a gpumem metric of a group held by a shimmed process, the build
# and device info series, and the compatibility rules' HAMi and dcgm names
# (deploy/prometheus/gpumem-compat.yml, evaluated by the server) are read
# back through Prometheus's query API, and both rule files load into it.
# Before that the rules' own tests (`promtool test rules
# deploy/prometheus/tests/*.yml`), and a check that every alert has a case
# that expects it to fire and every recorded name a case that evaluates it.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=128M GPUMEM_SIM_DEVICES=1x16G
G=1073741824 M=1048576
. tests/integration/daemon_lib.sh
. tests/integration/prom_lib.sh

if command -v promtool >/dev/null; then
    out=$(promtool check rules deploy/prometheus/gpumem-alerts.yml 2>&1) && ok alert_rules_valid ||
        fail alert_rules_valid "$out"
    out=$(promtool check rules deploy/prometheus/gpumem-compat.yml 2>&1) && ok compat_rules_valid ||
        fail compat_rules_valid "$out"
    out=$(promtool test rules deploy/prometheus/tests/*.yml 2>&1) && ok alert_rules_tests ||
        fail alert_rules_tests "$out"
else
    skip alert_rules_tests "promtool is not installed"
fi
# Every alert has a test case that expects it to fire, and every recorded
# name a test that evaluates it.
for a in $(sed -n 's/^ *- alert: *//p' deploy/prometheus/gpumem-alerts.yml); do
    grep -A3 -h "alertname: $a\$" deploy/prometheus/tests/*.yml | grep -q 'exp_labels' &&
        ok "alert_has_firing_test_$a" || fail "alert_has_firing_test_$a" "no test case in deploy/prometheus/tests expects it to fire"
done
for r in $(sed -n 's/^ *- record: *//p' deploy/prometheus/gpumem-compat.yml); do
    case "$r" in *:*) continue ;; esac # helpers are checked through the names that use them
    grep -q -h "^ *- expr: $r\b" deploy/prometheus/tests/*.yml &&
        ok "record_has_test_$r" || fail "record_has_test_$r" "no promql_expr_test evaluates it"
done

for tool in prometheus curl python3; do
    command -v $tool >/dev/null || { skip prometheus_scrape "$tool is not installed"; exit 0; }
done

run_sim --limit 1G --name promg --keep -- "$CLIENT" init alloc 200M hold >"$T/holder" 2>&1 &
wait_for holding "$T/holder" || fail holder_started "$(cat "$T/holder")"
start_daemon
dport=${URL##*:}

start_prometheus "$TOP/deploy/prometheus/gpumem-alerts.yml" "$TOP/deploy/prometheus/gpumem-compat.yml" ||
    fail prometheus_started "$(tail -5 "$T/prometheus.log")"
q='gpumem_group_limit_bytes{group="promg"}'
got=""
for i in $(seq 300); do
    got=$(prom_query "$q")
    case "$got" in *"\"$G\""*) break ;; esac
    sleep 0.1
done
expect_in prometheus_reads_group_limit "\"value\":[" "$got"
expect_in prometheus_limit_value "\"$G\"" "$got"
got=$(prom_query 'gpumem_group_used_bytes{group="promg"}')
expect_in prometheus_reads_group_used "\"$((328 * M))\"" "$got"
expect_in prometheus_labels "\"gpu\":\"0\"" "$got"
got=$(prom_query 'up{job="gpumem"}')
expect_in prometheus_target_up '"1"]' "$got"
got=$(curl -sf "$P/api/v1/rules")
expect_in prometheus_loads_alert_rules '"name":"GpumemGroupNearLimit"' "$got"
expect_in prometheus_loads_compat_rules '"name":"DCGM_FI_DEV_FB_USED"' "$got"
# Own series: the build and each device's model and host.
prom_wait 'gpumem_build_info' || fail prometheus_build_info "$PROM_GOT"
expect_in prometheus_build_info_version '"version":"' "$PROM_GOT"
expect_in prometheus_build_info_hostname "\"hostname\":\"$(uname -n)\"" "$PROM_GOT"
prom_wait 'gpumem_device_info{gpu="0"}' || fail prometheus_device_info "$PROM_GOT"
expect_in prometheus_device_info_host "\"hostname\":\"$(uname -n)\"" "$PROM_GOT"
model=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1])["data"]["result"]; print(r[0]["metric"].get("model",""))' "$PROM_GOT" 2>/dev/null)
[ -n "$model" ] && ok prometheus_device_model || fail prometheus_device_model "no model label: $PROM_GOT"

# The compatibility rules (deploy/prometheus/gpumem-compat.yml), evaluated
# by the real server on the real scrape: HAMi's names in bytes, dcgm's in MiB.
prom_wait 'vGPU_device_memory_usage_in_bytes{group="promg"}' || fail prometheus_hami_usage "$PROM_GOT"
expect_in prometheus_hami_usage_value "\"$((328 * M))\"" "$PROM_GOT"
expect_in prometheus_hami_usage_labels '"vdeviceid":"0"' "$PROM_GOT"
prom_wait 'vGPU_device_memory_limit_in_bytes{group="promg",deviceuuid=~"GPU-.+"}' || fail prometheus_hami_limit "$PROM_GOT"
expect_in prometheus_hami_limit_value "\"$G\"" "$PROM_GOT"
prom_wait "DCGM_FI_DEV_FB_USED{gpu=\"0\",Hostname=\"$(uname -n)\",modelName=\"$model\",device=\"nvidia0\"}" ||
    fail prometheus_dcgm_fb_used "$PROM_GOT"
prom_wait 'DCGM_FI_DEV_FB_TOTAL{gpu="0"}' || fail prometheus_dcgm_fb_total "$PROM_GOT"
expect_in prometheus_dcgm_fb_total_mib '"16384"' "$PROM_GOT"
# Used + free = total in MiB (each floored: within 1 MiB).
prom_wait 'abs(DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE - DCGM_FI_DEV_FB_TOTAL) <= 1' &&
    ok prometheus_dcgm_fb_consistent || fail prometheus_dcgm_fb_consistent "$PROM_GOT"
stop_prometheus
stop_daemon
[ "$DRC" = 0 ] && ok daemon_stopped_cleanly || fail daemon_stopped_cleanly "status $DRC"

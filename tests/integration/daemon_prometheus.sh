# A real Prometheus server (started here, on loopback, with a private config
# and storage dir, scraping every second) scrapes `gpumem daemon`; a gpumem
# metric of a group held by a shimmed process is read back through
# Prometheus's query API, and the alert rules load into it. Then the rules'
# own tests: `promtool test rules deploy/prometheus/tests/*.yml`.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=128M GPUMEM_SIM_DEVICES=1x16G
G=1073741824 M=1048576
. tests/integration/daemon_lib.sh

if command -v promtool >/dev/null; then
    out=$(promtool check rules deploy/prometheus/gpumem-alerts.yml 2>&1) && ok alert_rules_valid ||
        fail alert_rules_valid "$out"
    out=$(promtool test rules deploy/prometheus/tests/*.yml 2>&1) && ok alert_rules_tests ||
        fail alert_rules_tests "$out"
else
    skip alert_rules_tests "promtool is not installed"
fi

for tool in prometheus curl python3; do
    command -v $tool >/dev/null || { skip prometheus_scrape "$tool is not installed"; exit 0; }
done

run_sim --limit 1G --name promg --keep -- "$CLIENT" init alloc 200M hold >"$T/holder" 2>&1 &
wait_for holding "$T/holder" || fail holder_started "$(cat "$T/holder")"
start_daemon
dport=${URL##*:}

# A free loopback port for Prometheus (the kernel's pick, released just before).
pport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$T/prometheus.yml" <<CFG
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $TOP/deploy/prometheus/gpumem-alerts.yml
scrape_configs:
  - job_name: gpumem
    static_configs:
      - targets: ['127.0.0.1:$dport']
CFG
# GPUMEM_STATE_DIR stays in its environment, so kill_ours stops it on exit.
prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/prom-data" \
    --web.listen-address="127.0.0.1:$pport" >"$T/prometheus.log" 2>&1 &
ppid_=$!
P="http://127.0.0.1:$pport"
q='gpumem_group_limit_bytes{group="promg"}'
got=""
for i in $(seq 300); do
    got=$(curl -sf -G "$P/api/v1/query" --data-urlencode "query=$q" 2>/dev/null)
    case "$got" in *"\"$G\""*) break ;; esac
    sleep 0.1
done
expect_in prometheus_reads_group_limit "\"value\":[" "$got"
expect_in prometheus_limit_value "\"$G\"" "$got"
got=$(curl -sf -G "$P/api/v1/query" --data-urlencode 'query=gpumem_group_used_bytes{group="promg"}')
expect_in prometheus_reads_group_used "\"$((328 * M))\"" "$got"
expect_in prometheus_labels "\"gpu\":\"0\"" "$got"
got=$(curl -sf -G "$P/api/v1/query" --data-urlencode 'query=up{job="gpumem"}')
expect_in prometheus_target_up '"1"]' "$got"
got=$(curl -sf "$P/api/v1/rules")
expect_in prometheus_loads_alert_rules '"name":"GpumemGroupNearLimit"' "$got"
kill -TERM "$ppid_" 2>/dev/null
wait "$ppid_" 2>/dev/null
stop_daemon
[ "$DRC" = 0 ] && ok daemon_stopped_cleanly || fail daemon_stopped_cleanly "status $DRC"

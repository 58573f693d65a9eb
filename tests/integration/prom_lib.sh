# Sourced by daemon_prometheus.sh and grafana_dashboard.sh after
# daemon_lib.sh (start_daemon set URL): a real Prometheus server on a free
# loopback port with a private config and storage under $T, scraping the
# daemon every second as job "gpumem" and evaluating the given rule files
# every second. Defines nothing else; running it alone does nothing.

# start_prometheus RULE_FILE...: sets P (its URL) and PROM_PID; waits (30 s
# at most) until it is ready. Returns 1 if it is not.
start_prometheus() {
    local dport=${URL##*:} pport f i
    # A free loopback port (the kernel's pick, released just before).
    pport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    {
        echo "global:"
        echo "  scrape_interval: 1s"
        echo "  evaluation_interval: 1s"
        echo "rule_files:"
        for f in "$@"; do echo "  - $f"; done
        echo "scrape_configs:"
        echo "  - job_name: gpumem"
        echo "    static_configs:"
        echo "      - targets: ['127.0.0.1:$dport']"
    } >"$T/prometheus.yml"
    # GPUMEM_STATE_DIR stays in its environment, so kill_ours stops it on exit.
    prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/prom-data" \
        --web.listen-address="127.0.0.1:$pport" >"$T/prometheus.log" 2>&1 &
    PROM_PID=$!
    P="http://127.0.0.1:$pport"
    for i in $(seq 300); do
        curl -sf "$P/-/ready" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

stop_prometheus() {
    kill -TERM "$PROM_PID" 2>/dev/null
    wait "$PROM_PID" 2>/dev/null
}

# prom_query EXPR: the JSON answer of an instant query (empty if it failed).
prom_query() { curl -sf -G "$P/api/v1/query" --data-urlencode "query=$1" 2>/dev/null; }

# prom_wait EXPR [TRIES]: until EXPR returns at least one series (0.1 s
# steps, 300 by default); the last answer in PROM_GOT. Returns 1 if never.
prom_wait() {
    local i
    for i in $(seq "${2:-300}"); do
        PROM_GOT=$(prom_query "$1")
        case "$PROM_GOT" in *'"result":[{'*) return 0 ;; esac
        sleep 0.1
    done
    return 1
}

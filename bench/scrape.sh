#!/usr/bin/env bash
# Cost of reading many groups: one /metrics scrape of `gpumem daemon` and one
# `gpumem ps -a --format json`, with BENCH_GROUPS (1000) groups of
# BENCH_PROCS (4) processes each, on the simulated GPU. The groups are
# synthetic (bench/mkgroups writes them as the shim would; their slots name
# BENCH_PROCS live `sleep` processes, so no reader reclaims them). With
# BENCH_NS=1 those processes run in one other pid namespace, as in a
# container: the slots hold the pids the namespace sees (needs unshare and
# the right to make a pid namespace, e.g. root).
#
#   time    median wall time of BENCH_RUNS (15) runs: the scrape as curl's
#           time_total (request to last byte), ps from fork to exit
#   memory  peak RSS (/usr/bin/time -v "Maximum resident set size"): for
#           the daemon, of its whole life (start, NVML, every scrape); for ps,
#           the largest of its runs
# Aim (issue 4): under 50 ms and 20 MiB each. Informational: exits 0 unless
# the benchmark could not run. Needs curl and /usr/bin/time.
set -u
cd "$(dirname "$0")/.."
BUILD="${BUILD:-build}"
B="$(cd "$BUILD" 2>/dev/null && pwd)" || { echo "scrape: no $BUILD (run make first)" >&2; exit 1; }
NG="${BENCH_GROUPS:-1000}" NP="${BENCH_PROCS:-4}" RUNS="${BENCH_RUNS:-15}" NS="${BENCH_NS:-0}"
for t in curl /usr/bin/time $([ "$NS" = 1 ] && echo unshare pgrep); do
    command -v $t >/dev/null || { echo "scrape: needs $t" >&2; exit 1; }
done
W=$(mktemp -d /tmp/gpumem-scrape.XXXXXX)
export GPUMEM_STATE_DIR="$W/state" GPUMEM_SIM_STATE="$W/sim" GPUMEM_SIM_DIR="$B/sim"
pids=()
cleanup() {
    [ -n "${DPID:-}" ] && kill -TERM "$DPID" 2>/dev/null
    # KILL: unshare --fork ignores TERM while its child runs.
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT
mkdir -p "$GPUMEM_STATE_DIR"
if [ "$NS" = 1 ]; then
    # --kill-child: killing unshare (cleanup) ends the namespace's processes.
    unshare --pid --fork --kill-child sh -c \
        "i=1; while [ \$i -lt $NP ]; do sleep 3600 & i=\$((i+1)); done; exec sleep 3600" &
    pids+=($!)
    for i in $(seq 100); do
        init=$(pgrep -P "${pids[0]}") && [ "$(pgrep -P "$init" | wc -l)" -ge $((NP - 1)) ] && break
        sleep 0.05
    done
    procs=($init $(pgrep -P "$init"))
    [ "${#procs[@]}" -eq "$NP" ] || { echo "scrape: no pid namespace (unshare --pid)" >&2; exit 1; }
else
    for i in $(seq "$NP"); do sleep 3600 & pids+=($!); done
    procs=("${pids[@]}")
fi

/usr/bin/time -v -o "$W/daemon.time" "$B/bin/gpumem" daemon --listen 127.0.0.1:0 --interval 3600 \
    --log "$W/daemon.log" &
for i in $(seq 200); do grep -q '"event":"start"' "$W/daemon.log" 2>/dev/null && break; sleep 0.05; done
DPID=$(grep -o '"pid":[0-9]*' "$W/daemon.log" | cut -d: -f2)
URL="http://127.0.0.1:$(grep -o '"port":[0-9]*' "$W/daemon.log" | cut -d: -f2)"
uuid=$(curl -sf "$URL/metrics" | grep -o 'gpumem_device_total_bytes{gpu="0",uuid="[^"]*' | sed 's/.*uuid="//')
[ -n "$uuid" ] || { echo "scrape: no device from the simulated NVML" >&2; exit 1; }
"$B/bench/mkgroups" "$NG" "$uuid" "${procs[@]}" || exit 1

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
curl -sf -o "$W/metrics" "$URL/metrics" # warm the page cache like every later scrape
series=$(grep -c '^gpumem_group_used_bytes' "$W/metrics")
bytes=$(wc -c <"$W/metrics")
for i in $(seq "$RUNS"); do curl -sf -o /dev/null -w '%{time_total}\n' "$URL/metrics"; done >"$W/scrape.times"
scrape_ms=$(median <"$W/scrape.times" | awk '{printf "%.1f", $1 * 1000}')
kill -TERM "$DPID"; wait "$DPID" 2>/dev/null
for i in $(seq 100); do [ -s "$W/daemon.time" ] && grep -q 'Maximum resident' "$W/daemon.time" && break; sleep 0.05; done
DPID=""
daemon_kb=$(awk -F: '/Maximum resident/ {print $2+0}' "$W/daemon.time")

for i in $(seq "$RUNS"); do
    t0=$(date +%s%N)
    "$B/bin/gpumem" ps -a --format json >"$W/ps.json"
    echo $(($(date +%s%N) - t0))
done >"$W/ps.times"
ps_ms=$(median <"$W/ps.times" | awk '{printf "%.1f", $1 / 1e6}')
for i in $(seq 5); do
    /usr/bin/time -f '%M' -o "$W/ps.time" "$B/bin/gpumem" ps -a --format json >/dev/null
    cat "$W/ps.time"
done >"$W/ps.rss"
ps_kb=$(sort -g "$W/ps.rss" | tail -1)
ps_groups=$(grep -o '"group":' "$W/ps.json" | wc -l)

verdict() { awk -v ms="$1" -v kb="$2" 'BEGIN {print (ms < 50 && kb < 20480) ? "PASS" : "MISS"}'; }
printf '%d groups x %d processes%s (%d series per family, %d bytes scraped; ps listed %d groups)\n' \
    "$NG" "$NP" "$([ "$NS" = 1 ] && echo ' in another pid namespace')" "$series" "$bytes" "$ps_groups"
printf '%-34s %10s %14s  %s\n' "what" "time" "peak RSS" "aim <50 ms, <20 MiB"
printf '%-34s %7s ms %10.1f MiB  %s\n' "/metrics scrape (daemon)" "$scrape_ms" "$(awk -v k="$daemon_kb" 'BEGIN {print k / 1024}')" \
    "$(verdict "$scrape_ms" "$daemon_kb")"
printf '%-34s %7s ms %10.1f MiB  %s\n' "gpumem ps -a --format json" "$ps_ms" "$(awk -v k="$ps_kb" 'BEGIN {print k / 1024}')" \
    "$(verdict "$ps_ms" "$ps_kb")"

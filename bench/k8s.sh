#!/usr/bin/env bash
# gpumem-k8s against the issue's targets, with the fake kubelet of the tests
# (grpc-go, tests/k8s/fakekubelet) on simulated GPUs. Prints figures; always
# exits 0 unless it could not run. Not a test: nothing here is asserted.
#
#   registration -> first ListAndWatch   the kubelet's clock, from the Register
#                                        request's arrival to the first list it
#                                        receives (GetDevicePluginOptions and the
#                                        stream's opening in between); median and
#                                        worst of BENCH_K8S_REGS registrations
#                                        (the kubelet restarted each time)
#   Allocate, 8 GPUs x 80 units          one container asking for all 640 units
#                                        of 8 simulated 80 GiB GPUs (1 GiB units):
#                                        round trip seen by the client, median and
#                                        worst of BENCH_K8S_ALLOCS, and the part
#                                        spent in the plugin's handler (its log)
#   ListAndWatch size, 16 GPUs x 640     16 simulated 80 GiB GPUs, 128 MiB units:
#                                        the encoded message against the 4 MiB a
#                                        kubelet's gRPC client accepts by default
#   plugin memory                        VmRSS and VmHWM of gpumem-k8s after that
#
# Knobs: BUILD (build), BENCH_K8S_REGS (20), BENCH_K8S_ALLOCS (30),
# BENCH_K8S_TMP (/tmp: where the groups, sockets and simulated GPU live;
# /dev/shm is tmpfs, as /run/gpumem is on a host).
set -u
cd "$(dirname "$0")/.."
BUILD="${BUILD:-build}"
K8S="$PWD/$BUILD/bin/gpumem-k8s" FK="$PWD/build/tests/k8s/fakekubelet"
REGS="${BENCH_K8S_REGS:-20}" ALLOCS="${BENCH_K8S_ALLOCS:-30}"
[ -x "$K8S" ] || { echo "bench/k8s.sh: $K8S missing (run make first)" >&2; exit 1; }
tests/k8s/build-fakekubelet.sh "$FK" || { echo "bench/k8s.sh: cannot build the fake kubelet" >&2; exit 1; }
T=$(mktemp -d "${BENCH_K8S_TMP:-/tmp}/gpumem-bench-k8s.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
export GPUMEM_STATE_DIR="$T/state" GPUMEM_SIM_STATE="$T/sim"
PY=/usr/bin/python3

wait_grep() { # wait_grep N PATTERN FILE: until FILE has N lines matching
    local i
    for ((i = 0; i < 400; i++)); do
        [ "$(grep -c "$2" "$3" 2>/dev/null)" -ge "$1" ] && return 0
        sleep 0.05
    done
    return 1
}
stats() { "$PY" -c 'import sys,statistics; v=sorted(float(x) for x in sys.stdin.read().split()); print("median %.2f ms, worst %.2f ms (%d runs)" % (statistics.median(v)/1000, v[-1]/1000, len(v)))'; }

# plugin RUN_DIR DEVICES UNIT: a kubelet and a plugin in RUN_DIR.
plugin() {
    local d=$1/dp
    mkdir -p "$d"
    "$FK" serve -dir "$d" >"$1/kubelet.log" 2>&1 &
    kubelet=$!
    pids+=("$kubelet")
    wait_grep 1 '"event":"serving"' "$1/kubelet.log"
    GPUMEM_SIM_DEVICES=$2 "$K8S" --kubelet-dir "$d" --sim --unit "$3" --grace 3600 >"$1/plugin.log" 2>&1 &
    plug=$!
    pids+=("$plug")
    wait_grep 1 '"event":"list"' "$1/kubelet.log"
}

# ---- registration -> first ListAndWatch, and Allocate: 8 x 80 GiB -------------
R="$T/r8"
mkdir -p "$R"
plugin "$R" 8x80G 1G
for ((i = 1; i < REGS; i++)); do
    kill -TERM "$kubelet"; wait "$kubelet" 2>/dev/null
    "$FK" serve -dir "$R/dp" -clean >>"$R/kubelet.log" 2>&1 &
    kubelet=$!
    pids+=("$kubelet")
    wait_grep $((i + 1)) '"event":"list"' "$R/kubelet.log" || { echo "bench/k8s.sh: no re-registration" >&2; exit 1; }
done
reg=$("$PY" -c '
import json,sys
reg=None; out=[]
for line in open(sys.argv[1]):
    try: e=json.loads(line)
    except ValueError: continue
    if e.get("event")=="register": reg=e["us"]
    elif e.get("event")=="list" and reg is not None: out.append(e["us"]-reg); reg=None
print(" ".join(str(x) for x in out))' "$R/kubelet.log" | stats)
ids=$(grep -o 'GPU GPU-[0-9a-f-]*' "$R/plugin.log" | cut -d' ' -f2 | while read -r g; do
    for ((u = 0; u < 80; u++)); do printf '%s-m%d,' "$g" "$u"; done; done)
ids=${ids%,}
for ((i = 0; i < ALLOCS; i++)); do
    "$FK" allocate -sock "$R/dp/gpumem-memory.sock" -ids "$ids" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["micros"])'
done >"$T/alloc.txt"
alloc=$(stats <"$T/alloc.txt")
# The plugin's own time in Allocate, from its log ("allocated ... (X ms)").
server=$(sed -n 's/.*allocated 640 .* (\([0-9.]*\) ms)$/\1/p' "$R/plugin.log" | awk '{print $1 * 1000}' | stats)
ngroups=$(ls "$GPUMEM_STATE_DIR" | wc -l)

# ---- ListAndWatch size and memory: 16 x 80 GiB in 128 MiB units -------------------
S="$T/s16"
mkdir -p "$S"
plugin "$S" 16x80G 128M
line=$(grep -m1 '"event":"list"' "$S/kubelet.log")
bytes=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["bytes"])' "$line")
ndev=$("$PY" -c 'import json,sys; e=json.loads(sys.argv[1]); print(e["healthy"]+e["unhealthy"])' "$line")
"$FK" allocate -sock "$S/dp/gpumem-memory.sock" -ids "$(grep -o 'GPU GPU-[0-9a-f-]*' "$S/plugin.log" | head -1 | cut -d' ' -f2)-m0" >/dev/null
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$plug/status") hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$plug/status")

echo "gpumem-k8s ($BUILD, state in ${BENCH_K8S_TMP:-/tmp}), fake kubelet grpc-go $(ls -d /usr/share/gocode/src/google.golang.org/grpc >/dev/null 2>&1 && dpkg-query -W -f='${Version}' golang-google-grpc-dev 2>/dev/null)"
printf '%-44s %s   (target < 100 ms)\n' "registration -> first ListAndWatch" "$reg"
printf '%-44s %s   (target < 5 ms; %d groups made)\n' "Allocate, 1 container, 8 GPUs x 80 units" "$alloc" "$ngroups"
printf '%-44s %s\n' "  of which in gpumem-k8s (its log)" "$server"
printf '%-44s %d bytes for %d devices = %.1f%% of 4 MiB\n' "ListAndWatch, 16 GPUs x 640 units" "$bytes" "$ndev" \
    "$("$PY" -c "print($bytes * 100 / 4194304)")"
printf '%-44s VmRSS %d KiB, VmHWM %d KiB   (target < 20 MiB)\n' "gpumem-k8s memory (16 GPUs, after Allocate)" "$rss" "$hwm"

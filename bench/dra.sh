#!/usr/bin/env bash
# gpumem-dra's timings (docs/performance.md, "Kubernetes DRA driver"):
# ResourceSlice publication for 16 GPUs and NodePrepareResources' work per
# claim (claim GET over HTTPS, checkpoint, group, CDI spec), by
# build/bench/dra_bench against tests/k8s/dra_apiserver.py over HTTPS
# (TLS with a fresh self-signed certificate, the connection kept, as in the
# driver), on 16 simulated 80 GiB GPUs. The API server is Python on the same
# machine: its time is in the figures. Then the same prepare through the
# whole driver: gpumem-dra running, NodePrepareResources over its unix
# socket from the test's grpc-go kubelet (tests/k8s/dra_kubelet), timed by
# that client around each call (gRPC both ways included). Informational;
# exits 0 unless it could not run. Knobs: BUILD (build), BENCH_DRA_ROUNDS (200).
set -u
cd "$(dirname "$0")/.."
BUILD="${BUILD:-build}"
B="$(cd "$BUILD" 2>/dev/null && pwd)" || { echo "bench/dra.sh: no $BUILD (run make first)" >&2; exit 1; }
ROUNDS="${BENCH_DRA_ROUNDS:-200}"
[ -x "$B/bench/dra_bench" ] || { echo "bench/dra.sh: $B/bench/dra_bench missing (make $BUILD/bench/dra_bench)" >&2; exit 1; }
W=$(mktemp -d)
API_PID= DRA_PID=
trap '[ -n "$DRA_PID" ] && kill "$DRA_PID" 2>/dev/null; [ -n "$API_PID" ] && kill "$API_PID" 2>/dev/null; wait; rm -rf "$W"' EXIT
mkdir -p "$W/sa" "$W/claims" "$W/api"
export GPUMEM_SIM_STATE="$W/sim" GPUMEM_SIM_DEVICES=16x80G
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=kubernetes -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$W/key.pem" -out "$W/sa/ca.crt" 2>/dev/null
echo "bench-token" >"$W/sa/token"
for i in $(seq 0 $((ROUNDS - 1))); do
    printf '{"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim", "metadata": {"name": "bench-%d", "namespace": "default", "uid": "b0000000-0000-0000-0000-%012d"}, "status": {"allocation": {"devices": {"results": [{"request": "mem", "driver": "gpumem.io", "pool": "bench-node", "device": "gpu-%d", "consumedCapacity": {"memory": "1Gi"}, "shareID": "s%d"}]}}, "reservedFor": [{"resource": "pods", "name": "pod-%d", "uid": "x"}]}}\n' \
        "$i" "$i" $((i % 16)) "$i" "$i" >"$W/claims/default_bench-$i.json"
done
/usr/bin/python3 tests/k8s/dra_apiserver.py "$W/sa/ca.crt" "$W/key.pem" "$W/sa/token" "$W/claims" "$W/api" /nonexistent &
API_PID=$!
for _ in $(seq 100); do [ -s "$W/api/port" ] && break; sleep 0.1; done
echo "gpumem-dra: $ROUNDS rounds, 16 simulated GPUs, API server tests/k8s/dra_apiserver.py (HTTPS, schema checks off)"
"$B/bench/dra_bench" "https://127.0.0.1:$(cat "$W/api/port")" "$W/sa" "$B/sim/libnvidia-ml.so.1" "$W/claims" "$W/work" "$ROUNDS"

if ! tests/k8s/dra_kubelet/build.sh "$W/kubelet" >"$W/kubelet.log" 2>&1; then
    echo "bench/dra.sh: the grpc-go kubelet did not build: $(tail -3 "$W/kubelet.log")" >&2
    exit 0
fi
"$B/bin/gpumem-dra" --node bench-node --api-server "https://127.0.0.1:$(cat "$W/api/port")" --service-account "$W/sa" \
    --nvml "$B/sim/libnvidia-ml.so.1" --state-dir "$W/d/state" --cdi-dir "$W/d/cdi" --groups-dir "$W/d/groups" \
    --shim "$B/lib/libgpumem.so" --registry-dir "$W/d/reg" --plugins-dir "$W/d/plugins" 2>"$W/driver.log" &
DRA_PID=$!
for _ in $(seq 100); do [ -S "$W/d/plugins/gpumem.io/dra.sock" ] && break; sleep 0.1; done
"$W/kubelet/dra_kubelet" time "$W/d/plugins/gpumem.io/dra.sock" "$ROUNDS" default/bench-0/b0000000-0000-0000-0000-000000000000

#!/usr/bin/env bash
# The simulated libnvidia-ml.so.1 as NVML clients reach it (dlopen + dlsym):
# tests/progs/nvml_client run against several simulated machines, each with
# its own private state directory. Cases are prefixed with the machine.
set -u
cd "${GPUMEM_TOP:-$(dirname "$0")/../..}"
BUILD=${BUILD:-build}
client=$BUILD/tests/progs/nvml_client
if [ ! -x "$client" ] || [ ! -f "$BUILD/sim/libnvidia-ml.so.1" ]; then
    echo "FAIL nvml_sim: $client or $BUILD/sim/libnvidia-ml.so.1 not built"
    exit 1
fi
# Where the simulated libcuda is built, the cases that need it must run.
require_cuda=()
[ -f "$BUILD/sim/libcuda.so.1" ] && require_cuda=(NVML_REQUIRE_CUDA=1)
states=()
trap 'rm -rf "${states[@]}"' EXIT

# machine NAME VAR=VALUE...: runs the client with those settings.
machine() {
    local name=$1 state out rc
    shift
    state=$(mktemp -d)
    states+=("$state")
    out=$(env GPUMEM_SIM_STATE="$state" LD_LIBRARY_PATH="$BUILD/sim${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        "${require_cuda[@]}" "$@" "$client" 2>&1)
    rc=$?
    sed -E "s/^(ok|FAIL|skip) /\1 $name\//" <<<"$out"
    if [ $rc -ne 0 ] && ! grep -q '^FAIL ' <<<"$out"; then
        echo "FAIL $name: nvml_client exited with status $rc"
    fi
}

GiB=$((1 << 30))
MiB=$((1 << 20))
# The default machine: one 16 GiB device, the default context overhead.
machine default NVML_EXPECT_COUNT=1 NVML_EXPECT_TOTALS=$((16 * GiB))
# Two different devices, and a context overhead set by the test.
machine h200_a100 GPUMEM_SIM_DEVICES=H200:141G,A100:40G GPUMEM_SIM_CTX_OVERHEAD=256M \
    NVML_EXPECT_COUNT=2 NVML_EXPECT_TOTALS="$((141 * GiB)) $((40 * GiB))" NVML_EXPECT_NAMES="H200 A100" \
    NVML_EXPECT_CTX=$((256 * MiB))
# Eight identical devices.
machine eight_gpus GPUMEM_SIM_DEVICES=8x80G GPUMEM_SIM_CTX_OVERHEAD=500M \
    NVML_EXPECT_COUNT=8 NVML_EXPECT_TOTALS="$(printf "$((80 * GiB)) %.0s" 1 2 3 4 5 6 7 8)" \
    NVML_EXPECT_CTX=$((500 * MiB))
# The driver version is settable; NVML's version follows it (13.x from r580).
machine r580 GPUMEM_SIM_DRIVER_VERSION=580.95.05 NVML_CLIENT_DRIVER_VERSION=580.95.05 \
    NVML_CLIENT_NVML_VERSION=13.580.95.05 NVML_EXPECT_COUNT=1 NVML_EXPECT_TOTALS=$((16 * GiB))
# A value that is not a version is reported on stderr and the default kept.
machine bad_version GPUMEM_SIM_DRIVER_VERSION='550;rm' NVML_EXPECT_COUNT=1 NVML_EXPECT_TOTALS=$((16 * GiB)) |
    grep -v "^gpumem sim: GPUMEM_SIM_DRIVER_VERSION='550;rm' is not a version"

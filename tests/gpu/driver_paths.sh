#!/usr/bin/env bash
# Which of the paths gpumem's MIG and driver-limit code relies on the real
# NVIDIA driver supports (docs/mig.md, docs/driver-limits.md). Run on a
# machine with a GPU and its driver, from the repository root:
#     make && tests/gpu/driver_paths.sh | tee gpu-driver-paths.txt
# Prints "record ..." facts (build/tests/progs/gpu_driver_probe: NVML's MIG
# calls and their answers, whether nvmlDeviceSetMemoryLimits_v1 / Get are
# exported and what Get answers for this process's cgroup, CUDA's UUIDs on
# each device) and the protocol's ok / FAIL / skip lines for what the
# simulated GPU assumes and gpumem does:
#   - on a MIG device cuDeviceGetUuid_v2 gives the MIG UUID's bytes and
#     cuDeviceGetUuid the GPU's (sim/cuda/device.c models it so);
#   - the shim names a MIG device MIG-<uuid>: a --limit MIG-<uuid>=2G is the
#     size gpumem run's process sees there;
#   - with GPUMEM_GPU_SET_LIMITS=1, as root, on a cgroup v2 machine: the
#     driver limit set on a scratch cgroup reads back and clears (changes
#     nothing else: the cgroup is new and empty, and removed after).
# Results go into docs/gpu-validation.md with the date, GPU, driver and commit.
# On the simulated GPU (GPUMEM_SIM_DIR=build/sim, GPUMEM_SIM_DEVICES with a
# MIG layout, GPUMEM_SIM_DRIVER_VERSION=615.10.01) it checks the emulation.
set -u
cd "$(dirname "$0")/../.."
B=${BUILD:-build}
PROBE="$B/tests/progs/gpu_driver_probe"
G="$B/bin/gpumem"
[ -x "$PROBE" ] || { echo "FAIL driver_paths: $PROBE not built (make)"; exit 1; }
export GPUMEM_STATE_DIR=$(mktemp -d)
trap 'rm -rf "$GPUMEM_STATE_DIR"' EXIT
if [ -n "${GPUMEM_SIM_DIR:-}" ]; then
    export LD_LIBRARY_PATH="$GPUMEM_SIM_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    SIM=--sim
else
    SIM=""
fi
echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%Y-%m-%dT%H:%MZ)"

nv=$("$PROBE")
echo "$nv"
echo "$("$PROBE" cuda)"

# Each MIG device: CUDA's UUIDs there, and the shim's name for it.
while read -r gpu idx uuid; do
    parent=$(sed -n "s/^record gpu $gpu uuid=GPU-\([^ ]*\) .*/\1/p" <<<"$nv" | tr -d '-')
    hex=$(tr -d '-' <<<"${uuid#MIG-}")
    out=$(CUDA_VISIBLE_DEVICES=$uuid "$PROBE" cuda)
    echo "$out"
    if grep -q "^record cuda 0 uuid_v1=$parent uuid_v2=$hex " <<<"$out"; then
        echo "ok cuda_uuid_on_mig_$gpu.$idx (v2 = MIG UUID, v1 = GPU UUID)"
    else
        echo "FAIL cuda_uuid_on_mig_$gpu.$idx: expected v1=$parent v2=$hex: $(grep '^record cuda 0' <<<"$out")"
    fi
    tot=$(CUDA_VISIBLE_DEVICES=$uuid "$G" run $SIM --limit "$uuid=2G" -- "$PROBE" cuda | sed -n 's/^record cuda 0 .*total=\([0-9]*\).*/\1/p')
    [ "$tot" = 2147483648 ] && echo "ok shim_limit_by_mig_uuid_$gpu.$idx" ||
        echo "FAIL shim_limit_by_mig_uuid_$gpu.$idx: total ${tot:-?} under --limit $uuid=2G"
done < <(sed -n 's/^record mig \([0-9]*\)\.\([0-9]*\) uuid=\(MIG-[^ ]*\) .*/\1 \2 \3/p' <<<"$nv")
grep -q '^record mig [0-9]*\.[0-9]* uuid=' <<<"$nv" || echo "skip mig_paths: no GPU in MIG mode with instances here"

# The driver's per-cgroup limits on a scratch cgroup.
if grep -q '^record memory_limits.exported set=yes' <<<"$nv"; then
    if [ "${GPUMEM_GPU_SET_LIMITS:-0}" = 1 ] && [ "$(id -u)" = 0 ] &&
       [ "$(stat -f -c %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ] && mkdir /sys/fs/cgroup/gpumem-probe-$$; then
        out=$("$PROBE" set /sys/fs/cgroup/gpumem-probe-$$ 1073741824)
        rmdir /sys/fs/cgroup/gpumem-probe-$$
        grep '^record memory_limits\.\(set\|clear\|get\) GPU' <<<"$out"
        if grep -q "^record memory_limits.set .* rc=0$" <<<"$out" &&
           grep -q "^record memory_limits.get .*gpumem-probe-$$ rc=0 soft=0 hard=1073741824 " <<<"$out"; then
            echo "ok driver_limit_set_reads_back"
        else
            echo "FAIL driver_limit_set_reads_back: see the records above"
        fi
    else
        echo "skip driver_limit_set: set GPUMEM_GPU_SET_LIMITS=1 and run as root on cgroup v2 to try Set on a scratch cgroup"
    fi
else
    echo "skip driver_limit_set: this driver does not export nvmlDeviceSetMemoryLimits_v1 (r615 or later does)"
fi

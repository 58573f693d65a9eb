#!/usr/bin/env bash
# A driver need not export every entry point by name (cudart only ever asks
# cuGetProcAddress). Against build/tests/sim-unnamed/libcuda.so.1, the
# simulated driver without the named exports of cuMemAlloc_v2, cuMemFree_v2,
# cuMemGetInfo_v2, cuCtxCreate_v2, cuMemAllocAsync_ptsz, cuDeviceGetCount and
# both cuDeviceGetUuid forms (Makefile: SIM_UNNAMED), the shim resolves them
# at start-up through the driver's own cuGetProcAddress and enforces the
# limit as usual. Without that, it cannot tell which GPU an allocation is on.
. tests/integration/lib.sh
UNNAMED="$TOP/$BUILD/tests/sim-unnamed"
export GPUMEM_SIM_CTX_OVERHEAD=128M
exports=$(nm -D --defined-only "$UNNAMED/libcuda.so.1" 2>&1 | awk '{print $NF}')
hidden=""
for n in cuMemAlloc_v2 cuDeviceGetUuid cuDeviceGetUuid_v2 cuDeviceGetCount; do
    grep -qx "$n" <<<"$exports" && hidden+=" $n"
done
if [ -n "$hidden" ]; then
    fail driver_hides_names "still exported:$hidden"
else
    ok driver_hides_names
fi
"$GPUMEM" run --sim --limit 1G --name un --keep -- true
in_group() {
    GPUMEM_GROUP_DIR="$GPUMEM_STATE_DIR/un" LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$UNNAMED:$SIMDIR" "$@"
}
check() { # NAME OPS...
    local name=$1; shift
    local out
    if out=$(in_group "$CLIENT" init "$@" 2>&1); then ok "$name"
    else fail "$name" "$(printf '%s' "$out" | tr '\n' '|' | cut -c1-500)"; fi
}
check cuMemAlloc_limited alloc 800M expect 0 alloc 200M expect 2 free 0 expect 0 alloc 200M expect 0
check cuMemAllocAsync_limited async 800M expect 0 async 200M expect 2 free 0 expect 0 async 200M expect 0
out=$(in_group "$CLIENT" init info 2>&1)
expect_in view_is_the_limit "total=1073741824" "$out"
out=$(GPUMEM_LOG=debug in_group "$CLIENT" init 2>&1)
expect_in logs_the_fallback "cuDeviceGetUuid_v2: not exported by name, resolved through cuGetProcAddress (cuDeviceGetUuid@11040)" "$out"

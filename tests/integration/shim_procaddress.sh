# The shim's answers to cuGetProcAddress: hooks of exactly the right
# signature for hooked (name, version, flags), the driver's own pointers for
# everything else, and the driver's own errors for what does not exist.
. tests/integration/lib.sh
"$GPUMEM" run --sim --limit 4G --name pa --keep -- true
GPUMEM_GROUP_DIR="$GPUMEM_STATE_DIR/pa" LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" "$APP_PROGS/procaddress_check"
# Outside any group the application gets the driver's own pointers: the
# shim costs nothing per call there.
out=$(LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" "$APP_PROGS/procaddress_check" 2>&1)
expect_in no_group_gets_drivers_pointers "FAIL cuMemAlloc_3020_hooked: cuMemAlloc@3020 flags=0 -> rc=0 in driver" "$out"

# The shim's answers to cuGetProcAddress: hooks of exactly the right
# signature for hooked (name, version, flags), the driver's own pointers for
# everything else, and the driver's own errors for what does not exist.
. tests/integration/lib.sh
GPUMEM_GROUP_DIR= LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" "$APP_PROGS/procaddress_check"

# A group whose files are corrupt, truncated or from another layout version
# is refused with a clear message, and the shim then fails closed: device
# allocations are refused rather than run unlimited. Without any group the
# shim changes nothing.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=64M
mkgroup() { "$GPUMEM" run --sim --limit 1G --name "$1" --keep -- true; }
try() { GPUMEM_GROUP_DIR="$GPUMEM_STATE_DIR/$1" LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" "$CLIENT" init alloc 1M 2>&1; }

mkgroup magic
printf 'XXXXXXXX' | dd of="$GPUMEM_STATE_DIR/magic/usage" bs=1 count=8 conv=notrunc status=none
out=$(try magic)
expect_in corrupt_region_refused_with_message "not a gpumem usage region" "$out"
expect_in corrupt_region_fails_closed "alloc -> 2" "$out"

mkgroup short
truncate -s 100 "$GPUMEM_STATE_DIR/short/usage"
out=$(try short)
expect_in truncated_region_refused "truncated" "$out"
expect_in truncated_region_fails_closed "alloc -> 2" "$out"

mkgroup version
printf '\x63' | dd of="$GPUMEM_STATE_DIR/version/limits" bs=1 seek=8 count=1 conv=notrunc status=none
out=$(try version)
expect_in other_layout_version_refused "layout version" "$out"
expect_in other_layout_version_fails_closed "alloc -> 2" "$out"

out=$(GPUMEM_GROUP_DIR="$T/nonexistent" LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" "$CLIENT" init alloc 1M 2>&1)
expect_in missing_group_fails_closed "alloc -> 2" "$out"

out=$(LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" "$CLIENT" init alloc 20G info 2>&1)
expect_in no_group_passes_through "alloc -> 2" "$out"   # the 16 GiB device itself refuses 20G
out=$(LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" "$CLIENT" init alloc 8G 2>&1)
expect_in no_group_is_unlimited "alloc -> 0" "$out"
out=$("$GPUMEM" ps -a 2>&1)
expect_in ps_skips_corrupt_group_with_warning "skipping group magic" "$out"

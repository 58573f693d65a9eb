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

# Sizes the accounting cannot hold (past 4 TiB, or near 2^64 where the
# rounding wraps) are refused, never wrapped or truncated; the group is
# unharmed.
out=$(GPUMEM_SIM_DEVICES=1x128T run_sim --limit 100T -- "$CLIENT" init alloc 70T expect 2 \
    alloc 18446744073709551615 expect 2 alloc 1G expect 0 2>&1) &&
    ok huge_sizes_refused || fail huge_sizes_refused "$(echo "$out" | tr '\n' '|')"
expect_in huge_size_refusal_says_why "refused over 4 TiB" "$out"

# A GPU the group cannot account (its device table holds 16) is refused
# a context (which costs memory) like an allocation, and says so once, not
# per call.
args="init"
for i in $(seq 0 15); do args="$args device $i alloc 1M expect 0"; done
out=$(GPUMEM_SIM_DEVICES=17x1G run_sim --limit 512M -- "$CLIENT" $args device 16 expect 2 \
    device 16 expect 2 2>&1) &&
    ok device_table_full_refuses || fail device_table_full_refuses "$(echo "$out" | tail -5 | tr '\n' '|')"
n=$(grep -c "group device table full" <<<"$out")
[ "$n" = 1 ] && ok device_table_full_logged_once || fail device_table_full_logged_once "$n lines"

# A refusal is a warning by default: group, GPU, sizes, and the command to
# change the limit; repeated refusals are rate-limited.
out=$(run_sim --limit 1G --name warned -- "$CLIENT" init alloc 2G expect 2 alloc 2G expect 2 2>&1)
expect_in refusal_warned_by_default "out of memory: refused 2 GiB on GPU 0 (GPU-" "$out"
expect_in refusal_warning_names_group_and_use "in group warned: the group uses 64 MiB of its 1 GiB limit" "$out"
expect_in refusal_warning_gives_command "gpumem limit warned SIZE" "$out"
n=$(grep -c "out of memory: refused" <<<"$out")
[ "$n" = 1 ] && ok refusal_warning_rate_limited || fail refusal_warning_rate_limited "$n lines"
out=$(GPUMEM_LOG=verbose run_sim --limit 1G -- "$CLIENT" init 2>&1)
expect_in unknown_log_level_warns 'GPUMEM_LOG "verbose" is not one of' "$out"

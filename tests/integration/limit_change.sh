# gpumem limit GROUP none (back to unlimited, per GPU or all), and the
# warnings of a change that cannot work as meant: below the measured context
# cost, below current usage, above the GPU's memory. The limit is applied in
# every case.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=64M
S="$GPUMEM_STATE_DIR"
run_sim --limit 1G --name lc --keep -- true
GPUMEM_GROUP_DIR="$S/lc" LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" "$CLIENT" init alloc 100M await "$T/go" >"$T/m.out" 2>&1 &
mj=$!
for i in $(seq 200); do grep -q awaiting "$T/m.out" && break; sleep 0.05; done
out=$("$GPUMEM" limit lc 32M 2>&1); rc=$?
[ "$rc" = 0 ] && expect_in warn_below_context_cost "the new limit 32 MiB is below the measured cost of one CUDA context there (64 MiB)" "$out" \
    || fail warn_below_context_cost "rc=$rc: $out"
expect_in limit_applied_despite_warning "lc: default 32 MiB" "$out"
out=$("$GPUMEM" limit lc 100M 2>&1)
expect_in warn_below_usage "the new limit 100 MiB is below what the group holds there now (164 MiB)" "$out"
out=$("$GPUMEM" limit lc 100T 2>&1)
expect_in warn_above_gpu "the new limit 100 TiB is above the GPU's memory" "$out"
out=$("$GPUMEM" limit lc 2G 2>&1)
case "$out" in *warning*) fail no_warning_when_fine "$out" ;; *) ok no_warning_when_fine ;; esac
out=$("$GPUMEM" limit lc 0=512M 2>&1)
expect_in per_gpu_set ": GPU-" "$out"
out=$("$GPUMEM" limit lc 0=none 2>&1)
expect_in per_gpu_none "unlimited" "$out"
expect_in per_gpu_none_keeps_default "lc: default 2 GiB" "$out"
"$GPUMEM" limit lc 0=512M >/dev/null 2>&1
out=$("$GPUMEM" limit lc none 2>&1)
[ "$out" = "lc: default unlimited" ] && ok none_is_unlimited_everywhere || fail none_is_unlimited_everywhere "$out"
# Unlimited now: a big allocation the old limits refused goes through.
out=$(GPUMEM_GROUP_DIR="$S/lc" LD_PRELOAD="$SHIM_PRELOAD" LD_LIBRARY_PATH="$SIMDIR" "$CLIENT" init alloc 3G 2>&1)
expect_in none_admits "alloc -> 0" "$out"
out=$("$GPUMEM" limit lc nothing 2>&1); rc=$?
[ "$rc" = 2 ] && expect_in bad_size_quoted '"nothing"' "$out" || fail bad_size_quoted "rc=$rc: $out"
touch "$T/go"; wait $mj
exit 0

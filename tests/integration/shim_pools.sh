# Memory pools fail closed (issue 10, item 4): every pool's growth is charged
# or refused, never passed through, and what the simulated driver really
# holds (NVML's per-process truth) stays within the limit. The limit is
# 1 GiB; the simulated context costs 128 MiB, which leaves 896 MiB.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=128M
check() { # NAME LIMIT OPS...
    local name=$1 limit=$2; shift 2
    local out
    if out=$(run_sim --limit "$limit" -- "$CLIENT" init "$@" 2>&1); then ok "$name"
    else fail "$name" "$(printf '%s' "$out" | tr '\n' '|' | cut -c1-600)"; fi
}
# More pools than the shim once had records for (64): the 65th and later
# are charged like the first.
check many_pools_are_charged 1G pools 100 8M expect 0 alloc 200M expect 2 truthle 1G expect 0
# A full pool table refuses the next pool's allocation rather than pass it
# through uncharged.
out=$(run_sim --limit 4G -- "$CLIENT" init pools 1025 2M expect 2 2>&1)
expect_in pool_table_full_is_refused "pools made=1024" "$out"
# A pool holding an idle 800 MiB block cannot reuse it for 200 MiB (the
# simulated pool reuses blocks of the same size only), so that allocation
# grows the pool, past the limit if the idle block stayed. The shim
# reserves the whole 200 MiB; as that does not fit, it trims the pool's
# idle bytes first (as the driver does before failing an allocation): the
# driver never holds more than the limit, and the group is charged what it
# holds.
check pool_growth_never_passes_the_limit 1G async 800M expect 0 freeasync 0 expect 0 async 200M expect 0 \
    truthle 1G expect 0 alloc 600M expect 0 alloc 100M expect 2 truthle 1G expect 0
# The same through a pool of its own.
check created_pool_growth_never_passes_the_limit 1G pools 1 800M expect 0 freeasync 0 expect 0 \
    lastpool 200M expect 0 truthle 1G expect 0 alloc 600M expect 0 alloc 100M expect 2
# What does not fit even without the idle bytes is refused.
check pool_growth_past_limit_is_refused 1G async 800M expect 0 freeasync 0 expect 0 async 900M expect 2 \
    truthle 1G expect 0 alloc 896M expect 0
# A driver that grows a pool in coarser steps than the block (simulated:
# 256 MiB steps) grows it past the reservation of an 800 MiB allocation
# (to 1 GiB) and past the limit: the block is freed back, the pool trimmed,
# the allocation refused, and the driver holds no more than the limit after.
with_env GPUMEM_SIM_POOL_GROWTH=256M check pool_coarse_growth_past_limit_is_given_back 1G async 800M expect 2 \
    truthle 1G expect 0 async 500M expect 0 truthle 1G expect 0 alloc 400M expect 2
# Threads churning one pool in blocks of three sizes near the limit (every
# allocation inside the driver a while): NVML's truth, read after every
# step, never passes the limit.
out=$(with_env GPUMEM_SIM_ALLOC_DELAY_US=200 run_sim --limit 1G -- "$CLIENT" init asyncstorm 4 150 64M 1G expect 0 \
      truthle 128M expect 0 2>&1) && ok async_storm_stays_under_limit ||
    fail async_storm_stays_under_limit "$(printf '%s' "$out" | tr '\n' '|' | cut -c1-600)"
# A pool destroyed while an allocation from it lives: the driver frees the
# pool only once that allocation is freed, so it stays charged until then.
check destroyed_pool_stays_charged_while_used 1G pools 1 800M expect 0 pooldestroy expect 0 alloc 200M expect 2 \
    truthle 1G expect 0 free 0 expect 0 alloc 200M expect 0
check destroyed_idle_pool_is_released 1G pools 1 800M expect 0 freeasync 0 expect 0 pooldestroy expect 0 \
    alloc 800M expect 0

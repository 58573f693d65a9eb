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
# simulated pool reuses blocks of the same size only), so the allocation
# grows the pool past what was reserved and past the limit: it is refused,
# the block is given back and the pool trimmed, so that the driver does not
# hold more than the limit; the idle block stays charged.
check pool_growth_past_limit_is_refused 1G async 800M expect 0 freeasync 0 expect 0 async 200M expect 2 \
    truthle 1G expect 0 alloc 96M expect 0 alloc 1M expect 2 trim expect 0 alloc 800M expect 0
# The same through a pool of its own.
check created_pool_growth_past_limit_is_refused 1G pools 1 800M expect 0 freeasync 0 expect 0 \
    lastpool 200M expect 2 truthle 1G expect 0 alloc 96M expect 0 alloc 1M expect 2
# A pool destroyed while an allocation from it lives: the driver frees the
# pool only once that allocation is freed, so it stays charged until then.
check destroyed_pool_stays_charged_while_used 1G pools 1 800M expect 0 pooldestroy expect 0 alloc 200M expect 2 \
    truthle 1G expect 0 free 0 expect 0 alloc 200M expect 0
check destroyed_idle_pool_is_released 1G pools 1 800M expect 0 freeasync 0 expect 0 pooldestroy expect 0 \
    alloc 800M expect 0

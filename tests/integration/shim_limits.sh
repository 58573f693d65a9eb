# For every allocation API: under the limit succeeds, over it is refused with
# CUDA_ERROR_OUT_OF_MEMORY (2), and freeing gives the bytes back. The limit
# is 1 GiB; the simulated context costs 128 MiB, which the shim measures and
# charges, leaving 896 MiB for allocations.
. tests/integration/lib.sh
export GPUMEM_SIM_CTX_OVERHEAD=128M
check() { # NAME OPS...
    local name=$1; shift
    local out
    if out=$(run_sim --limit 1G -- "$CLIENT" init "$@" 2>&1); then ok "$name"
    else fail "$name" "$(printf '%s' "$out" | tr '\n' '|' | cut -c1-500)"; fi
}
check cuMemAlloc               alloc 800M expect 0 alloc 200M expect 2 free 0 expect 0 alloc 200M expect 0
check cuMemAllocPitch          pitch 1M 800 expect 0 pitch 1M 200 expect 2 free 0 expect 0 pitch 1M 200 expect 0
check cuMemAllocManaged        managed 800M expect 0 managed 200M expect 2 free 0 expect 0 managed 200M expect 0
check cuMemAllocAsync          async 800M expect 0 async 200M expect 2 free 0 expect 0 async 200M expect 0
check cuMemAllocFromPoolAsync  pool 800M expect 0 pool 200M expect 2 free 0 expect 0 pool 200M expect 0
check cuMemCreate_vmm          vmm 800M expect 0 vmm 200M expect 2 free 0 expect 0 vmm 200M expect 0
check cuArrayCreate            array 16384 12800 expect 0 array 16384 3200 expect 2 free 0 expect 0 array 16384 3200 expect 0
check cuArray3DCreate          array3d 1024 1024 200 expect 0 array3d 1024 1024 50 expect 2 free 0 expect 0 array3d 1024 1024 50 expect 0
check cuMipmappedArrayCreate   mipmap 16384 12800 1 expect 0 mipmap 16384 3200 1 expect 2 free 0 expect 0 mipmap 16384 3200 1 expect 0
check second_context_is_charged alloc 800M expect 0 ctx expect 2 free 0 expect 0 ctx expect 0
# A context's allocations die with it: destroying it, or resetting the
# primary context, gives their bytes back (and nothing more).
check destroyed_context_gives_back ctx expect 0 alloc 700M expect 0 ctxdestroy expect 0 alloc 700M expect 0 alloc 200M expect 2
check primary_reset_gives_back  alloc 800M expect 0 reset expect 0 init alloc 800M expect 0 alloc 200M expect 2
# A thread's allocation freed by another thread: its bytes go back to the
# group at once, though the allocating thread still holds its reservation
# (which it gives back at its next allocation); the limit still holds.
check freed_by_another_thread_gives_back talloc 800M expect 0 free 0 expect 0 alloc 800M expect 0 talloc 1M expect 0 talloc 100M expect 2
# The 32-bit cuMemAlloc goes through the limit too; the simulated driver
# refuses it (its pointer cannot hold a 64-bit address), and the charge
# taken for it comes back: 896 MiB still fit.
check cuMemAlloc_v1_charge_rolled_back alloc32 100M expect 801 alloc 896M expect 0
check mixed_apis_share_one_limit alloc 300M expect 0 vmm 300M expect 0 async 200M expect 0 array 16384 3200 expect 2 free 1 expect 0 array 16384 3200 expect 0
check exactly_at_the_limit     alloc 896M expect 0 alloc 1K expect 2
# The same through dlsym of each name (Triton, older cudart).
out=$(run_sim --limit 1G -- "$CLIENT" -m dlsym init alloc 800M expect 0 alloc 200M expect 2 free 0 alloc 200M expect 0 2>&1) &&
    ok dlsym_path_is_enforced || fail dlsym_path_is_enforced "$(echo "$out" | tr '\n' '|')"
# And through direct linking (-lcuda).
if [ -x "$APP_PROGS/linked_client_linked" ]; then
    out=$(run_sim --limit 1G -- "$APP_PROGS/linked_client_linked" 800 200 2>&1)
    expect_in linked_path_is_enforced "second=2" "$out"
else
    skip linked_path_is_enforced "$APP_PROGS/linked_client_linked is not built (make)"
fi
# A pool keeps freed blocks until it is trimmed: the device really holds
# them, so the group stays charged until the trim gives them back.
check pool_retention_is_charged async 800M expect 0 freeasync 0 expect 0 alloc 200M expect 2 trim expect 0 alloc 200M expect 0
check pool_reuse_costs_nothing_new async 800M expect 0 freeasync 0 async 800M expect 0 async 200M expect 2

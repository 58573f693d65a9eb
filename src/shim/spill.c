/* Host-memory spill: the slow path of an allocation past the device limit
 * (spill.h, docs/spill.md). Nothing here is on the fast path: an
 * allocation comes here only after its lane's reservation could not grow. */
#include "spill.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gpumem/hostmem.h"

typedef PFN_cuMemAllocManaged_v6000 PFN_cuMemAllocManaged;
typedef PFN_cuMemFree_v3020 PFN_cuMemFree_v2;

/* The group's swap allowance and flags, read consistently (seqlock). */
static uint64_t swap_allowance(uint32_t *flags)
{
    struct gm_limits l;
    if (gm_limits_read(g.limits, &l) < 0) {
        *flags = 0;
        return 0;
    }
    *flags = l.swap_flags;
    return l.swap;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cu_of_gd(int gd)
{
    for (int i = 0; i < GM_MAX_CU_DEVICES; i++)
        if (atomic_load_explicit(&g.gd_of[i], memory_order_relaxed) == gd)
            return i;
    return -1;
}

static void refuse(int gd, uint64_t bytes, const char *fmt_reason, const char *a, const char *b)
{
    char asked[32], reason[512];
    shim_count_refusal(gd, bytes);
    gm_format_size(bytes, asked, sizeof asked);
    snprintf(reason, sizeof reason, fmt_reason, a, b);
    shim_log_refusal("out of memory: refused %s on GPU %d (%s) in group %.64s: past its device limit, and %s",
                     asked, cu_of_gd(gd), g.usage->dev[gd].uuid, g.limits->name, reason);
}

/* The device limit refused `bytes` on gd: charge them to the swap of the
 * calling thread's cell instead, if the allowance and the host allow. */
static CUresult spill_charge(int gd, uint64_t bytes, int kind, uint64_t *v)
{
    uint32_t flags;
    uint64_t swap = swap_allowance(&flags);
    char have[32], need[32];
    if (swap == 0) { /* no spill: the usual refusal */
        shim_note_refusal(gd, bytes);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    char why[256];
    uint64_t room = shim_host_room(why, sizeof why);
    if (room != GM_HOSTMEM_UNKNOWN && bytes > room) {
        gm_format_size(room, have, sizeof have);
        refuse(gd, bytes, "the host cannot give it (%s left: %.200s)", have, why);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    int lane = shim_tl.lane >= 0 ? shim_tl.lane : GM_LANE_SHARED;
    uint64_t off = alloc_cell_bits((unsigned)lane, gd);
    struct gm_cell *c = shim_cell(g.slot, off);
    /* Added, then summed (seq_cst): of two racing spills that together
     * pass the allowance, at least one sees the other (as account.h). */
    atomic_fetch_add(&c->swapped, bytes);
    uint64_t used = gm_usage_swapped(g.usage, -1);
    if (used > swap) {
        atomic_fetch_sub(&c->swapped, bytes);
        gm_format_size(swap, have, sizeof have);
        gm_format_size(used - bytes, need, sizeof need);
        refuse(gd, bytes, "its swap is full (%s of %s used)", need, have);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    atomic_fetch_add_explicit(&c->allocs, 1, memory_order_relaxed);
    /* With promotion on, the next free from this thread's device cell is
     * the cue to look for room (account.h shim_release -> shim_cell_trim):
     * the refusal that brought us here left its trim mark at 0. Only the
     * cell's own thread writes it; the shared lane has none. */
    if ((flags & GM_SWAP_PROMOTE) && lane != GM_LANE_SHARED)
        atomic_store(&c->trim_below, atomic_load(&c->charged));
    uint64_t zero = 0;
    if (atomic_compare_exchange_strong(&g.usage->first_spill_ns, &zero, now_ns())) {
        gm_format_size(bytes, need, sizeof need);
        shim_log(LOG_WARN, "group %.64s passed its device limit: %s spilled to host memory (slower; see gpumem ps)",
                 g.limits->name, need);
    }
    *v = alloc_pack_cell(bytes, kind, off) | ALLOC_SPILLED;
    return CUDA_SUCCESS;
}

CUresult shim_charge_or_spill(uint64_t bytes, int kind, uint64_t *v)
{
    /* No swap: the plain path, with its GPUMEM_OOM=wait (a plain load: a
     * concurrent `gpumem limit --swap` is seen at the next allocation). */
    if (!g.limits || *(const volatile uint64_t *)&g.limits->swap == 0)
        return shim_charge_slow(-1, bytes, kind, v);
    shim_tl.quiet = 1;
    CUresult r = shim_charge_slow(-1, bytes, kind, v);
    int over = shim_tl.quiet == 2;
    shim_tl.quiet = 0;
    if (r == CUDA_SUCCESS || !over)
        return r;
    int gd = shim_current_gd();
    if (gd < 0 || !g.slot)
        return CUDA_ERROR_OUT_OF_MEMORY;
    return spill_charge(gd, bytes, kind, v);
}

CUresult shim_spill_managed(CUdeviceptr *dptr, size_t bytesize, unsigned flags)
{
    CUdevice dev;
    if (!real.cuMemAllocManaged || !real.cuMemAdvise || !real.cuCtxGetDevice || real.cuCtxGetDevice(&dev) != CUDA_SUCCESS)
        return CUDA_ERROR_OUT_OF_MEMORY; /* cannot place it: it would land on the device uncharged */
    CUresult r = ((PFN_cuMemAllocManaged)real.cuMemAllocManaged)(dptr, bytesize, flags);
    if (r != CUDA_SUCCESS)
        return r;
    /* Preferred on the host: pages are populated there and stay there;
     * accessed by the device: it maps them rather than migrating them on a
     * fault. Both before any touch, so nothing lands on the device. */
    r = real.cuMemAdvise(*dptr, bytesize, CU_MEM_ADVISE_SET_PREFERRED_LOCATION, CU_DEVICE_CPU);
    if (r == CUDA_SUCCESS)
        r = real.cuMemAdvise(*dptr, bytesize, CU_MEM_ADVISE_SET_ACCESSED_BY, dev);
    if (r != CUDA_SUCCESS) {
        shim_log(LOG_WARN, "spill: cuMemAdvise failed (%d): allocation refused", (int)r);
        ((PFN_cuMemFree_v2)real.cuMemFree_v2)(*dptr);
        *dptr = 0;
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    return CUDA_SUCCESS;
}

void shim_spill_release(uint64_t v)
{
    struct gm_proc_slot *s = g.slot;
    if (!s)
        return;
    struct gm_cell *c = shim_cell(s, alloc_cell_off(v));
    atomic_fetch_sub(&c->swapped, alloc_bytes(v));
    atomic_fetch_add_explicit(&c->frees, 1, memory_order_relaxed);
}

uint64_t shim_host_room(char *why, size_t len) { return gm_host_room("/", why, len); }

/* ---- promotion ---------------------------------------------------------- */

#define PROMOTE_BATCH 32

struct candidates {
    uint64_t key[PROMOTE_BATCH], value[PROMOTE_BATCH];
    int n;
};

static void collect(const struct at_entry *e, void *arg)
{
    struct candidates *c = arg;
    if (c->n < PROMOTE_BATCH && alloc_spilled(e->value)) {
        c->key[c->n] = e->key;
        c->value[c->n++] = e->value;
    }
}

/* Replaces key's value if it is still `expect` (the allocation was not
 * freed, or freed and made again, meanwhile). */
static int entry_replace(uint64_t key, uint64_t expect, uint64_t value)
{
    uint64_t h = at_hash(key);
    struct at_stripe *s = at_stripe_of(&live_allocs, h);
    at_lock(s);
    struct at_entry *p = s->e + at_home(h, s->mask);
    while (p->key && p->key != key)
        p++;
    int ok = p->key == key && p->value == expect;
    if (ok)
        p->value = value;
    at_unlock(s);
    return ok;
}

/* Moves one spilled allocation to the device: device charge first (on the
 * shared lane: any thread may free it), then the driver, then the table
 * entry and the swap. 1 when moved, 0 when the device has no room, -1 when
 * the allocation is gone or the driver refused. */
static int promote_one(uint64_t key, uint64_t v)
{
    int gd = alloc_gd(v), cu = cu_of_gd(gd);
    uint64_t bytes = alloc_bytes(v);
    CUdeviceptr base;
    size_t size;
    if (cu < 0 || !real.cuMemGetAddressRange_v2 || !real.cuMemPrefetchAsync ||
        real.cuMemGetAddressRange_v2(&base, &size, key) != CUDA_SUCCESS || base != key)
        return -1;
    shim_tl.quiet = 1;
    CUresult r = shim_reserve(gd, bytes);
    shim_tl.quiet = 0;
    if (r != CUDA_SUCCESS)
        return 0;
    /* Preferred on the device now, and moved there (stream 0: ordered after
     * the legacy stream's work; managed memory stays coherent meanwhile). */
    if (real.cuMemAdvise(key, size, CU_MEM_ADVISE_SET_PREFERRED_LOCATION, cu) != CUDA_SUCCESS ||
        real.cuMemPrefetchAsync(key, size, cu, NULL) != CUDA_SUCCESS) {
        real.cuMemAdvise(key, size, CU_MEM_ADVISE_SET_PREFERRED_LOCATION, CU_DEVICE_CPU);
        shim_unreserve(gd, bytes);
        return -1;
    }
    uint64_t nv = alloc_pack_cell(bytes, alloc_kind(v), alloc_cell_bits(GM_LANE_SHARED, gd));
    if (!entry_replace(key, v, nv)) {
        shim_unreserve(gd, bytes);
        return -1;
    }
    atomic_fetch_sub(&shim_cell(g.slot, alloc_cell_off(v))->swapped, bytes);
    return 1;
}

static _Atomic int promoting; /* one promotion at a time in a process */

void shim_spill_fork_child(void) { atomic_store(&promoting, 0); }

int shim_spill_promote(void)
{
    struct gm_proc_slot *s = shim_hot_slot();
    if (!s || gm_slot_swapped(s) == 0)
        return 0;
    uint32_t flags;
    swap_allowance(&flags);
    if (!(flags & GM_SWAP_PROMOTE) || atomic_exchange(&promoting, 1))
        return 0;
    struct candidates c = {.n = 0};
    at_foreach(&live_allocs, collect, &c); /* copied under the stripes' locks, moved with none held */
    int moved = 0;
    for (int i = 0; i < c.n; i++) {
        int rc = promote_one(c.key[i], c.value[i]);
        if (rc == 0)
            break;
        moved += rc > 0;
    }
    atomic_store(&promoting, 0);
    if (moved)
        shim_log(LOG_INFO, "group %.64s: %d spilled allocation%s moved back to the device", g.limits->name, moved,
                 moved == 1 ? "" : "s");
    return moved;
}

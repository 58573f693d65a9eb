/* This process's live allocations: driver handle/pointer -> (charged bytes,
 * kind, group device). Needed because a free names only the pointer, and
 * the charge must go back to the allocation's own device.
 *
 * 64 stripes, each a linear-probing table under its own spinlock, picked by
 * the key's hash: two threads rarely meet on a stripe, so the hot path costs
 * one uncontended atomic exchange and a release store; lookups are O(1)
 * whatever the number of live allocations. Deletion shifts entries back (no
 * tombstones), so probe lengths stay short forever. A stripe grows by
 * doubling (mmap; amortised, never per call). Locks are process-private and
 * never held across a driver call; fork() holds them all so the child gets
 * a consistent (and then emptied) table. */
#include "shim.h"

#include <sched.h>
#include <string.h>
#include <sys/mman.h>

#define STRIPES 64
#define STRIPE_INITIAL 256 /* entries */

struct entry {
    uint64_t key;   /* 0 = empty (no allocation has handle/address 0) */
    uint64_t value;
};

struct stripe {
    _Atomic int lock;
    uint32_t mask;      /* capacity - 1; capacity 0 until first insert */
    uint32_t count;
    struct entry *e;
} __attribute__((aligned(64)));

static struct stripe stripes[STRIPES];

static inline uint64_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
}

static inline void lock(struct stripe *s)
{
    for (int spins = 0; atomic_exchange_explicit(&s->lock, 1, memory_order_acquire); spins++) {
        while (atomic_load_explicit(&s->lock, memory_order_relaxed))
            if (++spins > 100) {
                sched_yield();
                spins = 0;
            }
    }
}

static inline void unlock(struct stripe *s) { atomic_store_explicit(&s->lock, 0, memory_order_release); }

static int grow(struct stripe *s)
{
    uint32_t cap = s->mask ? (s->mask + 1) * 2 : STRIPE_INITIAL;
    struct entry *ne = mmap(NULL, cap * sizeof *ne, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ne == MAP_FAILED)
        return -1;
    uint32_t nmask = cap - 1;
    if (s->e) {
        for (uint32_t i = 0; i <= s->mask; i++) {
            if (!s->e[i].key)
                continue;
            uint32_t j = (uint32_t)(mix(s->e[i].key) >> 6) & nmask;
            while (ne[j].key)
                j = (j + 1) & nmask;
            ne[j] = s->e[i];
        }
        munmap(s->e, (s->mask + 1) * sizeof *s->e);
    }
    s->e = ne;
    s->mask = nmask;
    return 0;
}

int alloc_table_insert(uint64_t key, uint64_t value)
{
    uint64_t h = mix(key);
    struct stripe *s = &stripes[h & (STRIPES - 1)];
    int rc = 0;
    lock(s);
    if (unlikely((s->count + 1) * 2 > s->mask + 1 || !s->e) && grow(s) < 0) {
        rc = -1;
    } else {
        uint32_t j = (uint32_t)(h >> 6) & s->mask;
        while (s->e[j].key && s->e[j].key != key)
            j = (j + 1) & s->mask;
        if (!s->e[j].key)
            s->count++;
        s->e[j].key = key;
        s->e[j].value = value;
    }
    unlock(s);
    return rc;
}

int alloc_table_remove(uint64_t key, uint64_t *value)
{
    uint64_t h = mix(key);
    struct stripe *s = &stripes[h & (STRIPES - 1)];
    int found = 0;
    lock(s);
    if (likely(s->e)) {
        uint32_t mask = s->mask, j = (uint32_t)(h >> 6) & mask;
        while (s->e[j].key && s->e[j].key != key)
            j = (j + 1) & mask;
        if (s->e[j].key == key) {
            found = 1;
            *value = s->e[j].value;
            s->count--;
            /* Backward-shift deletion: move later members of the cluster
             * into the hole when their home slot allows it. */
            uint32_t hole = j;
            for (uint32_t k = (j + 1) & mask; s->e[k].key; k = (k + 1) & mask) {
                uint32_t home = (uint32_t)(mix(s->e[k].key) >> 6) & mask;
                if (((k - home) & mask) >= ((k - hole) & mask)) {
                    s->e[hole] = s->e[k];
                    hole = k;
                }
            }
            s->e[hole].key = 0;
            s->e[hole].value = 0;
        }
    }
    unlock(s);
    return found;
}

void alloc_table_fork_prepare(void)
{
    for (int i = 0; i < STRIPES; i++)
        lock(&stripes[i]);
}

void alloc_table_fork_parent(void)
{
    for (int i = STRIPES - 1; i >= 0; i--)
        unlock(&stripes[i]);
}

/* The child starts with no driver state (CUDA contexts do not survive
 * fork), so it starts with no allocations either. */
void alloc_table_fork_child(void)
{
    for (int i = 0; i < STRIPES; i++) {
        struct stripe *s = &stripes[i];
        if (s->e)
            memset(s->e, 0, (s->mask + 1) * sizeof *s->e);
        s->count = 0;
        unlock(s);
    }
}

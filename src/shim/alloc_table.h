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
 * a consistent (and then emptied) table. Inline: this is the hot path. */
#ifndef GPUMEM_SHIM_ALLOC_TABLE_H
#define GPUMEM_SHIM_ALLOC_TABLE_H

#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#define AT_STRIPES 64

struct at_entry {
    uint64_t key;   /* 0 = empty (no allocation has handle/address 0) */
    uint64_t value;
};

struct at_stripe {
    _Atomic int lock;
    uint32_t mask;      /* capacity - 1; 0 until the first insert */
    uint32_t count;
    struct at_entry *e;
} __attribute__((aligned(64)));

/* A table; the shim has one for live allocations, and two more (call site,
 * time) only while tracing (GPUMEM_TRACE / GPUMEM_LEAK_REPORT). */
struct at_table {
    struct at_stripe s[AT_STRIPES];
};
extern struct at_table live_allocs;

int at_grow(struct at_stripe *s);
void at_lock_slow(struct at_stripe *s);

/* Fibonacci hashing: one multiply spreads aligned device addresses. The top
 * bits pick the stripe, lower ones the home slot. */
static inline uint64_t at_hash(uint64_t key) { return key * 0x9E3779B97F4A7C15ull; }
static inline struct at_stripe *at_stripe_of(struct at_table *t, uint64_t h) { return &t->s[h >> 58]; }
static inline uint32_t at_home(uint64_t h, uint32_t mask) { return (uint32_t)(h >> 26) & mask; }

static inline void at_lock(struct at_stripe *s)
{
    if (__builtin_expect(atomic_exchange_explicit(&s->lock, 1, memory_order_acquire), 0))
        at_lock_slow(s);
}

static inline void at_unlock(struct at_stripe *s) { atomic_store_explicit(&s->lock, 0, memory_order_release); }

static inline int at_insert(struct at_table *t, uint64_t key, uint64_t value)
{
    uint64_t h = at_hash(key);
    struct at_stripe *s = at_stripe_of(t, h);
    int rc = 0;
    at_lock(s);
    if (__builtin_expect((s->count + 1) * 2 > s->mask + 1, 0) && at_grow(s) < 0) {
        rc = -1;
    } else {
        uint32_t j = at_home(h, s->mask);
        while (s->e[j].key && s->e[j].key != key)
            j = (j + 1) & s->mask;
        s->count += s->e[j].key == 0;
        s->e[j].key = key;
        s->e[j].value = value;
    }
    at_unlock(s);
    return rc;
}

static inline int at_remove(struct at_table *t, uint64_t key, uint64_t *value)
{
    uint64_t h = at_hash(key);
    struct at_stripe *s = at_stripe_of(t, h);
    int found = 0;
    at_lock(s);
    if (__builtin_expect(s->e != 0, 1)) {
        uint32_t mask = s->mask, j = at_home(h, mask);
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
                uint32_t home = at_home(at_hash(s->e[k].key), mask);
                if (((k - home) & mask) >= ((k - hole) & mask)) {
                    s->e[hole] = s->e[k];
                    hole = k;
                }
            }
            s->e[hole].key = 0;
        }
    }
    at_unlock(s);
    return found;
}

static inline int alloc_table_insert(uint64_t key, uint64_t value) { return at_insert(&live_allocs, key, value); }
static inline int alloc_table_remove(uint64_t key, uint64_t *value) { return at_remove(&live_allocs, key, value); }

/* Calls fn for every entry of t (each stripe locked while it is walked). */
void at_foreach(struct at_table *t, void (*fn)(uint64_t key, uint64_t value, void *ctx), void *ctx);

void alloc_table_fork_prepare(void);
void alloc_table_fork_parent(void);
void alloc_table_fork_child(void);

#endif

/* This process's live allocations: driver handle/pointer -> (charged bytes,
 * kind, group device, birth stamp, call site). Needed because a free names
 * only the pointer, and the charge must go back to the allocation's own
 * device; also what `gpumem inspect` reads (layout: gpumem/live_table.h).
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

#include "gpumem/live_table.h"
#include "gpumem/ticks.h"

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

/* Probing walks pointers (one compare wraps at the end) rather than
 * masked indices: fewer instructions per step on the hot path. */
static inline struct at_entry *at_next(struct at_entry *p, struct at_entry *e, struct at_entry *last)
{
    return p == last ? e : p + 1;
}

/* Adds key. Returns 0; 1 when key was already there (its old entry is in
 * *old: the driver reused an address whose free the shim never saw); -1
 * when the table cannot grow. */
static inline int at_insert(struct at_table *t, uint64_t key, uint64_t value, uint64_t site, struct at_entry *old)
{
    uint64_t h = at_hash(key), born = gm_ticks();
    struct at_stripe *s = at_stripe_of(t, h);
    int rc = 0;
    at_lock(s);
    if (__builtin_expect(s->count >= s->grow_at, 0) && at_grow(s) < 0) {
        rc = -1;
    } else {
        struct at_entry *e = s->e, *last = e + s->mask, *p = e + at_home(h, s->mask);
        uint64_t k;
        while ((k = p->key) != 0 && k != key)
            p = at_next(p, e, last);
        if (__builtin_expect(k != 0, 0)) {
            *old = *p;
            rc = 1;
        } else {
            s->count++;
        }
        *p = (struct at_entry){key, value, born, site};
    }
    at_unlock(s);
    return rc;
}

/* Removes key; returns 1 and its packed value in *value, or 0 when it is
 * not there (key 0 never is). */
static inline int at_remove(struct at_table *t, uint64_t key, uint64_t *value)
{
    if (__builtin_expect(key == 0, 0))
        return 0;
    uint64_t h = at_hash(key);
    struct at_stripe *s = at_stripe_of(t, h);
    at_lock(s);
    uint32_t mask = s->mask;
    struct at_entry *e = s->e, *last = e + mask, *p = e + at_home(h, mask);
    uint64_t k;
    while ((k = p->key) != key) {
        if (!k) {
            at_unlock(s);
            return 0;
        }
        p = at_next(p, e, last);
    }
    *value = p->value;
    s->count--;
    /* Backward-shift deletion: move later members of the cluster into the
     * hole when their home slot allows it (no tombstones). */
    struct at_entry *hole = p;
    for (struct at_entry *q = at_next(p, e, last); q->key; q = at_next(q, e, last)) {
        uint32_t qi = (uint32_t)(q - e), home = at_home(at_hash(q->key), mask);
        if (((qi - home) & mask) >= ((qi - (uint32_t)(hole - e)) & mask)) {
            *hole = *q;
            hole = q;
        }
    }
    hole->key = 0;
    at_unlock(s);
    return 1;
}

/* An allocation whose free the driver refused is still live: back in the
 * table (its age restarts; its call site is forgotten). */
static inline void at_put_back(struct at_table *t, uint64_t key, uint64_t value)
{
    struct at_entry old;
    at_insert(t, key, value, 0, &old);
}

/* Calls fn for every entry of t (each stripe locked while it is walked). */
void at_foreach(struct at_table *t, void (*fn)(const struct at_entry *e, void *ctx), void *ctx);

void alloc_table_fork_prepare(void);
void alloc_table_fork_parent(void);
void alloc_table_fork_child(void);

#endif

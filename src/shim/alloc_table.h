/* This process's live allocations: driver handle/pointer -> (charged bytes,
 * kind, group device, birth stamp, call site). Needed because a free names
 * only the pointer, and the charge must go back to the allocation's own
 * device; also what `gpumem inspect` reads (layout: gpumem/live_table.h).
 *
 * 64 stripes, each a linear-probing table under its own spinlock, picked by
 * the key's hash: two threads rarely meet on a stripe, so the hot path costs
 * one uncontended atomic exchange and a release store; lookups are O(1)
 * whatever the number of live allocations. A stripe is kept at most a
 * quarter full and has a quarter more slots past its last home slot, so a
 * cluster can never reach the end: probes walk forward to an empty entry,
 * with no wrap-around and no bounds check. Deletion shifts entries back (no
 * tombstones), so probe lengths stay short forever. A stripe grows by
 * doubling (mmap; amortised, never per call). Locks are process-private and
 * never held across a driver call; fork() holds them all so the child gets
 * a consistent (and then emptied) table. Inline: this is the hot path. */
#ifndef GPUMEM_SHIM_ALLOC_TABLE_H
#define GPUMEM_SHIM_ALLOC_TABLE_H

#include <stdatomic.h>
#include <stdint.h>

#include "gpumem/live_table.h"
#include "gpumem/ticks.h"

extern struct at_table live_allocs __attribute__((visibility("hidden")));

/* Fibonacci hashing: one multiply spreads aligned device addresses. The top
 * bits pick the stripe, lower ones the home slot. */
static inline uint64_t at_hash(uint64_t key) { return key * 0x9E3779B97F4A7C15ull; }
static inline struct at_stripe *at_stripe_of(struct at_table *t, uint64_t h)
{
    struct at_stripe *s = &t->s[h >> 58];
    /* Opaque from here: the compiler would otherwise recompute the address
     * from the index after every barrier rather than keep it (an alloc+free
     * pair costs 3 instructions more with GCC, 2 with clang without this;
     * docs/performance.md). */
    __asm__("" : "+r"(s));
    return s;
}
static inline uint32_t at_home(uint64_t h, uint32_t mask) { return (uint32_t)(h >> 26) & mask; }

/* One attempt at a stripe's lock: 1 when it is ours. */
static inline int at_trylock(struct at_stripe *s)
{
    return !atomic_exchange_explicit(&s->lock, 1, memory_order_acquire);
}

/* A contended lock: spin, yielding the CPU now and then (out of line: two
 * threads rarely meet on a stripe). */
void at_lock_slow(struct at_stripe *s) __attribute__((visibility("hidden")));

static inline void at_lock(struct at_stripe *s)
{
    if (__builtin_expect(!at_trylock(s), 0))
        at_lock_slow(s);
}

static inline void at_unlock(struct at_stripe *s) { atomic_store_explicit(&s->lock, 0, memory_order_release); }

/* The rest of an insert into a locked stripe that has room: probe to the
 * key or the first empty entry, write, unlock. */
static inline int at_put_locked(struct at_stripe *s, uint64_t h, uint64_t key, uint64_t value, uint64_t born,
                                uint64_t site, uint64_t *old)
{
    struct at_entry *p = s->e + at_home(h, s->mask);
    uint64_t k;
    while ((k = p->key) != 0 && k != key)
        p++;
    int rc = 0;
    if (__builtin_expect(k != 0, 0)) {
        *old = p->value;
        s->room++; /* replaced, not added */
        rc = 1;
    }
    *p = (struct at_entry){key, value, born, site};
    at_unlock(s);
    return rc;
}

/* An insert into a locked stripe with no room left: grows it, then
 * finishes like at_insert; or gives up with -1 and the value it was given
 * in *old. Out of line: it is rare. */
int at_insert_grow(struct at_stripe *s, uint64_t h, uint64_t key, uint64_t value, uint64_t born, uint64_t site,
                   uint64_t *old) __attribute__((visibility("hidden")));

/* The rest of an insert once the stripe is locked. */
static inline int at_insert_locked(struct at_stripe *s, uint64_t h, uint64_t key, uint64_t value, uint64_t born,
                                   uint64_t site, uint64_t *old)
{
    if (__builtin_expect(--s->room < 0, 0))
        return at_insert_grow(s, h, key, value, born, site, old);
    return at_put_locked(s, h, key, value, born, site, old);
}

/* The rest of a removal once the stripe is locked (see at_remove). */
static inline int at_remove_locked(struct at_stripe *s, uint64_t h, uint64_t key, uint64_t *value)
{
    uint32_t mask = s->mask;
    struct at_entry *e = s->e, *p = e + at_home(h, mask);
    uint64_t k;
    while ((k = p->key) != key) {
        if (!k) {
            at_unlock(s);
            return 0;
        }
        p++;
    }
    *value = p->value;
    s->room++;
    /* Backward-shift deletion: move later members of the cluster into the
     * hole when their home slot is at or before it (no tombstones). */
    struct at_entry *hole = p;
    for (struct at_entry *q = p + 1; q->key; q++)
        if (e + at_home(at_hash(q->key), mask) <= hole) {
            *hole = *q;
            hole = q;
        }
    hole->key = 0;
    at_unlock(s);
    return 1;
}

/* An insert or a removal that found its stripe locked: takes the lock
 * (spinning), then does all the rest out of line. The inline paths call
 * nothing that returns to them but these, as their last act: a hook that
 * inlines them then keeps no value across a call of its own, and needs no
 * more callee-saved registers than the driver call takes. */
int at_insert_contended(struct at_stripe *s, uint64_t h, uint64_t key, uint64_t value, uint64_t born, uint64_t site,
                        uint64_t *old) __attribute__((visibility("hidden")));
int at_remove_contended(struct at_stripe *s, uint64_t h, uint64_t key, uint64_t *value)
    __attribute__((visibility("hidden")));

/* Adds key. Returns 0; 1 when key was already there (its old value is in
 * *old: the driver reused an address whose free the shim never saw); -1
 * when the table cannot grow (*old = value). */
static inline int at_insert(struct at_table *t, uint64_t key, uint64_t value, uint64_t site, uint64_t *old)
{
    uint64_t h = at_hash(key), born = gm_ticks();
    struct at_stripe *s = at_stripe_of(t, h);
    if (__builtin_expect(!at_trylock(s), 0))
        return at_insert_contended(s, h, key, value, born, site, old);
    return at_insert_locked(s, h, key, value, born, site, old);
}

/* Removes key; returns 1 and its packed value in *value, or 0 when it is
 * not there (key 0 never is). */
static inline int at_remove(struct at_table *t, uint64_t key, uint64_t *value)
{
    if (__builtin_expect(key == 0, 0))
        return 0;
    uint64_t h = at_hash(key);
    struct at_stripe *s = at_stripe_of(t, h);
    if (__builtin_expect(!at_trylock(s), 0))
        return at_remove_contended(s, h, key, value);
    return at_remove_locked(s, h, key, value);
}

/* An allocation whose free the driver refused is still live: back in the
 * table (its age restarts; its call site is forgotten). */
static inline void at_put_back(struct at_table *t, uint64_t key, uint64_t value)
{
    uint64_t old;
    at_insert(t, key, value, 0, &old);
}

/* Calls fn for every entry of t (each stripe locked while it is walked). */
void at_foreach(struct at_table *t, void (*fn)(const struct at_entry *e, void *ctx), void *ctx);

void alloc_table_fork_prepare(void);
void alloc_table_fork_parent(void);
void alloc_table_fork_child(void);

#endif

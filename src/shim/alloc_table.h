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

#include <sched.h>
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
     * from the index after every barrier rather than keep it (3 instructions
     * each time). */
    __asm__("" : "+r"(s));
    return s;
}
static inline uint32_t at_home(uint64_t h, uint32_t mask) { return (uint32_t)(h >> 26) & mask; }

/* A contended lock: spin, yielding the CPU now and then. On x86-64 it
 * preserves every register and is called from inline assembly that says
 * so: the hooks that inline at_lock() then keep their values in
 * caller-saved registers across it. A plain call there would make the
 * compiler move them to callee-saved ones, which each hook would then save
 * and restore on every call (a dozen instructions per hook). */
void at_lock_slow(struct at_stripe *s);
void at_lock_slow_keep(struct at_stripe *s); /* x86-64: at_lock_slow preserving every register */

static inline void at_lock(struct at_stripe *s)
{
    if (__builtin_expect(atomic_exchange_explicit(&s->lock, 1, memory_order_acquire), 0)) {
#if defined(__x86_64__)
        /* Steps over the red zone (a leaf function may keep data there). */
        __asm__ volatile("lea -128(%%rsp), %%rsp\n\tcall at_lock_slow_keep\n\tlea 128(%%rsp), %%rsp"
                         : : "D"(s) : "memory", "cc");
#else
        at_lock_slow(s);
#endif
    }
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
                   uint64_t *old);

/* Adds key. Returns 0; 1 when key was already there (its old value is in
 * *old: the driver reused an address whose free the shim never saw); -1
 * when the table cannot grow (*old = value). */
static inline int at_insert(struct at_table *t, uint64_t key, uint64_t value, uint64_t site, uint64_t *old)
{
    uint64_t h = at_hash(key), born = gm_ticks();
    struct at_stripe *s = at_stripe_of(t, h);
    at_lock(s);
    if (__builtin_expect(--s->room < 0, 0))
        return at_insert_grow(s, h, key, value, born, site, old);
    return at_put_locked(s, h, key, value, born, site, old);
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

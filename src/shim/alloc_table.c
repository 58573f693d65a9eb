/* The allocation table's slow paths: growth, contended locking, fork. The
 * hot path is inline in alloc_table.h. */
#include "alloc_table.h"

#include <sched.h>
#include <string.h>
#include <sys/mman.h>

#define STRIPE_INITIAL 64 /* entries: 2 KiB per stripe once it is used */

/* Every stripe starts on this one empty entry (mask 0, room 0), so a
 * lookup never tests for a missing array and the first insert grows. */
static struct at_entry at_empty[1];

#define EMPTY_STRIPE {.e = at_empty}
#define EMPTY_8 EMPTY_STRIPE, EMPTY_STRIPE, EMPTY_STRIPE, EMPTY_STRIPE, EMPTY_STRIPE, EMPTY_STRIPE, EMPTY_STRIPE, EMPTY_STRIPE
struct at_table live_allocs = {{EMPTY_8, EMPTY_8, EMPTY_8, EMPTY_8, EMPTY_8, EMPTY_8, EMPTY_8, EMPTY_8}};
_Static_assert(AT_STRIPES == 64, "live_allocs initializer names 64 stripes");

/* Takes the lock, spinning, and yielding the CPU every 100 spins. */
void at_lock_slow(struct at_stripe *s)
{
    for (unsigned spins = 0; atomic_exchange_explicit(&s->lock, 1, memory_order_acquire);)
        while (atomic_load_explicit(&s->lock, memory_order_relaxed))
            if (++spins > 100) {
                sched_yield();
                spins = 0;
            }
}

int at_insert_contended(struct at_stripe *s, uint64_t h, uint64_t key, uint64_t value, uint64_t born, uint64_t site,
                        uint64_t *old)
{
    at_lock_slow(s);
    return at_insert_locked(s, h, key, value, born, site, old);
}

int at_remove_contended(struct at_stripe *s, uint64_t h, uint64_t key, uint64_t *value)
{
    at_lock_slow(s);
    return at_remove_locked(s, h, key, value);
}

/* Doubles the stripe (or makes its first array), which is kept at most a
 * quarter full: probes and backward shifts then stay about one entry long
 * however many allocations are live (at half full, 100,000 live
 * allocations cost 50 instructions more a pair; a quarter costs 40 bytes
 * x 4 per live allocation, 16 MiB at 100,000). Called by an insert that
 * found no room (it has taken its room already). The old array is unmapped
 * only after the new one is published; a reader in another process that
 * raced with it gets EFAULT or stale entries, and reads again. */
static int at_grow(struct at_stripe *s)
{
    int fresh = s->e == at_empty;
    uint32_t cap = fresh ? STRIPE_INITIAL : (s->mask + 1) * 2;
    size_t len = (at_slots(cap - 1) + 1) * sizeof(struct at_entry); /* + the guard */
    struct at_entry *ne = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ne == MAP_FAILED)
        return -1;
    uint32_t nmask = cap - 1;
    struct at_entry *old = s->e;
    uint64_t oslots = fresh ? 0 : at_slots(s->mask);
    int32_t count = 0;
    for (uint64_t i = 0; i < oslots; i++) {
        if (!old[i].key)
            continue;
        struct at_entry *p = ne + at_home(at_hash(old[i].key), nmask);
        while (p->key)
            p++;
        *p = old[i];
        count++;
    }
    s->e = ne;
    s->mask = nmask;
    s->room = (int32_t)(cap / 4) - count - 1; /* - the insert that asked */
    if (!fresh)
        munmap(old, (oslots + 1) * sizeof *old);
    return 0;
}

int at_insert_grow(struct at_stripe *s, uint64_t h, uint64_t key, uint64_t value, uint64_t born, uint64_t site,
                   uint64_t *old)
{
    if (at_grow(s) < 0) {
        s->room++;
        at_unlock(s);
        *old = value;
        return -1;
    }
    return at_put_locked(s, h, key, value, born, site, old);
}

void at_foreach(struct at_table *t, void (*fn)(const struct at_entry *e, void *ctx), void *ctx)
{
    for (int i = 0; i < AT_STRIPES; i++) {
        struct at_stripe *s = &t->s[i];
        at_lock(s);
        for (uint64_t j = 0; j < at_slots(s->mask); j++)
            if (s->e[j].key)
                fn(&s->e[j], ctx);
        at_unlock(s);
    }
}

void alloc_table_fork_prepare(void)
{
    for (int i = 0; i < AT_STRIPES; i++)
        at_lock(&live_allocs.s[i]);
}

void alloc_table_fork_parent(void)
{
    for (int i = AT_STRIPES - 1; i >= 0; i--)
        at_unlock(&live_allocs.s[i]);
}

/* The child starts with no driver state (CUDA contexts do not survive
 * fork), so it starts with no allocations either. */
void alloc_table_fork_child(void)
{
    for (int i = 0; i < AT_STRIPES; i++) {
        struct at_stripe *s = &live_allocs.s[i];
        if (s->e != at_empty)
            memset(s->e, 0, at_slots(s->mask) * sizeof *s->e);
        s->room = s->e != at_empty ? (int32_t)((s->mask + 1) / 4) : 0;
        at_unlock(s);
    }
}

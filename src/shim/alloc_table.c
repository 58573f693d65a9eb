/* The allocation table's slow paths: growth, contended locking, fork. The
 * hot path is inline in alloc_table.h. */
#include "alloc_table.h"

#include <string.h>
#include <sys/mman.h>

#define STRIPE_INITIAL 64 /* entries: 2 KiB per stripe once it is used */

/* Every stripe starts on this one empty entry (mask 0, grow_at 0), so a
 * lookup never tests for a missing array and the first insert grows. */
static struct at_entry at_empty[1];

#define EMPTY_STRIPE {.e = at_empty}
#define EMPTY_8 EMPTY_STRIPE, EMPTY_STRIPE, EMPTY_STRIPE, EMPTY_STRIPE, EMPTY_STRIPE, EMPTY_STRIPE, EMPTY_STRIPE, EMPTY_STRIPE
struct at_table live_allocs = {{EMPTY_8, EMPTY_8, EMPTY_8, EMPTY_8, EMPTY_8, EMPTY_8, EMPTY_8, EMPTY_8}};
_Static_assert(AT_STRIPES == 64, "live_allocs initializer names 64 stripes");

void at_lock_slow(struct at_stripe *s)
{
    for (int spins = 0; atomic_exchange_explicit(&s->lock, 1, memory_order_acquire);) {
        while (atomic_load_explicit(&s->lock, memory_order_relaxed))
            if (++spins > 100) {
                sched_yield();
                spins = 0;
            }
    }
}

/* Doubles the stripe, which is kept at most a quarter full: probes and
 * backward shifts then stay about one entry long however many allocations
 * are live (at half full, 100,000 live allocations cost 50 instructions
 * more a pair; a quarter costs 32 bytes x 4 per live allocation, 12.5 MiB
 * at 100,000). The old array is unmapped only after the new one is
 * published; a reader in another process that raced with it gets EFAULT or
 * stale entries, and reads again. */
int at_grow(struct at_stripe *s)
{
    int fresh = s->e == at_empty;
    uint32_t cap = fresh ? STRIPE_INITIAL : (s->mask + 1) * 2;
    struct at_entry *ne = mmap(NULL, cap * sizeof *ne, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ne == MAP_FAILED)
        return -1;
    uint32_t nmask = cap - 1;
    struct at_entry *old = s->e;
    uint32_t omask = s->mask;
    for (uint32_t i = 0; !fresh && i <= omask; i++) {
        if (!old[i].key)
            continue;
        uint32_t j = at_home(at_hash(old[i].key), nmask);
        while (ne[j].key)
            j = (j + 1) & nmask;
        ne[j] = old[i];
    }
    s->e = ne;
    s->mask = nmask;
    s->grow_at = cap / 4;
    if (!fresh)
        munmap(old, (omask + 1) * sizeof *old);
    return 0;
}

void at_foreach(struct at_table *t, void (*fn)(const struct at_entry *e, void *ctx), void *ctx)
{
    for (int i = 0; i < AT_STRIPES; i++) {
        struct at_stripe *s = &t->s[i];
        at_lock(s);
        for (uint32_t j = 0; j <= s->mask; j++)
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
            memset(s->e, 0, (s->mask + 1) * sizeof *s->e);
        s->count = 0;
        at_unlock(s);
    }
}

/* The allocation table's slow paths: growth, contended locking, fork. The
 * hot path is inline in alloc_table.h. */
#include "alloc_table.h"

#include <string.h>
#include <sys/mman.h>

#define STRIPE_INITIAL 256 /* entries */

struct at_table live_allocs;
extern struct at_table trace_sites, trace_times; /* trace.c */
static struct at_table *const tables[] = {&live_allocs, &trace_sites, &trace_times};
#define NTABLES (sizeof tables / sizeof tables[0])

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

int at_grow(struct at_stripe *s)
{
    uint32_t cap = s->e ? (s->mask + 1) * 2 : STRIPE_INITIAL;
    struct at_entry *ne = mmap(NULL, cap * sizeof *ne, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ne == MAP_FAILED)
        return -1;
    uint32_t nmask = cap - 1;
    if (s->e) {
        for (uint32_t i = 0; i <= s->mask; i++) {
            if (!s->e[i].key)
                continue;
            uint32_t j = at_home(at_hash(s->e[i].key), nmask);
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

void at_foreach(struct at_table *t, void (*fn)(uint64_t key, uint64_t value, void *ctx), void *ctx)
{
    for (int i = 0; i < AT_STRIPES; i++) {
        struct at_stripe *s = &t->s[i];
        at_lock(s);
        for (uint32_t j = 0; s->e && j <= s->mask; j++)
            if (s->e[j].key)
                fn(s->e[j].key, s->e[j].value, ctx);
        at_unlock(s);
    }
}

void alloc_table_fork_prepare(void)
{
    for (size_t t = 0; t < NTABLES; t++)
        for (int i = 0; i < AT_STRIPES; i++)
            at_lock(&tables[t]->s[i]);
}

void alloc_table_fork_parent(void)
{
    for (size_t t = NTABLES; t-- > 0;)
        for (int i = AT_STRIPES - 1; i >= 0; i--)
            at_unlock(&tables[t]->s[i]);
}

/* The child starts with no driver state (CUDA contexts do not survive
 * fork), so it starts with no allocations either. */
void alloc_table_fork_child(void)
{
    for (size_t t = 0; t < NTABLES; t++)
        for (int i = 0; i < AT_STRIPES; i++) {
            struct at_stripe *s = &tables[t]->s[i];
            if (s->e)
                memset(s->e, 0, (s->mask + 1) * sizeof *s->e);
            s->count = 0;
            at_unlock(s);
        }
}

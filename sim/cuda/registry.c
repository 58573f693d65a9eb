/* The process's allocations by address: 64 shards, each a chained hash
 * table with its own mutex, chosen by a hash of the base address. Two
 * threads allocating at once almost never meet on a lock, and insert/remove
 * are O(1) however many allocations are live (the benchmark holds 100,000).
 *
 * Interior pointers (memcpy into the middle of an allocation, pointer
 * attributes) are rarer: allocations on their own pages (mmap'ed, IPC,
 * registered) are also kept in a sorted range index searched by bisection;
 * for the small ones (heap.c) a miss falls back to scanning the shards. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define NSHARDS 64

struct shard {
    pthread_mutex_t lock;
    struct sim_alloc **buckets;
    size_t mask;                 /* buckets - 1 (power of two) */
    size_t count;
    char pad[64];
};
static struct shard shards[NSHARDS] = { [0 ... NSHARDS - 1] = { .lock = PTHREAD_MUTEX_INITIALIZER } };
static pthread_once_t shards_once = PTHREAD_ONCE_INIT;

static pthread_rwlock_t ranges_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct sim_alloc **ranges;      /* sorted by base */
static size_t nranges, cap_ranges;

static void shards_init(void)
{
    for (int i = 0; i < NSHARDS; i++) {
        shards[i].mask = 255;
        shards[i].buckets = calloc(256, sizeof(struct sim_alloc *));
    }
}

/* No code holds two of these locks at once. */
void sim_registry_fork(enum sim_fork_phase phase)
{
    for (int i = 0; i < NSHARDS; i++) sim_mutex_fork(&shards[i].lock, phase);
    switch (phase) {
    case SIM_FORK_PREPARE: pthread_rwlock_wrlock(&ranges_lock); break;
    case SIM_FORK_PARENT: pthread_rwlock_unlock(&ranges_lock); break;
    case SIM_FORK_CHILD: pthread_rwlock_init(&ranges_lock, NULL); break;
    }
}

static inline uint64_t hash_addr(uintptr_t p)
{
    uint64_t h = (uint64_t)p >> 8;       /* allocations are 256-byte aligned */
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return h;
}

static int in_range_index(const struct sim_alloc *a)
{
    return a->mmapped || a->kind == SIM_KIND_REGISTERED || a->kind == SIM_KIND_IPC;
}

static size_t range_lower_bound(uintptr_t p)
{
    size_t lo = 0, hi = nranges;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ranges[mid]->base < p) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static void range_add(struct sim_alloc *a)
{
    pthread_rwlock_wrlock(&ranges_lock);
    if (nranges == cap_ranges) {
        size_t nc = cap_ranges ? cap_ranges * 2 : 256;
        struct sim_alloc **n = realloc(ranges, nc * sizeof *n);
        if (!n) { pthread_rwlock_unlock(&ranges_lock); return; }   /* lookups fall back to scans */
        ranges = n;
        cap_ranges = nc;
    }
    size_t i = range_lower_bound(a->base);
    memmove(&ranges[i + 1], &ranges[i], (nranges - i) * sizeof *ranges);
    ranges[i] = a;
    nranges++;
    pthread_rwlock_unlock(&ranges_lock);
}

static void range_del(struct sim_alloc *a)
{
    pthread_rwlock_wrlock(&ranges_lock);
    size_t i = range_lower_bound(a->base);
    for (; i < nranges && ranges[i]->base == a->base; i++) {
        if (ranges[i] == a) {
            memmove(&ranges[i], &ranges[i + 1], (nranges - i - 1) * sizeof *ranges);
            nranges--;
            break;
        }
    }
    pthread_rwlock_unlock(&ranges_lock);
}

static void grow(struct shard *s)
{
    size_t nb = (s->mask + 1) * 2;
    struct sim_alloc **n = calloc(nb, sizeof *n);
    if (!n) return;                       /* keep the longer chains */
    for (size_t i = 0; i <= s->mask; i++) {
        struct sim_alloc *a = s->buckets[i];
        while (a) {
            struct sim_alloc *next = a->next;
            size_t b = (hash_addr(a->base) >> 6) & (nb - 1);
            a->next = n[b];
            n[b] = a;
            a = next;
        }
    }
    free(s->buckets);
    s->buckets = n;
    s->mask = nb - 1;
}

void sim_registry_insert(struct sim_alloc *a)
{
    pthread_once(&shards_once, shards_init);
    uint64_t h = hash_addr(a->base);
    struct shard *s = &shards[h & (NSHARDS - 1)];
    pthread_mutex_lock(&s->lock);
    if (s->count > 2 * (s->mask + 1)) grow(s);
    size_t b = (h >> 6) & s->mask;
    a->next = s->buckets[b];
    s->buckets[b] = a;
    s->count++;
    pthread_mutex_unlock(&s->lock);
    if (in_range_index(a)) range_add(a);
}

struct sim_alloc *sim_registry_remove(uintptr_t base, unsigned kind_mask)
{
    pthread_once(&shards_once, shards_init);
    uint64_t h = hash_addr(base);
    struct shard *s = &shards[h & (NSHARDS - 1)];
    pthread_mutex_lock(&s->lock);
    struct sim_alloc **pp = &s->buckets[(h >> 6) & s->mask], *a;
    for (a = *pp; a; pp = &a->next, a = *pp) {
        if (a->base == base && (kind_mask & (1u << a->kind))) {
            *pp = a->next;
            s->count--;
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (a && in_range_index(a)) range_del(a);
    return a;
}

int sim_registry_with(uintptr_t base, unsigned kind_mask, int (*fn)(struct sim_alloc *a, void *arg), void *arg)
{
    pthread_once(&shards_once, shards_init);
    uint64_t h = hash_addr(base);
    struct shard *s = &shards[h & (NSHARDS - 1)];
    int rc = -1;
    pthread_mutex_lock(&s->lock);
    for (struct sim_alloc *a = s->buckets[(h >> 6) & s->mask]; a; a = a->next)
        if (a->base == base && (kind_mask & (1u << a->kind))) {
            rc = fn(a, arg);
            break;
        }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int contains(const struct sim_alloc *a, uintptr_t p, size_t len)
{
    size_t extent = a->size ? a->size : 1;
    return p >= a->base && p - a->base < extent && len <= extent - (p - a->base);
}

int sim_registry_find(uintptr_t p, size_t len, struct sim_alloc *out)
{
    pthread_once(&shards_once, shards_init);
    /* 1. a base address: one bucket */
    uint64_t h = hash_addr(p);
    struct shard *s = &shards[h & (NSHARDS - 1)];
    pthread_mutex_lock(&s->lock);
    for (struct sim_alloc *a = s->buckets[(h >> 6) & s->mask]; a; a = a->next) {
        if (a->base == p && contains(a, p, len)) {
            *out = *a;
            pthread_mutex_unlock(&s->lock);
            return 0;
        }
    }
    pthread_mutex_unlock(&s->lock);
    /* 2. inside a page-backed allocation: bisection */
    int found = -1;
    pthread_rwlock_rdlock(&ranges_lock);
    size_t i = range_lower_bound(p + 1);
    if (i > 0 && contains(ranges[i - 1], p, len)) { *out = *ranges[i - 1]; found = 0; }
    pthread_rwlock_unlock(&ranges_lock);
    if (found == 0) return 0;
    /* 3. inside a small allocation: scan */
    for (int k = 0; k < NSHARDS && found; k++) {
        struct shard *t = &shards[k];
        pthread_mutex_lock(&t->lock);
        for (size_t b = 0; b <= t->mask && found; b++)
            for (struct sim_alloc *a = t->buckets[b]; a; a = a->next)
                if (contains(a, p, len)) { *out = *a; found = 0; break; }
        pthread_mutex_unlock(&t->lock);
    }
    return found;
}

void sim_registry_drain_ctx(struct sim_ctx *ctx, void (*fn)(struct sim_alloc *))
{
    pthread_once(&shards_once, shards_init);
    for (int k = 0; k < NSHARDS; k++) {
        struct shard *t = &shards[k];
        struct sim_alloc *victims = NULL;
        pthread_mutex_lock(&t->lock);
        for (size_t b = 0; b <= t->mask; b++) {
            struct sim_alloc **pp = &t->buckets[b];
            while (*pp) {
                struct sim_alloc *a = *pp;
                if (a->ctx == ctx) {
                    *pp = a->next;
                    t->count--;
                    a->next = victims;
                    victims = a;
                } else {
                    pp = &a->next;
                }
            }
        }
        pthread_mutex_unlock(&t->lock);
        while (victims) {
            struct sim_alloc *a = victims;
            victims = a->next;
            if (in_range_index(a)) range_del(a);
            fn(a);
        }
    }
}

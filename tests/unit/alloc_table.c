/* The shim's live-allocation table (src/shim/alloc_table.h): inserts,
 * removals and growth against a reference, and the invariant that lets its
 * probes run without a bounds check: however the keys collide, no cluster
 * reaches a stripe's guard entry. Keys are made from the hashes wanted
 * (the hash is a multiplication by an odd constant, so it can be undone). */
#include "../../src/shim/alloc_table.h"
#include "../testlib.h"

#include <pthread.h>
#include <stdlib.h>

/* The inverse of at_hash's multiplier modulo 2^64 (Newton's iteration). */
static uint64_t inverse(uint64_t c)
{
    uint64_t x = c;
    for (int i = 0; i < 6; i++)
        x *= 2 - c * x;
    return x;
}

/* A key whose hash is h. */
static uint64_t key_for(uint64_t h) { return h * inverse(0x9E3779B97F4A7C15ull); }

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int count_stripe(const struct at_stripe *s)
{
    int n = 0;
    for (uint64_t i = 0; i < at_slots(s->mask); i++)
        n += s->e[i].key != 0;
    return n;
}

TEST(hash_inverse_makes_the_keys_asked_for)
{
    uint64_t h = 0xfc00000000000000ull | (0xfffffull << 26);
    CHECK_EQ_U64(at_hash(key_for(h)), h);
}

TEST(inserts_and_removes_match_a_reference)
{
    enum { N = 20000 };
    static uint64_t keys[N], vals[N];
    static int live[N];
    uint64_t old;
    for (int i = 0; i < N; i++) {
        keys[i] = (next() | 1) & 0x7fffffffffffull;
        vals[i] = next();
    }
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < N; i++) {
            int j = (int)(next() % N);
            uint64_t v;
            if (live[j]) {
                CHECK_EQ_INT(at_remove(&live_allocs, keys[j], &v), 1);
                CHECK_EQ_U64(v, vals[j]);
                live[j] = 0;
            } else {
                CHECK_EQ_INT(at_insert(&live_allocs, keys[j], vals[j], 7, &old), 0);
                live[j] = 1;
            }
        }
        int expect = 0, found = 0;
        for (int i = 0; i < N; i++)
            expect += live[i];
        for (int s = 0; s < AT_STRIPES; s++) {
            found += count_stripe(&live_allocs.s[s]);
            /* At most a quarter full, counted by room. */
            CHECK(live_allocs.s[s].room >= 0);
        }
        CHECK_EQ_INT(found, expect);
    }
    for (int i = 0; i < N; i++) {
        uint64_t v;
        CHECK_EQ_INT(at_remove(&live_allocs, keys[i], &v), live[i]);
        live[i] = 0;
    }
    for (int s = 0; s < AT_STRIPES; s++)
        CHECK_EQ_INT(count_stripe(&live_allocs.s[s]), 0);
}

TEST(colliding_keys_never_reach_the_guard)
{
    /* Every key hashes to stripe 63 and to its last home slot whatever
     * its size (hash bits 26..45 all set): one cluster from the end. */
    enum { N = 3000 };
    static uint64_t keys[N];
    struct at_stripe *s = &live_allocs.s[63];
    uint64_t old, v;
    for (int i = 0; i < N; i++) {
        uint64_t h = 0xfc00000000000000ull | (0xfffffull << 26) | ((uint64_t)(i + 1) & 0x3ffffff);
        keys[i] = key_for(h);
        CHECK_EQ_INT(at_insert(&live_allocs, keys[i], (uint64_t)i << 18, 0, &old), 0);
        CHECK_EQ_U64(s->e[at_slots(s->mask)].key, 0); /* the guard */
        CHECK(s->room >= 0);
    }
    CHECK_EQ_INT(count_stripe(s), N);
    /* Removing from the middle of the cluster shifts the rest back: every
     * other key is still found, with its value. */
    for (int i = 0; i < N; i += 2)
        CHECK_EQ_INT(at_remove(&live_allocs, keys[i], &v), 1);
    for (int i = 1; i < N; i += 2) {
        CHECK_EQ_INT(at_remove(&live_allocs, keys[i], &v), 1);
        CHECK_EQ_U64(v, (uint64_t)i << 18);
    }
    CHECK_EQ_INT(count_stripe(s), 0);
}

TEST(duplicate_key_returns_the_old_value)
{
    uint64_t old = 0, v;
    CHECK_EQ_INT(at_insert(&live_allocs, 0x7f0000001000, 111, 0, &old), 0);
    CHECK_EQ_INT(at_insert(&live_allocs, 0x7f0000001000, 222, 0, &old), 1);
    CHECK_EQ_U64(old, 111);
    CHECK_EQ_INT(at_remove(&live_allocs, 0x7f0000001000, &v), 1);
    CHECK_EQ_U64(v, 222);
    CHECK_EQ_INT(at_remove(&live_allocs, 0x7f0000001000, &v), 0);
}

TEST(key_zero_and_unknown_keys_are_not_found)
{
    uint64_t v;
    CHECK_EQ_INT(at_remove(&live_allocs, 0, &v), 0);
    CHECK_EQ_INT(at_remove(&live_allocs, 0x1234, &v), 0);
}

TEST(contended_stripe_lock_is_taken_and_given_back)
{
    /* The spinning lock alone, then an insert that takes the lock inline. */
    struct at_stripe *s = &live_allocs.s[3];
    at_lock_slow(s);
    CHECK_EQ_INT(atomic_load(&s->lock), 1);
    at_unlock(s);
    uint64_t old;
    CHECK_EQ_INT(at_insert(&live_allocs, key_for(3ull << 58), 5, 0, &old), 0);
    CHECK_EQ_INT(atomic_load(&s->lock), 0);
}

/* Two threads on one stripe: each inserts and removes its own keys while
 * the other holds the lock half the time, so the contended paths
 * (at_insert_contended, at_remove_contended: lock, then the whole rest out
 * of line) run many times; a lost or corrupted entry fails it. */
static void *churn(void *arg)
{
    uint64_t base = (uint64_t)(uintptr_t)arg, old, v;
    for (int round = 0; round < 200000; round++) {
        uint64_t k = key_for(5ull << 58 | ((base + (uint64_t)round % 64) << 26));
        if (at_insert(&live_allocs, k, k << 18, base, &old) != 0)
            return (void *)1;
        if (at_remove(&live_allocs, k, &v) != 1 || v != k << 18)
            return (void *)2;
    }
    return NULL;
}

TEST(two_threads_on_one_stripe)
{
    pthread_t a, b;
    void *ra, *rb;
    CHECK_EQ_INT(pthread_create(&a, NULL, churn, (void *)(uintptr_t)1000), 0);
    CHECK_EQ_INT(pthread_create(&b, NULL, churn, (void *)(uintptr_t)2000), 0);
    pthread_join(a, &ra);
    pthread_join(b, &rb);
    CHECK(ra == NULL);
    CHECK(rb == NULL);
    CHECK_EQ_INT(count_stripe(&live_allocs.s[5]), 0);
    CHECK_EQ_INT(atomic_load(&live_allocs.s[5].lock), 0);
}

int main(void)
{
    RUN(hash_inverse_makes_the_keys_asked_for);
    RUN(inserts_and_removes_match_a_reference);
    RUN(colliding_keys_never_reach_the_guard);
    RUN(duplicate_key_returns_the_old_value);
    RUN(key_zero_and_unknown_keys_are_not_found);
    RUN(contended_stripe_lock_is_taken_and_given_back);
    RUN(two_threads_on_one_stripe);
    return test_summary();
}

/* The reader of another process's live-allocation table (live_peek.c),
 * pointed at tables this process builds in its own memory: what it keeps,
 * what it skips as torn or foreign, and what it refuses. */
#include "gpumem/live_peek.h"
#include "gpumem/live_table.h"
#include "../testlib.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static struct at_entry empty[1];

/* A table whose stripes all sit on the shared empty entry, as the shim's. */
static void blank(struct at_table *t)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < AT_STRIPES; i++)
        t->s[i].e = empty;
}

static int peek_self(struct at_table *t, uint32_t layout, struct gm_live_alloc **a, size_t *n)
{
    return gm_live_peek(getpid(), (uint64_t)(uintptr_t)t, layout, a, n);
}

TEST(empty_table_reads_as_nothing)
{
    static struct at_table t;
    blank(&t);
    struct gm_live_alloc *a;
    size_t n = 99;
    CHECK_EQ_INT(peek_self(&t, GM_LIVE_TABLE_LAYOUT, &a, &n), 0);
    CHECK_EQ_U64(n, 0);
    CHECK(a == NULL);
}

TEST(entries_are_unpacked_and_invalid_ones_skipped)
{
    static struct at_table t;
    static struct at_entry e[10]; /* at_slots(7): 8 home slots, 2 past them */
    blank(&t);
    memset(e, 0, sizeof e);
    t.s[5].e = e;
    t.s[5].mask = 7;
    e[1] = (struct at_entry){0x7f0000001000, alloc_pack(4096, AK_MEM, 1, 2), 111, 0x401234};
    e[3] = (struct at_entry){0x7f0000003000, alloc_pack(64, 15, 0, 0), 333, 0};      /* a spilled context: torn */
    e[4] = (struct at_entry){0x7f0000004000, alloc_pack(64, AK_ARRAY, 0, 0) | ALLOC_SPILLED, 444, 0}; /* arrays never spill */
    e[7] = (struct at_entry){0x7f0000007000, alloc_pack(8 << 20, AK_MEM, 0, 1) | ALLOC_SPILLED, 777, 0}; /* spilled */
    e[5] = (struct at_entry){0, alloc_pack(64, AK_MEM, 0, 0), 555, 0};               /* empty slot */
    e[6] = (struct at_entry){0x7f0000006000, 64 << 18, 666, 0};                     /* not a charged value */
    e[9] = (struct at_entry){0x7f0000002000, alloc_pack_pool(1 << 20, AK_ASYNC, 3, 0, 3), 222, 0};
    struct gm_live_alloc *a;
    size_t n;
    CHECK_EQ_INT(peek_self(&t, GM_LIVE_TABLE_LAYOUT, &a, &n), 0);
    CHECK_EQ_U64(n, 3);
    gm_live_sort_oldest(a, n);
    CHECK_EQ_U64(a[2].key, 0x7f0000007000);
    CHECK(a[2].spilled && a[2].kind == AK_MEM && a[2].gd == 1 && a[2].bytes == 8 << 20);
    CHECK(!a[0].spilled && !a[1].spilled);
    n = 2; /* the rest as before, without the spilled one (the newest) */
    CHECK_EQ_U64(a[0].key, 0x7f0000001000);
    CHECK_EQ_U64(a[0].bytes, 4096);
    CHECK_EQ_INT(a[0].kind, AK_MEM);
    CHECK_EQ_INT(a[0].gd, 2);
    CHECK_EQ_U64(a[0].born, 111);
    CHECK_EQ_U64(a[0].site, 0x401234);
    CHECK_EQ_U64(a[1].bytes, 1 << 20);
    CHECK_STR(gm_alloc_kind_name(a[1].kind), "cuMemAllocAsync");
    gm_live_sort_largest(a, n);
    CHECK_EQ_U64(a[0].key, 0x7f0000002000);
    free(a);
}

TEST(foreign_layout_and_missing_table_are_refused)
{
    static struct at_table t;
    blank(&t);
    struct gm_live_alloc *a;
    size_t n;
    errno = 0;
    CHECK_EQ_INT(peek_self(&t, GM_LIVE_TABLE_LAYOUT + 1, &a, &n), -1);
    CHECK_EQ_INT(errno, EPROTO);
    CHECK_EQ_INT(gm_live_peek(getpid(), 0, GM_LIVE_TABLE_LAYOUT, &a, &n), -1);
    CHECK_EQ_INT(errno, ENOENT);
    CHECK_STR(gm_live_peek_strerror(ENOENT), "it publishes no allocation table (an older gpumem shim)");
}

TEST(absurd_stripe_is_refused_not_followed)
{
    static struct at_table t;
    blank(&t);
    t.s[9].mask = 6; /* not a power of two less one: not the shim's */
    struct gm_live_alloc *a;
    size_t n;
    CHECK_EQ_INT(peek_self(&t, GM_LIVE_TABLE_LAYOUT, &a, &n), -1);
    CHECK_EQ_INT(errno, EPROTO);
    t.s[9].mask = (1u << 30) - 1; /* a stripe of 32 GiB */
    CHECK_EQ_INT(peek_self(&t, GM_LIVE_TABLE_LAYOUT, &a, &n), -1);
    CHECK_EQ_INT(errno, EPROTO);
}

TEST(unreadable_entries_fail_with_efault)
{
    static struct at_table t;
    blank(&t);
    t.s[0].e = (struct at_entry *)(uintptr_t)0x10; /* nothing is mapped there */
    t.s[0].mask = 63;
    struct gm_live_alloc *a;
    size_t n;
    CHECK_EQ_INT(peek_self(&t, GM_LIVE_TABLE_LAYOUT, &a, &n), -1);
    CHECK_EQ_INT(errno, EFAULT);
}

TEST(gone_process_is_esrch)
{
    static struct at_table t;
    blank(&t);
    struct gm_live_alloc *a;
    size_t n;
    /* pid_max is at most 2^22: this pid cannot exist. */
    CHECK_EQ_INT(gm_live_peek((pid_t)((1 << 22) + 1), (uint64_t)(uintptr_t)&t, GM_LIVE_TABLE_LAYOUT, &a, &n), -1);
    CHECK_EQ_INT(errno, ESRCH);
}

int main(void)
{
    RUN(empty_table_reads_as_nothing);
    RUN(entries_are_unpacked_and_invalid_ones_skipped);
    RUN(foreign_layout_and_missing_table_are_refused);
    RUN(absurd_stripe_is_refused_not_followed);
    RUN(unreadable_entries_fail_with_efault);
    RUN(gone_process_is_esrch);
    return test_summary();
}

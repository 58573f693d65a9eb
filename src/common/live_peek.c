/* Reading another process's live-allocation table (gpumem/live_peek.h).
 *
 * The writer takes a per-stripe spinlock the reader cannot take (it lives
 * in the other process's private memory), so the reader copies a stripe's
 * header, then its entries, and checks what it got: a stripe that grew in
 * between has a new array (the old one may already be unmapped, EFAULT) —
 * it is read again. An entry caught mid-write can be torn; entries are
 * validated (kind, device index, size) and the snapshot is a diagnostic,
 * not the accounting (that is the slot's counters). */
#include "gpumem/live_peek.h"

#include "gpumem/live_table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

/* A stripe bigger than this is not a table the shim made (2^24 entries is
 * 512 MiB of entries in one of 64 stripes). */
#define MAX_STRIPE_ENTRIES (1u << 24)

static int peek(pid_t pid, uint64_t addr, void *buf, size_t len)
{
    struct iovec local = {buf, len}, remote = {(void *)(uintptr_t)addr, len};
    ssize_t got = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (got == (ssize_t)len)
        return 0;
    if (got >= 0)
        errno = EFAULT;
    return -1;
}

const char *gm_alloc_kind_name(int kind)
{
    static const char *const names[AK_NKINDS] = {
        [AK_MEM] = "cuMemAlloc",   [AK_PITCH] = "cuMemAllocPitch", [AK_MANAGED] = "cuMemAllocManaged",
        [AK_ASYNC] = "cuMemAllocAsync", [AK_VMM] = "cuMemCreate", [AK_ARRAY] = "cuArrayCreate",
        [AK_MIPMAP] = "cuMipmappedArrayCreate", [AK_CTX] = "cuCtxCreate",
    };
    return kind >= 0 && kind < AK_NKINDS ? names[kind] : "?";
}

static int append(struct gm_live_alloc **out, size_t *n, size_t *cap, const struct at_entry *e)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        struct gm_live_alloc *na = realloc(*out, nc * sizeof *na);
        if (!na)
            return -1;
        *out = na;
        *cap = nc;
    }
    (*out)[(*n)++] = (struct gm_live_alloc){
        .key = e->key, .bytes = alloc_bytes(e->value), .born = e->born, .site = e->site,
        .kind = alloc_kind(e->value), .gd = alloc_gd(e->value), .spilled = alloc_spilled(e->value),
    };
    return 0;
}

static int valid(const struct at_entry *e)
{
    /* (the device field cannot exceed 15) */
    /* Only cuMemAlloc and cuMemAllocManaged spill (docs/spill.md): any
     * other kind with the spilled bit is a torn entry. */
    int k = alloc_kind(e->value);
    return e->key != 0 && (e->value & ALLOC_CHARGED) && k < AK_NKINDS &&
           (!alloc_spilled(e->value) || k == AK_MEM || k == AK_MANAGED);
}

/* One stripe: header, then entries; again if it changed under us. */
static int peek_stripe(pid_t pid, uint64_t addr, struct gm_live_alloc **out, size_t *n, size_t *cap)
{
    struct at_entry *buf = NULL;
    int rc = -1;
    for (int tries = 0; tries < 8; tries++) {
        struct at_stripe h, again;
        if (peek(pid, addr, &h, sizeof h) != 0)
            break;
        if (h.mask >= MAX_STRIPE_ENTRIES || ((h.mask + 1) & h.mask) != 0) {
            errno = EPROTO;
            break;
        }
        size_t slots = (size_t)at_slots(h.mask), len = slots * sizeof *buf;
        struct at_entry *nb = realloc(buf, len);
        if (!nb)
            break;
        buf = nb;
        if (peek(pid, (uint64_t)(uintptr_t)h.e, buf, len) != 0) {
            if (errno == EFAULT)
                continue; /* grown and unmapped meanwhile */
            break;
        }
        if (peek(pid, addr, &again, sizeof again) != 0)
            break;
        if (again.e != h.e || again.mask != h.mask)
            continue;
        size_t before = *n;
        for (size_t i = 0; i < slots; i++)
            if (valid(&buf[i]) && append(out, n, cap, &buf[i]) != 0) {
                *n = before;
                goto done;
            }
        rc = 0;
        break;
    }
done:
    free(buf);
    return rc;
}

const char *gm_live_peek_strerror(int err)
{
    switch (err) {
    case EPERM:
    case EACCES:
        return "not allowed to read its memory (run as root, or as its user where ptrace is allowed)";
    case ESRCH:
        return "it has exited";
    case ENOENT:
        return "it publishes no allocation table (an older gpumem shim)";
    case EPROTO:
        return "its allocation table has a layout this gpumem does not know";
    default:
        return strerror(err);
    }
}

int gm_live_peek(pid_t pid, uint64_t addr, uint32_t layout, struct gm_live_alloc **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!addr) {
        errno = ENOENT;
        return -1;
    }
    if (layout != GM_LIVE_TABLE_LAYOUT) {
        errno = EPROTO;
        return -1;
    }
    size_t cap = 0;
    for (int i = 0; i < AT_STRIPES; i++) {
        if (peek_stripe(pid, addr + (uint64_t)i * sizeof(struct at_stripe), out, n, &cap) != 0) {
            int e = errno;
            free(*out);
            *out = NULL;
            *n = 0;
            errno = e;
            return -1;
        }
    }
    return 0;
}

static int by_born(const void *a, const void *b)
{
    const struct gm_live_alloc *x = a, *y = b;
    return x->born < y->born ? -1 : x->born > y->born ? 1 : (x->key > y->key) - (x->key < y->key);
}

static int by_bytes(const void *a, const void *b)
{
    const struct gm_live_alloc *x = a, *y = b;
    return x->bytes > y->bytes ? -1 : x->bytes < y->bytes ? 1 : by_born(a, b);
}

void gm_live_sort_oldest(struct gm_live_alloc *a, size_t n)
{
    if (n > 1)
        qsort(a, n, sizeof *a, by_born);
}

void gm_live_sort_largest(struct gm_live_alloc *a, size_t n)
{
    if (n > 1)
        qsort(a, n, sizeof *a, by_bytes);
}

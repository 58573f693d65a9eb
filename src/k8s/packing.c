/* GetPreferredAllocation for memory units: keep a container's units on one
 * GPU, and on the GPU with the least room that still fits them (best fit),
 * so that the large holes stay whole for the large requests that need them.
 * The kubelet asks with the healthy IDs that are still free, the IDs it
 * must include (a container's units it already holds) and how many in all.
 *
 *  1. The GPUs of the must-include IDs come first: if one of them has room
 *     for the rest, fill from the one with least room that fits.
 *  2. Else best fit over every GPU.
 *  3. Else no GPU has room: take the GPUs with most room first (fewest
 *     GPUs); Allocate then gives a limit per GPU, never a merged one.
 * Within a GPU the lowest unit indices go first, so answers are stable. */
#include "plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cand {
    const char *id;
    int gpu;
    unsigned unit;
    int taken;
};

static int by_gpu_unit(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->gpu != y->gpu)
        return x->gpu - y->gpu;
    return x->unit < y->unit ? -1 : x->unit > y->unit;
}

/* Takes up to `need` free units of gpu g, in order. */
static size_t take(struct cand *c, size_t n, int g, size_t need, const char **out, size_t *n_out)
{
    size_t got = 0;
    for (size_t i = 0; i < n && got < need; i++)
        if (c[i].gpu == g && !c[i].taken) {
            c[i].taken = 1;
            out[(*n_out)++] = c[i].id;
            got++;
        }
    return got;
}

int kp_prefer_units(const struct kp_gpus *gs, char **available, size_t n_available, char **must, size_t n_must,
                    int size, const char **out, size_t *n_out, char *err, size_t errlen)
{
    *n_out = 0;
    if (size <= 0) {
        snprintf(err, errlen, "allocation_size %d: expected at least 1", size);
        return -1;
    }
    if ((size_t)size > n_available) {
        snprintf(err, errlen, "allocation_size %d is more than the %zu available IDs", size, n_available);
        return -1;
    }
    struct cand *c = calloc(n_available ? n_available : 1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t free_on[KP_MAX_GPUS] = {0};
    int is_must_gpu[KP_MAX_GPUS] = {0};
    for (size_t i = 0; i < n_available; i++) {
        c[i].id = available[i];
        if (kp_parse_unit_id(gs, available[i], &c[i].gpu, &c[i].unit, err, errlen) < 0)
            goto fail;
    }
    qsort(c, n_available, sizeof *c, by_gpu_unit);
    for (size_t i = 1; i < n_available; i++)
        if (c[i].gpu == c[i - 1].gpu && c[i].unit == c[i - 1].unit) {
            snprintf(err, errlen, "device ID \"%.200s\" is listed twice", c[i].id);
            goto fail;
        }
    for (size_t i = 0; i < n_must; i++) {
        size_t j;
        for (j = 0; j < n_available; j++)
            if (!c[j].taken && strcmp(c[j].id, must[i]) == 0)
                break;
        if (j == n_available) {
            snprintf(err, errlen, "must-include device ID \"%.200s\" is not among the available ones", must[i]);
            goto fail;
        }
        c[j].taken = 1;
        is_must_gpu[c[j].gpu] = 1;
        out[(*n_out)++] = c[j].id;
    }
    if (*n_out > (size_t)size) {
        snprintf(err, errlen, "%zu must-include IDs are more than allocation_size %d", *n_out, size);
        goto fail;
    }
    for (size_t i = 0; i < n_available; i++)
        if (!c[i].taken)
            free_on[c[i].gpu]++;
    size_t need = (size_t)size - *n_out;
    for (int pass = 0; pass < 2 && need; pass++) {
        int best = -1;
        for (int g = 0; g < gs->n; g++)
            if ((pass == 1 || is_must_gpu[g]) && free_on[g] >= need && (best < 0 || free_on[g] < free_on[best]))
                best = g;
        if (best >= 0) {
            need -= take(c, n_available, best, need, out, n_out);
            free_on[best] = 0;
        }
    }
    while (need) {
        int most = -1;
        for (int g = 0; g < gs->n; g++)
            if (free_on[g] && (most < 0 || free_on[g] > free_on[most]))
                most = g;
        if (most < 0)
            break;
        need -= take(c, n_available, most, need, out, n_out);
        free_on[most] = 0;
    }
    free(c);
    return 0;
fail:
    free(c);
    *n_out = 0;
    return -1;
}

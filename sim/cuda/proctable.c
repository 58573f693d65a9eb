/* The table behind cuGetProcAddress: resolve (name, version, flags)
 * the way NVIDIA's driver does, from the one table in entries.def.
 *
 * - The row with the largest version <= the requested one wins, so
 *   ("cuMemAlloc", 3020) is cuMemAlloc_v2 and ("cuCtxGetDevice", 13000) the
 *   two-argument cuCtxGetDevice_v2.
 * - With CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, a PTDS row of that
 *   name (largest version <= requested) is preferred where one exists.
 * - Unknown name: CUDA_ERROR_NOT_FOUND, status SYMBOL_NOT_FOUND; a version
 *   below the name's first row: CUDA_ERROR_NOT_FOUND, VERSION_NOT_SUFFICIENT.
 *
 * The table is sorted by name once, then searched by bisection. */
#include "internal.h"
#include "proctable.h"

#include <stdlib.h>
#include <string.h>

/* The entry points are declared here only to take their address; see the
 * note in stubs.c on why their parameter lists do not matter for that. */
#define SIM_ENTRY(name, ver, stream, sym, impl) CUresult sym(void);
#include "entries.def"
#undef SIM_ENTRY

struct proc_entry {
    const char *name;
    int version;
    int ptds;
    void *fn;
};

static struct proc_entry table[] = {
#define SIM_ENTRY(name, ver, stream, sym, impl) { #name, ver, SIM_STREAM_##stream, (void *)sym },
#define SIM_STREAM_DEF 0
#define SIM_STREAM_PTDS 1
#include "entries.def"
#undef SIM_ENTRY
};
#define NENTRIES (sizeof table / sizeof table[0])

static pthread_once_t sort_once = PTHREAD_ONCE_INIT;

static int by_name_version(const void *a, const void *b)
{
    const struct proc_entry *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    if (x->ptds != y->ptds) return x->ptds - y->ptds;
    return (x->version > y->version) - (x->version < y->version);
}

static void sort_table(void)
{
    qsort(table, NENTRIES, sizeof table[0], by_name_version);
}

/* Index of the first row named `name`, or -1. */
static long first_row(const char *name)
{
    size_t lo = 0, hi = NENTRIES;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(table[mid].name, name) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < NENTRIES && strcmp(table[lo].name, name) == 0 ? (long)lo : -1;
}

CUresult sim_resolve_proc(const char *symbol, void **pfn, int version, cuuint64_t flags,
                        CUdriverProcAddressQueryResult *status)
{
    CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    CUresult r = CUDA_ERROR_NOT_FOUND;
    if (!symbol || !pfn) {
        if (status) *status = st;
        return CUDA_ERROR_INVALID_VALUE;
    }
    *pfn = NULL;
    pthread_once(&sort_once, sort_table);
    long i = first_row(symbol);
    if (i >= 0) {
        const struct proc_entry *best = NULL, *best_ptds = NULL;
        for (size_t j = (size_t)i; j < NENTRIES && strcmp(table[j].name, symbol) == 0; j++) {
            if (table[j].version > version) continue;
            if (table[j].ptds) best_ptds = &table[j];
            else best = &table[j];
        }
        if ((flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) && best_ptds) best = best_ptds;
        if (best) {
            *pfn = best->fn;
            st = CU_GET_PROC_ADDRESS_SUCCESS;
            r = CUDA_SUCCESS;
        } else {
            st = CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT;
        }
    }
    if (status) *status = st;
    return r;
}


/* cuGetProcAddress / cuGetProcAddress_v2: how cudart 12/13 reach the driver
 * (docs/shim.md, "How applications reach it"). We ask the driver first, so "found", "not found" and
 * "version not sufficient" are always the driver's own answer; then, if the
 * pointer it handed out is one we interpose, we hand out our hook for that
 * exact variant instead. The variant is identified by the pointer itself
 * (compared with the driver's exported symbols), which keeps versions and
 * per-thread-default-stream flavours distinct without re-deriving the
 * driver's rules; where the driver returns a pointer it does not export by
 * name, hooked.def's (name, version, flag) table decides. The re-fetch of
 * cuGetProcAddress itself returns our hook too. */
#include "shim.h"

#include <string.h>

#define EXPORT __attribute__((visibility("default")))

struct hook_entry {
    const char *symbol, *name;
    int version, per_thread;
    void *hook;
    void **real;
};


static const struct hook_entry hooks[] = {
#define HOOK(sym, nm, ver, ptds) {#sym, #nm, ver, ptds, (void *)sym, &real.sym},
#include "hooked.def"
#undef HOOK
};
#define NHOOKS (sizeof hooks / sizeof hooks[0])

/* The hook for the driver's pointer `p` returned for (name, version, flags). */
static void *hook_for(const char *name, void *p, int version, cuuint64_t flags)
{
    for (size_t i = 0; i < NHOOKS; i++)
        if (*hooks[i].real == p)
            return hooks[i].hook;
    int want_ptds = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0;
    const struct hook_entry *best = NULL;
    for (size_t i = 0; i < NHOOKS; i++) {
        const struct hook_entry *h = &hooks[i];
        if (strcmp(h->name, name) != 0 || h->version > version)
            continue;
        if (h->per_thread && !want_ptds)
            continue;
        if (!best || h->version > best->version || (h->per_thread && !best->per_thread))
            best = h;
    }
    if (!best)
        return p;
    if (!*best->real)
        *best->real = p;
    else if (*best->real != p)
        return p; /* a flavour we do not know: never call the wrong function */
    return best->hook;
}

/* Whether to hand out hooks in mode m. Without a group there is nothing to
 * enforce: only cuGetProcAddress itself stays hooked (so re-fetches keep
 * coming here) and every other name gets the driver's own pointer. */
static int keep_hooking(int m, const char *name)
{
    return m != SHIM_PASSTHROUGH || strncmp(name, "cuGetProcAddress", 16) == 0;
}

static int is_candidate(const char *name)
{
    /* Cheap filter before the table walk: every hooked name starts "cu". */
    return name && name[0] == 'c' && name[1] == 'u';
}

EXPORT CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int version, cuuint64_t flags,
                                    CUdriverProcAddressQueryResult *status)
{
    int m = shim_mode();
    if (!real.cuGetProcAddress_v2 && shim_resolve_driver() < 0)
        return CUDA_ERROR_NOT_INITIALIZED;
    CUresult r = ((PFN_cuGetProcAddress_v12000)real.cuGetProcAddress_v2)(symbol, pfn, version, flags, status);
    /* Outside any group there is nothing to enforce: the application gets
     * the driver's own pointers and pays nothing per call. */
    if (r == CUDA_SUCCESS && pfn && *pfn && is_candidate(symbol) && keep_hooking(m, symbol))
        *pfn = hook_for(symbol, *pfn, version, flags);
    return r;
}

EXPORT CUresult cuGetProcAddress(const char *symbol, void **pfn, int version, cuuint64_t flags)
{
    int m = shim_mode();
    if (!real.cuGetProcAddress && shim_resolve_driver() < 0)
        return CUDA_ERROR_NOT_INITIALIZED;
    CUresult r = ((PFN_cuGetProcAddress_v11030)real.cuGetProcAddress)(symbol, pfn, version, flags);
    if (r == CUDA_SUCCESS && pfn && *pfn && is_candidate(symbol) && keep_hooking(m, symbol))
        *pfn = hook_for(symbol, *pfn, version, flags);
    return r;
}

void *shim_hook_for_symbol(const char *name)
{
    if (!name)
        return NULL;
    if (is_candidate(name)) {
        for (size_t i = 0; i < NHOOKS; i++)
            if (strcmp(hooks[i].symbol, name) == 0)
                return hooks[i].hook;
        return NULL;
    }
    if (strncmp(name, "nvml", 4) != 0)
        return NULL;
#define NVML_HOOK(sym) if (strcmp(name, #sym) == 0) return (void *)sym;
#include "nvml_hooked.def"
#undef NVML_HOOK
    return NULL;
}

/* Where the driver's pointer for a hooked symbol is kept. */
void **shim_real_slot(const char *name)
{
    for (size_t i = 0; i < NHOOKS; i++)
        if (strcmp(hooks[i].symbol, name) == 0)
            return hooks[i].real;
#define NVML_HOOK(sym) if (strcmp(name, #sym) == 0) return &real_nvml.sym;
#include "nvml_hooked.def"
#undef NVML_HOOK
    return NULL;
}

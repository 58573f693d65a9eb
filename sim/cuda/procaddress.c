/* cuGetProcAddress (v11030) and cuGetProcAddress_v2 (v12000, with the
 * symbol status). The table and the resolution rules live in proctable.c;
 * asking either of them for "cuGetProcAddress" at 12000 or later returns
 * cuGetProcAddress_v2, as cudart's re-fetch expects. */
#include "internal.h"
#include "proctable.h"

/* v11030: no status output. */
SIM_API CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags)
{
    return sim_resolve_proc(symbol, pfn, cudaVersion, flags, NULL);
}

/* v12000: with the symbol status. */
SIM_API CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                                     CUdriverProcAddressQueryResult *symbolStatus)
{
    return sim_resolve_proc(symbol, pfn, cudaVersion, flags, symbolStatus);
}

/* The shim's cuGetProcAddress table, checked from the outside: run with the
 * shim preloaded, it resolves like cudart does and asks dladdr which library
 * each returned pointer lives in. Prints the test protocol's lines. */
#include "gpumem/cuda.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

static int failed;
static PFN_cuGetProcAddress_v12000 gpa;

static const char *lib_of(void *p)
{
    Dl_info info;
    if (!p || !dladdr(p, &info) || !info.dli_fname)
        return "?";
    return strstr(info.dli_fname, "libgpumem") ? "shim" : strstr(info.dli_fname, "libcuda") ? "driver" : "other";
}

static void *get(const char *name, int version, cuuint64_t flags, CUresult *rc, CUdriverProcAddressQueryResult *st)
{
    void *p = NULL;
    *rc = gpa(name, &p, version, flags, st);
    return p;
}

static void expect(const char *test, const char *name, int version, cuuint64_t flags, const char *where)
{
    CUresult rc;
    CUdriverProcAddressQueryResult st;
    void *p = get(name, version, flags, &rc, &st);
    if (rc != CUDA_SUCCESS || strcmp(lib_of(p), where) != 0) {
        printf("FAIL %s: %s@%d flags=%llu -> rc=%d in %s, expected %s\n", test, name, version,
               (unsigned long long)flags, rc, lib_of(p), where);
        failed = 1;
    } else {
        printf("ok %s\n", test);
    }
}

int main(void)
{
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return printf("FAIL load_driver: %s\n", dlerror()), 1;
    void *first = dlsym(h, "cuGetProcAddress_v2");
    printf("%s dlsym_of_driver_handle_gives_hook%s\n", strcmp(lib_of(first), "shim") ? "FAIL" : "ok",
           strcmp(lib_of(first), "shim") ? ": cuGetProcAddress_v2 not interposed" : "");
    gpa = (PFN_cuGetProcAddress_v12000)first;
    CUresult rc;
    CUdriverProcAddressQueryResult st;
    void *again = get("cuGetProcAddress", 12000, 0, &rc, &st);
    printf("%s refetch_of_cuGetProcAddress_is_hooked\n", again == first ? "ok" : "FAIL");
    gpa = (PFN_cuGetProcAddress_v12000)again;

    expect("v1_cuGetProcAddress_hooked", "cuGetProcAddress", 11030, 0, "shim");
    expect("cuMemAlloc_3020_hooked", "cuMemAlloc", 3020, 0, "shim");
    expect("cuMemAlloc_13000_hooked", "cuMemAlloc", 13000, 0, "shim");
    expect("cuMemFree_hooked", "cuMemFree", 3020, 0, "shim");
    /* The 32-bit forms a program can still ask for: a way around the limit
     * unless hooked, each its own hook (not the 64-bit one). */
    expect("cuMemAlloc_2000_hooked", "cuMemAlloc", 2000, 0, "shim");
    expect("cuMemFree_2000_hooked", "cuMemFree", 2000, 0, "shim");
    expect("cuMemAllocPitch_2000_hooked", "cuMemAllocPitch", 2000, 0, "shim");
    expect("cuArrayCreate_2000_hooked", "cuArrayCreate", 2000, 0, "shim");
    expect("cuArray3DCreate_2000_hooked", "cuArray3DCreate", 2000, 0, "shim");
    expect("cuMemGetInfo_2000_hooked", "cuMemGetInfo", 2000, 0, "shim");
    expect("cuDeviceTotalMem_2000_hooked", "cuDeviceTotalMem", 2000, 0, "shim");
    expect("cuCtxCreate_2000_hooked", "cuCtxCreate", 2000, 0, "shim");
    expect("cuCtxDestroy_2000_hooked", "cuCtxDestroy", 2000, 0, "shim");
    void *a1 = get("cuMemAlloc", 2000, 0, &rc, &st), *a2 = get("cuMemAlloc", 3020, 0, &rc, &st);
    printf("%s v2000_and_v3020_hooks_distinct\n", a1 && a2 && a1 != a2 && a1 == dlsym(h, "cuMemAlloc") ? "ok" : "FAIL");
    expect("cuMemcpyHtoD_is_the_drivers_own", "cuMemcpyHtoD", 3020, 0, "driver");
    expect("cuLaunchKernel_is_the_drivers_own", "cuLaunchKernel", 4000, 0, "driver");
    expect("cuCtxGetDevice_13000_is_the_drivers_own", "cuCtxGetDevice", 13000, 0, "driver");
    expect("cuMemAllocAsync_hooked", "cuMemAllocAsync", 11020, 0, "shim");
    expect("cuMemAllocAsync_ptsz_hooked", "cuMemAllocAsync", 11020, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM,
           "shim");

    /* Graph memory: where the device's graph pool grows and shrinks, every
     * variant cudart 13 looks up, each its own hook. */
    expect("cuGraphInstantiate_10000_hooked", "cuGraphInstantiate", 10000, 0, "shim");
    expect("cuGraphInstantiate_11000_hooked", "cuGraphInstantiate", 11000, 0, "shim");
    expect("cuGraphInstantiateWithFlags_hooked", "cuGraphInstantiateWithFlags", 11040, 0, "shim");
    expect("cuGraphInstantiateWithParams_hooked", "cuGraphInstantiateWithParams", 12000, 0, "shim");
    expect("cuGraphInstantiateWithParams_ptsz_hooked", "cuGraphInstantiateWithParams", 12000,
           CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, "shim");
    expect("cuGraphUpload_hooked", "cuGraphUpload", 11010, 0, "shim");
    expect("cuGraphUpload_ptsz_hooked", "cuGraphUpload", 11010, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, "shim");
    expect("cuGraphLaunch_hooked", "cuGraphLaunch", 10000, 0, "shim");
    expect("cuGraphLaunch_ptsz_hooked", "cuGraphLaunch", 10000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, "shim");
    expect("cuGraphExecDestroy_hooked", "cuGraphExecDestroy", 10000, 0, "shim");
    expect("cuGraphDestroy_hooked", "cuGraphDestroy", 10000, 0, "shim");
    expect("cuDeviceGraphMemTrim_hooked", "cuDeviceGraphMemTrim", 11040, 0, "shim");
    expect("cuGraphAddMemAllocNode_is_the_drivers_own", "cuGraphAddMemAllocNode", 11040, 0, "driver");
    void *i1 = get("cuGraphInstantiate", 10000, 0, &rc, &st), *i2 = get("cuGraphInstantiate", 11000, 0, &rc, &st);
    void *gl = get("cuGraphLaunch", 10000, 0, &rc, &st);
    void *glp = get("cuGraphLaunch", 10000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, &rc, &st);
    printf("%s graph_hook_variants_distinct\n",
           i1 && i2 && i1 != i2 && i2 == dlsym(h, "cuGraphInstantiate_v2") && gl && glp && gl != glp ? "ok" : "FAIL");

    void *legacy = get("cuMemAllocAsync", 11020, 0, &rc, &st);
    void *ptsz = get("cuMemAllocAsync", 11020, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, &rc, &st);
    printf("%s per_thread_stream_variant_kept_distinct\n", legacy && ptsz && legacy != ptsz ? "ok" : "FAIL");
    void *m_ptds = get("cuMemcpyHtoD", 7000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, &rc, &st);
    void *m_leg = get("cuMemcpyHtoD", 3020, 0, &rc, &st);
    printf("%s unhooked_ptds_variant_passes_through\n",
           m_ptds && m_leg && m_ptds != m_leg && !strcmp(lib_of(m_ptds), "driver") ? "ok" : "FAIL");

    void *c2 = get("cuCtxCreate", 3020, 0, &rc, &st);
    void *c4 = get("cuCtxCreate", 12050, 0, &rc, &st);
    printf("%s versions_get_their_own_signature_hook\n",
           c2 && c4 && c2 != c4 && !strcmp(lib_of(c2), "shim") && !strcmp(lib_of(c4), "shim") ? "ok" : "FAIL");
    printf("%s hook_matches_exported_symbol\n", c2 == dlsym(h, "cuCtxCreate_v2") ? "ok" : "FAIL");

    void *none = get("cuNoSuchFunction", 12000, 0, &rc, &st);
    printf("%s unknown_name_not_found\n",
           rc == CUDA_ERROR_NOT_FOUND && st == CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND && !none ? "ok" : "FAIL");
    (void)get("cuMemAllocAsync", 11000, 0, &rc, &st);
    printf("%s version_too_low_reported\n",
           rc == CUDA_ERROR_NOT_FOUND && st == CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT ? "ok" : "FAIL");
    return failed;
}

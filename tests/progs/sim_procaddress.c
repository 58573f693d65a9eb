/* The simulated driver's cuGetProcAddress table, version by version: each
 * (name, version, flags) must give the symbol NVIDIA's driver gives (checked
 * against dlsym of that symbol), and the failures must carry the right
 * status. */
#include "gpumem/cuda.h"
#include "../testlib.h"

#include <dlfcn.h>

static void *lib;
static PFN_cuGetProcAddress_v12000 gpa2;
static PFN_cuGetProcAddress_v11030 gpa1;

static void *lookup(const char *name, int ver, cuuint64_t flags, CUresult *rc, CUdriverProcAddressQueryResult *st)
{
    void *p = (void *)1;
    *rc = gpa2(name, &p, ver, flags, st);
    return p;
}

#define EXPECT_SYM(name, ver, flags, sym) do { \
    CUresult rc_; CUdriverProcAddressQueryResult st_ = 99; \
    void *p_ = lookup(name, ver, flags, &rc_, &st_); \
    CHECK_EQ_INT(rc_, CUDA_SUCCESS); CHECK_EQ_INT(st_, CU_GET_PROC_ADDRESS_SUCCESS); \
    void *want_ = dlsym(lib, sym); CHECK(want_ != NULL); \
    if (p_ != want_) { printf("FAIL %s: %s@%d/%d is not %s\n", test_current_name, name, ver, (int)(flags), sym); \
        test_current_failed = 1; return; } } while (0)

TEST(setup)
{
    lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    CHECK(lib != NULL);
    gpa2 = (PFN_cuGetProcAddress_v12000)dlsym(lib, "cuGetProcAddress_v2");
    gpa1 = (PFN_cuGetProcAddress_v11030)dlsym(lib, "cuGetProcAddress");
    CHECK(gpa1 && gpa2 && (void *)gpa1 != (void *)gpa2);
}

TEST(getprocaddress_refetch)
{
    EXPECT_SYM("cuGetProcAddress", 11030, 0, "cuGetProcAddress");
    EXPECT_SYM("cuGetProcAddress", 12000, 0, "cuGetProcAddress_v2");
    EXPECT_SYM("cuGetProcAddress", 13000, 0, "cuGetProcAddress_v2");
    void *p = NULL;                                       /* the v11030 form works too */
    CHECK_EQ_INT(gpa1("cuGetProcAddress", &p, 12000, 0), CUDA_SUCCESS);
    CHECK(p == (void *)gpa2);
}

TEST(largest_version_not_above_request)
{
    EXPECT_SYM("cuMemAlloc", 2000, 0, "cuMemAlloc");
    EXPECT_SYM("cuMemAlloc", 3020, 0, "cuMemAlloc_v2");
    EXPECT_SYM("cuMemAlloc", 3019, 0, "cuMemAlloc");
    EXPECT_SYM("cuMemAlloc", 13000, 0, "cuMemAlloc_v2");
    EXPECT_SYM("cuCtxGetDevice", 2000, 0, "cuCtxGetDevice");
    EXPECT_SYM("cuCtxGetDevice", 12090, 0, "cuCtxGetDevice");
    EXPECT_SYM("cuCtxGetDevice", 13000, 0, "cuCtxGetDevice_v2");
    EXPECT_SYM("cuCtxCreate", 11040, 0, "cuCtxCreate_v3");
    EXPECT_SYM("cuCtxCreate", 12050, 0, "cuCtxCreate_v4");
    EXPECT_SYM("cuDevicePrimaryCtxRelease", 7000, 0, "cuDevicePrimaryCtxRelease");
    EXPECT_SYM("cuDevicePrimaryCtxRelease", 11000, 0, "cuDevicePrimaryCtxRelease_v2");
    EXPECT_SYM("cuStreamGetCaptureInfo", 12030, 0, "cuStreamGetCaptureInfo_v3");
    EXPECT_SYM("cuIpcOpenMemHandle", 11000, 0, "cuIpcOpenMemHandle_v2");
}

TEST(per_thread_default_stream_variants)
{
    EXPECT_SYM("cuMemcpyHtoD", 7000, 2, "cuMemcpyHtoD_v2_ptds");
    EXPECT_SYM("cuMemcpyHtoD", 7000, 0, "cuMemcpyHtoD_v2");
    EXPECT_SYM("cuMemcpyHtoD", 3020, 2, "cuMemcpyHtoD_v2");        /* no ptds row that old */
    EXPECT_SYM("cuMemcpy", 7000, 2, "cuMemcpy_ptds");
    EXPECT_SYM("cuMemAllocAsync", 11020, 2, "cuMemAllocAsync_ptsz");
    EXPECT_SYM("cuStreamSynchronize", 7000, 2, "cuStreamSynchronize_ptsz");
    EXPECT_SYM("cuStreamBeginCapture", 10010, 2, "cuStreamBeginCapture_v2_ptsz");
    EXPECT_SYM("cuMemcpyBatchAsync", 13000, 2, "cuMemcpyBatchAsync_v2_ptsz");
    EXPECT_SYM("cuMemcpyBatchAsync", 12080, 2, "cuMemcpyBatchAsync_ptsz");
    EXPECT_SYM("cuInit", 2000, 2, "cuInit");                       /* no stream: flag ignored */
    CUresult rc;
    CUdriverProcAddressQueryResult st;
    CHECK(lookup("cuMemsetD8", 7000, 2, &rc, &st) != lookup("cuMemsetD8", 7000, 0, &rc, &st));
}

TEST(unknown_name_and_version_too_low)
{
    CUresult rc;
    CUdriverProcAddressQueryResult st = 99;
    void *p = lookup("cuNoSuchFunction", 13000, 0, &rc, &st);
    CHECK_EQ_INT(rc, CUDA_ERROR_NOT_FOUND);
    CHECK_EQ_INT(st, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
    CHECK(p == NULL);
    p = lookup("cuMemAllocAsync", 11010, 0, &rc, &st);
    CHECK_EQ_INT(rc, CUDA_ERROR_NOT_FOUND);
    CHECK_EQ_INT(st, CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
    CHECK(p == NULL);
    p = lookup("cuMemAlloc_v2", 13000, 0, &rc, &st);        /* symbol names are not lookup names */
    CHECK_EQ_INT(rc, CUDA_ERROR_NOT_FOUND);
    CHECK_EQ_INT(gpa2(NULL, &p, 13000, 0, &st), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_INT(gpa2("cuInit", NULL, 13000, 0, &st), CUDA_ERROR_INVALID_VALUE);
    CHECK_EQ_INT(gpa1("cuNoSuchFunction", &p, 13000, 0), CUDA_ERROR_NOT_FOUND);
}

TEST(works_before_cuinit_and_version)
{
    /* cudart looks up cuInit itself through cuGetProcAddress, before cuInit. */
    EXPECT_SYM("cuInit", 2000, 0, "cuInit");
    PFN_cuInit_v2000 init = (PFN_cuInit_v2000)dlsym(lib, "cuInit");
    CUresult (*ver)(int *) = (CUresult (*)(int *))dlsym(lib, "cuDriverGetVersion");
    int v = 0;
    CHECK_EQ_INT(ver(&v), CUDA_SUCCESS);
    CHECK_EQ_INT(v, 13000);
    CHECK_EQ_INT(init(0), CUDA_SUCCESS);
}

TEST(internal_helpers_not_exported)
{
    CHECK(dlsym(lib, "sim_charge") == NULL);
    CHECK(dlsym(lib, "sim_state_init") == NULL);
    CHECK(dlsym(lib, "sim_resolve_proc") == NULL);
}

int main(void)
{
    RUN(setup);
    RUN(getprocaddress_refetch);
    RUN(largest_version_not_above_request);
    RUN(per_thread_default_stream_variants);
    RUN(unknown_name_and_version_too_low);
    RUN(works_before_cuinit_and_version);
    RUN(internal_helpers_not_exported);
    return test_summary();
}

/* Reaches NVML the way nvidia-smi, pynvml and gpumem's monitor do (dlopen
 * libnvidia-ml.so.1, dlsym each entry point) and checks the simulated one:
 * reference-counted init, versions, device identity and lookups, memory v1
 * and v2, PCI info, the process lists with their count protocol, error
 * paths, and agreement with the simulated libcuda.so.1 (UUIDs, bus ids,
 * sizes, per-process used bytes of real child processes that allocate).
 *
 * Expectations come from the environment, set by tests/integration/nvml_sim.sh:
 *   NVML_EXPECT_COUNT   number of devices
 *   NVML_EXPECT_TOTALS  bytes of each device, space-separated
 *   NVML_EXPECT_NAMES   a word each device name contains, space-separated
 *   NVML_EXPECT_CTX     context overhead in bytes (optional; else only > 0)
 *   NVML_REQUIRE_CUDA   if set, an unusable libcuda.so.1 fails the CUDA cases
 *                       instead of skipping them
 * Run with LD_LIBRARY_PATH pointing at the simulated libraries and a private
 * GPUMEM_SIM_STATE. Prints the tests/run.sh protocol. */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpumem/cuda.h"
#include "gpumem/nvml.h"
#include "../testlib.h"

/* One pointer per entry point, from the header's list. */
#define DECLARE_PTR(name, params) static PFN_##name p_##name;
GPUMEM_NVML_ENTRY_POINTS(DECLARE_PTR)
#undef DECLARE_PTR
static PFN_nvmlErrorString p_nvmlErrorString;

static const char *missing_symbol;

static int load_nvml(void)
{
    void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        printf("FAIL load_nvml: %s\n", dlerror());
        return -1;
    }
#define LOAD_PTR(name, params) \
    if ((p_##name = (PFN_##name)dlsym(h, #name)) == NULL && !missing_symbol) missing_symbol = #name;
    GPUMEM_NVML_ENTRY_POINTS(LOAD_PTR)
#undef LOAD_PTR
    if ((p_nvmlErrorString = (PFN_nvmlErrorString)dlsym(h, "nvmlErrorString")) == NULL && !missing_symbol)
        missing_symbol = "nvmlErrorString";
    return 0;
}

/* ---- expectations ---------------------------------------------------- */

static unsigned expect_count(void)
{
    const char *s = getenv("NVML_EXPECT_COUNT");
    return s ? (unsigned)strtoul(s, NULL, 10) : 1;
}

/* The i-th space-separated word of env variable `var`, or NULL. */
static const char *expect_word(const char *var, unsigned i, char *buf, size_t len)
{
    const char *s = getenv(var);
    if (s == NULL)
        return NULL;
    for (;;) {
        s += strspn(s, " ");
        size_t n = strcspn(s, " ");
        if (n == 0)
            return NULL;
        if (i-- == 0) {
            snprintf(buf, len, "%.*s", (int)n, s);
            return buf;
        }
        s += n;
    }
}

#define CHECK_NVML(call, expected) do { nvmlReturn_t r_ = (call); if (r_ != (expected)) { \
    printf("FAIL %s: %s:%d: %s returned %d (%s), expected %s\n", test_current_name, __FILE__, __LINE__, \
           #call, (int)r_, p_nvmlErrorString(r_), #expected); \
    test_current_failed = 1; return; } } while (0)

#define CHECK_OK(call) CHECK_NVML(call, NVML_SUCCESS)

/* ---- init, versions, errors ------------------------------------------ */

TEST(nvml_exports_all_entry_points)
{
    if (missing_symbol) {
        printf("FAIL %s: dlsym(%s) failed\n", test_current_name, missing_symbol);
        test_current_failed = 1;
    }
}

TEST(nvml_uninitialized_before_init)
{
    unsigned n;
    nvmlDevice_t d;
    char buf[96];
    CHECK_NVML(p_nvmlDeviceGetCount_v2(&n), NVML_ERROR_UNINITIALIZED);
    CHECK_NVML(p_nvmlDeviceGetHandleByIndex_v2(0, &d), NVML_ERROR_UNINITIALIZED);
    CHECK_NVML(p_nvmlSystemGetDriverVersion(buf, sizeof buf), NVML_ERROR_UNINITIALIZED);
    CHECK_NVML(p_nvmlShutdown(), NVML_ERROR_UNINITIALIZED);
    /* Needs no init on NVIDIA's either: it asks libcuda. */
    int v = 0;
    CHECK_OK(p_nvmlSystemGetCudaDriverVersion(&v));
    CHECK_EQ_INT(v, 13000);
}

TEST(nvml_init_is_reference_counted)
{
    unsigned n;
    CHECK_OK(p_nvmlInit_v2());
    CHECK_OK(p_nvmlInit());
    CHECK_OK(p_nvmlInitWithFlags(0));
    CHECK_OK(p_nvmlShutdown());
    CHECK_OK(p_nvmlShutdown());
    CHECK_OK(p_nvmlDeviceGetCount_v2(&n)); /* one reference left */
    CHECK_OK(p_nvmlShutdown());
    CHECK_NVML(p_nvmlDeviceGetCount_v2(&n), NVML_ERROR_UNINITIALIZED);
    CHECK_NVML(p_nvmlShutdown(), NVML_ERROR_UNINITIALIZED);
}

TEST(nvml_handle_invalid_after_shutdown)
{
    nvmlDevice_t d;
    char name[96];
    CHECK_OK(p_nvmlInit_v2());
    CHECK_OK(p_nvmlDeviceGetHandleByIndex_v2(0, &d));
    CHECK_OK(p_nvmlShutdown());
    CHECK_NVML(p_nvmlDeviceGetName(d, name, sizeof name), NVML_ERROR_UNINITIALIZED);
}

TEST(nvml_error_strings)
{
    CHECK_STR(p_nvmlErrorString(NVML_SUCCESS), "Success");
    CHECK_STR(p_nvmlErrorString(NVML_ERROR_UNINITIALIZED), "Uninitialized");
    CHECK_STR(p_nvmlErrorString(NVML_ERROR_INVALID_ARGUMENT), "Invalid Argument");
    CHECK_STR(p_nvmlErrorString(NVML_ERROR_NOT_FOUND), "Not Found");
    CHECK_STR(p_nvmlErrorString(NVML_ERROR_INSUFFICIENT_SIZE), "Insufficient Size");
    for (int c = 0; c <= 1000; c++) {
        const char *s = p_nvmlErrorString((nvmlReturn_t)c);
        CHECK(s != NULL && s[0] != '\0');
    }
    CHECK(p_nvmlErrorString((nvmlReturn_t)-5) != NULL);
}

TEST(nvml_versions)
{
    char buf[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE], small[4];
    int v = 0;
    /* GPUMEM_SIM_DRIVER_VERSION sets it; the default is nvidia-smi 550's. */
    const char *want = getenv("NVML_CLIENT_DRIVER_VERSION") ? getenv("NVML_CLIENT_DRIVER_VERSION") : "550.163.01";
    const char *want_nvml = getenv("NVML_CLIENT_NVML_VERSION") ? getenv("NVML_CLIENT_NVML_VERSION") : "12.550.163.01";
    CHECK_OK(p_nvmlSystemGetDriverVersion(buf, sizeof buf));
    CHECK_STR(buf, want);
    CHECK_NVML(p_nvmlSystemGetDriverVersion(small, sizeof small), NVML_ERROR_INSUFFICIENT_SIZE);
    CHECK_NVML(p_nvmlSystemGetDriverVersion(NULL, 80), NVML_ERROR_INVALID_ARGUMENT);
    CHECK_OK(p_nvmlSystemGetNVMLVersion(buf, sizeof buf));
    CHECK_STR(buf, want_nvml);
    CHECK_OK(p_nvmlSystemGetCudaDriverVersion_v2(&v));
    CHECK_EQ_INT(v, 13000);
    CHECK_EQ_INT(NVML_CUDA_DRIVER_VERSION_MAJOR(v), 13);
    CHECK_NVML(p_nvmlSystemGetCudaDriverVersion(NULL), NVML_ERROR_INVALID_ARGUMENT);
}

/* ---- devices ----------------------------------------------------------- */

static int is_uuid(const char *s)
{
    static const char shape[] = "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
    if (strlen(s) != sizeof shape - 1)
        return 0;
    for (size_t i = 0; shape[i]; i++) {
        if (shape[i] == 'x' ? !strchr("0123456789abcdef", s[i]) || !s[i] : s[i] != shape[i])
            return 0;
    }
    return 1;
}

TEST(nvml_device_count)
{
    unsigned n1 = 0, n2 = 0;
    CHECK_OK(p_nvmlDeviceGetCount(&n1));
    CHECK_OK(p_nvmlDeviceGetCount_v2(&n2));
    CHECK_EQ_INT(n1, expect_count());
    CHECK_EQ_INT(n2, expect_count());
    CHECK_NVML(p_nvmlDeviceGetCount_v2(NULL), NVML_ERROR_INVALID_ARGUMENT);
}

TEST(nvml_device_identity)
{
    for (unsigned i = 0; i < expect_count(); i++) {
        nvmlDevice_t d, d1, byuuid, bypci;
        char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE], uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE], want[64];
        unsigned idx = 99, minor = 99;
        int major = 0, minor_cc = -1;
        CHECK_OK(p_nvmlDeviceGetHandleByIndex_v2(i, &d));
        CHECK_OK(p_nvmlDeviceGetHandleByIndex(i, &d1));
        CHECK(d == d1);
        CHECK_OK(p_nvmlDeviceGetIndex(d, &idx));
        CHECK_EQ_INT(idx, i);
        CHECK_OK(p_nvmlDeviceGetMinorNumber(d, &minor));
        CHECK_EQ_INT(minor, i);
        CHECK_OK(p_nvmlDeviceGetName(d, name, sizeof name));
        if (expect_word("NVML_EXPECT_NAMES", i, want, sizeof want) && strstr(name, want) == NULL) {
            printf("FAIL %s: device %u is named \"%s\", expected it to contain \"%s\"\n", test_current_name, i,
                   name, want);
            test_current_failed = 1;
            return;
        }
        CHECK_OK(p_nvmlDeviceGetUUID(d, uuid, sizeof uuid));
        if (!is_uuid(uuid)) {
            printf("FAIL %s: UUID \"%s\" is not GPU-<lowercase 8-4-4-4-12 hex>\n", test_current_name, uuid);
            test_current_failed = 1;
            return;
        }
        CHECK_OK(p_nvmlDeviceGetHandleByUUID(uuid, &byuuid));
        CHECK(byuuid == d);
        for (char *c = uuid; *c; c++) /* tools pass upper case too */
            if (*c >= 'a' && *c <= 'f')
                *c = (char)(*c - 'a' + 'A');
        CHECK_OK(p_nvmlDeviceGetHandleByUUID(uuid, &byuuid));
        CHECK(byuuid == d);
        nvmlPciInfo_t pci;
        memset(&pci, 0, sizeof pci);
        CHECK_OK(p_nvmlDeviceGetPciInfo_v3(d, &pci));
        CHECK_OK(p_nvmlDeviceGetHandleByPciBusId_v2(pci.busId, &bypci));
        CHECK(bypci == d);
        CHECK_OK(p_nvmlDeviceGetHandleByPciBusId(pci.busIdLegacy, &bypci));
        CHECK(bypci == d);
        CHECK_OK(p_nvmlDeviceGetCudaComputeCapability(d, &major, &minor_cc));
        CHECK(major >= 3 && major <= 20 && minor_cc >= 0 && minor_cc <= 9);
        /* Handles of different devices differ, and UUIDs are unique. */
        for (unsigned j = 0; j < i; j++) {
            nvmlDevice_t other;
            char ou[NVML_DEVICE_UUID_V2_BUFFER_SIZE];
            CHECK_OK(p_nvmlDeviceGetHandleByIndex_v2(j, &other));
            CHECK(other != d);
            CHECK_OK(p_nvmlDeviceGetUUID(other, ou, sizeof ou));
            CHECK(strcasecmp(ou, uuid) != 0);
        }
    }
}

TEST(nvml_device_lookup_errors)
{
    nvmlDevice_t d;
    char buf[96];
    CHECK_NVML(p_nvmlDeviceGetHandleByIndex_v2(expect_count(), &d), NVML_ERROR_INVALID_ARGUMENT);
    CHECK_NVML(p_nvmlDeviceGetHandleByIndex_v2(0, NULL), NVML_ERROR_INVALID_ARGUMENT);
    CHECK_NVML(p_nvmlDeviceGetHandleByUUID("GPU-00000000-0000-0000-0000-000000000000", &d), NVML_ERROR_NOT_FOUND);
    CHECK_NVML(p_nvmlDeviceGetHandleByUUID(NULL, &d), NVML_ERROR_INVALID_ARGUMENT);
    CHECK_NVML(p_nvmlDeviceGetHandleByPciBusId_v2("0000:ff:1f.0", &d), NVML_ERROR_NOT_FOUND);
    CHECK_NVML(p_nvmlDeviceGetHandleByPciBusId_v2("not a bus id", &d), NVML_ERROR_INVALID_ARGUMENT);
    CHECK_NVML(p_nvmlDeviceGetHandleByPciBusId_v2(NULL, &d), NVML_ERROR_INVALID_ARGUMENT);
    /* A handle the library never gave out, and NULL. */
    static int not_a_device;
    CHECK_NVML(p_nvmlDeviceGetName((nvmlDevice_t)(void *)&not_a_device, buf, sizeof buf),
               NVML_ERROR_INVALID_ARGUMENT);
    CHECK_NVML(p_nvmlDeviceGetName(NULL, buf, sizeof buf), NVML_ERROR_INVALID_ARGUMENT);
    CHECK_OK(p_nvmlDeviceGetHandleByIndex_v2(0, &d));
    CHECK_NVML(p_nvmlDeviceGetName(d, NULL, 96), NVML_ERROR_INVALID_ARGUMENT);
    CHECK_NVML(p_nvmlDeviceGetName(d, buf, 3), NVML_ERROR_INSUFFICIENT_SIZE);
    CHECK_NVML(p_nvmlDeviceGetUUID(d, buf, 10), NVML_ERROR_INSUFFICIENT_SIZE);
    CHECK_NVML(p_nvmlDeviceGetIndex(d, NULL), NVML_ERROR_INVALID_ARGUMENT);
    CHECK_NVML(p_nvmlDeviceGetPciInfo_v3(d, NULL), NVML_ERROR_INVALID_ARGUMENT);
    CHECK_NVML(p_nvmlDeviceGetCudaComputeCapability(d, NULL, NULL), NVML_ERROR_INVALID_ARGUMENT);
    CHECK_NVML(p_nvmlDeviceGetUtilizationRates(d, NULL), NVML_ERROR_INVALID_ARGUMENT);
    CHECK_NVML(p_nvmlDeviceGetMemoryInfo(d, NULL), NVML_ERROR_INVALID_ARGUMENT);
    CHECK_NVML(p_nvmlDeviceGetMemoryInfo_v2(d, NULL), NVML_ERROR_INVALID_ARGUMENT);
}

/* v1 must not write past pciSubSystemId: its callers' struct ended there
 * (plus 16 reserved bytes). v2/v3 fill busId in the 8-digit format. */
TEST(nvml_pci_info_versions)
{
    nvmlDevice_t d;
    nvmlPciInfo_t v1, v3;
    char want[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE];
    CHECK_OK(p_nvmlDeviceGetHandleByIndex_v2(0, &d));
    memset(&v1, 0x5a, sizeof v1);
    CHECK_OK(p_nvmlDeviceGetPciInfo(d, &v1));
    for (size_t k = 0; k < sizeof v1.busId; k++)
        CHECK((unsigned char)v1.busId[k] == 0x5a);
    memset(&v3, 0x5a, sizeof v3);
    CHECK_OK(p_nvmlDeviceGetPciInfo_v2(d, &v3));
    CHECK_OK(p_nvmlDeviceGetPciInfo_v3(d, &v3));
    CHECK_EQ_INT(v1.domain, v3.domain);
    CHECK_EQ_INT(v1.bus, v3.bus);
    CHECK_EQ_INT(v1.device, v3.device);
    CHECK_STR(v1.busIdLegacy, v3.busIdLegacy);
    snprintf(want, sizeof want, NVML_DEVICE_PCI_BUS_ID_FMT, v3.domain, v3.bus, v3.device);
    CHECK_STR(v3.busId, want);
    snprintf(want, sizeof want, NVML_DEVICE_PCI_BUS_ID_LEGACY_FMT, v3.domain, v3.bus, v3.device);
    CHECK_STR(v3.busIdLegacy, want);
    CHECK_EQ_INT(v3.pciDeviceId & 0xffff, 0x10de); /* NVIDIA's vendor id in the low half */
}

TEST(nvml_memory_v1_v2)
{
    char want[32];
    for (unsigned i = 0; i < expect_count(); i++) {
        nvmlDevice_t d;
        nvmlMemory_t m1;
        nvmlMemory_v2_t m2;
        CHECK_OK(p_nvmlDeviceGetHandleByIndex_v2(i, &d));
        CHECK_OK(p_nvmlDeviceGetMemoryInfo(d, &m1));
        memset(&m2, 0, sizeof m2);
        m2.version = nvmlMemory_v2;
        CHECK_OK(p_nvmlDeviceGetMemoryInfo_v2(d, &m2));
        CHECK_EQ_U64(m2.version, nvmlMemory_v2);
        if (expect_word("NVML_EXPECT_TOTALS", i, want, sizeof want))
            CHECK_EQ_U64(m1.total, strtoull(want, NULL, 10));
        CHECK_EQ_U64(m1.total, m2.total);
        CHECK_EQ_U64(m1.free + m1.used, m1.total);
        CHECK_EQ_U64(m2.free + m2.used + m2.reserved, m2.total);
        CHECK_EQ_U64(m1.used, m2.used + m2.reserved); /* v1 used counts the reserved part */
        CHECK_EQ_U64(m1.used, 0);                     /* nothing runs yet */
        nvmlBAR1Memory_t bar;
        CHECK_OK(p_nvmlDeviceGetBAR1MemoryInfo(d, &bar));
        CHECK(bar.bar1Total >= m1.total);
        CHECK_EQ_U64(bar.bar1Free + bar.bar1Used, bar.bar1Total);
        nvmlUtilization_t u = {7, 7};
        CHECK_OK(p_nvmlDeviceGetUtilizationRates(d, &u));
        CHECK_EQ_INT(u.gpu, 0);
        CHECK_EQ_INT(u.memory, 0);
    }
}

TEST(nvml_memory_v2_version_checked)
{
    nvmlDevice_t d;
    nvmlMemory_v2_t m;
    CHECK_OK(p_nvmlDeviceGetHandleByIndex_v2(0, &d));
    unsigned bad[] = {0, 2, sizeof(nvmlMemory_v2_t), (1u << 24) | sizeof(nvmlMemory_v2_t),
                      (3u << 24) | sizeof(nvmlMemory_v2_t), nvmlMemory_v2 + 8};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        memset(&m, 0x5a, sizeof m);
        m.version = bad[k];
        CHECK_NVML(p_nvmlDeviceGetMemoryInfo_v2(d, &m), NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
        CHECK_EQ_U64(m.total, 0x5a5a5a5a5a5a5a5aULL); /* refused before writing */
    }
    CHECK_EQ_U64(nvmlMemory_v2, 0x02000028);
}

TEST(nvml_no_processes_yet)
{
    nvmlDevice_t d;
    unsigned n = 0;
    nvmlProcessInfo_t infos[4];
    CHECK_OK(p_nvmlDeviceGetHandleByIndex_v2(0, &d));
    CHECK_OK(p_nvmlDeviceGetComputeRunningProcesses_v3(d, &n, NULL));
    CHECK_EQ_INT(n, 0);
    n = 4;
    CHECK_OK(p_nvmlDeviceGetComputeRunningProcesses_v3(d, &n, infos));
    CHECK_EQ_INT(n, 0);
    n = 4;
    CHECK_OK(p_nvmlDeviceGetGraphicsRunningProcesses_v3(d, &n, infos));
    CHECK_EQ_INT(n, 0);
    CHECK_NVML(p_nvmlDeviceGetComputeRunningProcesses_v3(d, NULL, infos), NVML_ERROR_INVALID_ARGUMENT);
    n = 4;
    CHECK_NVML(p_nvmlDeviceGetComputeRunningProcesses_v3(d, &n, NULL), NVML_ERROR_INVALID_ARGUMENT);
    n = 0;
    CHECK_NVML(p_nvmlDeviceGetComputeRunningProcesses_v3(NULL, &n, NULL), NVML_ERROR_INVALID_ARGUMENT);
}

/* ---- agreement with the simulated libcuda -------------------------------- */

typedef CUresult (*PFN_cuDeviceGetPCIBusId_local)(char *pciBusId, int len, CUdevice dev);
typedef CUresult (*PFN_cuDevicePrimaryCtxRetain_local)(CUcontext *pctx, CUdevice dev);
typedef CUresult (*PFN_cuCtxSetCurrent_local)(CUcontext ctx);

struct cuda {
    PFN_cuInit_v2000 init;
    PFN_cuDeviceGet_v2000 device_get;
    PFN_cuDeviceGetCount_v2000 device_count;
    PFN_cuDeviceGetUuid_v11040 uuid;
    PFN_cuDeviceTotalMem_v3020 total_mem;
    PFN_cuDeviceGetPCIBusId_local bus_id;
    PFN_cuDevicePrimaryCtxRetain_local retain;
    PFN_cuCtxSetCurrent_local set_current;
    PFN_cuMemAlloc_v3020 alloc;
    PFN_cuMemFree_v3020 free;
    PFN_cuMemGetInfo_v3020 mem_info;
};

static const char *cuda_missing; /* why the CUDA side is unusable, or NULL */

static int load_cuda(struct cuda *c)
{
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        static char why[512];
        snprintf(why, sizeof why, "libcuda.so.1 (the simulated CUDA driver) cannot be loaded: %s", dlerror());
        cuda_missing = why;
        return -1;
    }
#define SYM(field, name) if ((*(void **)&c->field = dlsym(h, name)) == NULL) { cuda_missing = "libcuda.so.1 lacks " name; return -1; }
    SYM(init, "cuInit");
    SYM(device_get, "cuDeviceGet");
    SYM(device_count, "cuDeviceGetCount");
    SYM(uuid, "cuDeviceGetUuid_v2");
    SYM(total_mem, "cuDeviceTotalMem_v2");
    SYM(bus_id, "cuDeviceGetPCIBusId");
    SYM(retain, "cuDevicePrimaryCtxRetain");
    SYM(set_current, "cuCtxSetCurrent");
    SYM(alloc, "cuMemAlloc_v2");
    SYM(free, "cuMemFree_v2");
    SYM(mem_info, "cuMemGetInfo_v2");
#undef SYM
    if (c->init(0) != CUDA_SUCCESS) {
        cuda_missing = "cuInit failed";
        return -1;
    }
    return 0;
}

/* Skips a CUDA case when libcuda is unusable, or fails it when required. */
#define NEED_CUDA() do { if (cuda_missing) { \
    if (getenv("NVML_REQUIRE_CUDA")) { \
        printf("FAIL %s: %s\n", test_current_name, cuda_missing); test_current_failed = 1; return; } \
    SKIP(cuda_missing); } } while (0)

TEST(nvml_matches_cuda_devices)
{
    struct cuda c;
    load_cuda(&c);
    NEED_CUDA();
    int n = -1;
    CHECK(c.device_count(&n) == CUDA_SUCCESS);
    CHECK_EQ_INT(n, expect_count());
    for (int i = 0; i < n; i++) {
        CUdevice dev;
        CUuuid u;
        size_t total = 0;
        char cu_uuid[64], nv_uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE], cu_bus[32];
        nvmlDevice_t d;
        nvmlMemory_t m;
        nvmlPciInfo_t pci;
        CHECK(c.device_get(&dev, i) == CUDA_SUCCESS);
        CHECK(c.uuid(&u, dev) == CUDA_SUCCESS);
        const unsigned char *b = (const unsigned char *)u.bytes;
        snprintf(cu_uuid, sizeof cu_uuid,
                 "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
                 b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
        CHECK_OK(p_nvmlDeviceGetHandleByIndex_v2((unsigned)i, &d));
        CHECK_OK(p_nvmlDeviceGetUUID(d, nv_uuid, sizeof nv_uuid));
        CHECK_STR(nv_uuid, cu_uuid);
        CHECK(c.total_mem(&total, dev) == CUDA_SUCCESS);
        CHECK_OK(p_nvmlDeviceGetMemoryInfo(d, &m));
        CHECK_EQ_U64(m.total, total);
        CHECK(c.bus_id(cu_bus, sizeof cu_bus, dev) == CUDA_SUCCESS);
        CHECK_OK(p_nvmlDeviceGetPciInfo_v3(d, &pci));
        if (strcasecmp(cu_bus, pci.busIdLegacy) != 0 && strcasecmp(cu_bus, pci.busId) != 0) {
            printf("FAIL %s: CUDA bus id %s, NVML %s / %s\n", test_current_name, cu_bus, pci.busIdLegacy,
                   pci.busId);
            test_current_failed = 1;
            return;
        }
    }
}

/* A child that uses the device through the simulated libcuda, stepped by the
 * parent: it creates its context and reports, then allocates `bytes` and
 * reports the device's used bytes as CUDA sees them, then waits to be told to
 * free and exit (or to be killed). */
struct child {
    pid_t pid;
    int to_child, from_child;
};

enum { STEP_CTX = 'C', STEP_ALLOC = 'A', STEP_FAIL = 'F' };

static void child_main(int in, int out, int dev, size_t bytes)
{
    struct cuda c;
    CUcontext ctx;
    CUdevice d;
    CUdeviceptr p = 0;
    char step;
    unsigned long long used = 0;
    if (load_cuda(&c) != 0 || c.device_get(&d, dev) != CUDA_SUCCESS || c.retain(&ctx, d) != CUDA_SUCCESS ||
        c.set_current(ctx) != CUDA_SUCCESS)
        goto fail;
    step = STEP_CTX;
    if (write(out, &step, 1) != 1 || read(in, &step, 1) != 1)
        _exit(2);
    if (c.alloc(&p, bytes) != CUDA_SUCCESS)
        goto fail;
    size_t fr = 0, tot = 0;
    if (c.mem_info(&fr, &tot) != CUDA_SUCCESS)
        goto fail;
    used = tot - fr;
    step = STEP_ALLOC;
    if (write(out, &step, 1) != 1 || write(out, &used, sizeof used) != sizeof used)
        _exit(2);
    if (read(in, &step, 1) != 1) /* EOF: the parent is gone */
        _exit(0);
    c.free(p);
    _exit(0);
fail:
    step = STEP_FAIL;
    if (write(out, &step, 1) != 1)
        _exit(3);
    _exit(1);
}

/* The child is a fresh exec of this program (a forked copy of a process
 * that called cuInit may not use CUDA, as with NVIDIA's driver), talking
 * over its stdin and stdout. */
static int child_start(struct child *ch, int dev, size_t bytes)
{
    int down[2], up[2];
    if (pipe(down) != 0 || pipe(up) != 0)
        return -1;
    fflush(stdout);
    ch->pid = fork();
    if (ch->pid < 0)
        return -1;
    if (ch->pid == 0) {
        char devs[16], sizes[32];
        snprintf(devs, sizeof devs, "%d", dev);
        snprintf(sizes, sizeof sizes, "%zu", bytes);
        if (dup2(down[0], 0) < 0 || dup2(up[1], 1) < 0)
            _exit(4);
        close(down[0]);
        close(down[1]);
        close(up[0]);
        close(up[1]);
        execl("/proc/self/exe", "nvml_client", "child", devs, sizes, (char *)NULL);
        _exit(5);
    }
    close(down[0]);
    close(up[1]);
    ch->to_child = down[1];
    ch->from_child = up[0];
    return 0;
}

/* Waits for the child's next step: 0 if it is `want`. */
static int child_expect(struct child *ch, char want)
{
    char step = 0;
    return read(ch->from_child, &step, 1) == 1 && step == want ? 0 : -1;
}

static void child_step(struct child *ch)
{
    char go = 'g';
    if (write(ch->to_child, &go, 1) != 1)
        return;
}

static void child_reap(struct child *ch, int kill_it)
{
    if (ch->pid <= 0)
        return;
    if (kill_it)
        kill(ch->pid, SIGKILL);
    else
        child_step(ch);
    close(ch->to_child);
    close(ch->from_child);
    while (waitpid(ch->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    ch->pid = 0;
}

/* What NVML (v3 list) says `pid` holds on device 0; 0 if not listed. */
static unsigned long long nvml_used_by(nvmlDevice_t d, pid_t pid, unsigned *count)
{
    nvmlProcessInfo_t infos[64];
    unsigned n = 64;
    *count = 0;
    if (p_nvmlDeviceGetComputeRunningProcesses_v3(d, &n, infos) != NVML_SUCCESS)
        return ~0ULL;
    *count = n;
    for (unsigned i = 0; i < n; i++)
        if (infos[i].pid == (unsigned)pid)
            return infos[i].usedGpuMemory;
    return 0;
}

static struct child kids[2];
static unsigned long long ctx_bytes;

#define MiB (1024ULL * 1024ULL)
static const size_t alloc_a = 96 * MiB, alloc_b = 34 * MiB; /* multiples of 2 MiB: no rounding */

/* One process: listed with its context overhead, then with overhead plus
 * exactly what it allocated, and the device total agrees with CUDA's. */
TEST(nvml_process_used_is_alloc_plus_context)
{
    NEED_CUDA();
    nvmlDevice_t d;
    unsigned count;
    CHECK_OK(p_nvmlDeviceGetHandleByIndex_v2(0, &d));
    CHECK(child_start(&kids[0], 0, alloc_a) == 0);
    CHECK(child_expect(&kids[0], STEP_CTX) == 0);
    ctx_bytes = nvml_used_by(d, kids[0].pid, &count);
    CHECK_EQ_INT(count, 1);
    CHECK(ctx_bytes > 0 && ctx_bytes != ~0ULL);
    const char *want_ctx = getenv("NVML_EXPECT_CTX");
    if (want_ctx)
        CHECK_EQ_U64(ctx_bytes, strtoull(want_ctx, NULL, 10));
    child_step(&kids[0]);
    CHECK(child_expect(&kids[0], STEP_ALLOC) == 0);
    unsigned long long cuda_used = 0;
    CHECK(read(kids[0].from_child, &cuda_used, sizeof cuda_used) == sizeof cuda_used);
    CHECK_EQ_U64(nvml_used_by(d, kids[0].pid, &count), ctx_bytes + alloc_a);
    /* v1 and v2 entry points see the same. */
    nvmlProcessInfo_v1_t v1[4];
    nvmlProcessInfo_v2_t v2[4];
    unsigned n1 = 4, n2 = 4;
    CHECK_OK(p_nvmlDeviceGetComputeRunningProcesses(d, &n1, v1));
    CHECK_OK(p_nvmlDeviceGetComputeRunningProcesses_v2(d, &n2, v2));
    CHECK_EQ_INT(n1, 1);
    CHECK_EQ_INT(n2, 1);
    CHECK_EQ_INT(v1[0].pid, kids[0].pid);
    CHECK_EQ_U64(v1[0].usedGpuMemory, ctx_bytes + alloc_a);
    CHECK_EQ_INT(v2[0].pid, kids[0].pid);
    CHECK_EQ_U64(v2[0].usedGpuMemory, ctx_bytes + alloc_a);
    CHECK_EQ_U64(v2[0].gpuInstanceId, 0xFFFFFFFFu);
    CHECK_EQ_U64(v2[0].computeInstanceId, 0xFFFFFFFFu);
    /* Device totals: NVML used == the process's bytes == CUDA's total - free. */
    nvmlMemory_t m;
    nvmlMemory_v2_t m2 = {.version = nvmlMemory_v2};
    CHECK_OK(p_nvmlDeviceGetMemoryInfo(d, &m));
    CHECK_OK(p_nvmlDeviceGetMemoryInfo_v2(d, &m2));
    CHECK_EQ_U64(m.used, ctx_bytes + alloc_a);
    CHECK_EQ_U64(m2.used, m.used);
    CHECK_EQ_U64(m.free, m.total - m.used);
    CHECK_EQ_U64(cuda_used, m.used);
    char name[256];
    CHECK_OK(p_nvmlSystemGetProcessName((unsigned)kids[0].pid, name, sizeof name));
    CHECK(strstr(name, "nvml_client") != NULL);
}

/* Two processes: the count protocol. Too small a buffer answers
 * INSUFFICIENT_SIZE with the room needed and writes no entry. */
TEST(nvml_process_list_insufficient_size)
{
    NEED_CUDA();
    if (kids[0].pid <= 0)
        SKIP("needs nvml_process_used_is_alloc_plus_context to pass");
    nvmlDevice_t d;
    CHECK_OK(p_nvmlDeviceGetHandleByIndex_v2(0, &d));
    CHECK(child_start(&kids[1], 0, alloc_b) == 0);
    CHECK(child_expect(&kids[1], STEP_CTX) == 0);
    child_step(&kids[1]);
    CHECK(child_expect(&kids[1], STEP_ALLOC) == 0);
    unsigned long long ignored;
    CHECK(read(kids[1].from_child, &ignored, sizeof ignored) == sizeof ignored);

    nvmlProcessInfo_t infos[3];
    unsigned n = 0;
    CHECK_NVML(p_nvmlDeviceGetComputeRunningProcesses_v3(d, &n, NULL), NVML_ERROR_INSUFFICIENT_SIZE);
    CHECK_EQ_INT(n, 2);
    memset(infos, 0x5a, sizeof infos);
    n = 1;
    CHECK_NVML(p_nvmlDeviceGetComputeRunningProcesses_v3(d, &n, infos), NVML_ERROR_INSUFFICIENT_SIZE);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_U64(infos[0].usedGpuMemory, 0x5a5a5a5a5a5a5a5aULL);
    nvmlProcessInfo_v1_t v1[1];
    n = 1;
    CHECK_NVML(p_nvmlDeviceGetComputeRunningProcesses(d, &n, v1), NVML_ERROR_INSUFFICIENT_SIZE);
    CHECK_EQ_INT(n, 2);
    n = 3;
    CHECK_OK(p_nvmlDeviceGetComputeRunningProcesses_v3(d, &n, infos));
    CHECK_EQ_INT(n, 2);
    unsigned long long sum = 0, a = 0, b = 0;
    for (unsigned i = 0; i < n; i++) {
        sum += infos[i].usedGpuMemory;
        if (infos[i].pid == (unsigned)kids[0].pid)
            a = infos[i].usedGpuMemory;
        if (infos[i].pid == (unsigned)kids[1].pid)
            b = infos[i].usedGpuMemory;
    }
    CHECK_EQ_U64(a, ctx_bytes + alloc_a);
    CHECK_EQ_U64(b, ctx_bytes + alloc_b);
    nvmlMemory_t m;
    CHECK_OK(p_nvmlDeviceGetMemoryInfo(d, &m));
    CHECK_EQ_U64(m.used, sum);
    /* Graphics and MPS lists stay empty. */
    n = 3;
    CHECK_OK(p_nvmlDeviceGetGraphicsRunningProcesses_v2(d, &n, infos));
    CHECK_EQ_INT(n, 0);
    n = 0;
    CHECK_OK(p_nvmlDeviceGetMPSComputeRunningProcesses_v3(d, &n, NULL));
    CHECK_EQ_INT(n, 0);
}

/* A SIGKILLed process leaves the list and its bytes return to the device;
 * a clean exit empties it. */
TEST(nvml_process_gone_after_death)
{
    NEED_CUDA();
    if (kids[1].pid <= 0)
        SKIP("needs nvml_process_list_insufficient_size to pass");
    nvmlDevice_t d;
    unsigned count;
    CHECK_OK(p_nvmlDeviceGetHandleByIndex_v2(0, &d));
    pid_t killed = kids[0].pid;
    child_reap(&kids[0], 1);
    CHECK_EQ_U64(nvml_used_by(d, killed, &count), 0);
    CHECK_EQ_INT(count, 1);
    nvmlMemory_t m;
    CHECK_OK(p_nvmlDeviceGetMemoryInfo(d, &m));
    CHECK_EQ_U64(m.used, ctx_bytes + alloc_b);
    child_reap(&kids[1], 0);
    unsigned n = 0;
    CHECK_OK(p_nvmlDeviceGetComputeRunningProcesses_v3(d, &n, NULL));
    CHECK_EQ_INT(n, 0);
    CHECK_OK(p_nvmlDeviceGetMemoryInfo(d, &m));
    CHECK_EQ_U64(m.used, 0);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "child") == 0)
        child_main(0, 1, atoi(argv[2]), (size_t)strtoull(argv[3], NULL, 10));
    if (load_nvml() != 0)
        return 1;
    RUN(nvml_exports_all_entry_points);
    if (missing_symbol)
        return 1;
    RUN(nvml_uninitialized_before_init);
    RUN(nvml_init_is_reference_counted);
    RUN(nvml_handle_invalid_after_shutdown);
    RUN(nvml_error_strings);
    if (p_nvmlInit_v2() != NVML_SUCCESS) {
        printf("FAIL nvml_init: nvmlInit_v2 failed\n");
        return 1;
    }
    RUN(nvml_versions);
    RUN(nvml_device_count);
    RUN(nvml_device_identity);
    RUN(nvml_device_lookup_errors);
    RUN(nvml_pci_info_versions);
    RUN(nvml_memory_v1_v2);
    RUN(nvml_memory_v2_version_checked);
    RUN(nvml_no_processes_yet);
    RUN(nvml_matches_cuda_devices);
    RUN(nvml_process_used_is_alloc_plus_context);
    RUN(nvml_process_list_insufficient_size);
    RUN(nvml_process_gone_after_death);
    child_reap(&kids[0], 1);
    child_reap(&kids[1], 1);
    p_nvmlShutdown();
    return test_summary();
}

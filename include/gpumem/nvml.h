/* The NVML (NVIDIA Management Library, libnvidia-ml.so.1) types, values and
 * signatures gpumem uses, declared by gpumem itself so that nothing here needs
 * NVIDIA's nvml.h to build.
 *
 * NVML's ABI is stable: every struct, constant and signature here matches
 * NVIDIA's nvml.h exactly (field order, sizes, values). Names follow NVIDIA's
 * so code reads the same as against nvml.h.
 *
 * Unlike nvml.h, this header does not #define the unversioned names to their
 * newest version (nvml.h maps nvmlInit to nvmlInit_v2,
 * nvmlDeviceGetComputeRunningProcesses to ..._v3, ...): the shim and the
 * simulated library must define every exported symbol under its own name, and
 * each name keeps the signature it had when it was exported. Function
 * prototypes are not declared; GPUMEM_NVML_ENTRY_POINTS below is the one list
 * of entry points with their signatures, from which PFN_<name> pointer types
 * are generated (and from which a library can generate its prototypes). */
#ifndef GPUMEM_NVML_H
#define GPUMEM_NVML_H

/* Version of the NVML API these declarations follow (nvml.h of CUDA 13,
 * driver r580). */
#define NVML_API_VERSION     13
#define NVML_API_VERSION_STR "13"

/* Makes the `version` word of a versioned struct: its size in the low bits,
 * its version number in the top byte. nvmlMemory_v2 == 0x02000028. */
#define NVML_STRUCT_VERSION(data, ver) \
    (unsigned int)(sizeof(nvml##data##_v##ver##_t) | ((ver) << 24U))

/* A field a device cannot report (for example gpuInstanceId outside MIG,
 * where it reads 0xFFFFFFFF in an unsigned int field). */
#define NVML_VALUE_NOT_AVAILABLE (-1)

/* Buffer sizes callers use for strings; NVML answers
 * NVML_ERROR_INSUFFICIENT_SIZE when a buffer cannot hold the whole string
 * with its terminating NUL. */
#define NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE     32
#define NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE  16
#define NVML_DEVICE_NAME_BUFFER_SIZE           64
#define NVML_DEVICE_NAME_V2_BUFFER_SIZE        96
#define NVML_DEVICE_UUID_BUFFER_SIZE           80
#define NVML_DEVICE_UUID_V2_BUFFER_SIZE        96
#define NVML_DEVICE_SERIAL_BUFFER_SIZE         30
#define NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE 80
#define NVML_SYSTEM_NVML_VERSION_BUFFER_SIZE   80

/* PCI bus id formats: busIdLegacy (4-digit domain) and busId (8-digit). */
#define NVML_DEVICE_PCI_BUS_ID_LEGACY_FMT "%04X:%02X:%02X.0"
#define NVML_DEVICE_PCI_BUS_ID_FMT        "%08X:%02X:%02X.0"

/* nvmlDeviceGetMigMode: a GPU in MIG mode is partitioned into GPU instances
 * whose compute instances are the MIG devices (nvmlDeviceGetMigDeviceHandleByIndex,
 * "MIG-..." UUIDs); CUDA runs on a MIG device, never on the whole GPU. */
#define NVML_DEVICE_MIG_DISABLE 0x0
#define NVML_DEVICE_MIG_ENABLE  0x1

/* nvmlInitWithFlags flags. */
#define NVML_INIT_FLAG_NO_GPUS   (1 << 0) /* don't fail init when no GPU is found */
#define NVML_INIT_FLAG_NO_ATTACH (1 << 1) /* don't attach GPUs */

/* CUDA driver version as reported by nvmlSystemGetCudaDriverVersion
 * (1000 * major + 10 * minor, as cuDriverGetVersion). */
#define NVML_CUDA_DRIVER_VERSION_MAJOR(v) ((v) / 1000)
#define NVML_CUDA_DRIVER_VERSION_MINOR(v) (((v) % 1000) / 10)

typedef enum nvmlReturn_enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NO_PERMISSION = 4,
    NVML_ERROR_ALREADY_INITIALIZED = 5, /* no longer returned: init is reference-counted */
    NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_INSUFFICIENT_POWER = 8,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_TIMEOUT = 10,
    NVML_ERROR_IRQ_ISSUE = 11,
    NVML_ERROR_LIBRARY_NOT_FOUND = 12,
    NVML_ERROR_FUNCTION_NOT_FOUND = 13,
    NVML_ERROR_CORRUPTED_INFOROM = 14,
    NVML_ERROR_GPU_IS_LOST = 15,
    NVML_ERROR_RESET_REQUIRED = 16,
    NVML_ERROR_OPERATING_SYSTEM = 17,
    NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18,
    NVML_ERROR_IN_USE = 19,
    NVML_ERROR_MEMORY = 20,
    NVML_ERROR_NO_DATA = 21,
    NVML_ERROR_VGPU_ECC_NOT_SUPPORTED = 22,
    NVML_ERROR_INSUFFICIENT_RESOURCES = 23,
    NVML_ERROR_FREQ_NOT_SUPPORTED = 24,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
    NVML_ERROR_DEPRECATED = 26,
    NVML_ERROR_NOT_READY = 27,
    NVML_ERROR_GPU_NOT_FOUND = 28,
    NVML_ERROR_INVALID_STATE = 29,
    NVML_ERROR_RESET_TYPE_NOT_SUPPORTED = 30,
    NVML_ERROR_UNKNOWN = 999,
} nvmlReturn_t;

/* A device handle: an opaque pointer owned by the library, valid from init
 * until the last nvmlShutdown. */
typedef struct nvmlDevice_st *nvmlDevice_t;

typedef struct nvmlPciInfo_st {
    char busIdLegacy[NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE]; /* "0000:19:00.0" */
    unsigned int domain;
    unsigned int bus;
    unsigned int device;
    unsigned int pciDeviceId;    /* device id << 16 | vendor id (0x10de) */
    unsigned int pciSubSystemId;
    char busId[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE];          /* "00000000:19:00.0" */
} nvmlPciInfo_t;

typedef struct nvmlUtilization_st {
    unsigned int gpu;    /* percent of the last sample period a kernel ran */
    unsigned int memory; /* percent of it device memory was read or written */
} nvmlUtilization_t;

/* v1: used = reserved (driver/firmware) + allocated. total = free + used. */
typedef struct nvmlMemory_st {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_t;

/* v2: the caller sets version = nvmlMemory_v2; used excludes reserved. */
typedef struct nvmlMemory_v2_st {
    unsigned int version;
    unsigned long long total;
    unsigned long long reserved;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_v2_t;
#define nvmlMemory_v2 NVML_STRUCT_VERSION(Memory, 2)

typedef struct nvmlBAR1Memory_st {
    unsigned long long bar1Total;
    unsigned long long bar1Free;
    unsigned long long bar1Used;
} nvmlBAR1Memory_t;

/* Per-process usage for the unversioned (oldest) process-list entry points. */
typedef struct nvmlProcessInfo_v1_st {
    unsigned int pid;                 /* host pid */
    unsigned long long usedGpuMemory; /* bytes, everything the process holds */
} nvmlProcessInfo_v1_t;

/* For the _v2 and _v3 entry points. Outside MIG both instance ids are
 * 0xFFFFFFFF. nvml.h declares nvmlProcessInfo_t as this same struct. */
typedef struct nvmlProcessInfo_v2_st {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlProcessInfo_v2_t, nvmlProcessInfo_t;

/* Every NVML entry point gpumem provides or interposes, as
 * X(name, (parameters)); all return nvmlReturn_t. nvmlErrorString, the one
 * that returns a string, is declared apart. Each name keeps the signature
 * NVIDIA exported it with: the unversioned process-list functions take
 * nvmlProcessInfo_v1_t, their _v2/_v3 nvmlProcessInfo_t. */
#define GPUMEM_NVML_ENTRY_POINTS(X)                                                                    \
    X(nvmlInit, (void))                                                                                \
    X(nvmlInit_v2, (void))                                                                             \
    X(nvmlInitWithFlags, (unsigned int flags))                                                         \
    X(nvmlShutdown, (void))                                                                            \
    X(nvmlSystemGetDriverVersion, (char *version, unsigned int length))                                \
    X(nvmlSystemGetNVMLVersion, (char *version, unsigned int length))                                  \
    X(nvmlSystemGetCudaDriverVersion, (int *cudaDriverVersion))                                        \
    X(nvmlSystemGetCudaDriverVersion_v2, (int *cudaDriverVersion))                                     \
    X(nvmlSystemGetProcessName, (unsigned int pid, char *name, unsigned int length))                   \
    X(nvmlDeviceGetCount, (unsigned int *deviceCount))                                                 \
    X(nvmlDeviceGetCount_v2, (unsigned int *deviceCount))                                              \
    X(nvmlDeviceGetHandleByIndex, (unsigned int index, nvmlDevice_t *device))                          \
    X(nvmlDeviceGetHandleByIndex_v2, (unsigned int index, nvmlDevice_t *device))                       \
    X(nvmlDeviceGetHandleByUUID, (const char *uuid, nvmlDevice_t *device))                             \
    X(nvmlDeviceGetHandleByPciBusId, (const char *pciBusId, nvmlDevice_t *device))                     \
    X(nvmlDeviceGetHandleByPciBusId_v2, (const char *pciBusId, nvmlDevice_t *device))                  \
    X(nvmlDeviceGetIndex, (nvmlDevice_t device, unsigned int *index))                                  \
    X(nvmlDeviceGetMinorNumber, (nvmlDevice_t device, unsigned int *minorNumber))                      \
    X(nvmlDeviceGetName, (nvmlDevice_t device, char *name, unsigned int length))                       \
    X(nvmlDeviceGetUUID, (nvmlDevice_t device, char *uuid, unsigned int length))                       \
    X(nvmlDeviceGetPciInfo, (nvmlDevice_t device, nvmlPciInfo_t *pci))                                 \
    X(nvmlDeviceGetPciInfo_v2, (nvmlDevice_t device, nvmlPciInfo_t *pci))                              \
    X(nvmlDeviceGetPciInfo_v3, (nvmlDevice_t device, nvmlPciInfo_t *pci))                              \
    X(nvmlDeviceGetCudaComputeCapability, (nvmlDevice_t device, int *major, int *minor))               \
    X(nvmlDeviceGetMemoryInfo, (nvmlDevice_t device, nvmlMemory_t *memory))                            \
    X(nvmlDeviceGetMemoryInfo_v2, (nvmlDevice_t device, nvmlMemory_v2_t *memory))                      \
    X(nvmlDeviceGetBAR1MemoryInfo, (nvmlDevice_t device, nvmlBAR1Memory_t *bar1Memory))                \
    X(nvmlDeviceGetUtilizationRates, (nvmlDevice_t device, nvmlUtilization_t *utilization))            \
    X(nvmlDeviceGetComputeRunningProcesses,                                                            \
      (nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_v1_t *infos))                     \
    X(nvmlDeviceGetComputeRunningProcesses_v2,                                                         \
      (nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_v2_t *infos))                     \
    X(nvmlDeviceGetComputeRunningProcesses_v3,                                                         \
      (nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_t *infos))                        \
    X(nvmlDeviceGetGraphicsRunningProcesses,                                                           \
      (nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_v1_t *infos))                     \
    X(nvmlDeviceGetGraphicsRunningProcesses_v2,                                                        \
      (nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_v2_t *infos))                     \
    X(nvmlDeviceGetGraphicsRunningProcesses_v3,                                                        \
      (nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_t *infos))                        \
    X(nvmlDeviceGetMPSComputeRunningProcesses,                                                         \
      (nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_v1_t *infos))                     \
    X(nvmlDeviceGetMPSComputeRunningProcesses_v2,                                                      \
      (nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_v2_t *infos))                     \
    X(nvmlDeviceGetMPSComputeRunningProcesses_v3,                                                      \
      (nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_t *infos))                        \
    X(nvmlDeviceGetMigMode, (nvmlDevice_t device, unsigned int *currentMode, unsigned int *pendingMode)) \
    X(nvmlDeviceGetMaxMigDeviceCount, (nvmlDevice_t device, unsigned int *count))                      \
    X(nvmlDeviceGetMigDeviceHandleByIndex, (nvmlDevice_t device, unsigned int index, nvmlDevice_t *migDevice)) \
    X(nvmlDeviceIsMigDeviceHandle, (nvmlDevice_t device, unsigned int *isMigDevice))                   \
    X(nvmlDeviceGetDeviceHandleFromMigDeviceHandle, (nvmlDevice_t migDevice, nvmlDevice_t *device))    \
    X(nvmlDeviceGetGpuInstanceId, (nvmlDevice_t device, unsigned int *id))                             \
    X(nvmlDeviceGetComputeInstanceId, (nvmlDevice_t device, unsigned int *id))

/* PFN_<name>: pointer to the entry point <name>, e.g. PFN_nvmlInit_v2. */
#define GPUMEM_NVML_PFN_(name, params) typedef nvmlReturn_t(*PFN_##name) params;
GPUMEM_NVML_ENTRY_POINTS(GPUMEM_NVML_PFN_)
#undef GPUMEM_NVML_PFN_

/* Usable before nvmlInit and after nvmlShutdown; never NULL. */
typedef const char *(*PFN_nvmlErrorString)(nvmlReturn_t result);

#endif

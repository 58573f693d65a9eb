/* NVIDIA's per-cgroup device memory limits (drivers r615 and later):
 * nvmlDeviceSetMemoryLimits_v1 / nvmlDeviceGetMemoryLimits_v1, declared here
 * from NVIDIA's NVML API reference (docs.nvidia.com/deploy/nvml-api:
 * structnvmlSetMemoryLimits__v1__t, structnvmlGetMemoryLimits__v1__t) and
 * the cuda-python bindings' pages for the two functions (device, pointer to
 * the struct). The one place gpumem declares them: NVIDIA's nvml.h that the
 * ABI test compiles against (CUDA 12.4's) predates them, so they are kept
 * apart from include/gpumem/nvml.h and its checked entry-point list.
 *
 * What the reference says: the limits apply to the processes of the cgroup
 * whose sysfs path is `nameSpace`; softLimit is "the amount of memory that
 * is guaranteed before allocations may fail due to memory pressure",
 * hardLimit "the maximum amount of memory that can be allocated", both in
 * bytes. Setting needs root; MIG handles are not supported; Linux only.
 * "To clear the limits, set softLimit to 0, and hardLimit to
 * NVML_DEVICE_MEMORY_LIMIT_MAX. Removing the cgroup will also clear any
 * limits."
 *
 * Not found in the public pages, and so our choice (docs/driver-limits.md):
 * whether the pointer parameters are const (declared without), and the
 * value of NVML_DEVICE_MEMORY_LIMIT_MAX (declared as the largest unsigned
 * long long). */
#ifndef GPUMEM_NVML_MEMLIMITS_H
#define GPUMEM_NVML_MEMLIMITS_H

#include "gpumem/nvml.h"

#define NVML_DEVICE_MEMORY_LIMIT_MAX 0xffffffffffffffffULL

typedef struct {
    const char *nameSpace;           /* [in] full sysfs path of the cgroup (v2) */
    unsigned long long softLimit;    /* [in] bytes */
    unsigned long long hardLimit;    /* [in] bytes */
} nvmlSetMemoryLimits_v1_t;

typedef struct {
    const char *nameSpace;           /* [in] */
    unsigned long long softLimit;    /* [out] bytes; 0 when none */
    unsigned long long hardLimit;    /* [out] bytes; NVML_DEVICE_MEMORY_LIMIT_MAX when none */
    unsigned long long currentUsed;  /* [out] bytes the cgroup uses against them */
} nvmlGetMemoryLimits_v1_t;

typedef nvmlReturn_t (*PFN_nvmlDeviceSetMemoryLimits_v1)(nvmlDevice_t device, nvmlSetMemoryLimits_v1_t *limits);
typedef nvmlReturn_t (*PFN_nvmlDeviceGetMemoryLimits_v1)(nvmlDevice_t device, nvmlGetMemoryLimits_v1_t *limits);

#endif

/* Private to the simulated libnvidia-ml.so.1: prototypes of its exports and
 * the helpers its files share.
 *
 * Every entry point answers from the machine-wide simulated-GPU state
 * (sim/common/simstate.h), the same one the simulated libcuda.so.1 charges,
 * so NVML and CUDA agree on devices, UUIDs and used bytes. */
#ifndef GPUMEM_SIM_NVML_H
#define GPUMEM_SIM_NVML_H

#include "gpumem/nvml.h"
#include "gpumem/nvml_memlimits.h"
#include "../common/simstate.h"

/* The library is built with -fvisibility=hidden; exports are marked here and
 * listed again in libnvidia-ml.map. */
#define NVML_EXPORT __attribute__((visibility("default")))

#define NVML_SIM_PROTO_(name, params) NVML_EXPORT nvmlReturn_t name params;
GPUMEM_NVML_ENTRY_POINTS(NVML_SIM_PROTO_)
#undef NVML_SIM_PROTO_
NVML_EXPORT const char *nvmlErrorString(nvmlReturn_t result);
/* NVIDIA's per-cgroup limits (r615+), include/gpumem/nvml_memlimits.h. */
NVML_EXPORT nvmlReturn_t nvmlDeviceSetMemoryLimits_v1(nvmlDevice_t device, nvmlSetMemoryLimits_v1_t *limits);
NVML_EXPORT nvmlReturn_t nvmlDeviceGetMemoryLimits_v1(nvmlDevice_t device, nvmlGetMemoryLimits_v1_t *limits);

/* nvmlPciInfoExt_v1_t of NVIDIA's nvml.h (CUDA 12.4 on), which our header
 * does not declare: the caller sets version = NVML_SIM_PCI_INFO_EXT_V1. */
struct nvml_sim_pci_info_ext {
    unsigned int version;
    unsigned int domain, bus, device;
    unsigned int pciDeviceId, pciSubSystemId;
    unsigned int baseClass, subClass;
    char busId[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE];
};
#define NVML_SIM_PCI_INFO_EXT_V1 ((unsigned int)(sizeof(struct nvml_sim_pci_info_ext) | (1u << 24)))

/* The rest of what nvidia-smi looks up (sim/nvml/entries.def). */
#define NVML_SIM_ENTRY(name, params) NVML_EXPORT nvmlReturn_t name params;
#define NVML_SIM_STUB(name) NVML_EXPORT nvmlReturn_t name(void);
#include "entries.def"
#undef NVML_SIM_ENTRY
#undef NVML_SIM_STUB

/* NVIDIA's private entry point behind which nvidia-smi finds a table of
 * functions (sim/nvml/export_table.c). */
NVML_EXPORT nvmlReturn_t nvmlInternalGetExportTable(const void **table, const unsigned char *id);

/* The driver version reported when GPUMEM_SIM_DRIVER_VERSION does not say
 * otherwise: the one of Debian's nvidia-smi (550.163.01, trixie), which runs
 * on Debian 12 and which the tests use. The CUDA version is the simulated
 * libcuda.so.1's (cuDriverGetVersion), whatever the driver version says. */
#define NVML_SIM_DRIVER_VERSION "550.163.01"
#define NVML_SIM_CUDA_VERSION   13000

/* The driver version this process reports: GPUMEM_SIM_DRIVER_VERSION when it
 * is a dotted version of digits (at most 31 characters), else the default. */
const char *nvml_sim_driver_version(void);

/* The process's command as nvidia-smi shows it (argv[0]), cropped to
 * `length`: NVML_SUCCESS, or NVML_ERROR_NOT_FOUND when the pid is gone. */
nvmlReturn_t nvml_sim_process_name(unsigned int pid, char *name, unsigned int length);

/* A device handle points at one of these; the index is the entry in the
 * simulated state: for a GPU, the NVML index, which is also the simulated
 * CUDA ordinal (NVML, like the real one, ignores
 * CUDA_VISIBLE_DEVICES). */
struct nvmlDevice_st {
    int index;
};

/* NVML_SUCCESS while the library is initialised (reference count > 0),
 * NVML_ERROR_UNINITIALIZED otherwise. */
nvmlReturn_t nvml_sim_check_init(void);

/* Number of devices seen at the first nvmlInit. */
unsigned int nvml_sim_device_count(void);

/* The handle for entry i: a GPU (< nvml_sim_device_count()) or, after the
 * GPUs, a MIG device (sim/nvml/mig.c). */
nvmlDevice_t nvml_sim_handle(unsigned int i);

/* Validates an initialised library and a handle it gave out: NVML_SUCCESS
 * and *index, NVML_ERROR_UNINITIALIZED, or NVML_ERROR_INVALID_ARGUMENT for a
 * NULL or foreign handle (NVIDIA's answer for an invalid device). */
nvmlReturn_t nvml_sim_device_index(nvmlDevice_t device, int *index);

/* nvml_sim_device_index, then the device's record (and its index when
 * `index` is not NULL). */
nvmlReturn_t nvml_sim_lookup(nvmlDevice_t device, const struct sim_device_info **info, int *index);

/* Copies the NUL-terminated `s` into buf[length]: NVML_ERROR_INVALID_ARGUMENT
 * for a NULL buffer, NVML_ERROR_INSUFFICIENT_SIZE when it does not fit with
 * its NUL (nothing is written then), else NVML_SUCCESS. */
nvmlReturn_t nvml_sim_copy_string(char *buf, unsigned int length, const char *s);

/* 1 when the test made GPU `index` fall off the bus (a file lost-<index>
 * in the state directory): every query of it fails NVML_ERROR_GPU_IS_LOST. */
int nvml_sim_lost(int index);

#endif

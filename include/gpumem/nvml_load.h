/* NVML for gpumem's host-side programs (CLI, daemon, runtime, the
 * Kubernetes plugins): loaded by path and initialised, with the entry
 * points they all use. NVML is dlopened, never linked, so every program
 * runs, and says "no NVML", where NVIDIA's driver is not installed. */
#ifndef GPUMEM_NVML_LOAD_H
#define GPUMEM_NVML_LOAD_H

#include <stddef.h>

#include "gpumem/nvml.h"

struct gm_nvml {
    void *lib; /* dlopen handle: a program's own further entry points (dlsym) */
    PFN_nvmlDeviceGetCount_v2 count;
    PFN_nvmlDeviceGetHandleByIndex_v2 by_index;
    PFN_nvmlDeviceGetUUID uuid;
    PFN_nvmlDeviceGetMemoryInfo mem;
    /* NULL where the library lacks them; a program that needs one checks. */
    PFN_nvmlDeviceGetHandleByUUID by_uuid;
    PFN_nvmlDeviceGetName name;
    PFN_nvmlSystemGetDriverVersion version;
};

/* Loads lib (NULL or "": libnvidia-ml.so.1, as the dynamic loader finds
 * it) and calls nvmlInit_v2. 0, or -1 with why in err: it cannot be
 * loaded, it lacks nvmlInit_v2, the device count, handle by index, UUID or
 * memory info, or its initialisation failed (NVML's code). The library
 * stays loaded: unloading a driver library gains nothing. */
int gm_nvml_load(const char *lib, struct gm_nvml *n, char *err, size_t errlen);

#endif

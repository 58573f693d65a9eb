/* What NVML says of a MIG device, for gpumem's host-side programs (ps, top,
 * the daemon's metrics): which GPU it is part of and its instance profile.
 * Not used by the shim. */
#ifndef GPUMEM_NVML_MIG_H
#define GPUMEM_NVML_MIG_H

#include <stddef.h>

#include "gpumem/size.h"

struct gm_mig_info {
    int gpu;                        /* NVML index of its GPU */
    int index;                      /* its index among the GPU's MIG devices (nvidia-smi -L) */
    unsigned gi, ci;                /* GPU / compute instance ids */
    char parent_uuid[GM_UUID_LEN];  /* "GPU-..." lower case */
    char profile[32];               /* "3g.40gb", "2c.4g.40gb": the name after " MIG " */
};

/* 0 and *info when `uuid` ("MIG-...") is a MIG device the NVML library
 * `lib` (a path, or NULL for the system's) knows; -1 otherwise (not a MIG
 * UUID, no NVML, no such device). Answers are cached per process. */
int gm_nvml_mig_info(const char *lib, const char *uuid, struct gm_mig_info *info);

#endif

/* Small helpers shared by gpumem's host-side programs (the CLI, the daemon,
 * the OCI runtime). Not used by the shim. */
#ifndef GPUMEM_HOSTUTIL_H
#define GPUMEM_HOSTUTIL_H

#include <stddef.h>

/* mkdir -p with mode 0755: 0, or -1 with errno set. */
int gm_mkdir_p(const char *dir);

/* The UUID ("GPU-...", lower case) of NVML device `index`, asked of the NVML
 * library `lib` (a path, or NULL for the system's libnvidia-ml.so.1). Writes
 * it to buf and returns buf, or NULL when unknown. */
const char *gm_nvml_index_uuid(const char *lib, unsigned index, char *buf, size_t len);

#endif

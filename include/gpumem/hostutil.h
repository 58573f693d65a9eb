/* Small helpers shared by gpumem's host-side programs (the CLI, the daemon,
 * the OCI runtime). Not used by the shim. */
#ifndef GPUMEM_HOSTUTIL_H
#define GPUMEM_HOSTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* mkdir -p with mode 0755: 0, or -1 with errno set. */
int gm_mkdir_p(const char *dir);

/* The UUID ("GPU-...", lower case) of NVML device `index`, asked of the NVML
 * library `lib` (a path, or NULL for the system's libnvidia-ml.so.1). Writes
 * it to buf and returns buf, or NULL when unknown. */
const char *gm_nvml_index_uuid(const char *lib, unsigned index, char *buf, size_t len);

/* Every GPU NVML (`lib`, or the system's with NULL) lists: its UUID (lower
 * case) and total memory, at most max. Returns the count; 0 without NVML. */
struct gm_gpu;
int gm_nvml_gpus(const char *lib, struct gm_gpu *gpus, int max);

/* Calls fn(name, dir, ctx) for every group directory under state_dir (the
 * entries with valid group names), in name order, with /proc reads cached
 * for the pass (gm_proc_cache_begin): the walk of `gpumem ps` and of the
 * daemon's scrapes. A missing state directory has no groups. */
void gm_each_group(const char *state_dir, void (*fn)(const char *name, const char *dir, void *ctx), void *ctx);

#endif

/* NVIDIA's per-cgroup driver limits as gpumem's second line of enforcement
 * (docs/driver-limits.md). Drivers from r615 can hold the processes of a
 * cgroup v2 to a device memory limit in the driver itself
 * (nvmlDeviceSetMemoryLimits_v1, include/gpumem/nvml_memlimits.h), which no
 * process inside can undo. Where that exists, whoever creates a container's
 * group (gpumem-runtime, the Kubernetes plugins) sets the driver's limit to
 * the group's for the container's cgroup; where it does not (older
 * drivers, cgroup v1, MIG, not root), the shim alone enforces. Either way
 * the shim enforces too.
 *
 * The outcome is recorded in the group directory (file `driver-limits`):
 * the NVML library and cgroup used, the enforcement ("shim+driver" or
 * "shim"), why, and the limits set, so that `gpumem ps` can show it,
 * `gpumem limit` can change both, and removing the group can clear the
 * driver's. Host-side only (not the shim). */
#ifndef GPUMEM_DRIVER_LIMITS_H
#define GPUMEM_DRIVER_LIMITS_H

#include <stddef.h>
#include <sys/types.h>

#define GM_DRIVER_RECORD "driver-limits"

/* The cgroup v2 directory of process `pid` (e.g.
 * /sys/fs/cgroup/system.slice/docker-<id>.scope): 0, or -1 with why filled
 * (no cgroup v2 on the machine, or the process is in its root: a cgroup v1
 * or hybrid host where the container has no v2 cgroup of its own). */
int gm_cgroup_v2_of_pid(pid_t pid, char *buf, size_t len, char *why, size_t whylen);

/* Sets the driver limits of the group at `dir` for `cgroup`, through the
 * NVML library `nvml_lib` (NULL: the system's), on every device the
 * group's limits cover: hard = the limit, soft = the group's request (0
 * while groups carry none). Reads each back. Records the outcome. Returns
 * 1 when the driver enforces every limit, 0 when the shim alone does (why
 * says why), -1 when the record cannot be written (why). */
int gm_driver_limits_apply(const char *nvml_lib, const char *dir, const char *cgroup, char *why, size_t whylen);

/* After the container started (or whenever): 1 when every recorded limit is
 * still in force in the driver, 0 when not (the record then says "shim" and
 * why), -1 when the group has no driver limits to verify. */
int gm_driver_limits_verify(const char *dir, char *why, size_t whylen);

/* After `gpumem limit`: sets the group's new limits for its recorded
 * cgroup. As apply; -1 also when the group has no record (nothing to do). */
int gm_driver_limits_reapply(const char *dir, char *why, size_t whylen);

/* Clears every driver limit the record says was set (soft 0, hard
 * NVML_DEVICE_MEMORY_LIMIT_MAX) and removes the record. Nothing without
 * one. Called before a group is removed. */
void gm_driver_limits_clear(const char *dir);

/* Records that the shim alone enforces the group's limits, and why (no
 * cgroup v2 for the container, no pid to find it by...): 0, or -1. */
int gm_driver_limits_shim_only(const char *dir, const char *reason);

/* "shim+driver" or "shim" for the group at `dir` (why, may be NULL, gets
 * the recorded reason, "" when none). */
const char *gm_driver_enforcement(const char *dir, char *why, size_t whylen);

#endif

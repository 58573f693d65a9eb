/* gpumem-runtime and NVIDIA's per-cgroup driver limits (second line of
 * enforcement, include/gpumem/driver_limits.h): after the real runtime has
 * created the container, its init process is in the container's cgroup
 * (runc/crun write its pid to --pid-file, which containerd always passes):
 * the driver's limit is set for that cgroup and read back. On `start` it is
 * verified again; on `delete` (remove_container_group) cleared. The shim
 * enforces in every case; a driver limit that cannot be set is recorded,
 * with why, for `gpumem ps`, and is no error. */
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>

#include "gpumem/driver_limits.h"

static pid_t read_pid(const char *file)
{
    FILE *f = file ? fopen(file, "re") : NULL;
    long pid = 0;
    if (f) {
        if (fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    return pid > 0 && pid < (1L << 22) ? (pid_t)pid : 0;
}

void rt_driver_limits_created(const struct rt_args *a, const char *dir)
{
    char cgroup[4096], why[1024];
    pid_t pid = read_pid(a->pid_file);
    if (!pid) {
        gm_driver_limits_shim_only(dir, "the runtime was not given --pid-file: the container's cgroup is unknown");
        return;
    }
    if (gm_cgroup_v2_of_pid(pid, cgroup, sizeof cgroup, why, sizeof why) < 0) {
        gm_driver_limits_shim_only(dir, why);
        return;
    }
    if (gm_driver_limits_apply(rt_nvml_lib, dir, cgroup, why, sizeof why) < 0)
        fprintf(stderr, "gpumem-runtime: warning: container %.12s: %s\n", a->id, why);
}

void rt_driver_limits_started(const struct rt_args *a, const char *dir)
{
    char why[1024];
    if (gm_driver_limits_verify(dir, why, sizeof why) == 0)
        fprintf(stderr, "gpumem-runtime: warning: container %.12s: %s; the shim alone enforces its limit\n", a->id,
                why);
}

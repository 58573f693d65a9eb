/* A simulated GPU that has "fallen off the bus" (Xid 79 on real hardware):
 * while the file lost-<index> exists in the simulated GPU's state directory
 * ($GPUMEM_SIM_STATE), NVML's memory queries of device <index> answer
 * NVML_ERROR_GPU_IS_LOST, as NVIDIA's NVML does for a lost GPU. Its identity
 * (UUID, name) still answers, so health checks can say which GPU it is.
 * Removing the file brings it back. Tests use it to turn a GPU unhealthy
 * under a running device plugin or DRA driver (docs/simulated-gpu.md). */
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

#include "nvml_sim.h"

int nvml_sim_lost(int index)
{
    const char *dir = sim_state_dir();
    char path[PATH_MAX];
    if (!dir)
        return 0;
    snprintf(path, sizeof path, "%s/lost-%d", dir, index);
    return access(path, F_OK) == 0;
}

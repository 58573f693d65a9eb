/* The entry points of sim/nvml/entries.def marked NVML_SIM_STUB: exported so
 * that a tool which looks them up by name (nvidia-smi resolves each one the
 * first time it needs it, and stops on one that is missing) finds them, and
 * answering NVML_ERROR_NOT_SUPPORTED, which tools print as N/A. A stub never
 * reads its arguments, so the one signature (void) serves them all: callers
 * pass theirs in registers and on their own stack, and the return value is
 * all they read. */
#include "nvml_sim.h"

#define NVML_SIM_ENTRY(name, params)
#define NVML_SIM_STUB(name) \
    nvmlReturn_t name(void) { return NVML_ERROR_NOT_SUPPORTED; }
#include "entries.def"
#undef NVML_SIM_ENTRY
#undef NVML_SIM_STUB

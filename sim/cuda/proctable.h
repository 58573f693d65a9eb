/* The versioned entry point table (proctable.c). */
#ifndef GPUMEM_SIM_PROCTABLE_H
#define GPUMEM_SIM_PROCTABLE_H
#include <gpumem/cuda.h>
CUresult sim_resolve_proc(const char *symbol, void **pfn, int version, cuuint64_t flags,
                          CUdriverProcAddressQueryResult *status);
#endif

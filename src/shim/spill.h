/* Host-memory spill (docs/spill.md): an allocation that would pass the
 * group's device limit is served, up to the group's swap allowance, with
 * managed memory placed on the host, and charged to the swap (the cells'
 * `swapped`), not to the device. Its table entry carries ALLOC_SPILLED
 * (gpumem/live_table.h), so its free gives the bytes back to the swap. */
#ifndef GPUMEM_SHIM_SPILL_H
#define GPUMEM_SHIM_SPILL_H

#include "account.h"

/* shim_charge_slow for an allocation that may spill: on success *v is
 * either a device charge, or (alloc_spilled(*v)) a swap charge, and the
 * caller must then allocate with shim_spill_managed. A refusal (device
 * limit and swap both full, the host short of memory) is counted and
 * logged as such. */
CUresult shim_charge_or_spill(uint64_t bytes, int kind, uint64_t *v);

/* Allocates `bytesize` of managed memory for a spilled charge, preferring
 * the host and mapped for the current device (cuMemAdvise
 * SET_PREFERRED_LOCATION = CPU, SET_ACCESSED_BY = device). */
CUresult shim_spill_managed(CUdeviceptr *dptr, size_t bytesize, unsigned flags);

/* With promotion on (GM_SWAP_PROMOTE): moves this process's spilled
 * allocations back to the device while the group has room there (its
 * charge moves from the swap to the device limit, the pointer stays).
 * Returns how many moved. Called when a free gives reservation back. */
int shim_spill_promote(void);

/* In a forked child: no promotion is under way (another thread of the
 * parent may have been in one). */
void shim_spill_fork_child(void);

/* Host memory the group may still take, in bytes: the least of its memory
 * cgroup's room (v2 memory.max - memory.current, v1 limit - usage, over
 * every level up to the root) and the machine's MemAvailable. `why` names
 * the figure that bound it. UINT64_MAX when nothing could be read. */
uint64_t shim_host_room(char *why, size_t len);

#endif

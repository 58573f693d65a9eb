/* gpumem daemon: removal of groups whose container no longer exists. */
#ifndef GPUMEM_DAEMON_GC_H
#define GPUMEM_DAEMON_GC_H

#include "gpumem/group.h"

/* For a group created by gpumem-runtime (container_id set, and the
 * runtime's record <dir>/container): when neither the container's bundle
 * nor the real runtime's state for it exists any more, and no process of
 * the group is alive (checked under the group's admin mutex, after
 * reclaim), removes the group and logs a "group_removed" event. Returns 1
 * when removed (the caller stops using `u`, then unmaps it). Groups
 * without a record, or with any live process, are never removed. */
int dm_gc_group(const char *name, const char *dir, const struct gm_limits *l, struct gm_usage *u);

/* For a group of `gpumem run` (a run marker): when its creator exited or
 * died and no process of the group is alive, removes it and logs
 * "group_removed" (reason "run group empty"). Returns 1 when removed. */
int dm_gc_run_group(const char *name, const char *dir, struct gm_usage *u);

#endif

/* How much host memory a process may still take: the machine's
 * MemAvailable and the room under its memory cgroup (every level from its
 * own up to the root, cgroup v2 or v1). The host-memory spill checks it
 * before it asks the driver for managed memory placed on the host
 * (docs/spill.md): an oversubscribed managed allocation is killed by the
 * kernel's OOM killer or stalls the GPU's faults, it does not fail.
 *
 * libc only, no allocation (the shim calls it): files are read into stack
 * buffers. The parsers take text so that tests and fuzzing can feed them. */
#ifndef GPUMEM_HOSTMEM_H
#define GPUMEM_HOSTMEM_H

#include <stddef.h>
#include <stdint.h>

#define GM_HOSTMEM_UNKNOWN UINT64_MAX

/* MemAvailable of /proc/meminfo's text, in bytes; GM_HOSTMEM_UNKNOWN when
 * the line is missing or malformed. */
uint64_t gm_meminfo_available(const char *text);

/* A cgroup memory file's value: "max" (v2) or a decimal number of bytes,
 * optionally followed by a newline. v1's "unlimited" (a number near 2^63)
 * reads as GM_HOSTMEM_UNKNOWN too. Returns 0, or -1 on anything else. */
int gm_cgroup_value(const char *text, uint64_t *out);

/* From /proc/self/cgroup's text: the unified (v2, "0::PATH") path and the
 * v1 memory controller's path ("N:...memory...:PATH"); "" when absent. */
void gm_cgroup_paths(const char *text, char *v2, size_t v2len, char *v1, size_t v1len);

/* The host memory this process may still take, in bytes: the least of
 * MemAvailable and, for every memory cgroup level from its own up to the
 * root, limit minus usage (0 when usage is over). `root` is the file
 * system root the files are read under ("/" in real use; unit tests pass a
 * directory holding a fake /proc and /sys). `why` (may be NULL) says which
 * figure bound the result. GM_HOSTMEM_UNKNOWN when nothing could be read. */
uint64_t gm_host_room(const char *root, char *why, size_t len);

#endif

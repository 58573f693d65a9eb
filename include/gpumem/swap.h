/* The host-memory spill allowance of a group (docs/spill.md), as its
 * creator gives it: `gpumem run --swap SIZE [--swap-promote]`, `gpumem
 * limit GROUP --swap SIZE`, or a container's GPUMEM_SWAP /
 * GPUMEM_SWAP_PROMOTE (read by gpumem-runtime, never by the shim: a
 * process cannot give itself swap). */
#ifndef GPUMEM_SWAP_H
#define GPUMEM_SWAP_H

#include <stddef.h>
#include <stdint.h>

struct gm_limits;
struct gm_usage;

/* A swap size: a size with a unit ("8G", "512MiB"), or "none" / "0" for no
 * swap (*out = 0). Returns 0, or -1 with a message in err quoting s. */
int gm_parse_swap(const char *s, uint64_t *out, char *err, size_t errlen);

/* An on/off word: 1, 0, on, off, yes, no, true, false. Returns 0 or 1, or
 * -1 with a message in err quoting s. */
int gm_parse_switch(const char *s, char *err, size_t errlen);

/* Reads GPUMEM_SWAP and GPUMEM_SWAP_PROMOTE through getenv_fn into *swap
 * and *promote (left alone when the variable is absent). Returns 0, or -1
 * with err naming the variable and quoting its value. */
int gm_swap_from_env(const char *(*getenv_fn)(const char *name, void *ctx), void *ctx, uint64_t *swap, int *promote,
                     char *err, size_t errlen);

/* How many more bytes the group may spill: its allowance (l, a consistent
 * copy: gm_limits_read) minus what its processes hold in host memory now
 * (u), 0 when it has no swap or is at it. For preemption (docs/spill.md,
 * "Preemption"): a group with headroom can be squeezed by lowering its
 * device limit instead of being killed. */
uint64_t gm_swap_headroom(const struct gm_limits *l, const struct gm_usage *u);

#endif

/* The host-memory spill allowance of a group (docs/spill.md), as its
 * creator gives it: `gpumem run --swap SIZE [--swap-promote]`, `gpumem
 * limit GROUP --swap SIZE`, or a container's GPUMEM_SWAP /
 * GPUMEM_SWAP_PROMOTE (read by gpumem-runtime, never by the shim: a
 * process cannot give itself swap). */
#ifndef GPUMEM_SWAP_H
#define GPUMEM_SWAP_H

#include <stddef.h>
#include <stdint.h>

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

#endif

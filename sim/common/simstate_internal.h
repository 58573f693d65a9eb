/* Private to sim/common: the layout of the shared state file and helpers the
 * two halves of sim/common share. Nothing outside sim/common includes this. */
#ifndef GPUMEM_SIM_SIMSTATE_INTERNAL_H
#define GPUMEM_SIM_SIMSTATE_INTERNAL_H

#include "simstate.h"

/* Fills up to `max` devices from a GPUMEM_SIM_DEVICES spec (NULL: default).
 * Returns the count, or -1 if the spec is malformed. */
int sim_parse_devices(const char *spec, struct sim_device_info *out, int max);

/* FNV-1a, 64-bit: the stable identifiers of devices are hashes of their spec. */
uint64_t sim_fnv1a(uint64_t h, const void *data, size_t n);

/* Fills d's UUID bytes (v4-looking) and string "PREFIX-..." from the hash
 * h1 of what identifies it and a salt. */
void sim_make_uuid(struct sim_device_info *d, uint64_t h1, const char *salt, const char *prefix);

/* Formats 16 bytes as PREFIX-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx. */
void sim_format_uuid(char *out, size_t len, const char *prefix, const uint8_t *u);

/* MIG (mig.c): appends the MIG devices that `layout` (the text after '/'
 * in a device item, e.g. "3g.40gb+4g.40gb(2c+2c)") gives GPU entry `gpu`,
 * at out[*count...], below max. 0, or -1 when the layout is malformed or
 * does not fit the GPU (slices > 7, memory > capacity). */
int sim_mig_append(const char *layout, int gpu, struct sim_device_info *out, int *count, int max);

#endif

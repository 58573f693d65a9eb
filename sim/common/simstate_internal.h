/* Private to sim/common: the layout of the shared state file and helpers the
 * two halves of sim/common share. Nothing outside sim/common includes this. */
#ifndef GPUMEM_SIM_SIMSTATE_INTERNAL_H
#define GPUMEM_SIM_SIMSTATE_INTERNAL_H

#include "simstate.h"

/* Fills up to `max` devices from a GPUMEM_SIM_DEVICES spec (NULL: default).
 * Returns the count, or -1 if the spec is malformed. */
int sim_parse_devices(const char *spec, struct sim_device_info *out, int max);

#endif

/* gpumem ps's "(none)" rows: processes on a GPU that belong to no group. */
#ifndef GPUMEM_CLI_PS_NONE_H
#define GPUMEM_CLI_PS_NONE_H

enum ps_none_format { PS_NONE_TABLE, PS_NONE_CSV, PS_NONE_JSON };

/* Prints them after the groups, in the format of the rest (`first`: no
 * JSON element was printed before). Nothing without NVML or when none. */
void ps_show_ungrouped(const char *state_dir, enum ps_none_format fmt, int procs, int first);

#endif

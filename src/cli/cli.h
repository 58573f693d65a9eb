/* The gpumem command: one file per subcommand, dispatched from main.c. */
#ifndef GPUMEM_CLI_H
#define GPUMEM_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "gpumem/group.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

int cmd_run(int argc, char **argv);
int cmd_limit(int argc, char **argv);
int cmd_ps(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_install(int argc, char **argv);
int cmd_uninstall(int argc, char **argv);
int cmd_daemon(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_inspect(int argc, char **argv);

/* Prints "<die_name>: <message>" to stderr; returns 2 (usage) or 1
 * (failure) as the caller asks, so `return die(1, ...)` reads naturally.
 * die_name is "gpumem" unless a command names itself ("gpumem top"). */
extern const char *die_name;
int die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes s to stdout as a JSON string (quoted and escaped). */
void json_str(const char *s);

/* True when argv[i] is -h or --help. */
int is_help(const char *arg);

/* The directory of the running gpumem binary (up = 0), or `up` levels
 * above it (1: build/ or the install prefix). Returns 0 and fills buf. */
int exe_dir(char *buf, size_t len, int up);

/* Where gpumem's own files are, relative to the running binary: the shim
 * (lib/libgpumem.so) and the simulated GPU (sim/). Overridable with
 * GPUMEM_SHIM and GPUMEM_SIM_DIR. Returns 0 and fills buf, or -1. */
int find_shim(char *buf, size_t len);
int find_sim_dir(char *buf, size_t len);

/* Opens the NVML view that `gpumem daemon` and `gpumem top` read: the
 * simulated GPU's with `sim` (or GPUMEM_SIM_DIR set), else the system's.
 * Returns 0; 1 when the system has no usable NVML (err says why: go on
 * without it); -1 when the simulated GPU cannot be opened (err says why,
 * as a message for die). */
int open_nvml_view(int sim, char *err, size_t errlen);

/* Resolves a group argument (a name under the state directory, or a path
 * to a group directory) to its directory. */
int group_dir(const char *group, char *buf, size_t len);

/* Device index (as NVML and nvidia-smi number them) -> "GPU-..." UUID, from
 * the NVML library the commands would use (the simulated one with `sim`).
 * Returns NULL when unknown. */
const char *nvml_index_uuid(int index, void *sim);

#endif

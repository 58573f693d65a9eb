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
int cmd_queue(int argc, char **argv);

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

/* Whether the dynamic loader would find a usable `soname` (as dlopen by
 * name from gpumem): looked up in LD_LIBRARY_PATH and /etc/ld.so.cache
 * without loading it; only when not seen there, by dlopen. */
int library_present(const char *soname);

/* Resolves a group argument (a name under the state directory, or a path
 * to a group directory) to its directory. */
int group_dir(const char *group, char *buf, size_t len);

/* Device index (as NVML and nvidia-smi number them) -> "GPU-..." UUID, from
 * the NVML library the commands would use (the simulated one with `sim`).
 * Returns NULL when unknown. */
const char *nvml_index_uuid(int index, void *sim);

/* The machine's GPUs by NVML index (the simulated GPU's when GPUMEM_SIM_DIR
 * is set, else the system's): fills uuids[0..n) and returns n (0 without
 * NVML). Read once per process. */
int gpu_list(const char (**uuids)[GM_UUID_LEN]);
/* The NVML index of a device, or -1 when NVML does not list it. */
int gpu_index_of(const char *uuid);
/* How tables show which GPU a device is: its NVML index ("0"), or for a MIG
 * device its GPU's index and its own MIG device index ("0/1", as
 * `nvidia-smi -L` numbers them); "-" when NVML does not know it. `mig`
 * (may be NULL) gets what NVML says of a MIG device; returns 1 for one. */
struct gm_mig_info;
int gpu_label(const char *uuid, char *buf, size_t len, struct gm_mig_info *mig);
/* How the CLI shows a GPU's UUID in a table: its first 12 characters
 * ("GPU-fe90dcc9"), which every command that takes a GPU accepts. */
#define GPU_SHORT_LEN 12
/* Resolves a GPU as any command accepts it: an NVML index ("0"), a whole
 * UUID, or a prefix of one of at least "GPU-" and 4 characters (what
 * gpumem ps prints), matched against `known` (a group's devices, n of
 * them) and NVML's list. Returns 0 with uuid filled, or -1 with err. */
int gpu_resolve(const char *name, const char (*known)[GM_UUID_LEN], int n, char *uuid, size_t len, char *err,
                size_t errlen);

#endif

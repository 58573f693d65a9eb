/* The simulated GPU's machine-wide state, shared by every process on the
 * machine that loads the simulated libcuda.so.1 or libnvidia-ml.so.1.
 *
 * Devices come from GPUMEM_SIM_DEVICES ("2x80G", "H200:141G,A100:40G";
 * default one 16 GiB device). State lives in GPUMEM_SIM_STATE (a directory;
 * default /dev/shm/gpumem-sim-<uid>) as one mmap'ed file. Capacity is shared
 * by all processes; a dead process's bytes return to the device (verified by
 * pid + start time), so the state can never be wedged by a dead process.
 *
 * This interface is the seam between the two simulated libraries: the CUDA
 * side charges and releases device memory, the NVML side reports it. */
#ifndef GPUMEM_SIM_SIMSTATE_H
#define GPUMEM_SIM_SIMSTATE_H

#include <stdint.h>
#include <sys/types.h>

#define SIM_MAX_DEVICES 64
#define SIM_MAX_PROCS   256

struct sim_device_info {
    char name[96];          /* "NVIDIA H200" */
    uint8_t uuid[16];       /* stable: derived from the device spec and index */
    char uuid_str[48];      /* "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" */
    char pci_bus_id[32];    /* "00000000:19:00.0" */
    unsigned pci_domain, pci_bus, pci_device, pci_device_id, pci_subsystem_id;
    int cc_major, cc_minor;
    int multiprocessors;
    uint64_t capacity;      /* bytes; a MIG device: its GPU instance's memory */
    /* MIG (sim/common/mig.c). The machine's GPUs are entries
     * 0..sim_device_count()-1; the MIG devices (one per compute instance) of
     * GPUs in MIG mode follow them, up to sim_entry_count(). */
    int mig_mode;           /* a GPU in MIG mode: 1 */
    int mig_first, mig_count; /* such a GPU: its MIG devices' entries */
    int parent;             /* a MIG device: its GPU's entry; -1 for a GPU */
    int pool;               /* entry whose counters hold this one's memory: its
                             * own index, or its GPU instance's first CI */
    unsigned gi_id, ci_id;  /* a MIG device's GPU / compute instance ids */
    int gi_slices, ci_slices;
    char profile[32];       /* "3g.40gb", or "1c.3g.40gb" for one CI of several */
};

struct sim_proc_usage {
    pid_t pid;
    uint64_t used;          /* bytes this process holds on the device */
};

/* Maps the shared state on first use; 0 on success, -1 if unusable (then the
 * simulated driver reports no device). Safe to call from any thread, often. */
int sim_state_init(void);

/* The machine's GPUs (NVML's count). sim_device() takes any entry index,
 * MIG devices included (< sim_entry_count()). */
int sim_device_count(void);
int sim_entry_count(void);
const struct sim_device_info *sim_device(int index);

/* Charges `bytes` to this process on device `dev`: 0, or -1 when the device
 * has no room (CUDA_ERROR_OUT_OF_MEMORY). Never exceeds capacity, across all
 * processes and threads. */
int sim_charge(int dev, uint64_t bytes);
void sim_release(int dev, uint64_t bytes);

/* Device-wide used bytes (all live processes), after reclaiming the dead. */
uint64_t sim_device_used(int dev);

/* Live processes holding memory on `dev`: fills up to `max`, returns how many
 * there are in all (may be more than max). */
int sim_device_processes(int dev, struct sim_proc_usage *out, int max);

/* What this process holds on `dev` (for tests and the NVML process list). */
uint64_t sim_self_used(int dev);


/* ---- additions used by the simulated driver and its tests ---- */

/* Parses a size with binary units ("16G", "1.5GiB", "300M", "4096"): 0 on
 * success, -1 on garbage, negatives or overflow. */
int sim_parse_size(const char *s, uint64_t *out);

/* The state directory in use (after sim_state_init). */
const char *sim_state_dir(void);

/* Returns every dead process's bytes to the devices now (also done when a
 * charge would fail and inside sim_device_used). Returns slots reclaimed. */
int sim_reclaim_dead(void);

/* Bytes charged against capacity for `dev` by all live processes, including
 * the small per-thread credit each process holds to keep alloc/free free of
 * shared-cache-line traffic (see docs/simulated-gpu.md). >= sim_device_used. */
uint64_t sim_device_charged(int dev);

/* Returns this thread's unused credit to the device (tests that fill a device
 * to the last byte call it; thread exit does it too). */
void sim_flush_thread_credit(void);

/* ---- NVIDIA's per-cgroup memory limits (driver r615+), emulated ----
 * A hard limit per (device, cgroup v2 path): the simulated driver refuses a
 * charge that would take the processes of that cgroup past it on that
 * device. A process's cgroup is read when it first charges (a process moved
 * to another cgroup afterwards keeps counting in its first one), and must be
 * the limit's cgroup itself (a limit on a parent cgroup does not reach its
 * children). Paths are compared as given: callers pass realpath()s. */
#define SIM_MAX_CGLIMITS 64
struct sim_cglimit {
    uint64_t cgroup;        /* hash of path; 0 = free entry */
    int32_t dev;
    uint32_t pad;
    uint64_t soft, hard;
    char path[256];
};
/* Sets (soft 0 and hard UINT64_MAX: clears) dev's limits for the cgroup:
 * 0, or -1 when the table is full. */
int sim_cglimit_set(int dev, const char *cgroup_path, uint64_t soft, uint64_t hard);
/* dev's limits for the cgroup (0 / UINT64_MAX when none) and the bytes its
 * live processes hold on dev. */
void sim_cglimit_get(int dev, const char *cgroup_path, uint64_t *soft, uint64_t *hard, uint64_t *used);
/* This process's cgroup v2 directory (the cgroup2 mount point joined with
 * the "0::" line of /proc/self/cgroup, through realpath): 0, or -1 when the
 * machine has no cgroup v2 mount or the process no v2 cgroup. */
int sim_cgroup_path(char *buf, size_t len);
/* 1 when `path` is a directory of a cgroup v2 file system. */
int sim_cgroup_is_v2(const char *path);

#endif

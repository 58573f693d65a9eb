/* gpumem-k8s: the kubelet device plugin (API v1beta1) that makes GPU memory
 * a schedulable, enforced resource. See docs/k8s-plugin.md.
 *
 *   options.c      the command line
 *   gpus.c         the GPUs and their health, from NVML (real or simulated)
 *   device_ids.c   device IDs: one per unit of a GPU's memory, or per GPU
 *   packing.c      GetPreferredAllocation: best fit onto one GPU
 *   allocate.c     Allocate: units -> per-GPU limits, the group, the response
 *   collect.c      removal of groups Allocate made that no pod uses any more
 *   sharing.c      whole GPUs and memory units of the same GPU kept apart
 *   service.c      the DevicePlugin service, ListAndWatch streams, Register
 *   main.c         signals and the loop */
#ifndef GPUMEM_K8S_PLUGIN_H
#define GPUMEM_K8S_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "deviceplugin.pb-c.h"
#include "gpumem/group.h"
#include "grpc_server.h"

#define KP_MAX_GPUS GM_MAX_DEVICES
#define KP_MIN_UNIT (128ull << 20)
#define KP_API_VERSION "v1beta1"
/* What a group made by Allocate carries (a file in its directory): the
 * allocation's time and device IDs, so that collect.c knows it is ours. */
#define KP_MARKER "k8s"
#define KP_ANNOT_GROUP  "gpumem.io/group"
#define KP_ANNOT_LIMITS "gpumem.io/limits"

struct kp_options {
    char dir[4096];             /* the kubelet's device-plugins directory */
    char resource[256];         /* gpumem.io/memory */
    uint64_t unit;              /* bytes per device ID */
    char gpu_resource[256];     /* "" = no whole-GPU resource; else e.g. gpumem.io/gpu */
    char nvml[4200];            /* libnvidia-ml.so.1 to load */
    char shim[4096];            /* the shim on the host, mounted into containers */
    char sim[4096];             /* "" or the simulated GPU's directory (mounted, as gpumem-runtime's sim = on) */
    char sim_state[4096];
    char nvidia_smi[4096];      /* "" or an nvidia-smi to mount */
    char dev_dir[256];          /* where /dev/nvidia* are looked for ("/dev") */
    int health_ms;              /* NVML polled every health_ms */
    int collect_s;              /* groups collected every collect_s */
    int grace_s;                /* a group no checkpoint entry names is kept this long after Allocate */
    char checkpoint[4200];      /* the kubelet's device manager checkpoint */
};
int kp_parse_options(int argc, char **argv, struct kp_options *o, char *err, size_t errlen);
void kp_usage(FILE *f);

/* ---- GPUs ------------------------------------------------------------ */
struct kp_gpu {
    char uuid[GM_UUID_LEN];     /* "GPU-..." as NVML gives it */
    uint64_t total;             /* bytes */
    unsigned minor;             /* /dev/nvidia<minor>; UINT32_MAX if unknown */
    unsigned units;             /* total / unit */
    int healthy;
};
struct kp_gpus {
    int n;
    struct kp_gpu g[KP_MAX_GPUS];
};
int kp_gpus_open(const char *nvml_lib, char *err, size_t errlen);
int kp_gpus_discover(struct kp_gpus *gs, uint64_t unit, char *err, size_t errlen);
/* Re-reads each GPU's health; returns 1 if any changed. */
int kp_gpus_poll(struct kp_gpus *gs);
int kp_gpu_find(const struct kp_gpus *gs, const char *uuid, size_t len);

/* ---- device IDs ------------------------------------------------------ */
/* Memory units: "<uuid>-m<index>", index from 0; whole GPUs: "<uuid>". */
void kp_unit_id(const char *uuid, unsigned index, char *buf, size_t len);
/* Parses an ID of the memory resource: 0 with *gpu (index into gs) and
 * *unit set; -1 with err quoting the ID when it is malformed, names a GPU
 * this node does not have, or a unit past the GPU's. */
int kp_parse_unit_id(const struct kp_gpus *gs, const char *id, int *gpu, unsigned *unit, char *err, size_t errlen);
int kp_parse_gpu_id(const struct kp_gpus *gs, const char *id, int *gpu, char *err, size_t errlen);

/* ---- packing --------------------------------------------------------- */
/* GetPreferredAllocation for one container of the memory resource: fills
 * out (n_out IDs, pointers into `available`/`must`) and returns 0, or -1
 * with err set (bad IDs, size past what is available). */
int kp_prefer_units(const struct kp_gpus *gs, char **available, size_t n_available, char **must, size_t n_must,
                    int size, const char **out, size_t *n_out, char *err, size_t errlen);

/* ---- allocate -------------------------------------------------------- */
struct kp_grant {
    int ngpu;
    int gpu[KP_MAX_GPUS];       /* indices into kp_gpus */
    uint64_t bytes[KP_MAX_GPUS];
};
/* The IDs of one container request -> bytes per GPU (memory resource, or
 * whole GPUs). -1 with err: no IDs, a malformed, unknown or repeated ID, a
 * GPU that is unhealthy or gone. */
int kp_grant_from_ids(const struct kp_gpus *gs, uint64_t unit, int whole, char **ids, size_t n, struct kp_grant *g,
                      char *err, size_t errlen);
/* Makes the group and fills r (strings allocated; kp_response_free). */
int kp_allocate_container(const struct kp_options *o, const struct kp_gpus *gs, const struct kp_grant *g,
                          char **ids, size_t n, V1beta1__ContainerAllocateResponse *r, char *err, size_t errlen);
void kp_response_free(V1beta1__ContainerAllocateResponse *r);

/* ---- collect --------------------------------------------------------- */
/* Removes groups with KP_MARKER that the kubelet's checkpoint no longer
 * names, older than grace, with no live process. Returns how many. */
int kp_collect(const struct kp_options *o, long now);
/* The group names the checkpoint's allocations carry (its AllocResp
 * annotations): a NUL-separated list in buf, or -1 if unreadable. Exposed
 * for the fuzz target. */
int kp_checkpoint_groups(const char *json, size_t len, char *buf, size_t buflen);

/* ---- sharing --------------------------------------------------------- */
struct kp_use {
    int exclusive[KP_MAX_GPUS]; /* given whole to a container */
    int shared[KP_MAX_GPUS];    /* memory units of it given out */
};
void kp_use_scan(const struct kp_gpus *gs, struct kp_use *u);
/* -1 with err when the grant would take units of a GPU given whole, or a
 * whole GPU with units given out. */
int kp_use_conflict(const struct kp_gpus *gs, const struct kp_use *u, int whole, const struct kp_grant *g, char *err,
                    size_t errlen);

/* ---- service --------------------------------------------------------- */
int kp_run(const struct kp_options *o, volatile int *stop);

#endif

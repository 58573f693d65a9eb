/* gpumem-runtime: an OCI runtime wrapper (like nvidia-container-runtime).
 * On `create` it gives a container that asks for a GPU memory limit its
 * group and the mounts that put the shim in front of the driver; on
 * `delete` it removes the group; everything else goes to the real runtime
 * (runc, crun, nvidia-container-runtime) unchanged. */
#ifndef GPUMEM_RUNTIME_H
#define GPUMEM_RUNTIME_H

#include <jansson.h>
#include <stddef.h>

#include "gpumem/group.h"

/* Where the shim and the group appear inside a container. */
#define RT_SHIM_DEST    "/usr/lib/gpumem/libgpumem.so"
#define RT_PRELOAD_DEST "/etc/ld.so.preload"
#define RT_SELF_DEST    "/run/gpumem/self"

/* The command line as runc reads it: global options, the command, its
 * options and the container id (the last argument). */
struct rt_args {
    const char *command;        /* "create", "delete", ...; NULL if none */
    const char *bundle;         /* create: --bundle/-b, else "." */
    const char *id;             /* create/delete: the last argument */
    const char *log;            /* global --log FILE, where containerd looks for errors */
    const char *log_format;     /* global --log-format text|json */
    const char *root;           /* global --root: the real runtime's state directory */
    const char *pid_file;       /* create: --pid-file, where the real runtime writes the container's pid */
};
void rt_parse_args(int argc, char **argv, struct rt_args *a);

/* Where the simulated GPU appears inside a container (sim mode): the
 * driver libraries in a directory every glibc loader searches, and the
 * host's simulated-GPU state where the simulated driver looks by default
 * (/dev/shm/gpumem-sim-<uid>), so that every container, and `gpumem run
 * --sim` on the host, share one simulated GPU. */
#define RT_SIM_LIB_DEST  "/usr/lib"
#define RT_SIM_STATE_FMT "/dev/shm/gpumem-sim-%u"

/* config.c: /etc/gpumem/runtime.conf (or $GPUMEM_RUNTIME_CONFIG), lines of
 * `key = value`: runtime (the real runtime), shim (libgpumem.so on the
 * host), docker-root (for container names), sim (off, on, or the directory
 * of the simulated libcuda.so.1 and libnvidia-ml.so.1: mount them into
 * limited containers), sim-state (the host's simulated-GPU state
 * directory, default /dev/shm/gpumem-sim-<uid of the runtime>), nvidia-smi
 * (an nvidia-smi on the host, mounted read-only at /usr/bin/nvidia-smi in
 * limited containers, as NVIDIA's container toolkit does). */
struct rt_config {
    char runtime[4096];
    char shim[4096];
    char docker_root[4096];
    char sim[4096];       /* "" or "off": no simulated GPU; else its directory */
    char sim_state[4096];
    char nvidia_smi[4096]; /* "": none */
};
int rt_config_load(struct rt_config *c, char *err, size_t errlen);

/* bundle.c: config.json in and out. */
json_t *rt_bundle_load(const char *bundle, char *err, size_t errlen);
int rt_bundle_save(const char *bundle, json_t *cfg, char *err, size_t errlen);
/* The rootfs directory (root.path, relative to the bundle unless absolute). */
int rt_rootfs(const char *bundle, json_t *cfg, char *buf, size_t len);

/* spec_edit.c: what the container asks for and what it gets. */
const char *rt_env_get(const char *name, void *cfg);
void rt_identity(json_t *cfg, const char *id, const struct rt_config *c, struct gm_limits *l);
const char *rt_index_uuid(int index, void *cfg);
/* The NVML rt_index_uuid asks (NULL: the host's libnvidia-ml.so.1). */
extern const char *rt_nvml_lib;
int rt_write_preload(const char *rootfs, const char *group_dir, char *err, size_t errlen);
int rt_add_mounts(json_t *cfg, const char *group_dir, const char *shim, char *err, size_t errlen);
/* Sim mode: the simulated driver and the shared simulated-GPU state. */
int rt_add_sim_mounts(json_t *cfg, const struct rt_config *c, char *err, size_t errlen);
/* The host's nvidia-smi (config "nvidia-smi"), read-only at RT_SMI_DEST. */
#define RT_SMI_DEST "/usr/bin/nvidia-smi"
int rt_add_smi_mount(json_t *cfg, const struct rt_config *c, char *err, size_t errlen);

/* Replaces path with a file holding text (written beside it, renamed over
 * it: a reader sees the old file or the new one). */
int rt_replace_file(const char *path, const char *text, char *err, size_t errlen);

/* Writes <group_dir>/container: what the daemon needs to tell, later,
 * that the container is gone (its id, absolute bundle directory, and the
 * real runtime's state directory for it). */
int rt_write_record(const char *group_dir, const char *id, const char *bundle, const char *root, char *err,
                    size_t errlen);

/* k8s.c: Kubernetes. The CRI runtimes write who a container is into its
 * config.json annotations: containerd io.kubernetes.cri.sandbox-name,
 * -namespace, container-name and container-type; CRI-O
 * io.kubernetes.pod.name, io.kubernetes.pod.namespace,
 * io.kubernetes.container.name and io.kubernetes.cri-o.ContainerType. A
 * pod's sandbox (pause) container never gets a group. */
#define RT_GROUP_ANNOTATION "gpumem.io/group"
/* In a group the runtime renamed: the name the device plugin gave it. */
#define RT_ORIGIN_FILE "origin"
struct rt_k8s {
    const char *pod, *ns, *container; /* NULL when not annotated */
    const char *type;                 /* "sandbox", "container" or NULL */
    const char *group;                /* gpumem.io/group: the device plugin's group */
};
void rt_k8s_read(json_t *cfg, struct rt_k8s *k);
int rt_k8s_is_sandbox(const struct rt_k8s *k);
/* <namespace>_<pod>_<container> as a valid group name (cut, with a hash of
 * the identity, where too long or not made of name characters); -1 when
 * the pod, namespace or container name is missing. */
int rt_k8s_group_name(const struct rt_k8s *k, char *buf, size_t len);
/* base, or base_<8 characters of id> where a group named base exists in
 * state; -1 when that exists too. */
int rt_k8s_unique_name(const char *state, const char *base, const char *id, char *buf, size_t len);
/* Points the mounts whose source is `from` (or under it) at `to`; returns
 * how many, -1 when out of memory. */
int rt_k8s_move_mounts(json_t *cfg, const char *from, const char *to);
/* The spec names the group the device plugin created (gpumem.io/group):
 * no new group; that one is renamed after the pod (rt_k8s_group_name; its
 * first name kept in RT_ORIGIN_FILE, where a restarted container with the
 * same allocation finds it), labelled with the pod, namespace, container
 * and container id, and the spec's mounts from it follow the rename.
 * dir = the group's directory now. */
int rt_k8s_adopt(json_t *cfg, const struct rt_k8s *k, const char *id, char *dir, size_t dirlen, char *err,
                 size_t errlen);
/* The name the device plugin gave the group in dir: its RT_ORIGIN_FILE
 * where the runtime renamed it, else `name` (the directory's own). */
void rt_k8s_allocation_name(const char *dir, const char *name, char *buf, size_t len);
/* The group gpumem-runtime created for container `id` (its <group>/container
 * record names it), wherever it is named. */
int rt_find_container_group(const char *id, char *dir, size_t dirlen);

/* driver.c: NVIDIA's per-cgroup driver limits for the container's group:
 * set (and read back) after the real runtime created it, verified before
 * it starts. */
void rt_driver_limits_created(const struct rt_args *a, const char *dir);
void rt_driver_limits_started(const struct rt_args *a, const char *dir);

/* The group directory name for a container id: the id itself when it is a
 * valid group name, else its first 12 characters (as `docker ps` shows
 * 64-character ids). */
void rt_group_name(const char *id, char *buf, size_t len);

#endif

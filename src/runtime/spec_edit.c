/* What a container's spec asks for (env, annotations) and the mounts it
 * gets: the shim, an /etc/ld.so.preload that loads it, and its group. */
#include "runtime.h"
#include "gpumem/hostutil.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* process.env is a list of "NAME=value"; the last one wins, as in execve. */
const char *rt_env_get(const char *name, void *cfg)
{
    json_t *env = json_object_get(json_object_get(cfg, "process"), "env");
    size_t n = strlen(name), i;
    json_t *v;
    const char *found = NULL;
    json_array_foreach(env, i, v) {
        const char *s = json_string_value(v);
        if (s && strncmp(s, name, n) == 0 && s[n] == '=')
            found = s + n + 1;
    }
    return found;
}

static const char *annotation(json_t *cfg, const char *key)
{
    return json_string_value(json_object_get(json_object_get(cfg, "annotations"), key));
}

static void set(char *dst, size_t len, const char *a, const char *b)
{
    const char *v = a && *a ? a : b;
    if (v && *v && !*dst)
        snprintf(dst, len, "%s", v);
}

/* Docker writes <root>/containers/<id>/config.v2.json before it creates the
 * container; its "Name" ("/web-1") is the name people use. */
static void docker_name(const struct rt_config *c, const char *id, char *dst, size_t len)
{
    char path[8300];
    if (strchr(id, '/'))
        return;
    snprintf(path, sizeof path, "%s/containers/%s/config.v2.json", c->docker_root, id);
    json_t *j = json_load_file(path, 0, NULL);
    const char *name = json_string_value(json_object_get(j, "Name"));
    if (name && *name == '/')
        name++;
    if (name && *name)
        snprintf(dst, len, "%s", name);
    json_decref(j);
}

void rt_identity(json_t *cfg, const char *id, const struct rt_config *c, struct gm_limits *l)
{
    struct rt_k8s k;
    char pod_group[GM_NAME_LEN];
    rt_k8s_read(cfg, &k);
    snprintf(l->container_id, sizeof l->container_id, "%s", id);
    set(l->pod, sizeof l->pod, k.pod, NULL);
    set(l->pod_namespace, sizeof l->pod_namespace, k.ns, NULL);
    set(l->container_name, sizeof l->container_name, k.container, NULL);
    /* A pod's container is known by its group's name (namespace, pod and
     * container: a container name alone repeats across pods). */
    if (rt_k8s_group_name(&k, pod_group, sizeof pod_group) == 0)
        set(l->name, sizeof l->name, pod_group, NULL);
    set(l->name, sizeof l->name, l->container_name, annotation(cfg, "nerdctl/name"));
    if (!*l->name)
        docker_name(c, id, l->name, sizeof l->name);
    if (!*l->name) {
        char g[GM_NAME_LEN];
        rt_group_name(id, g, sizeof g);
        snprintf(l->name, sizeof l->name, "%s", g);
    }
}

void rt_group_name(const char *id, char *buf, size_t len)
{
    snprintf(buf, len, "%s", gm_valid_group_name(id) == 0 ? id : "");
    if (!*buf)
        snprintf(buf, len, "%.12s", id);
}

/* A device index in a limit (GPUMEM_LIMIT=0=4G, CUDA_DEVICE_MEMORY_LIMIT_0)
 * is the container's own numbering: the i-th entry of
 * NVIDIA_VISIBLE_DEVICES when that lists devices, else host index i. */
const char *rt_nvml_lib;

const char *rt_index_uuid(int index, void *cfg)
{
    static char uuid[96];
    long host = index;
    const char *vis = rt_env_get("NVIDIA_VISIBLE_DEVICES", cfg);
    if (vis && *vis && strcmp(vis, "all") != 0 && strcmp(vis, "none") != 0 && strcmp(vis, "void") != 0) {
        const char *p = vis;
        for (int i = 0; i < index && p; i++) {
            p = strchr(p, ',');
            if (p)
                p++;
        }
        if (!p || !*p)
            return NULL;
        size_t n = strcspn(p, ",");
        if (n >= 4 && (strncasecmp(p, "GPU-", 4) == 0 || strncasecmp(p, "MIG-", 4) == 0) && n < sizeof uuid) {
            memcpy(uuid, p, n);
            uuid[n] = '\0';
            for (char *c = uuid + 4; *c; c++)
                *c = (char)tolower((unsigned char)*c);
            return uuid;
        }
        char *end;
        host = strtol(p, &end, 10);
        if (end == p || (*end && *end != ','))
            return NULL;
    }
    return host < 0 ? NULL : gm_nvml_index_uuid(rt_nvml_lib, (unsigned)host, uuid, sizeof uuid);
}

/* The image's own /etc/ld.so.preload, read without following symlinks out
 * of the rootfs (an image could point it at a host file). Missing = "". */
static int read_image_preload(const char *rootfs, char *buf, size_t len)
{
    buf[0] = '\0';
    int root = open(rootfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return 0;
    int etc = openat(root, "etc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(root);
    if (etc < 0)
        return 0;
    int fd = openat(etc, "ld.so.preload", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    close(etc);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    size_t n = 0;
    ssize_t r;
    while (n < len - 1 && (r = read(fd, buf + n, len - 1 - n)) > 0)
        n += (size_t)r;
    close(fd);
    buf[n] = '\0';
    return 0;
}

int rt_write_preload(const char *rootfs, const char *group_dir, char *err, size_t errlen)
{
    static char image[65536], out[65536 + 256];
    if (read_image_preload(rootfs, image, sizeof image) < 0) {
        snprintf(err, errlen, "%s/etc/ld.so.preload: %s (a symlink?)", rootfs, strerror(errno));
        return -1;
    }
    /* The shim first, then the image's entries in their order (ld.so
     * separates them by whitespace or ':'). */
    size_t used = (size_t)snprintf(out, sizeof out, "%s\n", RT_SHIM_DEST);
    for (char *save = NULL, *t = strtok_r(image, " \t\n:", &save); t; t = strtok_r(NULL, " \t\n:", &save)) {
        if (*t == '#' || strcmp(t, RT_SHIM_DEST) == 0)
            continue;
        used += (size_t)snprintf(out + used, sizeof out - used, "%s\n", t);
        if (used >= sizeof out)
            break;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/ld.so.preload", group_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, out, strlen(out)) != (ssize_t)strlen(out) || close(fd) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return 0;
}

static int add_bind(json_t *mounts, const char *src, const char *dst, int ro)
{
    json_t *m = json_pack("{s:s, s:s, s:s, s:[s, s, s, s]}", "destination", dst, "type", "bind", "source", src,
                          "options", "rbind", ro ? "ro" : "rw", "nosuid", "nodev");
    return m ? json_array_append_new(mounts, m) : -1;
}

/* Appended after the engine's own mounts, in this order: the group
 * directory read-only, its usage region writable on top (every process
 * of the container maps it), its limits read-only on top, the shim and
 * the preload list read-only. Nothing inside can raise its limit, or
 * replace the usage region with a fresh one. */
int rt_add_mounts(json_t *cfg, const char *group_dir, const char *shim, char *err, size_t errlen)
{
    json_t *mounts = json_object_get(cfg, "mounts");
    if (!mounts) {
        mounts = json_array();
        if (json_object_set_new(cfg, "mounts", mounts) < 0)
            goto fail;
    }
    if (!json_is_array(mounts)) {
        snprintf(err, errlen, "config.json: \"mounts\" is not an array");
        return -1;
    }
    char usage[4200], limits[4200], preload[4200];
    snprintf(usage, sizeof usage, "%s/usage", group_dir);
    snprintf(limits, sizeof limits, "%s/limits", group_dir);
    snprintf(preload, sizeof preload, "%s/ld.so.preload", group_dir);
    if (add_bind(mounts, group_dir, RT_SELF_DEST, 1) < 0 || add_bind(mounts, usage, RT_SELF_DEST "/usage", 0) < 0 ||
        add_bind(mounts, limits, RT_SELF_DEST "/limits", 1) < 0 || add_bind(mounts, shim, RT_SHIM_DEST, 1) < 0 ||
        add_bind(mounts, preload, RT_PRELOAD_DEST, 1) < 0)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "config.json: cannot add mounts (out of memory)");
    return -1;
}

/* The uid the container's process runs as (process.user.uid, default 0):
 * its simulated driver looks for its state in /dev/shm/gpumem-sim-<uid>. */
static unsigned container_uid(json_t *cfg)
{
    json_t *uid = json_object_get(json_object_get(json_object_get(cfg, "process"), "user"), "uid");
    return json_is_integer(uid) && json_integer_value(uid) >= 0 ? (unsigned)json_integer_value(uid) : 0;
}

int rt_add_smi_mount(json_t *cfg, const struct rt_config *c, char *err, size_t errlen)
{
    json_t *mounts = json_object_get(cfg, "mounts");
    if (!json_is_array(mounts)) {
        snprintf(err, errlen, "config.json: \"mounts\" is not an array");
        return -1;
    }
    if (access(c->nvidia_smi, X_OK) != 0) {
        snprintf(err, errlen, "nvidia-smi %s: %s (\"nvidia-smi =\" in /etc/gpumem/runtime.conf)", c->nvidia_smi,
                 strerror(errno));
        return -1;
    }
    if (add_bind(mounts, c->nvidia_smi, RT_SMI_DEST, 1) < 0) {
        snprintf(err, errlen, "config.json: cannot add mounts (out of memory)");
        return -1;
    }
    return 0;
}

/* Sim mode: the simulated libcuda.so.1 and libnvidia-ml.so.1 read-only in
 * /usr/lib (the part nvidia-container-toolkit plays on a GPU host), and the
 * host's simulated-GPU state directory read-write where the container's
 * simulated driver looks for it, so that every container shares one
 * simulated GPU with the others and with `gpumem run --sim` on the host. */
int rt_add_sim_mounts(json_t *cfg, const struct rt_config *c, char *err, size_t errlen)
{
    static const char *libs[] = {"libcuda.so.1", "libnvidia-ml.so.1"};
    json_t *mounts = json_object_get(cfg, "mounts");
    char src[4200], dst[256];
    if (!json_is_array(mounts)) {
        snprintf(err, errlen, "config.json: \"mounts\" is not an array");
        return -1;
    }
    for (size_t i = 0; i < 2; i++) {
        snprintf(src, sizeof src, "%s/%s", c->sim, libs[i]);
        if (access(src, R_OK) != 0) {
            snprintf(err, errlen, "sim: the simulated GPU %s: %s (set \"sim = DIR\" in /etc/gpumem/runtime.conf)", src,
                     strerror(errno));
            return -1;
        }
        snprintf(dst, sizeof dst, RT_SIM_LIB_DEST "/%s", libs[i]);
        if (add_bind(mounts, src, dst, 1) < 0)
            goto fail;
    }
    if (gm_mkdir_p(c->sim_state) < 0) {
        snprintf(err, errlen, "sim-state %s: %s", c->sim_state, strerror(errno));
        return -1;
    }
    snprintf(dst, sizeof dst, RT_SIM_STATE_FMT, container_uid(cfg));
    if (add_bind(mounts, c->sim_state, dst, 0) < 0)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "config.json: cannot add mounts (out of memory)");
    return -1;
}

/* Allocate: a container's device IDs become bytes per GPU, a gpumem group
 * with exactly those limits (k8s-<allocation id>), and the answer the
 * kubelet hands to the container runtime:
 *
 *   envs         GPUMEM_LIMIT=GPU-<uuid>=<n>M,...  (for people and tools; the
 *                group's limits file is what holds), NVIDIA_VISIBLE_DEVICES=
 *                the GPUs' UUIDs (for NVIDIA's container toolkit)
 *   mounts       what gpumem-runtime mounts for Docker (docs/docker.md): the
 *                group read-only at /run/gpumem/self with its usage
 *                read-write, the shim, /etc/ld.so.preload; with --sim the
 *                simulated driver and its state; made by the same code
 *                (src/runtime/spec_edit.c) and translated
 *   devices      the /dev/nvidia* nodes of those GPUs that exist
 *   annotations  gpumem.io/group=<group>, gpumem.io/limits=GPU-<uuid>=<bytes>,...
 *                for the runtime, which names the group after the pod
 *
 * A request whose units span GPUs gets a limit on each, never one merged
 * limit; every other GPU gets a limit of 0 (the container was given no
 * memory there). */
#include "plugin.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gpumem/hostutil.h"
#include "../runtime/runtime.h"

int kp_grant_from_ids(const struct kp_gpus *gs, uint64_t unit, int whole, char **ids, size_t n, struct kp_grant *g,
                      char *err, size_t errlen)
{
    unsigned char *seen[KP_MAX_GPUS] = {0};
    unsigned count[KP_MAX_GPUS] = {0};
    int rc = -1;
    memset(g, 0, sizeof *g);
    if (n == 0) {
        snprintf(err, errlen, "a container request with no device IDs (zero units)");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        int gpu;
        unsigned u = 0;
        if (whole ? kp_parse_gpu_id(gs, ids[i], &gpu, err, errlen) < 0
                  : kp_parse_unit_id(gs, ids[i], &gpu, &u, err, errlen) < 0)
            goto out;
        if (!seen[gpu] && !(seen[gpu] = calloc(whole ? 1 : gs->g[gpu].units, 1))) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        if (seen[gpu][u]) {
            snprintf(err, errlen, "device ID \"%.200s\" is listed twice", ids[i]);
            goto out;
        }
        seen[gpu][u] = 1;
        count[gpu]++;
    }
    for (int i = 0; i < gs->n; i++) {
        if (!count[i])
            continue;
        if (!gs->g[i].healthy) {
            snprintf(err, errlen, "GPU %s is unhealthy or gone: its units cannot be allocated", gs->g[i].uuid);
            rc = -2;
            goto out;
        }
        g->gpu[g->ngpu] = i;
        g->bytes[g->ngpu] = whole ? gs->g[i].total : count[i] * unit;
        g->ngpu++;
    }
    rc = 0;
out:
    for (int i = 0; i < KP_MAX_GPUS; i++)
        free(seen[i]);
    return rc;
}

/* ---- the response ------------------------------------------------------ */

static char *str_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

static void add_pair(V1beta1__ContainerAllocateResponse__EnvsEntry ***arr, size_t *n, const char *k, const char *v)
{
    V1beta1__ContainerAllocateResponse__EnvsEntry *e = malloc(sizeof *e);
    v1beta1__container_allocate_response__envs_entry__init(e);
    e->key = str_or_empty(k);
    e->value = str_or_empty(v);
    *arr = realloc(*arr, (*n + 1) * sizeof **arr);
    (*arr)[(*n)++] = e;
}

static void add_annotation(V1beta1__ContainerAllocateResponse *r, const char *k, const char *v)
{
    V1beta1__ContainerAllocateResponse__AnnotationsEntry *e = malloc(sizeof *e);
    v1beta1__container_allocate_response__annotations_entry__init(e);
    e->key = str_or_empty(k);
    e->value = str_or_empty(v);
    r->annotations = realloc(r->annotations, (r->n_annotations + 1) * sizeof *r->annotations);
    r->annotations[r->n_annotations++] = e;
}

static void add_mount(V1beta1__ContainerAllocateResponse *r, const char *dst, const char *src, int ro)
{
    V1beta1__Mount *m = malloc(sizeof *m);
    v1beta1__mount__init(m);
    m->container_path = str_or_empty(dst);
    m->host_path = str_or_empty(src);
    m->read_only = ro;
    r->mounts = realloc(r->mounts, (r->n_mounts + 1) * sizeof *r->mounts);
    r->mounts[r->n_mounts++] = m;
}

static void add_device(V1beta1__ContainerAllocateResponse *r, const char *dev_dir, const char *name)
{
    char host[512], inside[300];
    struct stat st;
    snprintf(host, sizeof host, "%s/%s", dev_dir, name);
    if (stat(host, &st) != 0 || !S_ISCHR(st.st_mode))
        return;
    snprintf(inside, sizeof inside, "/dev/%s", name);
    V1beta1__DeviceSpec *d = malloc(sizeof *d);
    v1beta1__device_spec__init(d);
    d->container_path = str_or_empty(inside);
    d->host_path = str_or_empty(host);
    d->permissions = str_or_empty("rw");
    r->devices = realloc(r->devices, (r->n_devices + 1) * sizeof *r->devices);
    r->devices[r->n_devices++] = d;
}

void kp_response_free(V1beta1__ContainerAllocateResponse *r)
{
    for (size_t i = 0; i < r->n_envs; i++) {
        free(r->envs[i]->key);
        free(r->envs[i]->value);
        free(r->envs[i]);
    }
    for (size_t i = 0; i < r->n_annotations; i++) {
        free(r->annotations[i]->key);
        free(r->annotations[i]->value);
        free(r->annotations[i]);
    }
    for (size_t i = 0; i < r->n_mounts; i++) {
        free(r->mounts[i]->container_path);
        free(r->mounts[i]->host_path);
        free(r->mounts[i]);
    }
    for (size_t i = 0; i < r->n_devices; i++) {
        free(r->devices[i]->container_path);
        free(r->devices[i]->host_path);
        free(r->devices[i]->permissions);
        free(r->devices[i]);
    }
    free(r->envs);
    free(r->annotations);
    free(r->mounts);
    free(r->devices);
    v1beta1__container_allocate_response__init(r);
}

/* The mounts gpumem-runtime adds to a container's config.json, made by its
 * own functions into a scratch config and copied into the response. */
static int add_runtime_mounts(const struct kp_options *o, const char *dir, V1beta1__ContainerAllocateResponse *r,
                              char *err, size_t errlen)
{
    struct rt_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.shim, sizeof c.shim, "%s", o->shim);
    snprintf(c.sim, sizeof c.sim, "%s", o->sim);
    snprintf(c.sim_state, sizeof c.sim_state, "%s", o->sim_state);
    snprintf(c.nvidia_smi, sizeof c.nvidia_smi, "%s", o->nvidia_smi);
    if (access(c.shim, R_OK) != 0) {
        snprintf(err, errlen, "the shim %s: %s (--shim)", c.shim, strerror(errno));
        return -1;
    }
    json_t *cfg = json_pack("{s:[]}", "mounts");
    if (!cfg) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = -1;
    if (rt_add_mounts(cfg, dir, c.shim, err, errlen) < 0 || (*c.sim && rt_add_sim_mounts(cfg, &c, err, errlen) < 0) ||
        (*c.nvidia_smi && rt_add_smi_mount(cfg, &c, err, errlen) < 0))
        goto out;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(cfg, "mounts"), i, m)
    {
        int ro = 0;
        size_t j;
        json_t *opt;
        json_array_foreach(json_object_get(m, "options"), j, opt) ro |= json_is_string(opt) &&
                                                                        strcmp(json_string_value(opt), "ro") == 0;
        add_mount(r, json_string_value(json_object_get(m, "destination")),
                  json_string_value(json_object_get(m, "source")), ro);
    }
    rc = 0;
out:
    json_decref(cfg);
    return rc;
}

/* k8s-<10 hex digits>: short, and random so that two Allocates never meet. */
static void group_name(char *buf, size_t len)
{
    unsigned char b[5];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 20) ^ (uint64_t)ts.tv_sec;
        memcpy(b, &x, sizeof b);
    }
    snprintf(buf, len, "k8s-%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4]);
}

static int write_marker(const char *dir, char **ids, size_t n, char *err, size_t errlen)
{
    char path[4200], tmp[4210];
    snprintf(path, sizeof path, "%s/" KP_MARKER, dir);
    snprintf(tmp, sizeof tmp, "%s/." KP_MARKER ".tmp", dir);
    FILE *f = fopen(tmp, "we");
    if (!f) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    fprintf(f, "allocated=%lld\nids=", (long long)time(NULL));
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s%s", i ? "," : "", ids[i]);
    fputc('\n', f);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int kp_allocate_container(const struct kp_options *o, const struct kp_gpus *gs, const struct kp_grant *g,
                          char **ids, size_t n, V1beta1__ContainerAllocateResponse *r, char *err, size_t errlen)
{
    char state[PATH_MAX], name[GM_NAME_LEN], dir[PATH_MAX + GM_NAME_LEN];
    char limit_env[GM_MAX_DEVICES * 80] = "", visible[GM_MAX_DEVICES * 50] = "", annot[GM_MAX_DEVICES * 80] = "";
    size_t le = 0, vi = 0, an = 0;
    for (int i = 0; i < g->ngpu; i++) {
        const struct kp_gpu *gp = &gs->g[g->gpu[i]];
        le += (size_t)snprintf(limit_env + le, sizeof limit_env - le, "%s%s=%lluM", i ? "," : "", gp->uuid,
                               (unsigned long long)(g->bytes[i] >> 20));
        vi += (size_t)snprintf(visible + vi, sizeof visible - vi, "%s%s", i ? "," : "", gp->uuid);
        an += (size_t)snprintf(annot + an, sizeof annot - an, "%s%s=%llu", i ? "," : "", gp->uuid,
                               (unsigned long long)g->bytes[i]);
    }
    /* The limits through the parser `gpumem run --limit` and gpumem-runtime
     * use, from the very text the container gets as GPUMEM_LIMIT. */
    struct gm_limit_spec spec;
    struct gm_limits l;
    gm_limits_init(&l);
    if (gm_parse_limit_spec(limit_env, GM_BARE_REJECT, &spec, err, errlen) < 0 ||
        gm_limits_from_spec(&l, &spec, NULL, NULL, err, errlen) < 0)
        return -1;
    l.default_limit = 0; /* the GPUs the container was given nothing on */
    l.created_unix = (uint64_t)time(NULL);
    if (gm_mkdir_p(gm_state_dir(state, sizeof state)) < 0) {
        snprintf(err, errlen, "%s: %s", state, strerror(errno));
        return -1;
    }
    int made = 0;
    for (int tries = 0; tries < 8 && !made; tries++) {
        group_name(name, sizeof name);
        snprintf(l.name, sizeof l.name, "%s", name);
        snprintf(dir, sizeof dir, "%s/%s", state, name);
        made = gm_group_create(dir, &l, 0666, err, errlen) == 0;
    }
    if (!made)
        return -1;
    if (write_marker(dir, ids, n, err, errlen) < 0 || rt_write_preload("/nonexistent-rootfs", dir, err, errlen) < 0 ||
        add_runtime_mounts(o, dir, r, err, errlen) < 0) {
        gm_group_remove(dir);
        kp_response_free(r);
        return -1;
    }
    add_pair(&r->envs, &r->n_envs, "GPUMEM_LIMIT", limit_env);
    add_pair(&r->envs, &r->n_envs, "NVIDIA_VISIBLE_DEVICES", visible);
    add_annotation(r, KP_ANNOT_GROUP, name);
    add_annotation(r, KP_ANNOT_LIMITS, annot);
    static const char *const common[] = {"nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset"};
    for (size_t i = 0; i < sizeof common / sizeof *common; i++)
        add_device(r, o->dev_dir, common[i]);
    for (int i = 0; i < g->ngpu; i++) {
        char node[32];
        if (gs->g[g->gpu[i]].minor == UINT32_MAX)
            continue;
        snprintf(node, sizeof node, "nvidia%u", gs->g[g->gpu[i]].minor);
        add_device(r, o->dev_dir, node);
    }
    return 0;
}

/* NVIDIA's per-cgroup driver limits for a group: see
 * include/gpumem/driver_limits.h and docs/driver-limits.md. */
#include "gpumem/driver_limits.h"
#include "gpumem/nvml_load.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "gpumem/group.h"
#include "gpumem/nvml.h"
#include "gpumem/nvml_memlimits.h"

#define CGROUP2_SUPER_MAGIC 0x63677270
#define MAX_RECORD_DEVS (2 * GM_MAX_DEVICES)

struct rec_dev {
    char uuid[GM_UUID_LEN];
    unsigned long long soft, hard;
};

struct record {
    char nvml[PATH_MAX];    /* "" = the system's */
    char cgroup[PATH_MAX];
    char enforcement[16];   /* "shim+driver" or "shim" */
    char reason[512];
    int ndev;
    struct rec_dev dev[MAX_RECORD_DEVS];
};

static void say(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t len, const char *fmt, ...)
{
    if (!why || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

static int is_cgroup2(const char *path)
{
    struct statfs st;
    return statfs(path, &st) == 0 && (unsigned long)st.f_type == CGROUP2_SUPER_MAGIC;
}

int gm_cgroup_v2_of_pid(pid_t pid, char *buf, size_t len, char *why, size_t whylen)
{
    /* Where the v2 hierarchy is mounted: /sys/fs/cgroup on a unified host,
     * /sys/fs/cgroup/unified on a hybrid one (systemd's two layouts). */
    static const char *mounts[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
    const char *mount = NULL;
    for (size_t i = 0; i < sizeof mounts / sizeof mounts[0] && !mount; i++)
        if (is_cgroup2(mounts[i]))
            mount = mounts[i];
    if (!mount) {
        say(why, whylen, "no cgroup v2 hierarchy on this machine (cgroup v1): NVIDIA's driver limits need cgroup v2");
        return -1;
    }
    char path[64], line[PATH_MAX + 8], rel[PATH_MAX] = "";
    snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f) {
        say(why, whylen, "%s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "0::", 3) == 0) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(rel, sizeof rel, "%.4000s", line + 3);
        }
    fclose(f);
    if (!rel[0] || strcmp(rel, "/") == 0) {
        say(why, whylen,
            "process %d has no cgroup v2 of its own (in the root of %s: a cgroup v1 or hybrid host): "
            "NVIDIA's driver limits need the container's cgroup v2",
            (int)pid, mount);
        return -1;
    }
    char joined[2 * PATH_MAX];
    snprintf(joined, sizeof joined, "%s%s", mount, rel);
    if (!realpath(joined, buf) || strlen(buf) >= len) {
        say(why, whylen, "cgroup %s: %s", joined, strerror(errno ? errno : ENAMETOOLONG));
        return -1;
    }
    return 0;
}

/* ---- the record -------------------------------------------------------- */

static int record_read(const char *dir, struct record *r)
{
    char path[PATH_MAX + 32], line[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/" GM_DRIVER_RECORD, dir);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    memset(r, 0, sizeof *r);
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (!strncmp(line, "nvml ", 5))
            snprintf(r->nvml, sizeof r->nvml, "%.4000s", line + 5);
        else if (!strncmp(line, "cgroup ", 7))
            snprintf(r->cgroup, sizeof r->cgroup, "%.4000s", line + 7);
        else if (!strncmp(line, "enforcement ", 12))
            snprintf(r->enforcement, sizeof r->enforcement, "%.15s", line + 12);
        else if (!strncmp(line, "reason ", 7))
            snprintf(r->reason, sizeof r->reason, "%.511s", line + 7);
        else if (!strncmp(line, "dev ", 4) && r->ndev < MAX_RECORD_DEVS) {
            struct rec_dev *d = &r->dev[r->ndev];
            char uuid[64];
            if (sscanf(line + 4, "%63s %llu %llu", uuid, &d->soft, &d->hard) == 3 && strlen(uuid) < GM_UUID_LEN) {
                snprintf(d->uuid, sizeof d->uuid, "%s", uuid);
                r->ndev++;
            }
        }
    }
    fclose(f);
    return r->cgroup[0] ? 0 : -1;
}

/* Written whole to a temporary file and renamed: a reader never sees half. */
static int record_write(const char *dir, const struct record *r, char *why, size_t whylen)
{
    char path[PATH_MAX + 32], tmp[PATH_MAX + 40];
    snprintf(path, sizeof path, "%s/" GM_DRIVER_RECORD, dir);
    snprintf(tmp, sizeof tmp, "%s/." GM_DRIVER_RECORD ".tmp", dir);
    FILE *f = fopen(tmp, "we");
    if (!f) {
        say(why, whylen, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    fprintf(f, "nvml %s\ncgroup %s\nenforcement %s\nreason %s\n", r->nvml, r->cgroup, r->enforcement, r->reason);
    for (int i = 0; i < r->ndev; i++)
        fprintf(f, "dev %s %llu %llu\n", r->dev[i].uuid, r->dev[i].soft, r->dev[i].hard);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        say(why, whylen, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* ---- NVML -------------------------------------------------------------- */

struct nv {
    struct gm_nvml n;
    PFN_nvmlDeviceGetMigMode mig_mode;
    PFN_nvmlDeviceSetMemoryLimits_v1 set;
    PFN_nvmlDeviceGetMemoryLimits_v1 get;
};

/* 0 with the NVML functions the calls need (set/get may be NULL: an older
 * driver), or -1 with why. */
static int nv_open(const char *lib, struct nv *n, char *why, size_t whylen)
{
    char err[512];
    if (gm_nvml_load(lib, &n->n, err, sizeof err) < 0 || !n->n.by_uuid) {
        say(why, whylen, "no NVML (%s)", n->n.lib ? "no nvmlDeviceGetHandleByUUID" : err);
        return -1;
    }
    n->mig_mode = (PFN_nvmlDeviceGetMigMode)dlsym(n->n.lib, "nvmlDeviceGetMigMode");
    n->set = (PFN_nvmlDeviceSetMemoryLimits_v1)dlsym(n->n.lib, "nvmlDeviceSetMemoryLimits_v1");
    n->get = (PFN_nvmlDeviceGetMemoryLimits_v1)dlsym(n->n.lib, "nvmlDeviceGetMemoryLimits_v1");
    return 0;
}

static const char *driver_version(const struct nv *n)
{
    static char v[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE];
    if (!n->n.version || n->n.version(v, sizeof v) != NVML_SUCCESS)
        snprintf(v, sizeof v, "unknown");
    return v;
}

/* Why the driver refused: the return code in words. */
static void refusal(const struct nv *n, nvmlReturn_t r, const char *uuid, const char *cgroup, char *why, size_t len)
{
    switch (r) {
    case NVML_ERROR_FUNCTION_NOT_FOUND:
        say(why, len, "driver %s has no per-cgroup memory limits (r615 or later has them)", driver_version(n));
        break;
    case NVML_ERROR_NO_PERMISSION:
        say(why, len, "setting driver memory limits needs root");
        break;
    case NVML_ERROR_NOT_SUPPORTED:
        say(why, len, "the driver does not support a memory limit on %s for %s (MIG, or not a cgroup v2 directory)",
            uuid, cgroup);
        break;
    case NVML_ERROR_NOT_FOUND:
        say(why, len, "cgroup %s: not found by the driver", cgroup);
        break;
    default:
        say(why, len, "nvmlDeviceSetMemoryLimits_v1 on %s: NVML error %d", uuid, (int)r);
    }
}

/* soft = request (the group's guarantee, docs/policy.md), never above the
 * hard limit: NVML refuses soft > hard. */
static unsigned long long driver_soft_limit(const struct gm_limits *l, const char *uuid, unsigned long long hard)
{
    uint64_t req = gm_request_for(l, uuid);
    return req < hard ? req : hard;
}

/* The devices the group's limits cover: every per-device entry, and with a
 * default limit every GPU NVML lists. Fills r->dev (hard = limit), returns
 * how many. */
static int covered_devices(const struct nv *n, const struct gm_limits *l, struct record *r)
{
    r->ndev = 0;
    uint32_t nd = l->ndev < GM_MAX_DEVICES ? l->ndev : GM_MAX_DEVICES;
    for (uint32_t i = 0; i < nd; i++) {
        if (!l->dev[i].uuid[0] || l->dev[i].limit == GM_UNLIMITED)
            continue;
        struct rec_dev *d = &r->dev[r->ndev++];
        snprintf(d->uuid, sizeof d->uuid, "%.*s", GM_UUID_LEN - 1, l->dev[i].uuid);
        d->hard = l->dev[i].limit;
        d->soft = driver_soft_limit(l, d->uuid, d->hard);
    }
    unsigned count = 0;
    if (l->default_limit == GM_UNLIMITED || n->n.count(&count) != NVML_SUCCESS)
        return r->ndev;
    for (unsigned i = 0; i < count && r->ndev < MAX_RECORD_DEVS; i++) {
        nvmlDevice_t h;
        char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE];
        if (n->n.by_index(i, &h) != NVML_SUCCESS || n->n.uuid(h, uuid, sizeof uuid) != NVML_SUCCESS)
            continue;
        for (char *c = uuid + (strlen(uuid) >= 4 ? 4 : 0); *c; c++)
            *c = (char)tolower((unsigned char)*c);
        int listed = 0;
        for (uint32_t k = 0; k < nd; k++)
            listed |= strncmp(l->dev[k].uuid, uuid, GM_UUID_LEN) == 0;
        if (listed || strlen(uuid) >= GM_UUID_LEN)
            continue;
        struct rec_dev *d = &r->dev[r->ndev++];
        snprintf(d->uuid, sizeof d->uuid, "%s", uuid);
        d->hard = l->default_limit;
        d->soft = driver_soft_limit(l, d->uuid, d->hard);
    }
    return r->ndev;
}

/* Sets one device's limits and reads them back: 0, or -1 with why. */
static int set_one(const struct nv *n, const char *cgroup, const struct rec_dev *d, char *why, size_t len)
{
    nvmlDevice_t h;
    if (strncasecmp(d->uuid, "MIG-", 4) == 0) {
        say(why, len, "%s is a MIG device: NVIDIA's driver limits do not support MIG", d->uuid);
        return -1;
    }
    if (n->n.by_uuid(d->uuid, &h) != NVML_SUCCESS) {
        say(why, len, "%s: not found by NVML", d->uuid);
        return -1;
    }
    unsigned cur = 0, pend = 0;
    if (n->mig_mode && n->mig_mode(h, &cur, &pend) == NVML_SUCCESS && cur == NVML_DEVICE_MIG_ENABLE) {
        say(why, len, "%s is in MIG mode: NVIDIA's driver limits do not support MIG", d->uuid);
        return -1;
    }
    nvmlSetMemoryLimits_v1_t s = {cgroup, d->soft, d->hard};
    nvmlReturn_t r = n->set(h, &s);
    if (r != NVML_SUCCESS) {
        refusal(n, r, d->uuid, cgroup, why, len);
        return -1;
    }
    nvmlGetMemoryLimits_v1_t g = {cgroup, 0, 0, 0};
    if (!n->get || (r = n->get(h, &g)) != NVML_SUCCESS || g.hardLimit != d->hard || g.softLimit != d->soft) {
        say(why, len, "%s: the driver did not keep the limit (reads back %s)", d->uuid,
            r != NVML_SUCCESS ? "an error" : "other values");
        return -1;
    }
    return 0;
}

static int apply(struct record *rec, const char *dir, char *why, size_t whylen)
{
    char err[512] = "";
    snprintf(rec->enforcement, sizeof rec->enforcement, "shim");
    rec->reason[0] = '\0';
    rec->ndev = 0;
    struct nv n;
    const struct gm_limits *l = NULL;
    if (nv_open(rec->nvml, &n, err, sizeof err) < 0) {
        /* nothing set */
    } else if (!n.set) {
        refusal(&n, NVML_ERROR_FUNCTION_NOT_FOUND, "", rec->cgroup, err, sizeof err);
    } else if (!(l = gm_limits_map(dir, err, sizeof err))) {
        /* err says why */
    } else if (covered_devices(&n, l, rec) == 0) {
        snprintf(err, sizeof err, "the group has no limit to set");
    } else {
        int ok = 0;
        for (int i = 0; i < rec->ndev; i++) {
            char one[512];
            if (set_one(&n, rec->cgroup, &rec->dev[i], one, sizeof one) == 0)
                ok++;
            else if (!err[0])
                snprintf(err, sizeof err, "%s", one);
        }
        if (ok == rec->ndev)
            snprintf(rec->enforcement, sizeof rec->enforcement, "shim+driver");
        else if (ok > 0)
            snprintf(rec->reason, sizeof rec->reason, "driver limits on %d of %d devices; %.400s", ok, rec->ndev,
                     err);
    }
    if (l)
        gm_limits_unmap(l);
    if (!rec->reason[0] && err[0])
        snprintf(rec->reason, sizeof rec->reason, "%s", err);
    if (record_write(dir, rec, why, whylen) < 0)
        return -1;
    say(why, whylen, "%s", rec->reason);
    return strcmp(rec->enforcement, "shim+driver") == 0;
}

int gm_driver_limits_apply(const char *nvml_lib, const char *dir, const char *cgroup, char *why, size_t whylen)
{
    static struct record rec;
    memset(&rec, 0, sizeof rec);
    snprintf(rec.nvml, sizeof rec.nvml, "%s", nvml_lib ? nvml_lib : "");
    snprintf(rec.cgroup, sizeof rec.cgroup, "%s", cgroup);
    return apply(&rec, dir, why, whylen);
}

int gm_driver_limits_reapply(const char *dir, char *why, size_t whylen)
{
    static struct record rec;
    if (record_read(dir, &rec) < 0)
        return -1;
    if (strcmp(rec.cgroup, "-") == 0) { /* shim only from the start: nothing to set */
        say(why, whylen, "%s", rec.reason);
        return 0;
    }
    /* Limits that no longer apply (a device the new limits leave out) are
     * cleared first; apply() sets the rest. */
    struct nv n;
    if (nv_open(rec.nvml, &n, NULL, 0) == 0 && n.set)
        for (int i = 0; i < rec.ndev; i++) {
            nvmlDevice_t h;
            nvmlSetMemoryLimits_v1_t s = {rec.cgroup, 0, NVML_DEVICE_MEMORY_LIMIT_MAX};
            if (n.n.by_uuid(rec.dev[i].uuid, &h) == NVML_SUCCESS)
                n.set(h, &s);
        }
    return apply(&rec, dir, why, whylen);
}

int gm_driver_limits_verify(const char *dir, char *why, size_t whylen)
{
    static struct record rec;
    if (record_read(dir, &rec) < 0 || strcmp(rec.enforcement, "shim+driver") != 0)
        return -1;
    struct nv n;
    char err[512] = "";
    if (nv_open(rec.nvml, &n, err, sizeof err) == 0 && !n.get)
        snprintf(err, sizeof err, "the driver lost nvmlDeviceGetMemoryLimits_v1");
    for (int i = 0; i < rec.ndev && !err[0]; i++) {
        nvmlDevice_t h;
        nvmlGetMemoryLimits_v1_t g = {rec.cgroup, 0, 0, 0};
        if (n.n.by_uuid(rec.dev[i].uuid, &h) != NVML_SUCCESS || n.get(h, &g) != NVML_SUCCESS ||
            g.hardLimit != rec.dev[i].hard)
            snprintf(err, sizeof err, "the driver's limit on %s for %.300s is not the group's (%llu, expected %llu)",
                     rec.dev[i].uuid, rec.cgroup, g.hardLimit, rec.dev[i].hard);
    }
    if (!err[0])
        return 1;
    snprintf(rec.enforcement, sizeof rec.enforcement, "shim");
    snprintf(rec.reason, sizeof rec.reason, "%s", err);
    record_write(dir, &rec, NULL, 0);
    say(why, whylen, "%s", err);
    return 0;
}

void gm_driver_limits_clear(const char *dir)
{
    static struct record rec;
    if (record_read(dir, &rec) < 0)
        return;
    struct nv n;
    if (nv_open(rec.nvml, &n, NULL, 0) == 0 && n.set)
        for (int i = 0; i < rec.ndev; i++) {
            nvmlDevice_t h;
            nvmlSetMemoryLimits_v1_t s = {rec.cgroup, 0, NVML_DEVICE_MEMORY_LIMIT_MAX};
            if (strncasecmp(rec.dev[i].uuid, "MIG-", 4) != 0 && n.n.by_uuid(rec.dev[i].uuid, &h) == NVML_SUCCESS)
                n.set(h, &s);
        }
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/" GM_DRIVER_RECORD, dir);
    unlink(path);
}

int gm_driver_limits_shim_only(const char *dir, const char *reason)
{
    static struct record rec;
    memset(&rec, 0, sizeof rec);
    snprintf(rec.cgroup, sizeof rec.cgroup, "-");
    snprintf(rec.enforcement, sizeof rec.enforcement, "shim");
    snprintf(rec.reason, sizeof rec.reason, "%s", reason);
    return record_write(dir, &rec, NULL, 0);
}

const char *gm_driver_enforcement(const char *dir, char *why, size_t whylen)
{
    static struct record rec;
    say(why, whylen, "%s", "");
    if (record_read(dir, &rec) < 0)
        return "shim";
    say(why, whylen, "%s", rec.reason);
    return strcmp(rec.enforcement, "shim+driver") == 0 ? "shim+driver" : "shim";
}

/* NodePrepareResources / NodeUnprepareResources for one claim.
 *
 * Prepare, in this order, each step idempotent so that a retry (kubelet
 * retries until it gets an answer) or a driver killed midway and
 * restarted simply completes the work:
 *   1. the checkpoint (what must be undone later),
 *   2. the group dra-<uid> with the claim's consumed memory as its limit on
 *      each allocated GPU (UUID), none on other GPUs, and its
 *      ld.so.preload naming the shim,
 *   3. the CDI spec that mounts them into the pod's containers.
 * Unprepare undoes 3, 2 (once no process uses the group), then 1. */
#include "dra.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../runtime/runtime.h"
#include "gpumem/hostutil.h"
#include "gpumem/procinfo.h"

void dra_group_dir(const struct dra_options *o, const char *uid, char *buf, size_t len)
{
    snprintf(buf, len, "%.4000s/dra-%.63s", o->groups_dir, uid);
}

static void claim_limits(const struct dra_claim *c, struct gm_limits *l)
{
    gm_limits_init(l);
    /* The container sees only its GPUs; on any other the limit is 0, so a
     * GPU reached around NVIDIA_VISIBLE_DEVICES gets nothing. */
    l->default_limit = 0;
    /* One entry per GPU: requests of the claim on the same GPU add up. */
    for (int i = 0; i < c->n; i++) {
        uint32_t d = 0;
        while (d < l->ndev && strcmp(l->dev[d].uuid, c->res[i].uuid) != 0)
            d++;
        if (d == l->ndev) {
            snprintf(l->dev[d].uuid, sizeof l->dev[d].uuid, "%s", c->res[i].uuid);
            l->ndev++;
        }
        l->dev[d].limit += c->res[i].memory;
    }
    snprintf(l->name, sizeof l->name, "%.63s", c->name);
    snprintf(l->container_id, sizeof l->container_id, "dra:%s", c->uid);
    snprintf(l->pod, sizeof l->pod, "%.63s", c->pod);
    snprintf(l->pod_namespace, sizeof l->pod_namespace, "%.63s", c->namespace_);
    l->created_unix = (uint64_t)time(NULL);
}

static int write_preload(const char *dir, char *err, size_t errlen)
{
    char path[4400], tmp[4400];
    snprintf(path, sizeof path, "%.4200s/ld.so.preload", dir);
    snprintf(tmp, sizeof tmp, "%.4200s/.ld.so.preload.tmp", dir);
    FILE *f = fopen(tmp, "we");
    if (!f || fprintf(f, "%s\n", RT_SHIM_DEST) < 0 || fclose(f) != 0 || rename(tmp, path) < 0) {
        snprintf(err, errlen, "%.900s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* The group exists and is this claim's (a retry, or a restart after a
 * crash): 1; absent: 0; someone else's or unreadable: -1. */
static int group_is_ours(const char *dir, const char *uid, char *err, size_t errlen)
{
    char probe[4400], e[512], want[80];
    snprintf(probe, sizeof probe, "%s/limits", dir);
    if (access(probe, F_OK) != 0 && errno == ENOENT)
        return 0;
    const struct gm_limits *m = gm_limits_map(dir, e, sizeof e);
    if (!m) {
        snprintf(err, errlen, "group %s exists but cannot be read: %s", dir, e);
        return -1;
    }
    snprintf(want, sizeof want, "dra:%s", uid);
    int mine = strncmp(m->container_id, want, sizeof m->container_id) == 0;
    gm_limits_unmap(m);
    if (!mine)
        snprintf(err, errlen, "group %s exists and belongs to something else", dir);
    return mine ? 1 : -1;
}

int dra_prepare(const struct dra_options *o, const struct dra_claim *want, char *cdi_id, size_t idlen, char *err,
                size_t errlen)
{
    struct dra_claim have;
    char dir[4400], e[DRA_ERRLEN];
    if (dra_valid_uid(want->uid) != 0) {
        snprintf(err, errlen, "claim uid \"%.80s\": not a Kubernetes UID", want->uid);
        return -1;
    }
    int got = dra_checkpoint_read(o, want->uid, &have, e, sizeof e);
    if (got < 0) {
        snprintf(err, errlen, "claim %s/%s: %s", want->namespace_, want->name, e);
        return -1;
    }
    /* Prepared before: the checkpoint is the truth (the allocation of a
     * claim never changes while it is reserved). */
    const struct dra_claim *c = got ? &have : want;
    if (!got && dra_checkpoint_write(o, c, e, sizeof e) < 0) {
        snprintf(err, errlen, "claim %s/%s: %s", c->namespace_, c->name, e);
        return -1;
    }
    dra_group_dir(o, c->uid, dir, sizeof dir);
    int ours = group_is_ours(dir, c->uid, e, sizeof e);
    if (ours < 0) {
        snprintf(err, errlen, "claim %s/%s: %s", c->namespace_, c->name, e);
        return -1;
    }
    if (ours == 0) {
        struct gm_limits l;
        claim_limits(c, &l);
        if (gm_mkdir_p(o->groups_dir) < 0) {
            snprintf(err, errlen, "groups directory %s: %s", o->groups_dir, strerror(errno));
            return -1;
        }
        /* A creation that died midway leaves a directory without limits. */
        gm_group_remove(dir);
        if (gm_group_create(dir, &l, 0666, e, sizeof e) < 0) {
            snprintf(err, errlen, "claim %s/%s: %s", c->namespace_, c->name, e);
            return -1;
        }
    }
    if (write_preload(dir, e, sizeof e) < 0 || dra_cdi_write(o, c, dir, e, sizeof e) < 0) {
        snprintf(err, errlen, "claim %s/%s: %s", c->namespace_, c->name, e);
        return -1;
    }
    dra_cdi_id(o, c->uid, cdi_id, idlen);
    return 0;
}

int dra_unprepare(const struct dra_options *o, const char *uid, char *err, size_t errlen)
{
    struct dra_claim c;
    char dir[4400], path[4400], e[DRA_ERRLEN];
    if (dra_valid_uid(uid) != 0) {
        snprintf(err, errlen, "claim uid \"%.80s\": not a Kubernetes UID", uid);
        return -1;
    }
    int got = dra_checkpoint_read(o, uid, &c, e, sizeof e);
    if (got < 0) {
        snprintf(err, errlen, "claim %s: %s", uid, e);
        return -1;
    }
    if (got == 0)
        return 0; /* never prepared here, or already unprepared */
    dra_cdi_path(o, uid, path, sizeof path);
    if (unlink(path) < 0 && errno != ENOENT) {
        snprintf(err, errlen, "claim %s/%s: %s: %s", c.namespace_, c.name, path, strerror(errno));
        return -1;
    }
    dra_group_dir(o, uid, dir, sizeof dir);
    if (group_is_ours(dir, uid, e, sizeof e) == 1) {
        struct gm_usage *u = gm_usage_map(dir, e, sizeof e);
        *e = '\0';
        if (!u) {
            gm_group_remove(dir);
        } else {
            /* Processes of the pod may still be exiting: mark the group as
             * a finished run's, so the last of them (or the daemon)
             * removes it; gone at once when none is left. */
            if (gm_run_marker_write(dir, getpid(), gm_proc_start_time(getpid()), e, sizeof e) < 0 ||
                gm_group_collect(dir, u, NULL, GM_COLLECT_CREATOR) < 0) {
                gm_usage_unmap(u);
                snprintf(err, errlen, "claim %s/%s: group %s: %s", c.namespace_, c.name, dir,
                         *e ? e : "its lock cannot be taken");
                return -1;
            }
            gm_usage_unmap(u);
        }
    }
    if (dra_checkpoint_remove(o, uid) < 0) {
        snprintf(err, errlen, "claim %s/%s: checkpoint: %s", c.namespace_, c.name, strerror(errno));
        return -1;
    }
    return 0;
}

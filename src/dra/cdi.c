/* The CDI spec of a prepared claim (Container Device Interface 0.6.0):
 * one device, named after the claim's UID, of kind <driver>/claim, whose
 * container edits give each container of the pod what gpumem-runtime gives
 * a Docker container (docs/docker.md):
 *
 *   /usr/lib/gpumem/libgpumem.so   the shim                          ro
 *   /etc/ld.so.preload             <group>/ld.so.preload (the shim)  ro
 *   /run/gpumem/self               the group directory               ro
 *   /run/gpumem/self/usage         its usage region                  rw
 *   /run/gpumem/self/limits        its limits                        ro
 *
 * and NVIDIA_VISIBLE_DEVICES naming the allocated GPUs by UUID, for
 * NVIDIA's container toolkit where it injects the GPU itself. containerd
 * and CRI-O read the spec from the CDI directory (/var/run/cdi) when
 * kubelet passes them the device ID. */
#include "dra.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../runtime/runtime.h"
#include "gpumem/hostutil.h"

void dra_cdi_id(const struct dra_options *o, const char *uid, char *buf, size_t len)
{
    snprintf(buf, len, "%s/claim=%s", o->driver, uid);
}

void dra_cdi_path(const struct dra_options *o, const char *uid, char *buf, size_t len)
{
    snprintf(buf, len, "%.4000s/%.64s-claim_%.63s.json", o->cdi_dir, o->driver, uid);
}

static int add_mount(json_t *mounts, const char *host, const char *dir, const char *file, const char *dst, int ro)
{
    char src[4400];
    snprintf(src, sizeof src, "%s%s%s", host, file ? "/" : "", file ? file : "");
    return json_array_append_new(mounts, json_pack("{s:s, s:s, s:[s, s, s, s]}", "hostPath", src, "containerPath",
                                                   dst, "options", "rbind", ro ? "ro" : "rw", "nosuid", "nodev"));
}

int dra_cdi_write(const struct dra_options *o, const struct dra_claim *c, const char *group_dir, char *err,
                  size_t errlen)
{
    char kind[128], path[4400], visible[DRA_MAX_GPUS * GM_UUID_LEN + 64] = "NVIDIA_VISIBLE_DEVICES=",
                                   claim[400];
    for (int i = 0; i < c->n; i++) {
        if (strstr(visible, c->res[i].uuid))
            continue; /* two requests on one GPU */
        if (i > 0)
            strcat(visible, ",");
        strcat(visible, c->res[i].uuid);
    }
    snprintf(claim, sizeof claim, "GPUMEM_DRA_CLAIM=%s/%s", c->namespace_, c->name);
    if (gm_mkdir_p(o->cdi_dir) < 0) {
        snprintf(err, errlen, "CDI directory %s: %s", o->cdi_dir, strerror(errno));
        return -1;
    }
    json_t *mounts = json_array();
    /* Order matters: the files are bound over the read-only directory. */
    add_mount(mounts, group_dir, NULL, NULL, RT_SELF_DEST, 1);
    add_mount(mounts, group_dir, NULL, "usage", RT_SELF_DEST "/usage", 0);
    add_mount(mounts, group_dir, NULL, "limits", RT_SELF_DEST "/limits", 1);
    add_mount(mounts, o->shim, NULL, NULL, RT_SHIM_DEST, 1);
    add_mount(mounts, group_dir, NULL, "ld.so.preload", RT_PRELOAD_DEST, 1);
    snprintf(kind, sizeof kind, "%s/claim", o->driver);
    json_t *spec = json_pack("{s:s, s:s, s:[{s:s, s:{s:[s, s], s:o}}]}", "cdiVersion", "0.6.0", "kind", kind,
                             "devices", "name", c->uid, "containerEdits", "env", visible, claim, "mounts", mounts);
    dra_cdi_path(o, c->uid, path, sizeof path);
    int rc = spec ? dra_write_json(path, spec, err, errlen) : -1;
    if (!spec)
        snprintf(err, errlen, "CDI spec of claim %s: out of memory", c->uid);
    json_decref(spec);
    return rc;
}

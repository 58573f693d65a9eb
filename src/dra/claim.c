/* A ResourceClaim's allocation, as the scheduler wrote it:
 *
 *   status.allocation.devices.results[]: {request, driver, pool, device,
 *       consumedCapacity: {memory: "4Gi"}, shareID}
 *   status.reservedFor[]: {resource: "pods", name, uid}
 *
 * Only results of this driver count; each must be on this node's pool, name
 * one of its GPUs and carry the memory it consumed, which becomes the
 * group's limit on that GPU. */
#include "dra.h"

#include <stdio.h>
#include <string.h>

static int copy_str(char *dst, size_t len, json_t *v, const char *what, const char *claim, char *err, size_t errlen)
{
    const char *s = json_string_value(v);
    if (!s || !*s || strlen(s) >= len) {
        snprintf(err, errlen, "ResourceClaim %s: %s %s", claim, what, !s ? "missing" : !*s ? "empty" : "too long");
        return -1;
    }
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

static const struct dra_gpu *find_gpu(const struct dra_inventory *inv, const char *device)
{
    for (int i = 0; i < inv->n; i++) {
        char name[32];
        snprintf(name, sizeof name, "gpu-%d", inv->gpu[i].index);
        if (strcmp(name, device) == 0)
            return &inv->gpu[i];
    }
    return NULL;
}

int dra_claim_parse(json_t *obj, const char *uid, const struct dra_options *o, const struct dra_inventory *inv,
                    struct dra_claim *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    json_t *meta = json_object_get(obj, "metadata");
    const char *ns = json_string_value(json_object_get(meta, "namespace"));
    const char *nm = json_string_value(json_object_get(meta, "name"));
    char id[400];
    snprintf(id, sizeof id, "%.64s/%.254s", ns ? ns : "?", nm ? nm : "?");
    if (!json_is_object(obj) || json_string_value(json_object_get(obj, "kind")) == NULL ||
        strcmp(json_string_value(json_object_get(obj, "kind")), "ResourceClaim") != 0) {
        snprintf(err, errlen, "ResourceClaim %s: not a ResourceClaim object", id);
        return -1;
    }
    if (copy_str(c->uid, sizeof c->uid, json_object_get(meta, "uid"), "metadata.uid", id, err, errlen) < 0 ||
        copy_str(c->namespace_, sizeof c->namespace_, json_object_get(meta, "namespace"), "metadata.namespace", id,
                 err, errlen) < 0 ||
        copy_str(c->name, sizeof c->name, json_object_get(meta, "name"), "metadata.name", id, err, errlen) < 0)
        return -1;
    if (uid && strcmp(uid, c->uid) != 0) {
        snprintf(err, errlen, "ResourceClaim %s: uid is \"%s\", kubelet asked for \"%.64s\" (deleted and recreated?)",
                 id, c->uid, uid);
        return -1;
    }
    json_t *status = json_object_get(obj, "status");
    json_t *results = json_object_get(json_object_get(json_object_get(status, "allocation"), "devices"), "results");
    if (!json_is_array(results)) {
        snprintf(err, errlen, "ResourceClaim %s: not allocated (no status.allocation.devices.results)", id);
        return -1;
    }
    size_t i;
    json_t *r, *ref;
    json_array_foreach(json_object_get(status, "reservedFor"), i, ref) {
        const char *res = json_string_value(json_object_get(ref, "resource"));
        const char *pod = json_string_value(json_object_get(ref, "name"));
        if (res && pod && strcmp(res, "pods") == 0 && strlen(pod) < sizeof c->pod) {
            snprintf(c->pod, sizeof c->pod, "%s", pod);
            break;
        }
    }
    json_array_foreach(results, i, r) {
        const char *drv = json_string_value(json_object_get(r, "driver"));
        if (!drv || strcmp(drv, o->driver) != 0)
            continue;
        if (c->n == DRA_MAX_GPUS) {
            snprintf(err, errlen, "ResourceClaim %s: more than %d devices of %s", id, DRA_MAX_GPUS, o->driver);
            return -1;
        }
        struct dra_result *x = &c->res[c->n];
        if (copy_str(x->request, sizeof x->request, json_object_get(r, "request"), "result request", id, err,
                     errlen) < 0 ||
            copy_str(x->pool, sizeof x->pool, json_object_get(r, "pool"), "result pool", id, err, errlen) < 0 ||
            copy_str(x->device, sizeof x->device, json_object_get(r, "device"), "result device", id, err, errlen) < 0)
            return -1;
        if (strcmp(x->pool, o->node) != 0) {
            snprintf(err, errlen, "ResourceClaim %s: device \"%s\" is in pool \"%s\", this node's pool is \"%s\"", id,
                     x->device, x->pool, o->node);
            return -1;
        }
        const struct dra_gpu *g = find_gpu(inv, x->device);
        if (!g) {
            snprintf(err, errlen, "ResourceClaim %s: unknown device \"%s\" (this node has %d GPU%s: gpu-0..gpu-%d)", id,
                     x->device, inv->n, inv->n == 1 ? "" : "s", inv->n - 1);
            return -1;
        }
        if (!g->healthy) {
            snprintf(err, errlen, "ResourceClaim %s: device \"%s\" (%s) is unhealthy: %s", id, x->device, g->uuid,
                     g->health_reason);
            return -1;
        }
        snprintf(x->uuid, sizeof x->uuid, "%s", g->uuid);
        json_t *mem = json_object_get(json_object_get(r, "consumedCapacity"), "memory");
        if (!mem) {
            snprintf(err, errlen,
                     "ResourceClaim %s: device \"%s\" has no consumedCapacity.memory (the DRAConsumableCapacity "
                     "feature gate is off, or the claim asked for a whole GPU)",
                     id, x->device);
            return -1;
        }
        char e[256];
        if (!json_is_string(mem) || dra_quantity_parse(json_string_value(mem), &x->memory, e, sizeof e) < 0) {
            snprintf(err, errlen, "ResourceClaim %s: device \"%s\": consumedCapacity.memory: %s", id, x->device,
                     json_is_string(mem) ? e : "not a quantity string");
            return -1;
        }
        if (x->memory == 0 || x->memory > g->memory) {
            char a[48], b[48];
            snprintf(err, errlen, "ResourceClaim %s: device \"%s\": consumedCapacity.memory %s is %s (the GPU has %s)",
                     id, x->device, dra_quantity_format(x->memory, a, sizeof a),
                     x->memory ? "more than the GPU" : "zero", dra_quantity_format(g->memory, b, sizeof b));
            return -1;
        }
        /* Two requests of a claim may share a GPU (each its own share):
         * the group's limit there is their sum (prepare.c). */
        uint64_t on_gpu = x->memory;
        for (int j = 0; j < c->n; j++)
            if (strcmp(c->res[j].uuid, x->uuid) == 0)
                on_gpu += c->res[j].memory;
        if (on_gpu > g->memory) {
            snprintf(err, errlen, "ResourceClaim %s: device \"%s\": the claim's requests consume more than the GPU",
                     id, x->device);
            return -1;
        }
        json_t *share = json_object_get(r, "shareID");
        if (share && copy_str(x->share_id, sizeof x->share_id, share, "result shareID", id, err, errlen) < 0)
            return -1;
        c->n++;
    }
    if (c->n == 0) {
        const char *other = NULL;
        json_array_foreach(results, i, r) {
            other = json_string_value(json_object_get(r, "driver"));
            if (other)
                break;
        }
        snprintf(err, errlen, "ResourceClaim %s: no device of driver %s in its allocation%s%.200s%s", id, o->driver,
                 other ? " (it has devices of " : "", other ? other : "", other ? ")" : "");
        return -1;
    }
    return 0;
}

int dra_claim_fetch(struct kube *k, const char *ns, const char *name, const char *uid, const struct dra_options *o,
                    const struct dra_inventory *inv, struct dra_claim *c, char *err, size_t errlen)
{
    char path[800], e[DRA_ERRLEN];
    snprintf(path, sizeof path, "/apis/resource.k8s.io/v1/namespaces/%.64s/resourceclaims/%.254s", ns, name);
    json_t *obj = NULL;
    long st = kube_request(k, "GET", path, NULL, &obj, e, sizeof e);
    if (st != 200) {
        if (st < 0)
            snprintf(err, errlen, "ResourceClaim %s/%s: %s", ns, name, e);
        else
            snprintf(err, errlen, "ResourceClaim %s/%s: HTTP %ld: %s", ns, name, st, kube_status_message(obj));
        json_decref(obj);
        return -1;
    }
    int rc = dra_claim_parse(obj, uid, o, inv, c, err, errlen);
    json_decref(obj);
    return rc;
}

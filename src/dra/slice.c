/* This node's ResourceSlice (resource.k8s.io/v1): one pool named after the
 * node, one slice, a device per GPU:
 *
 *   name: gpu-<index>
 *   attributes: uuid, model (string), index (int), driverVersion (version)
 *   capacity.memory: the GPU's size, requestPolicy {default: unit,
 *                    validRange {min: unit, max: size in whole units, step: unit}}
 *   allowMultipleAllocations: true   (consumable capacity, KEP-5075)
 *   taints: [{key: <driver>/unhealthy, effect: NoSchedule}] while NVML says
 *           the GPU is lost (or the device is left out, --unhealthy=remove)
 *
 * The scheduler rounds each claim's capacity.requests.memory up to a whole
 * number of units and records it as consumedCapacity: that is what
 * Prepare enforces. */
#include "dra.h"

#include <stdio.h>
#include <string.h>

void dra_slice_name(const struct dra_options *o, char *buf, size_t len)
{
    snprintf(buf, len, "%s-%s", o->node, o->driver);
}

static json_t *qty(uint64_t bytes)
{
    char b[48];
    return json_string(dra_quantity_format(bytes, b, sizeof b));
}

static json_t *device(const struct dra_options *o, const struct dra_inventory *inv, const struct dra_gpu *g)
{
    char name[32], key[128];
    uint64_t unit = o->unit, max = g->memory / unit * unit;
    snprintf(name, sizeof name, "gpu-%d", g->index);
    json_t *d = json_pack("{s:s, s:{s:{s:s}, s:{s:s}, s:{s:i}, s:{s:s}}, s:{s:{s:o, s:{s:o, s:{s:o, s:o, s:o}}}}, s:b}",
                          "name", name, "attributes", "uuid", "string", g->uuid, "model", "string", g->model, "index",
                          "int", (json_int_t)g->index, "driverVersion", "version", inv->driver_version, "capacity",
                          "memory", "value", qty(g->memory), "requestPolicy", "default", qty(unit), "validRange",
                          "min", qty(unit), "max", qty(max), "step", qty(unit), "allowMultipleAllocations", 1);
    if (d && !g->healthy) {
        snprintf(key, sizeof key, "%s/unhealthy", o->driver);
        json_object_set_new(d, "taints", json_pack("[{s:s, s:s, s:s}]", "key", key, "value", "gpu-lost", "effect",
                                                   "NoSchedule"));
    }
    return d;
}

json_t *dra_slice_spec(const struct dra_options *o, const struct dra_inventory *inv, int64_t generation)
{
    json_t *devs = json_array();
    for (int i = 0; i < inv->n; i++) {
        const struct dra_gpu *g = &inv->gpu[i];
        /* A GPU smaller than one unit cannot hold a claim. */
        if ((!g->healthy && o->unhealthy == DRA_UNHEALTHY_REMOVE) || g->memory < o->unit)
            continue;
        json_array_append_new(devs, device(o, inv, g));
    }
    return json_pack("{s:s, s:s, s:{s:s, s:I, s:i}, s:o}", "driver", o->driver, "nodeName", o->node, "pool", "name",
                     o->node, "generation", (json_int_t)generation, "resourceSliceCount", 1, "devices", devs);
}

int dra_slice_publish(struct kube *k, const struct dra_options *o, const struct dra_inventory *inv, int *changed,
                      char *err, size_t errlen)
{
    char name[512], path[700], e[DRA_ERRLEN];
    *changed = 0;
    dra_slice_name(o, name, sizeof name);
    snprintf(path, sizeof path, "/apis/resource.k8s.io/v1/resourceslices/%s", name);
    json_t *cur = NULL;
    long st = kube_request(k, "GET", path, NULL, &cur, e, sizeof e);
    if (st < 0) {
        snprintf(err, errlen, "ResourceSlice %s: %s", name, e);
        return -1;
    }
    json_int_t gen = 0;
    json_t *meta = NULL;
    if (st == 200) {
        json_t *spec = json_object_get(cur, "spec");
        gen = json_integer_value(json_object_get(json_object_get(spec, "pool"), "generation"));
        json_t *want = dra_slice_spec(o, inv, gen);
        int same = json_equal(want, spec);
        json_decref(want);
        if (same) {
            json_decref(cur);
            return 0;
        }
        /* Keep the object's metadata (resourceVersion: the update is
         * refused with 409 if someone else wrote it meanwhile). */
        meta = json_incref(json_object_get(cur, "metadata"));
        gen++;
    } else if (st != 404) {
        snprintf(err, errlen, "GET %s: HTTP %ld: %s", path, st, kube_status_message(cur));
        json_decref(cur);
        return -1;
    } else {
        gen = 1;
        meta = json_pack("{s:s}", "name", name);
    }
    json_decref(cur);
    if (!json_is_object(meta)) {
        json_decref(meta);
        snprintf(err, errlen, "GET %s: the answer has no metadata", path);
        return -1;
    }
    json_t *obj = json_pack("{s:s, s:s, s:o, s:o}", "apiVersion", "resource.k8s.io/v1", "kind", "ResourceSlice",
                            "metadata", meta, "spec", dra_slice_spec(o, inv, gen));
    json_t *ans = NULL;
    const char *method = st == 200 ? "PUT" : "POST";
    const char *where = st == 200 ? path : "/apis/resource.k8s.io/v1/resourceslices";
    long st2 = kube_request(k, method, where, obj, &ans, e, sizeof e);
    json_decref(obj);
    if (st2 < 0 || (st2 != 200 && st2 != 201)) {
        if (st2 < 0)
            snprintf(err, errlen, "%s %s: %s", method, where, e);
        else
            snprintf(err, errlen, "%s %s: HTTP %ld: %s", method, where, st2, kube_status_message(ans));
        json_decref(ans);
        return -1;
    }
    json_decref(ans);
    *changed = 1;
    return 0;
}

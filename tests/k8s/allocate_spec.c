/* What the kubelet hands the container runtime after the device plugin's
 * Allocate, as a fragment of config.json: kp_allocate_container (the
 * plugin's own code) makes the group for BYTES on the GPU UUID and answers
 * mounts, env and annotations; this prints them the way containerd writes
 * them into the spec (bind mounts with the host path as source, env as
 * NAME=value, annotations as they are):
 *   {"mounts":[...],"env":[...],"annotations":{...}}
 * tests/integration/k8s_runtime.sh feeds that to gpumem-runtime.
 *
 *   allocate_spec SHIM UUID BYTES     (groups in $GPUMEM_STATE_DIR) */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deviceplugin.pb-c.h"
#include "plugin.h"

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: allocate_spec SHIM UUID BYTES\n");
        return 2;
    }
    static struct kp_options o;
    static struct kp_gpus gs;
    snprintf(o.shim, sizeof o.shim, "%s", argv[1]);
    snprintf(o.dev_dir, sizeof o.dev_dir, "/nonexistent-dev");
    gs.n = 1;
    snprintf(gs.g[0].uuid, sizeof gs.g[0].uuid, "%s", argv[2]);
    gs.g[0].total = strtoull(argv[3], NULL, 10) * 4;
    gs.g[0].minor = 0;
    gs.g[0].healthy = 1;
    struct kp_grant g = {.ngpu = 1, .gpu = {0}, .bytes = {strtoull(argv[3], NULL, 10)}};
    char id[128], *ids[] = {id}, err[512];
    snprintf(id, sizeof id, "%s-m0", argv[2]);
    V1beta1__ContainerAllocateResponse r = V1BETA1__CONTAINER_ALLOCATE_RESPONSE__INIT;
    if (kp_allocate_container(&o, &gs, &g, ids, 1, &r, err, sizeof err) < 0) {
        fprintf(stderr, "allocate_spec: %s\n", err);
        return 1;
    }
    json_t *mounts = json_array(), *env = json_array(), *ann = json_object();
    for (size_t i = 0; i < r.n_mounts; i++)
        json_array_append_new(mounts, json_pack("{s:s, s:s, s:s, s:[s, s]}", "destination", r.mounts[i]->container_path,
                                                "type", "bind", "source", r.mounts[i]->host_path, "options", "rbind",
                                                r.mounts[i]->read_only ? "ro" : "rw"));
    for (size_t i = 0; i < r.n_envs; i++) {
        char kv[4096];
        snprintf(kv, sizeof kv, "%s=%s", r.envs[i]->key, r.envs[i]->value);
        json_array_append_new(env, json_string(kv));
    }
    for (size_t i = 0; i < r.n_annotations; i++)
        json_object_set_new(ann, r.annotations[i]->key, json_string(r.annotations[i]->value));
    json_t *out = json_pack("{s:o, s:o, s:o}", "mounts", mounts, "env", env, "annotations", ann);
    char *s = json_dumps(out, JSON_COMPACT);
    puts(s);
    free(s);
    json_decref(out);
    kp_response_free(&r);
    return 0;
}

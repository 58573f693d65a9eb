/* The device plugin's collection of groups (src/k8s/collect.c kp_collect)
 * after gpumem-runtime renamed them after their pods: a group is the
 * plugin's by its marker whatever its name, and is kept while the kubelet's
 * checkpoint names the allocation's group (the name it had, in its origin
 * file), removed once no entry does. Groups without the marker are never
 * the plugin's.
 *
 *   collect_renamed DIR     (a scratch directory: the state directory and
 *                            the checkpoint go there) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deviceplugin.pb-c.h"
#include "gpumem/hostutil.h"
#include "plugin.h"
#include "testlib.h"

static char top[3000], state[3100];

static void b64(const unsigned char *in, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[o] = '\0';
}

/* A checkpoint with one entry whose Allocate answer names `group`. */
static void write_checkpoint(const char *path, const char *group)
{
    V1beta1__ContainerAllocateResponse r = V1BETA1__CONTAINER_ALLOCATE_RESPONSE__INIT;
    V1beta1__ContainerAllocateResponse__AnnotationsEntry a = V1BETA1__CONTAINER_ALLOCATE_RESPONSE__ANNOTATIONS_ENTRY__INIT;
    V1beta1__ContainerAllocateResponse__AnnotationsEntry *ap = &a;
    a.key = (char *)KP_ANNOT_GROUP;
    a.value = (char *)group;
    r.n_annotations = 1;
    r.annotations = &ap;
    unsigned char buf[512];
    size_t n = v1beta1__container_allocate_response__pack(&r, buf);
    char enc[800];
    b64(buf, n, enc);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"Data\":{\"PodDeviceEntries\":[{\"PodUID\":\"u\",\"ContainerName\":\"c\",\"ResourceName\":"
               "\"gpumem.io/memory\",\"DeviceIDs\":{},\"AllocResp\":\"%s\"}],\"RegisteredDevices\":{}},"
               "\"Checksum\":1}\n", enc);
    fclose(f);
}

/* A group named `name`, allocated long ago when `marker`, renamed from
 * `origin` when not NULL. */
static int make_group(const char *name, int marker, const char *origin)
{
    char dir[3300], p[3400], err[256];
    struct gm_limits l;
    gm_limits_init(&l);
    snprintf(dir, sizeof dir, "%s/%s", state, name);
    if (gm_group_create(dir, &l, 0666, err, sizeof err) < 0) {
        printf("# %s\n", err);
        return -1;
    }
    FILE *f;
    if (marker) {
        snprintf(p, sizeof p, "%s/" KP_MARKER, dir);
        if (!(f = fopen(p, "w")))
            return -1;
        fprintf(f, "allocated=1000\nids=GPU-x-m0\n");
        fclose(f);
    }
    if (origin) {
        snprintf(p, sizeof p, "%s/" "origin", dir);
        if (!(f = fopen(p, "w")))
            return -1;
        fprintf(f, "%s\n", origin);
        fclose(f);
    }
    return 0;
}

static int exists(const char *name)
{
    char p[3300];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", state, name);
    return stat(p, &st) == 0;
}

static struct kp_options o;

TEST(renamed_group_kept_while_checkpoint_names_it)
{
    CHECK(make_group("team-a_llm-0_vllm", 1, "k8s-aaaa000001") == 0);
    CHECK(make_group("team-b_old-0_vllm", 1, "k8s-bbbb000002") == 0);
    CHECK(make_group("k8s-cccc000003", 1, NULL) == 0);
    CHECK(make_group("k8s-dddd000004", 1, NULL) == 0);
    CHECK(make_group("ml_train-0_trainer", 0, NULL) == 0);
    write_checkpoint(o.checkpoint, "k8s-aaaa000001");
    CHECK_EQ_INT(kp_collect(&o, 100000), 3);
    CHECK(exists("team-a_llm-0_vllm"));
    CHECK(!exists("team-b_old-0_vllm"));
    CHECK(!exists("k8s-cccc000003"));
    CHECK(!exists("k8s-dddd000004"));
    CHECK(exists("ml_train-0_trainer"));
}

TEST(renamed_group_removed_with_its_allocation)
{
    write_checkpoint(o.checkpoint, "k8s-other00009");
    CHECK_EQ_INT(kp_collect(&o, 100000), 1);
    CHECK(!exists("team-a_llm-0_vllm"));
    CHECK(exists("ml_train-0_trainer"));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: collect_renamed DIR\n");
        return 2;
    }
    snprintf(top, sizeof top, "%s", argv[1]);
    snprintf(state, sizeof state, "%s/state", top);
    mkdir(state, 0755);
    setenv("GPUMEM_STATE_DIR", state, 1);
    snprintf(o.checkpoint, sizeof o.checkpoint, "%s/kubelet_internal_checkpoint", top);
    o.grace_s = 600;
    RUN(renamed_group_kept_while_checkpoint_names_it);
    RUN(renamed_group_removed_with_its_allocation);
    return test_summary();
}

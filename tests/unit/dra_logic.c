/* gpumem-dra's logic without a cluster: Kubernetes quantities, the
 * ResourceSlice it publishes, ResourceClaim allocation parsing (good and
 * bad claims), and Prepare/Unprepare with their checkpoint, group and CDI
 * spec (src/dra/). */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dra.h"
#include "testlib.h"
#include "gpumem/procinfo.h"

static uint64_t q(const char *s)
{
    char err[256];
    uint64_t v = 0;
    return dra_quantity_parse(s, &v, err, sizeof err) == 0 ? v : 0xdeadULL;
}

TEST(quantity_forms)
{
    CHECK_EQ_U64(q("4Gi"), 4ULL << 30);
    CHECK_EQ_U64(q("4096Mi"), 4ULL << 30);
    CHECK_EQ_U64(q("4G"), 4000000000ULL);
    CHECK_EQ_U64(q("1.5Gi"), 3ULL << 29);
    CHECK_EQ_U64(q("4e9"), 4000000000ULL);
    CHECK_EQ_U64(q("4E3"), 4000);
    CHECK_EQ_U64(q("+1Ki"), 1024);
    CHECK_EQ_U64(q("17179869184"), 16ULL << 30);
    CHECK_EQ_U64(q("100m"), 1);          /* a fraction of a byte rounds up */
    CHECK_EQ_U64(q("0.5"), 1);
    CHECK_EQ_U64(q(".5Ki"), 512);
    CHECK_EQ_U64(q("0"), 0);
    CHECK_EQ_U64(q("15Ei"), 15ULL << 60);
}

TEST(quantity_errors_quote_input)
{
    char err[256];
    uint64_t v;
    const char *bad[] = {"", "-1Gi", "4GB", "Gi", "1.2.3", "16Ei", "99999999999999999999999", "4 Gi", "0x10", "e5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(dra_quantity_parse(bad[i], &v, err, sizeof err) < 0);
        CHECK(strstr(err, bad[i]) != NULL);
    }
}

TEST(quantity_format)
{
    char b[48];
    CHECK_STR(dra_quantity_format(16ULL << 30, b, sizeof b), "16Gi");
    CHECK_STR(dra_quantity_format(1536ULL << 20, b, sizeof b), "1536Mi");
    CHECK_STR(dra_quantity_format(100, b, sizeof b), "100");
    CHECK_EQ_U64(q(dra_quantity_format(141ULL * 1000000000, b, sizeof b)), 141ULL * 1000000000);
}

TEST(semver_from_nvml)
{
    char b[64];
    dra_semver("550.163.01", b, sizeof b);
    CHECK_STR(b, "550.163.1");
    dra_semver("535", b, sizeof b);
    CHECK_STR(b, "535.0.0");
    dra_semver("garbage", b, sizeof b);
    CHECK_STR(b, "0.0.0");
}

static struct dra_options opts(const char *root)
{
    struct dra_options o;
    memset(&o, 0, sizeof o);
    snprintf(o.driver, sizeof o.driver, "gpumem.io");
    snprintf(o.node, sizeof o.node, "node-a");
    o.unit = 1ULL << 30;
    snprintf(o.state_dir, sizeof o.state_dir, "%s/state", root);
    snprintf(o.cdi_dir, sizeof o.cdi_dir, "%s/cdi", root);
    snprintf(o.groups_dir, sizeof o.groups_dir, "%s/groups", root);
    snprintf(o.shim, sizeof o.shim, "/usr/lib/gpumem/libgpumem.so");
    return o;
}

static struct dra_inventory inventory(void)
{
    struct dra_inventory inv;
    memset(&inv, 0, sizeof inv);
    inv.n = 2;
    snprintf(inv.driver_version, sizeof inv.driver_version, "550.163.1");
    for (int i = 0; i < 2; i++) {
        inv.gpu[i].index = i;
        snprintf(inv.gpu[i].uuid, sizeof inv.gpu[i].uuid, "gpu-0000000%d-1111-2222-3333-444444444444", i);
        snprintf(inv.gpu[i].model, sizeof inv.gpu[i].model, "NVIDIA H100 80GB HBM3");
        inv.gpu[i].memory = 16ULL << 30;
        inv.gpu[i].healthy = 1;
    }
    inv.gpu[1].healthy = 0;
    return inv;
}

TEST(slice_spec)
{
    struct dra_options o = opts("/nonexistent");
    struct dra_inventory inv = inventory();
    json_t *s = dra_slice_spec(&o, &inv, 3);
    CHECK_STR(json_string_value(json_object_get(s, "driver")), "gpumem.io");
    CHECK_STR(json_string_value(json_object_get(s, "nodeName")), "node-a");
    json_t *pool = json_object_get(s, "pool");
    CHECK_STR(json_string_value(json_object_get(pool, "name")), "node-a");
    CHECK_EQ_INT(json_integer_value(json_object_get(pool, "generation")), 3);
    json_t *devs = json_object_get(s, "devices");
    CHECK_EQ_INT(json_array_size(devs), 2);
    json_t *d0 = json_array_get(devs, 0), *d1 = json_array_get(devs, 1);
    CHECK_STR(json_string_value(json_object_get(d0, "name")), "gpu-0");
    CHECK(json_is_true(json_object_get(d0, "allowMultipleAllocations")));
    json_t *mem = json_object_get(json_object_get(d0, "capacity"), "memory");
    CHECK_STR(json_string_value(json_object_get(mem, "value")), "16Gi");
    json_t *pol = json_object_get(mem, "requestPolicy");
    CHECK_STR(json_string_value(json_object_get(pol, "default")), "1Gi");
    CHECK_STR(json_string_value(json_object_get(json_object_get(pol, "validRange"), "step")), "1Gi");
    CHECK_STR(json_string_value(json_object_get(json_object_get(pol, "validRange"), "max")), "16Gi");
    json_t *attr = json_object_get(d0, "attributes");
    CHECK_STR(json_string_value(json_object_get(json_object_get(attr, "driverVersion"), "version")), "550.163.1");
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(attr, "index"), "int")), 0);
    CHECK(json_object_get(d0, "taints") == NULL);
    CHECK_STR(json_string_value(json_object_get(json_array_get(json_object_get(d1, "taints"), 0), "effect")),
              "NoSchedule");
    json_decref(s);
    o.unhealthy = DRA_UNHEALTHY_REMOVE;
    s = dra_slice_spec(&o, &inv, 4);
    CHECK_EQ_INT(json_array_size(json_object_get(s, "devices")), 1);
    json_decref(s);
}

static json_t *claim_json(const char *results)
{
    char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"apiVersion\":\"resource.k8s.io/v1\",\"kind\":\"ResourceClaim\","
             "\"metadata\":{\"name\":\"c1\",\"namespace\":\"ns1\",\"uid\":\"0f0e0d0c-aaaa-bbbb-cccc-000000000001\"},"
             "\"status\":{\"allocation\":{\"devices\":{\"results\":%s}},"
             "\"reservedFor\":[{\"resource\":\"pods\",\"name\":\"pod-1\",\"uid\":\"x\"}]}}",
             results);
    json_t *j = json_loads(buf, 0, NULL);
    return j;
}

static int parse(const char *results, struct dra_claim *c, char *err, size_t errlen)
{
    struct dra_options o = opts("/nonexistent");
    struct dra_inventory inv = inventory();
    json_t *j = claim_json(results);
    int rc = dra_claim_parse(j, NULL, &o, &inv, c, err, errlen);
    json_decref(j);
    return rc;
}

TEST(claim_good)
{
    struct dra_claim c;
    char err[DRA_ERRLEN] = "";
    int rc = parse("[{\"request\":\"gpu\",\"driver\":\"gpu.nvidia.com\",\"pool\":\"node-a\",\"device\":\"gpu-0\"},"
                   "{\"request\":\"mem\",\"driver\":\"gpumem.io\",\"pool\":\"node-a\",\"device\":\"gpu-0\","
                   "\"consumedCapacity\":{\"memory\":\"4Gi\"},\"shareID\":\"abc-123\"}]",
                   &c, err, sizeof err);
    if (rc != 0)
        printf("# %s\n", err);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(c.n, 1);
    CHECK_EQ_U64(c.res[0].memory, 4ULL << 30);
    CHECK_STR(c.res[0].uuid, "gpu-00000000-1111-2222-3333-444444444444");
    CHECK_STR(c.res[0].share_id, "abc-123");
    CHECK_STR(c.pod, "pod-1");
    CHECK_STR(c.namespace_, "ns1");
}

#define BAD(res, needle)                                                                                               \
    do {                                                                                                               \
        struct dra_claim c_;                                                                                           \
        char e_[DRA_ERRLEN] = "";                                                                                      \
        CHECK(parse(res, &c_, e_, sizeof e_) < 0);                                                                     \
        if (!strstr(e_, needle))                                                                                       \
            printf("# got: %s\n", e_);                                                                                 \
        CHECK(strstr(e_, needle) != NULL);                                                                             \
    } while (0)

TEST(claim_bad)
{
    BAD("[{\"request\":\"m\",\"driver\":\"gpumem.io\",\"pool\":\"node-a\",\"device\":\"gpu-0\"}]",
        "no consumedCapacity.memory");
    BAD("[{\"request\":\"m\",\"driver\":\"gpumem.io\",\"pool\":\"node-a\",\"device\":\"gpu-7\","
        "\"consumedCapacity\":{\"memory\":\"4Gi\"}}]",
        "unknown device \"gpu-7\"");
    BAD("[{\"request\":\"m\",\"driver\":\"gpu.nvidia.com\",\"pool\":\"node-a\",\"device\":\"gpu-0\"}]",
        "no device of driver gpumem.io in its allocation (it has devices of gpu.nvidia.com)");
    BAD("[{\"request\":\"m\",\"driver\":\"gpumem.io\",\"pool\":\"node-b\",\"device\":\"gpu-0\","
        "\"consumedCapacity\":{\"memory\":\"4Gi\"}}]",
        "pool \"node-b\"");
    BAD("[{\"request\":\"m\",\"driver\":\"gpumem.io\",\"pool\":\"node-a\",\"device\":\"gpu-1\","
        "\"consumedCapacity\":{\"memory\":\"4Gi\"}}]",
        "unhealthy");
    BAD("[{\"request\":\"m\",\"driver\":\"gpumem.io\",\"pool\":\"node-a\",\"device\":\"gpu-0\","
        "\"consumedCapacity\":{\"memory\":\"4GB\"}}]",
        "quantity \"4GB\"");
    BAD("[{\"request\":\"m\",\"driver\":\"gpumem.io\",\"pool\":\"node-a\",\"device\":\"gpu-0\","
        "\"consumedCapacity\":{\"memory\":\"17Gi\"}}]",
        "more than the GPU");
    BAD("null", "not allocated");
}

/* Two requests of one claim on one GPU: one group entry, their sum. */
TEST(two_requests_one_gpu_add_up)
{
    char root[] = "/tmp/dra-unit.XXXXXX", dir[4400], id[400], err[DRA_ERRLEN];
    CHECK(mkdtemp(root) != NULL);
    struct dra_options o = opts(root);
    struct dra_claim c;
    CHECK_EQ_INT(parse("[{\"request\":\"a\",\"driver\":\"gpumem.io\",\"pool\":\"node-a\",\"device\":\"gpu-0\","
                       "\"consumedCapacity\":{\"memory\":\"4Gi\"}},"
                       "{\"request\":\"b\",\"driver\":\"gpumem.io\",\"pool\":\"node-a\",\"device\":\"gpu-0\","
                       "\"consumedCapacity\":{\"memory\":\"2Gi\"}}]",
                       &c, err, sizeof err),
                 0);
    CHECK_EQ_INT(c.n, 2);
    CHECK_EQ_INT(dra_prepare(&o, &c, id, sizeof id, err, sizeof err), 0);
    dra_group_dir(&o, c.uid, dir, sizeof dir);
    const struct gm_limits *l = gm_limits_map(dir, err, sizeof err);
    CHECK(l != NULL);
    CHECK_EQ_INT(l->ndev, 1);
    CHECK_EQ_U64(gm_limits_for(l, c.res[0].uuid), 6ULL << 30);
    gm_limits_unmap(l);
    CHECK_EQ_INT(dra_unprepare(&o, c.uid, err, sizeof err), 0);
    BAD("[{\"request\":\"a\",\"driver\":\"gpumem.io\",\"pool\":\"node-a\",\"device\":\"gpu-0\","
        "\"consumedCapacity\":{\"memory\":\"12Gi\"}},"
        "{\"request\":\"b\",\"driver\":\"gpumem.io\",\"pool\":\"node-a\",\"device\":\"gpu-0\","
        "\"consumedCapacity\":{\"memory\":\"8Gi\"}}]",
        "consume more than the GPU");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    CHECK_EQ_INT(system(cmd), 0);
}

TEST(claim_uid_must_match)
{
    struct dra_options o = opts("/nonexistent");
    struct dra_inventory inv = inventory();
    struct dra_claim c;
    char err[DRA_ERRLEN];
    json_t *j = claim_json("[]");
    CHECK(dra_claim_parse(j, "other-uid", &o, &inv, &c, err, sizeof err) < 0);
    json_decref(j);
    CHECK(strstr(err, "\"other-uid\"") != NULL);
}

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

TEST(prepare_unprepare_idempotent)
{
    char root[] = "/tmp/dra-unit.XXXXXX", path[4400], id[400], id2[400], err[DRA_ERRLEN];
    CHECK(mkdtemp(root) != NULL);
    struct dra_options o = opts(root);
    struct dra_claim c;
    CHECK_EQ_INT(parse("[{\"request\":\"m\",\"driver\":\"gpumem.io\",\"pool\":\"node-a\",\"device\":\"gpu-0\","
                       "\"consumedCapacity\":{\"memory\":\"4Gi\"},\"shareID\":\"s1\"}]",
                       &c, err, sizeof err),
                 0);
    CHECK_EQ_INT(dra_prepare(&o, &c, id, sizeof id, err, sizeof err), 0);
    CHECK_STR(id, "gpumem.io/claim=0f0e0d0c-aaaa-bbbb-cccc-000000000001");
    dra_group_dir(&o, c.uid, path, sizeof path);
    const struct gm_limits *l = gm_limits_map(path, err, sizeof err);
    CHECK(l != NULL);
    CHECK_EQ_U64(gm_limits_for(l, c.res[0].uuid), 4ULL << 30);
    CHECK_EQ_U64(gm_limits_for(l, "gpu-00000001-1111-2222-3333-444444444444"), 0);
    CHECK_STR(l->pod, "pod-1");
    gm_limits_unmap(l);
    /* A retry: the same answer, nothing recreated. */
    CHECK_EQ_INT(dra_prepare(&o, &c, id2, sizeof id2, err, sizeof err), 0);
    CHECK_STR(id2, id);
    /* The CDI spec mounts the group as gpumem-runtime does. */
    dra_cdi_path(&o, c.uid, path, sizeof path);
    json_t *spec = json_load_file(path, 0, NULL);
    CHECK(spec != NULL);
    CHECK_STR(json_string_value(json_object_get(spec, "kind")), "gpumem.io/claim");
    json_t *edits = json_object_get(json_array_get(json_object_get(spec, "devices"), 0), "containerEdits");
    CHECK_EQ_INT(json_array_size(json_object_get(edits, "mounts")), 5);
    CHECK_STR(json_string_value(json_object_get(json_array_get(json_object_get(edits, "mounts"), 4), "containerPath")),
              "/etc/ld.so.preload");
    CHECK_STR(json_string_value(json_array_get(json_object_get(edits, "env"), 0)),
              "NVIDIA_VISIBLE_DEVICES=gpu-00000000-1111-2222-3333-444444444444");
    json_decref(spec);
    /* A restarted driver knows the claim from its checkpoint. */
    struct dra_claim back;
    CHECK_EQ_INT(dra_checkpoint_read(&o, c.uid, &back, err, sizeof err), 1);
    CHECK_EQ_U64(back.res[0].memory, 4ULL << 30);
    CHECK_EQ_INT(dra_unprepare(&o, c.uid, err, sizeof err), 0);
    dra_group_dir(&o, c.uid, path, sizeof path);
    CHECK(!exists(path));
    dra_cdi_path(&o, c.uid, path, sizeof path);
    CHECK(!exists(path));
    CHECK_EQ_INT(dra_checkpoint_read(&o, c.uid, &back, err, sizeof err), 0);
    CHECK_EQ_INT(dra_unprepare(&o, c.uid, err, sizeof err), 0);
    CHECK(dra_unprepare(&o, "../etc", err, sizeof err) < 0);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    CHECK_EQ_INT(system(cmd), 0);
}

TEST(unprepare_waits_for_last_process)
{
    char root[] = "/tmp/dra-unit.XXXXXX", dir[4400], id[400], err[DRA_ERRLEN];
    CHECK(mkdtemp(root) != NULL);
    struct dra_options o = opts(root);
    struct dra_claim c;
    CHECK_EQ_INT(parse("[{\"request\":\"m\",\"driver\":\"gpumem.io\",\"pool\":\"node-a\",\"device\":\"gpu-0\","
                       "\"consumedCapacity\":{\"memory\":\"2Gi\"}}]",
                       &c, err, sizeof err),
                 0);
    CHECK_EQ_INT(dra_prepare(&o, &c, id, sizeof id, err, sizeof err), 0);
    dra_group_dir(&o, c.uid, dir, sizeof dir);
    struct gm_usage *u = gm_usage_map(dir, err, sizeof err);
    CHECK(u != NULL);
    struct gm_proc_slot *s = gm_slot_claim(u, getpid(), gm_proc_start_time(getpid()), "unit");
    CHECK(s != NULL);
    /* A process of the pod still holds the group: it stays, marked so
     * that the last one out removes it. */
    CHECK_EQ_INT(dra_unprepare(&o, c.uid, err, sizeof err), 0);
    CHECK(exists(dir));
    CHECK_EQ_INT(gm_group_collect(dir, u, s, 0), 1);
    CHECK(!exists(dir));
    gm_usage_unmap(u);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    CHECK_EQ_INT(system(cmd), 0);
}

int main(void)
{
    RUN(quantity_forms);
    RUN(quantity_errors_quote_input);
    RUN(quantity_format);
    RUN(semver_from_nvml);
    RUN(slice_spec);
    RUN(claim_good);
    RUN(claim_bad);
    RUN(claim_uid_must_match);
    RUN(two_requests_one_gpu_add_up);
    RUN(prepare_unprepare_idempotent);
    RUN(unprepare_waits_for_last_process);
    return test_summary();
}

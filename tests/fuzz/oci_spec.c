/* Fuzz target: gpumem-runtime's handling of a container's config.json, the
 * way `create` does it (src/runtime/main.c prepare()): rt_bundle_load, the
 * limit the container asks for (gm_limit_from_env over process.env with
 * rt_env_get, device indexes through NVIDIA_VISIBLE_DEVICES with
 * rt_index_uuid), gm_limits_from_spec, rt_identity (annotations), the
 * Kubernetes identity (rt_k8s_read, rt_k8s_group_name) and the rewrite of
 * mounts into a renamed group (rt_k8s_move_mounts), rt_rootfs,
 * rt_write_preload over the image's /etc/ld.so.preload, rt_add_mounts and
 * rt_bundle_save. Only the group's creation is left out (files, fsync; no
 * input of the container's). Everything happens in a private directory
 * under $TMPDIR: the bundle (its rootfs is always the bundle's own
 * "rootfs", whatever root.path says, so no file outside is read) and the
 * group directory.
 *
 * Input: config.json, then optionally a NUL byte and the image's
 * etc/ld.so.preload. Checks: what is saved loads back equal to what was
 * edited; the five mounts gpumem adds are the last ones, in order; the
 * limits hold at most GM_MAX_DEVICES devices; the preload list starts with
 * the shim and names it once; a pod's group name is a valid group name;
 * after a move no mount is left under the old directory and as many are
 * under the new one.
 * Extra sources: FUZZ_EXTRA_oci_spec in the Makefile.
 *
 * libFuzzer options: -max_len=16384 */
#include "../../src/runtime/runtime.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECK(c) ((c) ? (void)0 : (fprintf(stderr, "oci_spec fuzz: %s:%d: %s\n", __FILE__, __LINE__, #c), abort()))

#define ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static char top[4096], bundle[4200], rootfs[4300], group[4200], config[4300], preload[4400], saved_preload[4400];
static struct rt_config conf;

static void rm(const char *p) { unlink(p); }

static void cleanup(void)
{
    rm(config);
    rm(preload);
    rm(saved_preload);
    char p[4400];
    snprintf(p, sizeof p, "%s/etc", rootfs);
    rmdir(p);
    rmdir(rootfs);
    rmdir(bundle);
    rmdir(group);
    rmdir(top);
}

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(top, sizeof top, "%s/gpumem-fuzz-oci.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    CHECK(mkdtemp(top) != NULL);
    snprintf(bundle, sizeof bundle, "%s/bundle", top);
    snprintf(rootfs, sizeof rootfs, "%s/rootfs", bundle);
    snprintf(group, sizeof group, "%s/group", top);
    snprintf(config, sizeof config, "%s/config.json", bundle);
    snprintf(preload, sizeof preload, "%s/etc/ld.so.preload", rootfs);
    snprintf(saved_preload, sizeof saved_preload, "%s/ld.so.preload", group);
    char etc[4400];
    snprintf(etc, sizeof etc, "%s/etc", rootfs);
    CHECK(mkdir(bundle, 0755) == 0 && mkdir(rootfs, 0755) == 0 && mkdir(etc, 0755) == 0 && mkdir(group, 0755) == 0);
    snprintf(conf.runtime, sizeof conf.runtime, "/bin/true");
    snprintf(conf.shim, sizeof conf.shim, "/usr/local/lib/libgpumem.so");
    snprintf(conf.docker_root, sizeof conf.docker_root, "%s/docker", top); /* none: no names from there */
    atexit(cleanup);
}

static void write_file(const char *path, const uint8_t *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && write(fd, data, len) == (ssize_t)len);
    close(fd);
}

static void check_mounts(json_t *cfg)
{
    static const char *dest[] = {RT_SELF_DEST, RT_SELF_DEST "/usage", RT_SELF_DEST "/limits", RT_SHIM_DEST,
                                 RT_PRELOAD_DEST};
    json_t *m = json_object_get(cfg, "mounts");
    CHECK(json_is_array(m) && json_array_size(m) >= 5);
    size_t base = json_array_size(m) - 5;
    for (size_t i = 0; i < 5; i++) {
        const char *d = json_string_value(json_object_get(json_array_get(m, base + i), "destination"));
        CHECK(d && strcmp(d, dest[i]) == 0);
    }
}

static void check_preload(void)
{
    char buf[70000];
    int fd = open(saved_preload, O_RDONLY);
    CHECK(fd >= 0);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    CHECK(n > 0);
    buf[n] = '\0';
    const char *first = RT_SHIM_DEST "\n";
    CHECK(strncmp(buf, first, strlen(first)) == 0);
    CHECK(!strstr(buf + strlen(first), "\n" RT_SHIM_DEST "\n") &&
          strncmp(buf + strlen(first), first, strlen(first)) != 0);
}

/* Mounts whose source is dir or under it. */
static size_t mounts_under(json_t *cfg, const char *dir)
{
    json_t *m;
    size_t i, n = 0, dl = strlen(dir);
    json_array_foreach(json_object_get(cfg, "mounts"), i, m) {
        const char *src = json_string_value(json_object_get(m, "source"));
        n += src && strncmp(src, dir, dl) == 0 && (src[dl] == '\0' || src[dl] == '/');
    }
    return n;
}

#define FROM "/run/gpumem/alloc-1"
#define TO   "/run/gpumem/ns_pod_container"

static void check_k8s(json_t *cfg)
{
    struct rt_k8s k;
    char name[GM_NAME_LEN];
    rt_k8s_read(cfg, &k);
    if (rt_k8s_group_name(&k, name, sizeof name) == 0)
        CHECK(gm_valid_group_name(name) == 0);
    else
        CHECK(!k.pod || !k.ns || !k.container);
    size_t from = mounts_under(cfg, FROM), to = mounts_under(cfg, TO);
    int moved = rt_k8s_move_mounts(cfg, FROM, TO);
    CHECK(moved == (int)from);
    CHECK(mounts_under(cfg, FROM) == 0 && mounts_under(cfg, TO) == to + from);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!*top)
        setup();
    const uint8_t *nul = memchr(data, '\0', size);
    size_t json_len = nul ? (size_t)(nul - data) : size;
    write_file(config, data, json_len);
    if (nul)
        write_file(preload, nul + 1, size - json_len - 1);
    else
        unlink(preload);

    char err[1024];
    json_t *cfg = rt_bundle_load(bundle, err, sizeof err);
    if (!cfg) {
        CHECK(err[0] != '\0');
        return 0;
    }
    CHECK(json_is_object(cfg));
    check_k8s(cfg);
    struct gm_limit_spec spec;
    int rc = gm_limit_from_env(rt_env_get, cfg, &spec, err, sizeof err);
    if (rc <= 0) { /* nothing asked for, or refused: config.json untouched */
        json_decref(cfg);
        return 0;
    }
    struct gm_limits l;
    gm_limits_init(&l);
    if (gm_limits_from_spec(&l, &spec, rt_index_uuid, cfg, err, sizeof err) < 0) {
        json_decref(cfg);
        return 0;
    }
    CHECK(l.ndev <= GM_MAX_DEVICES);
    rt_identity(cfg, ID, &conf, &l);
    CHECK(memchr(l.name, '\0', sizeof l.name) && l.name[0]);
    CHECK(strncmp(l.container_id, ID, sizeof l.container_id) == 0);
    CHECK(memchr(l.pod, '\0', sizeof l.pod) && memchr(l.pod_namespace, '\0', sizeof l.pod_namespace) &&
          memchr(l.container_name, '\0', sizeof l.container_name));

    char rf[4096];
    rt_rootfs(bundle, cfg, rf, sizeof rf);
    if (rt_write_preload(rootfs, group, err, sizeof err) == 0)
        check_preload();
    if (rt_add_mounts(cfg, group, conf.shim, err, sizeof err) == 0) {
        check_mounts(cfg);
        CHECK(rt_bundle_save(bundle, cfg, err, sizeof err) == 0);
        json_error_t je;
        json_t *back = json_load_file(config, JSON_REJECT_DUPLICATES, &je);
        if (!back) {
            fprintf(stderr, "oci_spec fuzz: the saved config.json does not load: line %d: %s\n", je.line, je.text);
            abort();
        }
        CHECK(json_equal(cfg, back));
        json_decref(back);
    } else {
        CHECK(!json_is_array(json_object_get(cfg, "mounts")));
    }
    json_decref(cfg);
    return 0;
}

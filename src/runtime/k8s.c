/* Kubernetes: who a container is (its pod, namespace and container name,
 * from the annotations the CRI runtime writes into config.json), the group
 * name derived from that, and the adoption of a group the device plugin
 * created in Allocate (annotation gpumem.io/group). */
#include "runtime.h"
#include "gpumem/hostutil.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A path in the state directory: room for its longest name and a file. */
#define PBUF (PATH_MAX + 512)

static const char *annotation(json_t *cfg, const char *key)
{
    const char *v = json_string_value(json_object_get(json_object_get(cfg, "annotations"), key));
    return v && *v ? v : NULL;
}

static const char *first(const char *a, const char *b) { return a ? a : b; }

/* containerd's CRI plugin writes io.kubernetes.cri.*; CRI-O writes the
 * kubelet's own labels (io.kubernetes.pod.*, io.kubernetes.container.name)
 * as annotations, and its container type as io.kubernetes.cri-o.ContainerType. */
void rt_k8s_read(json_t *cfg, struct rt_k8s *k)
{
    k->pod = first(annotation(cfg, "io.kubernetes.cri.sandbox-name"), annotation(cfg, "io.kubernetes.pod.name"));
    k->ns = first(annotation(cfg, "io.kubernetes.cri.sandbox-namespace"),
                  annotation(cfg, "io.kubernetes.pod.namespace"));
    k->container = first(annotation(cfg, "io.kubernetes.cri.container-name"),
                         annotation(cfg, "io.kubernetes.container.name"));
    k->type = first(annotation(cfg, "io.kubernetes.cri.container-type"),
                    annotation(cfg, "io.kubernetes.cri-o.ContainerType"));
    k->group = annotation(cfg, RT_GROUP_ANNOTATION);
}

int rt_k8s_is_sandbox(const struct rt_k8s *k) { return k->type && strcmp(k->type, "sandbox") == 0; }

/* FNV-1a: a short, stable tag of the whole identity for names that had to
 * be cut or changed. */
static uint32_t fnv1a(const char *parts[], size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        for (const char *p = parts[i]; *p; p++)
            h = (h ^ (unsigned char)*p) * 16777619u;
        h = (h ^ '/') * 16777619u;
    }
    return h;
}

static int name_char(char c, int at_start)
{
    int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    return alnum || (!at_start && (c == '.' || c == '-'));
}

/* <namespace>_<pod>_<container>. Kubernetes names are DNS labels and
 * subdomains ([a-z0-9.-]), so '_' separates them unambiguously and the
 * result is a valid group name as it is, unless it is longer than a group
 * name may be (63) or an annotation held other characters: then it is cut
 * to 54 characters (each other character made '-') and "_" and 8 hex
 * digits of a hash of the whole identity are appended, so that two pods
 * whose names differ only past the cut still get two groups. */
int rt_k8s_group_name(const struct rt_k8s *k, char *buf, size_t len)
{
    if (!k->pod || !k->ns || !k->container || len < GM_NAME_LEN)
        return -1;
    const char *parts[] = {k->ns, k->pod, k->container};
    char full[3 * 256 + 3];
    size_t n = 0;
    int changed = 0;
    for (size_t i = 0; i < 3; i++) {
        for (const char *p = parts[i]; *p && n + 2 < sizeof full; p++) {
            int ok = name_char(*p, n == 0);
            char c = ok ? *p : n == 0 ? 'x' : '-';
            full[n++] = c;
            changed |= !ok;
        }
        if (i < 2 && n + 1 < sizeof full)
            full[n++] = '_';
    }
    full[n] = '\0';
    if (!changed && n < GM_NAME_LEN) {
        snprintf(buf, len, "%s", full);
        return 0;
    }
    snprintf(buf, len, "%.54s_%08x", full, (unsigned)(fnv1a(parts, 3) & 0xffffffffu));
    return 0;
}

static int group_exists(const char *state, const char *name)
{
    char p[PBUF];
    struct stat st;
    snprintf(p, sizeof p, "%.4000s/%.255s", state, name);
    return lstat(p, &st) == 0;
}

/* A group of that name exists already (the same pod's previous container,
 * restarted before its delete reached us): this one is told apart by the
 * first 8 characters of its container id. */
int rt_k8s_unique_name(const char *state, const char *base, const char *id, char *buf, size_t len)
{
    snprintf(buf, len, "%s", base);
    if (!group_exists(state, buf))
        return 0;
    char tag[9];
    size_t i = 0;
    for (; i < 8 && id[i]; i++)
        tag[i] = name_char(id[i], 0) ? id[i] : '-';
    tag[i] = '\0';
    snprintf(buf, len, "%.54s_%s", base, tag);
    return group_exists(state, buf) ? -1 : 0;
}

/* Mounts whose source is `from` or under it, pointed at `to` instead. */
int rt_k8s_move_mounts(json_t *cfg, const char *from, const char *to)
{
    json_t *mounts = json_object_get(cfg, "mounts"), *m;
    size_t i, fl = strlen(from);
    int moved = 0;
    json_array_foreach(mounts, i, m) {
        const char *src = json_string_value(json_object_get(m, "source"));
        if (!src || strncmp(src, from, fl) != 0 || (src[fl] != '\0' && src[fl] != '/'))
            continue;
        char buf[PATH_MAX + 64];
        int n = snprintf(buf, sizeof buf, "%s%s", to, src + fl);
        if (n < 0 || (size_t)n >= sizeof buf || json_object_set_new(m, "source", json_string(buf)) < 0)
            return -1;
        moved++;
    }
    return moved;
}

/* The group the device plugin named `origin`, after an earlier container
 * of the same allocation renamed it: the one whose RT_ORIGIN_FILE says so.
 * A restarted container gets the kubelet's cached Allocate response again,
 * with the plugin's name in it. */
static int find_by_origin(const char *state, const char *origin, char *name, size_t len)
{
    DIR *d = opendir(state);
    if (!d)
        return -1;
    struct dirent *e;
    int found = -1;
    while (found < 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.' || gm_valid_group_name(e->d_name) < 0)
            continue;
        char dir[PBUF], was[GM_NAME_LEN];
        snprintf(dir, sizeof dir, "%.4000s/%.255s", state, e->d_name);
        rt_k8s_allocation_name(dir, "", was, sizeof was);
        if (strcmp(was, origin) == 0) {
            snprintf(name, len, "%.*s", GM_NAME_LEN - 1, e->d_name);
            found = 0;
        }
    }
    closedir(d);
    return found;
}

void rt_k8s_allocation_name(const char *dir, const char *name, char *buf, size_t len)
{
    char p[PBUF], line[GM_NAME_LEN + 2] = "";
    snprintf(buf, len, "%s", name);
    snprintf(p, sizeof p, "%.4000s/" RT_ORIGIN_FILE, dir);
    FILE *f = fopen(p, "re");
    if (!f)
        return;
    if (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (gm_valid_group_name(line) == 0)
            snprintf(buf, len, "%s", line);
    }
    fclose(f);
}

static int write_origin(const char *dir, const char *origin, char *err, size_t errlen)
{
    char p[PBUF], text[GM_NAME_LEN + 2];
    snprintf(p, sizeof p, "%.4000s/" RT_ORIGIN_FILE, dir);
    snprintf(text, sizeof text, "%s\n", origin);
    return rt_replace_file(p, text, err, errlen);
}

/* The plugin's group, renamed after the pod: rename(2) within the state
 * directory is atomic, and refuses a target that exists and is not empty,
 * so two containers can never end up in one directory. */
static int rename_group(const char *state, const char *from, const char *base, const char *id, char *to,
                        size_t tolen, char *err, size_t errlen)
{
    char src[PBUF], dst[PBUF];
    snprintf(src, sizeof src, "%.4000s/%.255s", state, from);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (rt_k8s_unique_name(state, base, id, to, tolen) < 0)
            break;
        snprintf(dst, sizeof dst, "%.4000s/%.255s", state, to);
        if (rename(src, dst) == 0)
            return 0;
        if (errno != EEXIST && errno != ENOTEMPTY) {
            snprintf(err, errlen, "renaming group %s to %s: %s", src, dst, strerror(errno));
            return -1;
        }
    }
    snprintf(err, errlen, "group %s: groups %s and %s_<id> exist already", from, base, base);
    return -1;
}

int rt_k8s_adopt(json_t *cfg, const struct rt_k8s *k, const char *id, char *dir, size_t dirlen, char *err,
                 size_t errlen)
{
    char state[PATH_MAX], name[GM_NAME_LEN], base[GM_NAME_LEN], from[PBUF];
    gm_state_dir(state, sizeof state);
    if (gm_valid_group_name(k->group) < 0) {
        snprintf(err, errlen, RT_GROUP_ANNOTATION " \"%s\": not a group name", k->group);
        return -1;
    }
    snprintf(from, sizeof from, "%.4000s/%.255s", state, k->group);
    snprintf(name, sizeof name, "%s", k->group);
    int renamed = 0;
    if (!group_exists(state, k->group)) {
        if (find_by_origin(state, k->group, name, sizeof name) < 0) {
            snprintf(err, errlen,
                     RT_GROUP_ANNOTATION " \"%s\": no such group in %s (the device plugin creates it in "
                                         "Allocate; is gpumem-k8s running with the same state directory?)",
                     k->group, state);
            return -1;
        }
    } else if (rt_k8s_group_name(k, base, sizeof base) == 0 && strcmp(base, k->group) != 0) {
        if (write_origin(from, k->group, err, errlen) < 0 ||
            rename_group(state, k->group, base, id, name, sizeof name, err, errlen) < 0)
            return -1;
        renamed = 1;
    }
    snprintf(dir, dirlen, "%.4000s/%s", state, name);
    const struct gm_limits *m = gm_limits_map(dir, err, errlen);
    if (!m)
        return -1;
    struct gm_limits l;
    int rc = gm_limits_read(m, &l);
    gm_limits_unmap(m);
    if (rc < 0) {
        snprintf(err, errlen, "%s/limits: a writer died mid-update", dir);
        return -1;
    }
    snprintf(l.container_id, sizeof l.container_id, "%s", id);
    if (k->pod)
        snprintf(l.pod, sizeof l.pod, "%s", k->pod);
    if (k->ns)
        snprintf(l.pod_namespace, sizeof l.pod_namespace, "%s", k->ns);
    if (k->container)
        snprintf(l.container_name, sizeof l.container_name, "%s", k->container);
    if (renamed || !*l.name)
        snprintf(l.name, sizeof l.name, "%s", name);
    if (gm_limits_update(dir, &l, err, errlen) < 0)
        return -1;
    if (strcmp(name, k->group) != 0 && rt_k8s_move_mounts(cfg, from, dir) < 0) {
        snprintf(err, errlen, "config.json: cannot rewrite the mounts of group %s (out of memory?)", k->group);
        return -1;
    }
    return 0;
}

/* Delete: a pod's container has its group under the pod's name, not the
 * id's; the one whose <group>/container record and limits both name this
 * container id is its own. Groups the device plugin created have no record
 * (their lifetime is the allocation's, not one container's). */
int rt_find_container_group(const char *id, char *dir, size_t dirlen)
{
    char state[PATH_MAX];
    gm_state_dir(state, sizeof state);
    DIR *d = opendir(state);
    if (!d)
        return -1;
    struct dirent *e;
    int found = -1;
    size_t idl = strlen(id);
    while (found < 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.' || gm_valid_group_name(e->d_name) < 0)
            continue;
        char p[PBUF], line[256];
        snprintf(p, sizeof p, "%.4000s/%.255s/container", state, e->d_name);
        FILE *f = fopen(p, "re");
        if (!f)
            continue;
        if (fgets(line, sizeof line, f) && strncmp(line, "id=", 3) == 0 && strncmp(line + 3, id, idl) == 0 &&
            line[3 + idl] == '\n') {
            snprintf(dir, dirlen, "%.4000s/%.*s", state, GM_NAME_LEN - 1, e->d_name);
            found = 0;
        }
        fclose(f);
    }
    closedir(d);
    return found;
}

/* The lifetime of a group Allocate made (docs/k8s-plugin.md, "Lifetime").
 *
 * Allocate is told nothing about the pod, and the kubelet calls it once per
 * container: the container's restarts reuse the same answer (its mounts
 * name the group's directory), so the group must outlive the container's
 * processes for as long as the kubelet keeps that allocation. The kubelet
 * records each allocation in its device manager checkpoint
 * (kubelet_internal_checkpoint, JSON: Data.PodDeviceEntries[], each with
 * the AllocateResponse it got, protobuf, base64) and drops the entry when
 * the pod is gone. So a group with our marker is removed when
 *   - no checkpoint entry carries its gpumem.io/group annotation,
 *   - it was allocated more than --grace seconds ago (the kubelet writes
 *     the checkpoint right after Allocate; the grace covers that and a
 *     kubelet that restarts in between), and
 *   - no process of it is alive (gm_group_collect, under the group's mutex).
 * No checkpoint (unreadable, or not JSON) means no evidence: nothing is
 * removed. */
#include "plugin.h"
#include "../runtime/runtime.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Standard base64 (Go's encoding of []byte in JSON), padding required. */
static unsigned char *b64decode(const char *s, size_t *out_len)
{
    size_t n = strlen(s);
    if (n % 4)
        return NULL;
    unsigned char *out = malloc(n / 4 * 3 + 1);
    size_t o = 0;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++) {
            v[k] = s[i + k] == '=' && i + 4 == n && k >= 2 ? -2 : b64val((unsigned char)s[i + k]);
            if (v[k] == -1 || (k == 3 && v[2] == -2 && v[3] != -2)) {
                free(out);
                return NULL;
            }
        }
        out[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
        if (v[2] >= 0)
            out[o++] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
        if (v[3] >= 0)
            out[o++] = (unsigned char)((v[2] & 3) << 6 | v[3]);
    }
    *out_len = o;
    return out;
}

int kp_checkpoint_groups(const char *text, size_t len, char *buf, size_t buflen)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    size_t used = 0;
    if (!root || buflen == 0)
        return -1;
    json_t *entries = json_object_get(json_object_get(root, "Data"), "PodDeviceEntries");
    if (!json_is_array(entries) && !json_is_null(entries)) {
        json_decref(root);
        return -1;
    }
    buf[0] = '\0';
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e)
    {
        const char *resp = json_string_value(json_object_get(e, "AllocResp"));
        size_t n;
        unsigned char *raw = resp ? b64decode(resp, &n) : NULL;
        if (!raw)
            continue;
        V1beta1__ContainerAllocateResponse *r = (V1beta1__ContainerAllocateResponse *)gk_unpack(
            &v1beta1__container_allocate_response__descriptor, raw, n);
        free(raw);
        if (!r)
            continue;
        for (size_t k = 0; k < r->n_annotations; k++) {
            if (strcmp(r->annotations[k]->key, KP_ANNOT_GROUP) != 0)
                continue;
            size_t l = strlen(r->annotations[k]->value);
            if (used + l + 2 <= buflen) {
                memcpy(buf + used, r->annotations[k]->value, l + 1);
                used += l + 1;
                buf[used] = '\0';
            }
        }
        protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    json_decref(root);
    return 0;
}

static int listed(const char *list, const char *name)
{
    for (const char *p = list; *p; p += strlen(p) + 1)
        if (strcmp(p, name) == 0)
            return 1;
    return 0;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = cap < (64u << 20) ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    *len = n;
    return buf;
}

static long marker_time(const char *dir)
{
    char path[PATH_MAX + 400], line[256];
    long t = -1;
    snprintf(path, sizeof path, "%s/" KP_MARKER, dir);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "allocated=", 10) == 0)
            t = strtol(line + 10, NULL, 10);
    fclose(f);
    return t;
}

int kp_collect(const struct kp_options *o, long now)
{
    static int warned;
    size_t len;
    char *text = read_all(o->checkpoint, &len);
    char *names = malloc(1 << 20);
    int removed = 0;
    if (!names || !text || kp_checkpoint_groups(text, len, names, 1 << 20) < 0) {
        if (!warned++)
            fprintf(stderr, "gpumem-k8s: the kubelet's checkpoint %s is %s: no group is collected until it is\n",
                    o->checkpoint, text ? "not JSON" : "unreadable");
        free(text);
        free(names);
        return 0;
    }
    warned = 0;
    char state[PATH_MAX], dir[PATH_MAX + 256];
    gm_state_dir(state, sizeof state);
    DIR *d = opendir(state);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.' || gm_valid_group_name(de->d_name) != 0)
            continue;
        snprintf(dir, sizeof dir, "%s/%s", state, de->d_name);
        /* Ours by the marker, whatever the name: gpumem-runtime renames the
         * group after the pod and keeps the name the checkpoint has in it. */
        long t = marker_time(dir);
        char allocated[GM_NAME_LEN];
        if (t < 0)
            continue;
        rt_k8s_allocation_name(dir, de->d_name, allocated, sizeof allocated);
        if (listed(names, allocated) || now - t < o->grace_s)
            continue;
        char err[256];
        struct gm_usage *u = gm_usage_map(dir, err, sizeof err);
        if (!u)
            continue;
        if (gm_group_collect(dir, u, NULL, GM_COLLECT_ANY) == 1) {
            fprintf(stderr, "gpumem-k8s: removed group %s: no allocation of the kubelet names it and no process uses it\n",
                    de->d_name);
            removed++;
        }
        gm_usage_unmap(u);
    }
    if (d)
        closedir(d);
    free(text);
    free(names);
    return removed;
}

/* Per-claim checkpoints: <state_dir>/claims/<uid>.json holds the claim as
 * it was prepared (results with GPU UUIDs and bytes), written before the
 * group and the CDI spec exist. A driver restarted between Prepare and
 * Unprepare, or one killed in the middle of Prepare, finds there what it
 * must undo; the API server is not asked again (the claim may be gone). */
#include "dra.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpumem/hostutil.h"

int dra_valid_uid(const char *uid)
{
    size_t n = 0;
    for (; uid[n]; n++)
        if (!((uid[n] >= '0' && uid[n] <= '9') || (uid[n] >= 'a' && uid[n] <= 'z') ||
              (uid[n] >= 'A' && uid[n] <= 'Z') || uid[n] == '-'))
            return -1;
    return n >= 1 && n <= 63 ? 0 : -1;
}

int dra_write_json(const char *path, json_t *j, char *err, size_t errlen)
{
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (!s) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    size_t n = strlen(s);
    int ok = fd >= 0 && write(fd, s, n) == (ssize_t)n && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    int e = errno;
    if (fd >= 0 && close(fd) < 0 && ok) {
        ok = 0;
        e = errno;
    }
    free(s);
    if (!ok || rename(tmp, path) < 0) {
        if (ok)
            e = errno;
        snprintf(err, errlen, "%s: %s", ok ? path : tmp, strerror(e));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void checkpoint_path(const struct dra_options *o, const char *uid, char *buf, size_t len)
{
    snprintf(buf, len, "%.4000s/claims/%.63s.json", o->state_dir, uid);
}

int dra_checkpoint_write(const struct dra_options *o, const struct dra_claim *c, char *err, size_t errlen)
{
    char dir[4200], path[4200];
    snprintf(dir, sizeof dir, "%.4000s/claims", o->state_dir);
    if (gm_mkdir_p(dir) < 0) {
        snprintf(err, errlen, "checkpoint directory %s: %s", dir, strerror(errno));
        return -1;
    }
    json_t *res = json_array();
    for (int i = 0; i < c->n; i++) {
        const struct dra_result *r = &c->res[i];
        json_array_append_new(res, json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "request", r->request, "pool", r->pool,
                                             "device", r->device, "shareID", r->share_id, "uuid", r->uuid, "memory",
                                             (json_int_t)r->memory));
    }
    json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:s, s:o}", "version", 1, "uid", c->uid, "namespace", c->namespace_,
                          "name", c->name, "pod", c->pod, "results", res);
    checkpoint_path(o, c->uid, path, sizeof path);
    int rc = j ? dra_write_json(path, j, err, errlen) : -1;
    json_decref(j);
    return rc;
}

static int field(char *dst, size_t len, json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    if (!s || strlen(s) >= len)
        return -1;
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

int dra_checkpoint_read(const struct dra_options *o, const char *uid, struct dra_claim *c, char *err, size_t errlen)
{
    char path[4200];
    json_error_t je;
    memset(c, 0, sizeof *c);
    checkpoint_path(o, uid, path, sizeof path);
    if (access(path, F_OK) != 0 && errno == ENOENT)
        return 0;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) {
        snprintf(err, errlen, "checkpoint %s: %s", path, je.text);
        return -1;
    }
    json_t *res = json_object_get(j, "results");
    int bad = json_integer_value(json_object_get(j, "version")) != 1 || field(c->uid, sizeof c->uid, j, "uid") ||
              strcmp(c->uid, uid) != 0 || field(c->namespace_, sizeof c->namespace_, j, "namespace") ||
              field(c->name, sizeof c->name, j, "name") || field(c->pod, sizeof c->pod, j, "pod") ||
              !json_is_array(res) || json_array_size(res) > DRA_MAX_GPUS;
    size_t i;
    json_t *r;
    json_array_foreach(res, i, r) {
        if (bad)
            break;
        struct dra_result *x = &c->res[c->n++];
        json_t *mem = json_object_get(r, "memory");
        bad = field(x->request, sizeof x->request, r, "request") || field(x->pool, sizeof x->pool, r, "pool") ||
              field(x->device, sizeof x->device, r, "device") ||
              field(x->share_id, sizeof x->share_id, r, "shareID") || field(x->uuid, sizeof x->uuid, r, "uuid") ||
              !json_is_integer(mem) || json_integer_value(mem) <= 0;
        if (!bad)
            x->memory = (uint64_t)json_integer_value(mem);
    }
    json_decref(j);
    if (bad) {
        snprintf(err, errlen, "checkpoint %s: not a gpumem-dra checkpoint of claim %s (version 1)", path, uid);
        return -1;
    }
    return 1;
}

int dra_checkpoint_remove(const struct dra_options *o, const char *uid)
{
    char path[4200];
    checkpoint_path(o, uid, path, sizeof path);
    return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

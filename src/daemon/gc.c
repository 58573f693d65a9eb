/* Groups of `gpumem run` whose processes have all gone, after their
 * `gpumem run` exited or was killed (gm_group_collect), are removed here too.
 *
 * Groups whose container vanished without a `delete` reaching
 * gpumem-runtime (engine crash, a runtime killed mid-delete) would stay
 * forever; the daemon removes them on its interval. The evidence that a
 * container exists is the runtime's: its bundle directory (containerd
 * removes it after delete) and the real runtime's state directory
 * (<root>/<id>, e.g. /run/docker/runtime-runc/moby/<id>), both recorded by
 * gpumem-runtime in <group>/container. That file lives in the group
 * directory, which containers see read-only, so nothing inside can point
 * it elsewhere. */
#include "gc.h"
#include "gpumem/driver_limits.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon.h"

struct record {
    char id[128], bundle[4096], state[4200];
};

static int read_record(const char *dir, struct record *r)
{
    char path[4200], line[4400];
    memset(r, 0, sizeof *r);
    snprintf(path, sizeof path, "%s/container", dir);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "id=", 3) == 0)
            snprintf(r->id, sizeof r->id, "%.127s", line + 3);
        else if (strncmp(line, "bundle=", 7) == 0)
            snprintf(r->bundle, sizeof r->bundle, "%.4095s", line + 7);
        else if (strncmp(line, "state=", 6) == 0)
            snprintf(r->state, sizeof r->state, "%.4199s", line + 6);
    }
    fclose(f);
    /* Both must be absolute: a relative path would be looked up from the
     * daemon's directory and found missing. */
    return r->id[0] && r->bundle[0] == '/' && r->state[0] == '/' ? 0 : -1;
}

static int exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

int dm_gc_group(const char *name, const char *dir, const struct gm_limits *l, struct gm_usage *u)
{
    struct record r;
    if (!l->container_id[0] || read_record(dir, &r) < 0)
        return 0;
    if (strncmp(r.id, l->container_id, sizeof l->container_id) != 0)
        return 0;
    if (exists(r.bundle) || exists(r.state))
        return 0;
    /* The container is gone: so is any driver limit set for its cgroup. */
    gm_driver_limits_clear(dir);
    /* Under the mutex no slot can be claimed meanwhile; a process that
     * still maps the region but holds no slot holds no GPU memory, and one
     * that tries to claim one later finds the group marked removed. */
    if (gm_group_collect(dir, u, NULL, GM_COLLECT_ANY) != 1)
        return 0;
    struct gbuf f = {0};
    gbuf_puts(&f, ",\"group\":");
    gbuf_json(&f, name);
    gbuf_puts(&f, ",\"container_id\":");
    gbuf_json(&f, r.id);
    gbuf_puts(&f, ",\"reason\":\"container gone\"");
    dm_log("info", "group_removed", f.p);
    gbuf_free(&f);
    return 1;
}

int dm_gc_run_group(const char *name, const char *dir, struct gm_usage *u)
{
    pid_t pid;
    uint64_t start;
    /* A first look without the mutex (the caller reclaimed just before):
     * a group in use is not even asked for its marker. */
    if (!atomic_load(&u->removed) && gm_usage_live_slots(u) != 0)
        return 0;
    if (!gm_run_marker_read(dir, &pid, &start) || gm_group_collect(dir, u, NULL, 0) != 1)
        return 0;
    struct gbuf f = {0};
    gbuf_puts(&f, ",\"group\":");
    gbuf_json(&f, name);
    gbuf_printf(&f, ",\"creator_pid\":%d,\"reason\":\"run group empty\"", (int)pid);
    dm_log("info", "group_removed", f.p);
    gbuf_free(&f);
    return 1;
}

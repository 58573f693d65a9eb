/* What the daemon knows that a viewer cannot see in the groups' files: per
 * group and device, whether leak detection suspects it, and a short history
 * of its usage and refusals. The daemon writes it every interval to one
 * small text file in the state directory (DM_VIEW_FILE, replaced by rename so
 * a reader never sees half of it); gpumem top and ps read it when it is
 * there and fresh, and do without it otherwise. The history ring is the same
 * code top uses for what it samples itself. */
#include "daemon.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void dm_hist_add(struct dm_hist *h, double t, uint64_t used, uint64_t refusals, double step)
{
    if (h->n && t - h->t_last < step) {
        /* Within the newest sample's step: it keeps the highest usage, so a
         * spike between samples is still seen, and the latest count. */
        size_t k = h->n - 1;
        if (used > h->used[k])
            h->used[k] = used;
        h->refusals[k] = refusals;
        return;
    }
    if (h->n == DM_HIST) {
        memmove(h->used, h->used + 1, (DM_HIST - 1) * sizeof h->used[0]);
        memmove(h->refusals, h->refusals + 1, (DM_HIST - 1) * sizeof h->refusals[0]);
        h->n--;
    }
    h->used[h->n] = used;
    h->refusals[h->n] = refusals;
    h->n++;
    h->t_last = t;
}

uint64_t dm_hist_recent_refusals(const struct dm_hist *h)
{
    return h->n ? h->refusals[h->n - 1] - (h->refusals[0] <= h->refusals[h->n - 1] ? h->refusals[0] : 0) : 0;
}

struct dm_hist *dm_hist_find(struct dm_hist *a, size_t n, const char *group, const char *uuid)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(a[i].group, group) == 0 && strcmp(a[i].uuid, uuid) == 0)
            return &a[i];
    return NULL;
}

struct dm_hist *dm_hist_track(struct dm_hist **a, size_t *n, const struct dm_snapshot *s, double now, double step)
{
    /* Rows are sorted by group then uuid, and so is the table kept. */
    struct dm_hist *out = s->nrows ? calloc(s->nrows, sizeof *out) : NULL;
    if (s->nrows && !out)
        return *a;
    for (size_t i = 0; i < s->nrows; i++) {
        const struct dm_row *r = &s->rows[i];
        struct dm_hist *old = dm_hist_find(*a, *n, r->group, r->uuid);
        if (old)
            out[i] = *old;
        else {
            snprintf(out[i].group, sizeof out[i].group, "%s", r->group);
            snprintf(out[i].uuid, sizeof out[i].uuid, "%s", r->uuid);
        }
        out[i].leak = r->leak;
        dm_hist_add(&out[i], now, r->used, r->refusals, step);
    }
    free(*a);
    *a = out;
    *n = s->nrows;
    return out;
}

static struct dm_hist *daemon_hist;
static size_t daemon_nhist;

int dm_view_write(const struct dm_snapshot *s, const char *state_dir, double interval, double step, double now)
{
    if (step < interval)
        step = interval;
    dm_hist_track(&daemon_hist, &daemon_nhist, s, now, step);
    char path[PATH_MAX], tmp[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", state_dir, DM_VIEW_FILE);
    snprintf(tmp, sizeof tmp, "%s.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "gpumem-view 1 %d %lld %g %g\n", (int)getpid(), (long long)time(NULL), interval, step);
    for (size_t i = 0; i < daemon_nhist; i++) {
        const struct dm_hist *h = &daemon_hist[i];
        fprintf(f, "%s %s %d %zu", h->group, h->uuid, h->leak, h->n);
        for (size_t k = 0; k < h->n; k++)
            fprintf(f, " %llu %llu", (unsigned long long)h->used[k], (unsigned long long)h->refusals[k]);
        fputc('\n', f);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

void dm_view_remove(const char *state_dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", state_dir, DM_VIEW_FILE);
    unlink(path);
    free(daemon_hist);
    daemon_hist = NULL;
    daemon_nhist = 0;
}

int dm_view_read(const char *state_dir, struct dm_view *v)
{
    char path[PATH_MAX], line[64 + GM_NAME_LEN + GM_UUID_LEN + DM_HIST * 44];
    snprintf(path, sizeof path, "%s/%s", state_dir, DM_VIEW_FILE);
    free(v->h);
    memset(v, 0, sizeof *v);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int pid, ok = 0;
    long long when;
    if (fgets(line, sizeof line, f) &&
        sscanf(line, "gpumem-view 1 %d %lld %lf %lf", &pid, &when, &v->interval, &v->step) == 4 && pid > 0 &&
        v->interval > 0) {
        /* Fresh: written within a few intervals by a daemon still running. */
        double age = difftime(time(NULL), (time_t)when);
        double limit = 3 * v->interval > 10 ? 3 * v->interval : 10;
        ok = age < limit && (kill(pid, 0) == 0 || errno == EPERM);
    }
    size_t cap = 0;
    while (ok && fgets(line, sizeof line, f)) {
        if (v->n == cap) {
            cap = cap ? cap * 2 : 64;
            void *p = realloc(v->h, cap * sizeof *v->h);
            if (!p)
                break;
            v->h = p;
        }
        struct dm_hist *h = &v->h[v->n];
        memset(h, 0, sizeof *h);
        int used = 0;
        size_t n;
        char *p = line;
        if (sscanf(p, "%64s %47s %d %zu%n", h->group, h->uuid, &h->leak, &n, &used) != 4 || n > DM_HIST)
            continue;
        p += used;
        for (size_t k = 0; k < n; k++) {
            unsigned long long u, r;
            if (sscanf(p, " %llu %llu%n", &u, &r, &used) != 2)
                break;
            p += used;
            h->used[h->n] = u;
            h->refusals[h->n] = r;
            h->n++;
        }
        v->n++;
    }
    fclose(f);
    v->ok = ok;
    return ok ? 0 : -1;
}

void dm_view_free(struct dm_view *v)
{
    free(v->h);
    memset(v, 0, sizeof *v);
}

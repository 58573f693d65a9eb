/* Events, one JSON object per line: a group refused allocations (its
 * refusal counter grew), a group's usage crossed 80% of its limit (up or
 * down), a group spilled to host memory for the first time, slots of dead
 * processes were reclaimed, a group was skipped for corrupt files. Each interval's snapshot is compared with the last one. */
#include "daemon.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static FILE *log_out;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void dm_log_open(FILE *f)
{
    log_out = f;
    setvbuf(f, NULL, _IOLBF, 0);
}

void dm_log(const char *level, const char *event, const char *fields)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    pthread_mutex_lock(&log_lock);
    fprintf(log_out ? log_out : stderr, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\",\"event\":\"%s\"%s}\n", when,
            ts.tv_nsec / 1000000, level, event, fields ? fields : "");
    fflush(log_out ? log_out : stderr);
    pthread_mutex_unlock(&log_lock);
}

/* What the last interval saw of one group on one device. */
struct seen {
    char group[GM_NAME_LEN + 1];
    char uuid[GM_UUID_LEN];
    uint64_t refusals;
    int above;
    uint64_t first_spill_ns;
};

static struct seen *prev;
static size_t nprev;
static char (*prev_bad)[GM_NAME_LEN + 1];
static size_t nprev_bad;
static int primed;

static int seen_order(const void *a, const void *b)
{
    const struct seen *x = a, *y = b;
    int c = strcmp(x->group, y->group);
    return c ? c : strcmp(x->uuid, y->uuid);
}

void dm_row_fields(struct gbuf *f, const struct dm_row *r)
{
    gbuf_puts(f, ",\"group\":");
    gbuf_json(f, r->group);
    gbuf_puts(f, ",\"container\":");
    gbuf_json(f, r->container);
    gbuf_puts(f, ",\"pod\":");
    gbuf_json(f, r->pod);
    gbuf_puts(f, ",\"namespace\":");
    gbuf_json(f, r->ns);
    gbuf_puts(f, ",\"uuid\":");
    gbuf_json(f, r->uuid);
    if (r->gpu >= 0)
        gbuf_printf(f, ",\"gpu\":%d", r->gpu);
    else
        gbuf_puts(f, ",\"gpu\":null");
}

static int is_above(const struct dm_row *r)
{
    return r->limit != GM_UNLIMITED && r->limit > 0 &&
           (long double)r->used * 100 >= (long double)r->limit * DM_THRESHOLD_PERCENT;
}

/* A group's first spill to host memory (the shim stamps it once): one
 * event, on the first of its rows seen with the stamp. At start-up a stamp
 * already there is history, not news. */
static int spill_event(const struct dm_row *r, const struct seen *was, int group_done)
{
    uint64_t before = was ? was->first_spill_ns : primed ? 0 : r->first_spill_ns;
    if (!r->first_spill_ns || r->first_spill_ns == before || group_done)
        return 0;
    struct gbuf f = {0};
    dm_row_fields(&f, r);
    gbuf_printf(&f, ",\"swap_used\":%llu,\"swap_limit\":%llu,\"first_spill_unix_ms\":%llu",
                (unsigned long long)r->swap_used, (unsigned long long)r->swap_limit,
                (unsigned long long)(r->first_spill_ns / 1000000));
    if (r->limit != GM_UNLIMITED)
        gbuf_printf(&f, ",\"limit\":%llu", (unsigned long long)r->limit);
    dm_log("warn", "first_spill", f.p);
    gbuf_free(&f);
    return 1;
}

static void row_events(const struct dm_row *r, const struct seen *was, struct seen *now)
{
    struct gbuf f = {0};
    /* A group first seen after start-up refused from zero; at start-up
     * the counters so far are history, not news. */
    uint64_t before = was ? was->refusals : primed ? 0 : r->refusals;
    if (r->refusals > before) {
        dm_row_fields(&f, r);
        gbuf_printf(&f, ",\"count\":%llu,\"new\":%llu,\"last_refused_size\":%llu", (unsigned long long)r->refusals,
                    (unsigned long long)(r->refusals - before), (unsigned long long)r->last_refused);
        if (r->limit != GM_UNLIMITED)
            gbuf_printf(&f, ",\"limit\":%llu", (unsigned long long)r->limit);
        dm_log("warn", "refusal", f.p);
        gbuf_free(&f);
    }
    int above = is_above(r), was_above = was ? was->above : 0;
    if (above != was_above) {
        dm_row_fields(&f, r);
        gbuf_printf(&f, ",\"direction\":\"%s\",\"used\":%llu,\"limit\":%llu,\"percent\":%.1f,\"threshold\":%d",
                    above ? "up" : "down", (unsigned long long)r->used, (unsigned long long)r->limit,
                    r->limit && r->limit != GM_UNLIMITED ? 100.0 * (double)r->used / (double)r->limit : 0.0,
                    DM_THRESHOLD_PERCENT);
        dm_log(above ? "warn" : "info", "threshold", f.p);
        gbuf_free(&f);
    }
    now->refusals = r->refusals;
    now->above = above;
    now->first_spill_ns = r->first_spill_ns;
}

static int was_bad(const char *group)
{
    for (size_t i = 0; i < nprev_bad; i++)
        if (strcmp(prev_bad[i], group) == 0)
            return 1;
    return 0;
}

void dm_events_tick(const struct dm_snapshot *s)
{
    struct gbuf f = {0};
    for (size_t i = 0; i < s->nreclaimed; i++) {
        gbuf_puts(&f, ",\"group\":");
        gbuf_json(&f, s->reclaimed[i].group);
        gbuf_printf(&f, ",\"slots\":%d", s->reclaimed[i].count);
        dm_log("info", "reclaim", f.p);
        gbuf_free(&f);
    }
    /* Skipped groups: warned once, again only after they were readable. */
    for (size_t i = 0; i < s->nbad; i++) {
        if (was_bad(s->bad[i].group))
            continue;
        gbuf_puts(&f, ",\"group\":");
        gbuf_json(&f, s->bad[i].group);
        gbuf_puts(&f, ",\"message\":");
        gbuf_json(&f, s->bad[i].why);
        dm_log("warn", "group_skipped", f.p);
        gbuf_free(&f);
    }
    void *nb = realloc(prev_bad, (s->nbad ? s->nbad : 1) * sizeof *prev_bad);
    if (nb) {
        prev_bad = nb;
        for (size_t i = 0; i < s->nbad; i++)
            memcpy(prev_bad[i], s->bad[i].group, sizeof prev_bad[i]);
        nprev_bad = s->nbad;
    }

    struct seen *next = calloc(s->nrows ? s->nrows : 1, sizeof *next);
    if (!next)
        return;
    const char *spill_group = NULL; /* the group whose first spill this tick reported */
    for (size_t i = 0; i < s->nrows; i++) {
        const struct dm_row *r = &s->rows[i];
        struct seen *now = &next[i];
        memcpy(now->group, r->group, sizeof now->group);
        memcpy(now->uuid, r->uuid, sizeof now->uuid);
        const struct seen *was = prev ? bsearch(now, prev, nprev, sizeof *prev, seen_order) : NULL;
        row_events(r, was, now);
        /* Rows are sorted by group: a group's rows follow each other. */
        if (spill_event(r, was, spill_group && strcmp(spill_group, r->group) == 0))
            spill_group = r->group;
    }
    free(prev);
    prev = next; /* rows are sorted by group, uuid: so is next */
    nprev = s->nrows;
    primed = 1;
}

void dm_events_reset(void)
{
    free(prev);
    free(prev_bad);
    prev = NULL;
    prev_bad = NULL;
    nprev = nprev_bad = 0;
    primed = 0;
}

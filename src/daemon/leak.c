/* Live leak detection: see leak.h. Pure functions over sample arrays and a
 * table of tracked processes; no I/O, no clock, no daemon state. */
#include "leak.h"

#include <stdlib.h>
#include <string.h>

void lk_params_default(struct lk_params *p)
{
    p->window = LK_WINDOW_DEFAULT;
    p->long_window = LK_LONG_WINDOW_DEFAULT;
    p->min_growth = LK_MIN_GROWTH_DEFAULT;
    p->min_growth_pct = LK_MIN_GROWTH_PCT_DEFAULT;
}

/* Usage at time b: the latest sample at or before it (s[from] at least). */
static uint64_t used_at(const struct lk_sample *s, size_t from, size_t n, double b)
{
    size_t k = from;
    while (k + 1 < n && s[k + 1].t <= b)
        k++;
    return s[k].used;
}

int lk_judge_window(const struct lk_sample *s, size_t n, double window, int need_idle, const struct lk_params *p,
                    struct lk_verdict *v)
{
    if (n < 2 || window <= 0)
        return 0;
    double now = s[n - 1].t;
    /* The window's start: the newest sample at least `window` old. */
    size_t i = n;
    for (size_t k = n - 1; k-- > 0;)
        if (s[k].t <= now - window) {
            i = k;
            break;
        }
    if (i == n)
        return 0; /* not watched for a whole window yet */
    for (size_t j = i + 1; j < n; j++)
        if (s[j].dipped || s[j].used < s[j - 1].used)
            return 0; /* usage decreased: not monotonic */
    uint64_t start = s[i].used, end = s[n - 1].used;
    if (end <= start)
        return 0;
    uint64_t growth = end - start;
    if (growth < p->min_growth || (long double)growth * 100 < (long double)start * p->min_growth_pct)
        return 0;
    if (s[n - 1].allocs <= s[i].allocs)
        return 0; /* grew without allocating: not the process's doing */
    if (need_idle && s[n - 1].frees != s[i].frees)
        return 0; /* alloc/free churn: a working process, judged by the long window only */
    /* It keeps growing: more in every quarter of the window. */
    double span = now - s[i].t;
    uint64_t prev = start;
    for (int q = 1; q <= 4; q++) {
        uint64_t u = q == 4 ? end : used_at(s, i, n, s[i].t + span * q / 4);
        if (u <= prev)
            return 0;
        prev = u;
    }
    if (v) {
        v->window = span;
        v->start_used = start;
        v->end_used = end;
        v->rate = span > 0 ? (double)growth / span : 0;
        v->allocs = s[n - 1].allocs - s[i].allocs;
        v->frees = s[n - 1].frees - s[i].frees;
    }
    return 1;
}

enum lk_kind lk_judge(const struct lk_sample *s, size_t n, const struct lk_params *p, struct lk_verdict *v)
{
    struct lk_verdict tmp;
    if (!v)
        v = &tmp;
    memset(v, 0, sizeof *v);
    if (lk_judge_window(s, n, p->window, 1, p, v))
        return v->kind = LK_IDLE_GROWTH;
    if (lk_judge_window(s, n, p->long_window, 0, p, v))
        return v->kind = LK_LONG_GROWTH;
    return LK_NONE;
}

double lk_spacing(const struct lk_params *p)
{
    double a = p->window / 16, b = p->long_window / (LK_RING - 8);
    return a > b ? a : b;
}

void lk_ring_add(struct lk_ring *r, double t, uint64_t used, uint64_t allocs, uint64_t frees, double spacing)
{
    if (r->count >= 2) {
        struct lk_sample *newest = &r->e[(r->head + r->count - 1) % LK_RING];
        const struct lk_sample *before = &r->e[(r->head + r->count - 2) % LK_RING];
        if (t - before->t < spacing) {
            /* Too close: the newest entry absorbs this sample. */
            newest->dipped |= used < newest->used;
            newest->t = t;
            newest->used = used;
            newest->allocs = allocs;
            newest->frees = frees;
            return;
        }
    }
    int dipped = 0;
    if (r->count > 0)
        dipped = used < r->e[(r->head + r->count - 1) % LK_RING].used;
    struct lk_sample *e;
    if (r->count < LK_RING) {
        e = &r->e[(r->head + r->count) % LK_RING];
        r->count++;
    } else {
        e = &r->e[r->head];
        r->head = (r->head + 1) % LK_RING;
    }
    e->t = t;
    e->used = used;
    e->allocs = allocs;
    e->frees = frees;
    e->dipped = dipped;
}

size_t lk_ring_linear(const struct lk_ring *r, struct lk_sample *out)
{
    for (unsigned k = 0; k < r->count; k++)
        out[k] = r->e[(r->head + k) % LK_RING];
    return r->count;
}

/* ---- the table ---------------------------------------------------------- */

static int key_cmp(const char *group, int32_t pid, uint64_t st, int dev, const struct lk_track *t)
{
    int c = strcmp(group, t->group);
    if (c)
        return c;
    if (pid != t->pid)
        return pid < t->pid ? -1 : 1;
    if (st != t->start_time)
        return st < t->start_time ? -1 : 1;
    return dev < t->dev ? -1 : dev > t->dev;
}

static int track_order(const void *a, const void *b)
{
    const struct lk_track *x = *(const struct lk_track *const *)a, *y = *(const struct lk_track *const *)b;
    return key_cmp(x->group, x->pid, x->start_time, x->dev, y);
}

static struct lk_track *find(const struct lk_table *tb, const struct lk_obs *o)
{
    size_t lo = 0, hi = tb->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = key_cmp(o->group, o->pid, o->start_time, o->dev, tb->t[mid]);
        if (c == 0)
            return tb->t[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

void lk_table_update(struct lk_table *tb, const struct lk_obs *obs, size_t nobs, double now,
                     const struct lk_params *p, lk_change_fn change, void *ctx)
{
    double spacing = lk_spacing(p);
    unsigned gen = ++tb->gen;
    for (size_t i = 0; i < nobs; i++) {
        const struct lk_obs *o = &obs[i];
        struct lk_track *t = find(tb, o);
        if (!t) {
            if (tb->n == tb->cap) {
                size_t c = tb->cap ? tb->cap * 2 : 64;
                void *q = realloc(tb->t, c * sizeof *tb->t);
                if (!q) {
                    tb->oom = 1;
                    continue;
                }
                tb->t = q;
                tb->cap = c;
            }
            if (!(t = calloc(1, sizeof *t))) {
                tb->oom = 1;
                continue;
            }
            memcpy(t->group, o->group, sizeof t->group);
            t->group[LK_GROUP_LEN - 1] = '\0';
            t->pid = o->pid;
            t->start_time = o->start_time;
            t->dev = o->dev;
            tb->t[tb->n++] = t; /* after the sorted part: found from the next update on */
        }
        if (t->gen == gen)
            continue; /* the same process twice: keep the first */
        t->gen = gen;
        lk_ring_add(&t->ring, now, o->used, o->allocs, o->frees, spacing);
    }
    /* Evict what was not observed: the process died, or left the group. */
    size_t w = 0;
    for (size_t i = 0; i < tb->n; i++) {
        struct lk_track *t = tb->t[i];
        if (t->gen != gen) {
            if (t->suspected && change)
                change(ctx, t, 0, 1);
            free(t);
            continue;
        }
        tb->t[w++] = t;
    }
    tb->n = w;
    if (tb->n > 1)
        qsort(tb->t, tb->n, sizeof *tb->t, track_order);
    struct lk_sample s[LK_RING];
    for (size_t i = 0; i < tb->n; i++) {
        struct lk_track *t = tb->t[i];
        struct lk_verdict v;
        size_t n = lk_ring_linear(&t->ring, s);
        enum lk_kind k = lk_judge(s, n, p, &v);
        if (k != LK_NONE) {
            t->last = v;
            if (!t->suspected) {
                t->suspected = 1;
                if (change)
                    change(ctx, t, 1, 0);
            }
        } else if (t->suspected) {
            t->suspected = 0;
            if (change)
                change(ctx, t, 0, 0);
        }
    }
}

int lk_table_suspected(const struct lk_table *tb, const char *group, int dev)
{
    size_t lo = 0, hi = tb->n;
    while (lo < hi) { /* the first track of the group */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(tb->t[mid]->group, group) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < tb->n && strcmp(tb->t[i]->group, group) == 0; i++)
        if (tb->t[i]->dev == dev && tb->t[i]->suspected)
            return 1;
    return 0;
}

void lk_table_free(struct lk_table *tb)
{
    for (size_t i = 0; i < tb->n; i++)
        free(tb->t[i]);
    free(tb->t);
    memset(tb, 0, sizeof *tb);
}

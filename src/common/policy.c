/* Policy decisions without side effects: queue order and the choice of
 * victims (gpumem/policy.h; docs/policy.md says why each rule). */
#include "gpumem/policy.h"

#include <stdlib.h>

int gp_queue_cmp(const struct gp_waiter *a, const struct gp_waiter *b)
{
    if (a->priority != b->priority)
        return a->priority > b->priority ? -1 : 1;
    if (a->arrival_ns != b->arrival_ns)
        return a->arrival_ns < b->arrival_ns ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* A candidate: its rank keys and what reclaiming it frees. */
struct cand {
    int index;
    int32_t priority;
    int borrower;
    uint64_t borrowed;  /* used - request, for borrowers */
    uint64_t frees;
    uint64_t created;
};

/* Borrowers before the rest; lowest priority first; then the most borrowed
 * (borrowers) or the largest (the rest); then the newest; then index, so
 * the order is total and the same on every run. */
static int cand_cmp(const void *pa, const void *pb)
{
    const struct cand *a = pa, *b = pb;
    if (a->borrower != b->borrower)
        return a->borrower ? -1 : 1;
    if (a->priority != b->priority)
        return a->priority < b->priority ? -1 : 1;
    uint64_t ka = a->borrower ? a->borrowed : a->frees, kb = b->borrower ? b->borrowed : b->frees;
    if (ka != kb)
        return ka > kb ? -1 : 1;
    if (a->created != b->created)
        return a->created > b->created ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

int gp_pick_victims(const struct gp_group *g, int n, int self, int32_t prio, uint64_t need, enum gp_measure m,
                    struct gp_victim *out, int max)
{
    if (need == 0)
        return 0;
    struct cand *c = malloc((size_t)(n > 0 ? n : 1) * sizeof *c);
    if (!c)
        return -1;
    int nc = 0;
    uint64_t avail = 0;
    for (int i = 0; i < n; i++) {
        const struct gp_group *x = &g[i];
        if (i == self || x->busy || x->priority > prio)
            continue;
        int borrower = x->used > x->request;
        /* Same priority: only what it borrowed makes it a victim (its
         * guarantee holds against its equals). */
        if (!borrower && x->priority == prio)
            continue;
        /* Room for a waiting start's request: only a lower priority's
         * request gives way (borrowing takes no request from anyone). */
        if (m == GP_FREES_REQUEST && x->priority >= prio)
            continue;
        uint64_t frees = m == GP_FREES_USED ? x->used : x->request;
        if (frees == 0)
            continue;
        c[nc++] = (struct cand){i, x->priority, borrower, borrower ? x->used - x->request : 0, frees, x->created};
        avail += frees;
    }
    if (avail < need) {
        free(c);
        return -1;
    }
    qsort(c, (size_t)nc, sizeof *c, cand_cmp);
    int k = 0;
    uint64_t got = 0;
    for (int i = 0; i < nc && got < need; i++) {
        if (k == max) {
            k = -1;
            break;
        }
        out[k].index = c[i].index;
        out[k].reason = c[i].borrower ? GP_BORROWED : GP_LOWER_PRIORITY;
        out[k].frees = c[i].frees;
        got += c[i].frees;
        k++;
    }
    free(c);
    return k;
}

/* The backstop's rules, pure functions (tests/unit/backstop_rules.c): who
 * is dishonest by itself, when a group is over its limit, what counts as
 * exiting, which cgroups are exempt. docs/backstop.md says why each is so. */
#include "backstop.h"

#include <string.h>

int bs_proc_dishonest(const struct bs_gpuproc *p, uint64_t tolerance)
{
    if (p->how != BS_JOIN_SLOT)
        return p->used != 0; /* no shim counts any of it (unknown counts too: it has a context) */
    return p->used != BS_USED_UNKNOWN && p->used > p->accounted && p->used - p->accounted > tolerance;
}

int bs_group_over(uint64_t real, uint64_t shim, uint64_t limit, uint64_t tolerance)
{
    if (limit == GM_UNLIMITED)
        return 0;
    uint64_t lim = limit + tolerance < limit ? UINT64_MAX : limit + tolerance;
    uint64_t sh = shim + tolerance < shim ? UINT64_MAX : shim + tolerance;
    return real > lim && real > sh;
}

int bs_stat_exiting(const struct bs_stat *st)
{
    return (st->state == 'Z' || st->state == 'X' || (st->flags & BS_PF_EXITING)) && st->threads <= 1;
}

int bs_cgroup_under(const char *cgroup, const char *prefix)
{
    size_t n = strlen(prefix);
    while (n > 1 && prefix[n - 1] == '/')
        n--;
    if (n == 1 && prefix[0] == '/')
        return cgroup[0] == '/';
    return n > 0 && strncmp(cgroup, prefix, n) == 0 && (cgroup[n] == '\0' || cgroup[n] == '/');
}

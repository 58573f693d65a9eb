/* What a group's creator asks for besides its limit: requests, priority,
 * GPUMEM_OOM, wait timeouts (gpumem/policy.h; docs/limits.md lists the
 * variables and their precedence). */
#include "gpumem/policy.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int gm_parse_priority(const char *s, int32_t *out, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        int32_t v;
    } names[] = {{"high", GM_PRIO_HIGH}, {"normal", GM_PRIO_NORMAL}, {"low", GM_PRIO_LOW}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].v;
            return 0;
        }
    const char *d = s + (*s == '-');
    size_t nd = strspn(d, "0123456789");
    if (nd == 0 || nd > 4 || d[nd] || (nd > 1 && *d == '0')) {
        snprintf(err, errlen, "priority \"%s\": expected high, normal, low or a number from %d to %d", s,
                 GM_PRIO_MIN, GM_PRIO_MAX);
        return -1;
    }
    long v = strtol(s, NULL, 10);
    if (v < GM_PRIO_MIN || v > GM_PRIO_MAX) {
        snprintf(err, errlen, "priority \"%s\": out of range (%d to %d)", s, GM_PRIO_MIN, GM_PRIO_MAX);
        return -1;
    }
    *out = (int32_t)v;
    return 0;
}

const char *gm_priority_name(int32_t p, char *buf, size_t len)
{
    if (p == GM_PRIO_HIGH)
        snprintf(buf, len, "high");
    else if (p == GM_PRIO_NORMAL)
        snprintf(buf, len, "normal");
    else if (p == GM_PRIO_LOW)
        snprintf(buf, len, "low");
    else
        snprintf(buf, len, "%d", (int)p);
    return buf;
}

/* Seconds as people write them: "30", "2.5", "30s", "5m", "1h". */
static int parse_secs(const char *s, double max, double *out)
{
    char *end;
    if (!*s || strspn(s, "0123456789.") == 0)
        return -1;
    errno = 0;
    double v = strtod(s, &end);
    double mul = 1;
    if (*end == 's' || *end == 'm' || *end == 'h') {
        mul = *end == 'h' ? 3600 : *end == 'm' ? 60 : 1;
        end++;
    }
    v *= mul;
    if (errno || *end || !isfinite(v) || v < 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

int gm_parse_oom(const char *s, uint32_t *ms, char *err, size_t errlen)
{
    double v;
    if (strcmp(s, "fail") == 0) {
        *ms = 0;
        return 0;
    }
    if (strncmp(s, "wait:", 5) != 0 || parse_secs(s + 5, 86400, &v) < 0) {
        snprintf(err, errlen, "\"%s\": expected fail or wait:SECONDS (up to 86400, e.g. wait:30)", s);
        return -1;
    }
    *ms = (uint32_t)(v * 1000 + 0.5);
    return 0;
}

int gm_parse_timeout(const char *s, double *secs, char *err, size_t errlen)
{
    if (!*s || strcmp(s, "forever") == 0) {
        *secs = -1;
        return 0;
    }
    if (parse_secs(s, 30 * 86400.0, secs) < 0) {
        snprintf(err, errlen, "timeout \"%s\": expected seconds (30, 2.5), 30s, 5m, 1h, or forever", s);
        return -1;
    }
    return 0;
}

int gm_request_from_env(const char *(*getenv_fn)(const char *name, void *ctx), void *ctx,
                        struct gm_limit_spec *out, char *err, size_t errlen)
{
    static const struct gm_size_var vars[] = {
        {"GPUMEM_REQUEST", GM_BARE_REJECT, 0},
        {"NVIDIA_GPU_MEMORY_REQUEST", GM_BARE_MIB, 1}, /* NVIDIA's name: one number of MiB, every GPU */
        {"NVIDIA_GPU_MEMORY_REQUESTS", GM_BARE_MIB, 1},
    };
    return gm_spec_from_vars(vars, sizeof vars / sizeof vars[0], getenv_fn, ctx, out, err, errlen);
}

int gm_requests_from_spec(struct gm_limits *l, const struct gm_limit_spec *spec,
                          const char *(*index_uuid)(int index, void *ctx), void *ctx, char *err, size_t errlen)
{
    for (int i = 0; i < spec->n; i++) {
        const struct gm_limit_term *t = &spec->term[i];
        if (t->kind == GM_TERM_ALL) {
            l->request_default = t->bytes == GM_UNLIMITED ? 0 : t->bytes;
            continue;
        }
        const char *uuid = t->uuid;
        if (t->kind == GM_TERM_INDEX && !(uuid = index_uuid ? index_uuid(t->index, ctx) : NULL)) {
            snprintf(err, errlen, "device %d: no such GPU", t->index);
            return -1;
        }
        if (gm_dev_entry_add(l->req, &l->nreq, uuid, t->bytes == GM_UNLIMITED ? 0 : t->bytes, "requests", err, errlen) < 0)
            return -1;
    }
    return gm_requests_check(l, err, errlen);
}

int gm_requests_check(const struct gm_limits *l, char *err, size_t errlen)
{
    char a[32], b[32];
    /* Every GPU the group names, and the default (as "every other GPU"). */
    for (int i = -1; i < (int)l->nreq + (int)l->ndev; i++) {
        const char *uuid = i < 0 ? NULL : i < (int)l->nreq ? l->req[i].uuid : l->dev[i - (int)l->nreq].uuid;
        uint64_t req = uuid ? gm_request_for(l, uuid) : l->request_default;
        uint64_t lim = l->default_limit;
        for (uint32_t k = 0; uuid && k < l->ndev; k++)
            if (strcmp(l->dev[k].uuid, uuid) == 0)
                lim = l->dev[k].limit;
        if (req > lim) {
            snprintf(err, errlen, "request %s is above the limit %s%s%s: a group cannot be guaranteed more than it may use",
                     gm_format_size(req, a, sizeof a), gm_format_size(lim, b, sizeof b), uuid ? " on " : "",
                     uuid ? uuid : "");
            return -1;
        }
    }
    return 0;
}

int gm_policy_from_env(const char *(*getenv_fn)(const char *name, void *ctx), void *ctx, struct gm_limits *l,
                       char *err, size_t errlen)
{
    char e2[300];
    const char *v = getenv_fn("GPUMEM_PRIORITY", ctx);
    if (v && gm_parse_priority(v, &l->priority, e2, sizeof e2) < 0) {
        snprintf(err, errlen, "GPUMEM_PRIORITY=%s: %s", v, e2);
        return -1;
    }
    v = getenv_fn("GPUMEM_OOM", ctx);
    if (v && gm_parse_oom(v, &l->oom_wait_ms, e2, sizeof e2) < 0) {
        snprintf(err, errlen, "GPUMEM_OOM=%s: %s", v, e2);
        return -1;
    }
    return 0;
}

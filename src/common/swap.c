/* Parsing a group's spill allowance (gpumem/swap.h). */
#include "gpumem/swap.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gpumem/group.h"
#include "gpumem/size.h"

int gm_parse_swap(const char *s, uint64_t *out, char *err, size_t errlen)
{
    if (strcmp(s, "none") == 0 || strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    return gm_parse_size(s, GM_BARE_REJECT, out, err, errlen);
}

int gm_parse_switch(const char *s, char *err, size_t errlen)
{
    static const char *const on[] = {"1", "on", "yes", "true"}, *const off[] = {"0", "off", "no", "false"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, on[i]) == 0)
            return 1;
        if (strcasecmp(s, off[i]) == 0)
            return 0;
    }
    snprintf(err, errlen, "\"%s\": not on or off (1, 0, on, off, yes, no, true, false)", s);
    return -1;
}

int gm_swap_from_env(const char *(*getenv_fn)(const char *name, void *ctx), void *ctx, uint64_t *swap, int *promote,
                     char *err, size_t errlen)
{
    char e2[400];
    const char *v = getenv_fn("GPUMEM_SWAP", ctx);
    if (v && gm_parse_swap(v, swap, e2, sizeof e2) < 0) {
        snprintf(err, errlen, "GPUMEM_SWAP=%s: %s", v, e2);
        return -1;
    }
    v = getenv_fn("GPUMEM_SWAP_PROMOTE", ctx);
    if (v) {
        int p = gm_parse_switch(v, e2, sizeof e2);
        if (p < 0) {
            snprintf(err, errlen, "GPUMEM_SWAP_PROMOTE=%s: %s", v, e2);
            return -1;
        }
        *promote = p;
    }
    return 0;
}

uint64_t gm_swap_headroom(const struct gm_limits *l, const struct gm_usage *u)
{
    uint64_t used = gm_usage_swapped(u, -1);
    return l->swap > used ? l->swap - used : 0;
}

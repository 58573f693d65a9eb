/* Strict size and limit-spec parsing (see include/gpumem/size.h). Used by the
 * CLI, the runtime and the shim alike, so it allocates nothing and uses no
 * locale-dependent functions. */
#include "gpumem/size.h"

#include <stdio.h>
#include <string.h>

static int fail(char *err, size_t len, const char *fmt, const char *s, const char *why)
{
    if (err && len)
        snprintf(err, len, fmt, s, why);
    return -1;
}

static int ascii_lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

/* Unit suffix -> shift. Accepts K/M/G/T/P/E with optional "i" and optional "B"
 * ("G", "GB", "GiB", case-insensitive), and "B" alone. All binary. */
static int unit_shift(const char *u, int *shift)
{
    static const char units[] = "kmgtpe"; /* E: what gm_format_size prints past PiB */
    if (*u == '\0')
        return 1; /* no unit */
    if ((u[0] == 'b' || u[0] == 'B') && u[1] == '\0') {
        *shift = 0;
        return 0;
    }
    const char *p = strchr(units, ascii_lower((unsigned char)u[0]));
    if (!p)
        return -1;
    *shift = 10 * (int)(p - units + 1);
    u++;
    if (*u == 'i' || *u == 'I')
        u++;
    if (*u == 'b' || *u == 'B')
        u++;
    return *u == '\0' ? 0 : -1;
}

int gm_parse_size(const char *s, enum gm_bare_unit bare, uint64_t *out, char *err, size_t errlen)
{
    const char *q = "size \"%s\": %s";
    if (!s || !*s)
        return fail(err, errlen, q, s ? s : "", "empty");
    if (*s == '-')
        return fail(err, errlen, q, s, "negative sizes are not allowed");
    if (*s < '0' || *s > '9')
        return fail(err, errlen, q, s, "expected a number such as 4G, 4096M or 4.5GiB");
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        return fail(err, errlen, q, s, "hexadecimal is not accepted; write e.g. 4G or 4096M");
    if (s[0] == '0' && s[1] >= '0' && s[1] <= '9')
        return fail(err, errlen, q, s, "leading zeros are not accepted (octal is not supported)");

    /* Integer part, exactly, with overflow detection. */
    const char *p = s;
    unsigned __int128 whole = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        whole = whole * 10 + (unsigned)(*p - '0');
        if (whole > UINT64_MAX)
            return fail(err, errlen, q, s, "too large");
    }
    /* Optional fraction: up to 9 digits, kept as numerator / 10^digits. */
    uint64_t frac = 0, frac_den = 1;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return fail(err, errlen, q, s, "expected digits after the decimal point");
        for (; *p >= '0' && *p <= '9'; p++) {
            if (frac_den >= 1000000000ULL)
                return fail(err, errlen, q, s, "too many decimal places (at most 9)");
            frac = frac * 10 + (uint64_t)(*p - '0');
            frac_den *= 10;
        }
    }
    if (whole == 0 && frac == 0)
        return fail(err, errlen, q, s, "a limit of 0 is not allowed (0 does not mean unlimited)");
    int shift = 0;
    int u = unit_shift(p, &shift);
    if (u < 0)
        return fail(err, errlen, q, s, "unknown unit (use B, K, M, G, T or P, optionally with iB)");
    if (u == 1) {
        if (bare == GM_BARE_REJECT)
            return fail(err, errlen, q, s, "missing unit (write e.g. 4096M or 4G)");
        shift = bare == GM_BARE_MIB ? 20 : 0;
    }
    if (frac && shift == 0)
        return fail(err, errlen, q, s, "fractional bytes make no sense");

    unsigned __int128 bytes = (whole << shift) + (((unsigned __int128)frac << shift) / frac_den);
    if (bytes > UINT64_MAX - 1) /* UINT64_MAX is reserved for "unlimited" */
        return fail(err, errlen, q, s, "too large");
    if (bytes == 0)
        return fail(err, errlen, q, s, "a limit of 0 is not allowed (0 does not mean unlimited)");
    *out = (uint64_t)bytes;
    return 0;
}

int gm_size_scale(uint64_t bytes, double *v)
{
    int i = 0;
    *v = (double)bytes;
    while (*v >= 1024.0 && i < 6) {
        *v /= 1024.0;
        i++;
    }
    return i;
}

const char *gm_format_size(uint64_t bytes, char *buf, size_t len)
{
    static const char *names[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes == GM_UNLIMITED) {
        snprintf(buf, len, "unlimited");
        return buf;
    }
    double v;
    int i = gm_size_scale(bytes, &v);
    if (i == 0)
        snprintf(buf, len, "%llu B", (unsigned long long)bytes);
    else if (v == (double)(uint64_t)v)
        snprintf(buf, len, "%llu %s", (unsigned long long)v, names[i]);
    else
        snprintf(buf, len, "%.2f %s", v, names[i]);
    return buf;
}

static int is_hex(int c) { return (c >= '0' && c <= '9') || (ascii_lower(c) >= 'a' && ascii_lower(c) <= 'f'); }

/* "GPU-" (a GPU) or "MIG-" (a MIG device, NVIDIA's UUIDs since R470) then
 * 8-4-4-4-12 hex digits. Normalised to lower case. */
static int parse_uuid(const char *s, size_t n, char *out)
{
    static const int groups[] = {8, 4, 4, 4, 12};
    if (n != 4 + 36 || (strncmp(s, "GPU-", 4) != 0 && strncmp(s, "MIG-", 4) != 0))
        return -1;
    size_t k = 4;
    for (int g = 0; g < 5; g++) {
        for (int i = 0; i < groups[g]; i++, k++)
            if (!is_hex((unsigned char)s[k]))
                return -1;
        if (g < 4 && s[k++] != '-')
            return -1;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = i < 4 ? s[i] : (char)ascii_lower((unsigned char)s[i]);
    out[n] = '\0';
    return 0;
}

static int parse_limit_spec(const char *s, enum gm_bare_unit bare, int allow_none, struct gm_limit_spec *out,
                            char *err, size_t errlen);

int gm_parse_limit_spec(const char *s, enum gm_bare_unit bare, struct gm_limit_spec *out, char *err, size_t errlen)
{
    return parse_limit_spec(s, bare, 0, out, err, errlen);
}

int gm_parse_limit_change(const char *s, struct gm_limit_spec *out, char *err, size_t errlen)
{
    return parse_limit_spec(s, GM_BARE_REJECT, 1, out, err, errlen);
}

static int parse_limit_spec(const char *s, enum gm_bare_unit bare, int allow_none, struct gm_limit_spec *out,
                            char *err, size_t errlen)
{
    char part[128], sub[256];
    memset(out, 0, sizeof *out);
    if (!s || !*s)
        return fail(err, errlen, "limit \"%s\": %s", s ? s : "", "empty");
    const char *p = s;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0 || n >= sizeof part)
            return fail(err, errlen, "limit \"%s\": %s", s, n ? "term too long" : "empty term");
        if (out->n == GM_MAX_LIMIT_ENTRIES)
            return fail(err, errlen, "limit \"%s\": %s", s, "too many terms");
        memcpy(part, p, n);
        part[n] = '\0';
        struct gm_limit_term *t = &out->term[out->n];
        const char *size = part;
        char *eq = strchr(part, '=');
        if (eq) {
            *eq = '\0';
            size = eq + 1;
            if (strncmp(part, "GPU-", 4) == 0 || strncmp(part, "MIG-", 4) == 0) {
                t->kind = GM_TERM_UUID;
                if (parse_uuid(part, strlen(part), t->uuid) < 0) {
                    snprintf(sub, sizeof sub, "bad %s UUID \"%s\" (expected %.4sxxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
                             part[0] == 'M' ? "MIG device" : "GPU", part, part);
                    return fail(err, errlen, "limit \"%s\": %s", s, sub);
                }
            } else {
                t->kind = GM_TERM_INDEX;
                int idx = 0, digits = 0;
                for (const char *d = part; *d; d++, digits++) {
                    if (*d < '0' || *d > '9' || digits > 3 || (digits == 1 && part[0] == '0')) {
                        snprintf(sub, sizeof sub, "bad device \"%s\" (expected an index such as 0, a GPU-<uuid> or a MIG-<uuid>)", part);
                        return fail(err, errlen, "limit \"%s\": %s", s, sub);
                    }
                    idx = idx * 10 + (*d - '0');
                }
                if (digits == 0)
                    return fail(err, errlen, "limit \"%s\": %s", s, "missing device before '='");
                t->index = idx;
            }
        } else {
            t->kind = GM_TERM_ALL;
        }
        for (int i = 0; i < out->n; i++) {
            const struct gm_limit_term *o = &out->term[i];
            if (o->kind == t->kind && o->index == t->index && strcmp(o->uuid, t->uuid) == 0)
                return fail(err, errlen, "limit \"%s\": %s", s, "the same device is given twice");
        }
        char e2[200];
        if (allow_none && strcmp(size, "none") == 0)
            t->bytes = GM_UNLIMITED;
        else if (gm_parse_size(size, bare, &t->bytes, e2, sizeof e2) < 0)
            return fail(err, errlen, "limit \"%s\": %s", s, e2);
        out->n++;
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

int gm_spec_from_vars(const struct gm_size_var *vars, size_t nvars,
                      const char *(*getenv_fn)(const char *name, void *ctx), void *ctx, struct gm_limit_spec *out,
                      char *err, size_t errlen)
{
    char e2[400];
    for (size_t i = 0; i < nvars; i++) {
        const char *v = getenv_fn(vars[i].name, ctx);
        if (!v)
            continue;
        int rc = vars[i].whole_only ? (memset(out, 0, sizeof *out), out->n = 1, out->term[0].kind = GM_TERM_ALL,
                                       gm_parse_size(v, vars[i].bare, &out->term[0].bytes, e2, sizeof e2))
                                    : gm_parse_limit_spec(v, vars[i].bare, out, e2, sizeof e2);
        if (rc < 0) {
            snprintf(err, errlen, "%s=%s: %s", vars[i].name, v, e2);
            return -1;
        }
        return 1;
    }
    return 0;
}

int gm_limit_from_env(const char *(*getenv_fn)(const char *name, void *ctx), void *ctx,
                      struct gm_limit_spec *out, char *err, size_t errlen)
{
    static const struct gm_size_var vars[] = {
        {"GPUMEM_LIMIT", GM_BARE_REJECT, 0},
        {"NVIDIA_GPU_MEMORY_LIMIT", GM_BARE_MIB, 1},
        {"NVIDIA_GPU_MEMORY_LIMITS", GM_BARE_MIB, 1},
        {"CUDA_DEVICE_MEMORY_LIMIT", GM_BARE_BYTES, 0},
    };
    char e2[400];
    int rc = gm_spec_from_vars(vars, sizeof vars / sizeof vars[0], getenv_fn, ctx, out, err, errlen);
    if (rc != 0)
        return rc;
    /* HAMi's per-device form: CUDA_DEVICE_MEMORY_LIMIT_<i>=<bytes or 1024m>. */
    memset(out, 0, sizeof *out);
    for (int i = 0; i < GM_MAX_LIMIT_ENTRIES; i++) {
        char name[40];
        snprintf(name, sizeof name, "CUDA_DEVICE_MEMORY_LIMIT_%d", i);
        const char *v = getenv_fn(name, ctx);
        if (!v)
            continue;
        struct gm_limit_term *t = &out->term[out->n];
        t->kind = GM_TERM_INDEX;
        t->index = i;
        if (gm_parse_size(v, GM_BARE_BYTES, &t->bytes, e2, sizeof e2) < 0) {
            snprintf(err, errlen, "%s=%s: %s", name, v, e2);
            return -1;
        }
        out->n++;
    }
    return out->n > 0;
}

/* Fuzz target: the strict size and limit parsers (src/common/size.c), every
 * entry point that takes text from people: gm_parse_size (GPUMEM_CTX_OVERHEAD,
 * --leak-min-growth; each meaning of a bare number), gm_parse_limit_spec
 * (GPUMEM_LIMIT, `gpumem run --limit`, `gpumem limit`) and gm_limit_from_env
 * (the input's lines as NAME=VALUE environment entries). Besides "no crash",
 * it checks what the parsers promise:
 *  - a size is never 0 and never GM_UNLIMITED; a refusal quotes the input;
 *  - a unit means the same whatever a bare number would mean;
 *  - a size is also a one-term limit spec of the same bytes, and back;
 *  - gm_format_size's output, without its space, parses back to the same
 *    bytes (exactly for whole numbers below 2^53, within the rounding of
 *    two decimals otherwise), for sizes below 1 EiB (the parser has no E);
 *  - an error message fits the buffer it is given, however small. *
 * libFuzzer options: -max_len=4096
 */
#include "gpumem/size.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) ((c) ? (void)0 : (fprintf(stderr, "size fuzz: %s:%d: %s\n", __FILE__, __LINE__, #c), abort()))

static const enum gm_bare_unit bares[] = {GM_BARE_REJECT, GM_BARE_BYTES, GM_BARE_MIB};

/* err must start with `<what> "<s>"` when s is short enough to fit. */
static void check_quotes(const char *err, const char *what, const char *s)
{
    size_t w = strlen(what), n = strlen(s);
    if (n > 100)
        return;
    CHECK(strncmp(err, what, w) == 0 && err[w] == ' ' && err[w + 1] == '"');
    CHECK(strncmp(err + w + 2, s, n) == 0 && err[w + 2 + n] == '"');
}

static void check_term(const struct gm_limit_term *t)
{
    CHECK(t->bytes != 0 && t->bytes != GM_UNLIMITED);
    switch (t->kind) {
    case GM_TERM_ALL: break;
    case GM_TERM_INDEX: CHECK(t->index >= 0 && t->index <= 9999); break;
    case GM_TERM_UUID:
        CHECK(strlen(t->uuid) == 40 && (strncmp(t->uuid, "GPU-", 4) == 0 || strncmp(t->uuid, "MIG-", 4) == 0));
        for (const char *c = t->uuid + 4; *c; c++)
            CHECK((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f') || *c == '-');
        break;
    default: CHECK(!"unknown term kind");
    }
}

static void check_spec(const struct gm_limit_spec *sp)
{
    CHECK(sp->n >= 1 && sp->n <= GM_MAX_LIMIT_ENTRIES);
    for (int i = 0; i < sp->n; i++) {
        check_term(&sp->term[i]);
        for (int j = 0; j < i; j++)
            CHECK(!(sp->term[i].kind == sp->term[j].kind && sp->term[i].index == sp->term[j].index &&
                    strcmp(sp->term[i].uuid, sp->term[j].uuid) == 0));
    }
}

/* Formats v, drops the space, parses it again. */
static void check_round_trip(uint64_t v)
{
    static const char *units[] = {" B", " KiB", " MiB", " GiB", " TiB", " PiB"};
    char f[64], g[64], err[256];
    if (v == 0)
        return;
    gm_format_size(v, f, sizeof f);
    int shift = -1;
    for (int i = 0; i < 6; i++) {
        size_t fl = strlen(f), ul = strlen(units[i]);
        if (fl > ul && strcmp(f + fl - ul, units[i]) == 0)
            shift = 10 * i;
    }
    if (shift < 0) /* EiB, "unlimited" */
        return;
    size_t k = 0;
    for (const char *c = f; *c; c++)
        if (*c != ' ')
            g[k++] = *c;
    g[k] = '\0';
    uint64_t back = 0;
    if (gm_parse_size(g, GM_BARE_REJECT, &back, err, sizeof err) != 0) {
        fprintf(stderr, "size fuzz: %llu formats as \"%s\", which does not parse: %s\n", (unsigned long long)v, f,
                err);
        abort();
    }
    uint64_t tol = strchr(f, '.') || v >= 1ULL << 53 ? (1ULL << shift) / 200 + (v >> 53) + 2 : 0;
    uint64_t diff = back > v ? back - v : v - back;
    if (diff > tol) {
        fprintf(stderr, "size fuzz: %llu formats as \"%s\", which parses as %llu\n", (unsigned long long)v, f,
                (unsigned long long)back);
        abort();
    }
}

static void fuzz_size(const char *s, size_t small)
{
    uint64_t v[3];
    int ok[3];
    char err[512];
    for (int b = 0; b < 3; b++) {
        err[0] = '\0';
        ok[b] = gm_parse_size(s, bares[b], &v[b], err, sizeof err) == 0;
        if (ok[b]) {
            CHECK(v[b] != 0 && v[b] != GM_UNLIMITED);
            check_round_trip(v[b]);
        } else {
            check_quotes(err, "size", s);
        }
    }
    /* With a unit, the bare-number rule does not matter. */
    if (ok[0])
        CHECK(ok[1] && ok[2] && v[1] == v[0] && v[2] == v[0]);
    /* A bare number of bytes is the same number of MiB, shifted. */
    if (ok[1] && !ok[0] && v[1] <= (GM_UNLIMITED - 1) >> 20)
        CHECK(ok[2] && v[2] == v[1] << 20);

    /* A size is a limit spec of one term for every device, and back. */
    struct gm_limit_spec sp;
    for (int b = 0; b < 3; b++) {
        int r = gm_parse_limit_spec(s, bares[b], &sp, err, sizeof err);
        if (r == 0) {
            check_spec(&sp);
            if (sp.n == 1 && sp.term[0].kind == GM_TERM_ALL)
                CHECK(ok[b] && v[b] == sp.term[0].bytes);
        } else {
            check_quotes(err, "limit", s);
            CHECK(!ok[b] || strlen(s) >= 128);
        }
    }

    /* Messages cut to a small buffer stay inside it (heap: ASan sees one
     * byte too far). */
    char *e = malloc(small);
    uint64_t x;
    memset(e, 'x', small);
    if (gm_parse_size(s, GM_BARE_REJECT, &x, e, small) < 0)
        CHECK(memchr(e, '\0', small) != NULL);
    memset(e, 'x', small);
    if (gm_parse_limit_spec(s, GM_BARE_REJECT, &sp, e, small) < 0)
        CHECK(memchr(e, '\0', small) != NULL);
    free(e);
}

/* The input's lines as an environment: NAME=VALUE, the first one wins. */
struct env {
    char *line[64];
    int n;
};

static const char *env_get(const char *name, void *ctx)
{
    const struct env *e = ctx;
    size_t n = strlen(name);
    for (int i = 0; i < e->n; i++)
        if (strncmp(e->line[i], name, n) == 0 && e->line[i][n] == '=')
            return e->line[i] + n + 1;
    return NULL;
}

static void fuzz_env(char *text, size_t small)
{
    struct env e = {.n = 0};
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l && e.n < 64; l = strtok_r(NULL, "\n", &save))
        e.line[e.n++] = l;
    struct gm_limit_spec sp;
    char err[1024] = "";
    int r = gm_limit_from_env(env_get, &e, &sp, err, sizeof err);
    CHECK(r >= -1 && r <= 1);
    if (r == 1)
        check_spec(&sp);
    else if (r == 0)
        CHECK(sp.n == 0);
    else
        CHECK(err[0] != '\0');
    /* GPUMEM_LIMIT, when set, decides alone. */
    const char *g = env_get("GPUMEM_LIMIT", &e);
    if (g) {
        struct gm_limit_spec direct;
        int d = gm_parse_limit_spec(g, GM_BARE_REJECT, &direct, err, sizeof err);
        CHECK((d == 0) == (r == 1));
        if (d == 0)
            CHECK(memcmp(&direct, &sp, sizeof sp) == 0);
    }
    char *small_err = malloc(small);
    memset(small_err, 'x', small);
    if (gm_limit_from_env(env_get, &e, &sp, small_err, small) < 0)
        CHECK(memchr(small_err, '\0', small) != NULL);
    free(small_err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    size_t small = 1 + (size ? data[size - 1] % 24 : 0);
    fuzz_size(s, small);
    fuzz_env(s, small);
    if (size >= 8) {
        uint64_t raw;
        memcpy(&raw, data, sizeof raw);
        check_round_trip(raw);
        check_round_trip(raw >> (raw & 63));
    }
    free(s);
    return 0;
}

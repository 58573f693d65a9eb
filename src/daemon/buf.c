/* A text buffer that doubles as it fills: a response is as long as its
 * content, never cut at a fixed size. An allocation failure is remembered
 * (b->oom) so the caller can answer 500 instead of half a page. */
#include "daemon.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int reserve(struct gbuf *b, size_t more)
{
    if (b->oom)
        return -1;
    if (b->len + more + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void gbuf_printf(struct gbuf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(b, (size_t)n) < 0)
        return;
    if ((size_t)n < sizeof small) {
        memcpy(b->p + b->len, small, (size_t)n + 1);
    } else {
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void gbuf_puts(struct gbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (reserve(b, n) < 0)
        return;
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

static void put_char(struct gbuf *b, char c)
{
    if (reserve(b, 1) < 0)
        return;
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
}

void gbuf_label(struct gbuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            gbuf_puts(b, "\\\\");
        else if (*s == '"')
            gbuf_puts(b, "\\\"");
        else if (*s == '\n')
            gbuf_puts(b, "\\n");
        else
            put_char(b, *s);
    }
}

void gbuf_json(struct gbuf *b, const char *s)
{
    put_char(b, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            gbuf_printf(b, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            gbuf_printf(b, "\\u%04x", c);
        else
            put_char(b, (char)c);
    }
    put_char(b, '"');
}

void gbuf_free(struct gbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void dm_copy_field(char *dst, size_t dstlen, const char *src, size_t srclen)
{
    /* Fields of a file in shared memory are not trusted to be terminated. */
    size_t n = strnlen(src, srclen);
    if (n >= dstlen)
        n = dstlen - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void *dm_grow(void *p, size_t *cap, size_t n, size_t elem, int *oom)
{
    if (n < *cap)
        return p;
    size_t c = *cap ? *cap * 2 : 64;
    void *q = realloc(p, c * elem);
    if (!q) {
        *oom = 1;
        return NULL;
    }
    *cap = c;
    return q;
}

/* Kubernetes quantities (k8s.io/apimachinery resource.Quantity) as bytes.
 *
 *   quantity ::= number suffix      number ::= digits | digits.digits | digits. | .digits
 *   suffix   ::= Ki Mi Gi Ti Pi Ei | "" k M G T P E | m u n | e<int> | E<int>
 *
 * A leading "+" is allowed, "-" is refused (no negative memory). The value
 * is kept exact as mantissa x 10^exp x 2^shift in 128 bits and rounded up to
 * a whole byte, as Quantity.Value() does. */
#include "dra.h"

#include <stdio.h>
#include <string.h>

typedef unsigned __int128 u128;

static int too_big(const char *s, char *err, size_t errlen)
{
    snprintf(err, errlen, "quantity \"%.64s\": too large", s);
    return -1;
}

int dra_quantity_parse(const char *s, uint64_t *out, char *err, size_t errlen)
{
    const char *p = s;
    u128 mant = 0;
    int exp10 = 0, shift = 0, digits = 0, sig = 0;
    if (!s || !*s) {
        snprintf(err, errlen, "quantity \"\": empty");
        return -1;
    }
    if (*p == '+')
        p++;
    else if (*p == '-') {
        snprintf(err, errlen, "quantity \"%.64s\": negative", s);
        return -1;
    }
    for (int frac = 0;; p++) {
        if (*p >= '0' && *p <= '9') {
            digits++;
            /* Leading zeros carry nothing; past 36 significant digits the
             * rest cannot change a 64-bit byte count but rounding: keep
             * them out of the mantissa and remember they were not zero. */
            if (mant == 0 && *p == '0') {
                if (frac)
                    exp10--;
                continue;
            }
            if (sig < 36) {
                mant = mant * 10 + (u128)(*p - '0');
                sig++;
                if (frac)
                    exp10--;
            } else if (!frac) {
                exp10++;
            }
        } else if (*p == '.' && !frac) {
            frac = 1;
        } else {
            break;
        }
    }
    if (digits == 0) {
        snprintf(err, errlen, "quantity \"%.64s\": no number", s);
        return -1;
    }
    static const struct {
        const char *sfx;
        int exp10, shift;
    } sfx[] = {{"Ki", 0, 10}, {"Mi", 0, 20}, {"Gi", 0, 30}, {"Ti", 0, 40}, {"Pi", 0, 50}, {"Ei", 0, 60},
               {"n", -9, 0},  {"u", -6, 0},  {"m", -3, 0},  {"k", 3, 0},   {"M", 6, 0},   {"G", 9, 0},
               {"T", 12, 0},  {"P", 15, 0},  {"E", 18, 0},  {"", 0, 0}};
    int matched = 0;
    if ((*p == 'e' || *p == 'E') && p[1] && (p[1] == '+' || p[1] == '-' || (p[1] >= '0' && p[1] <= '9'))) {
        const char *q = p + 1;
        int neg = *q == '-', e = 0, nd = 0;
        if (*q == '+' || *q == '-')
            q++;
        for (; *q >= '0' && *q <= '9'; q++, nd++)
            if (e < 1000)
                e = e * 10 + (*q - '0');
        if (nd && !*q) {
            exp10 += neg ? -e : e;
            matched = 1;
        }
    }
    for (size_t i = 0; !matched && i < sizeof sfx / sizeof sfx[0]; i++)
        if (strcmp(p, sfx[i].sfx) == 0) {
            exp10 += sfx[i].exp10;
            shift = sfx[i].shift;
            matched = 1;
        }
    if (!matched) {
        snprintf(err, errlen, "quantity \"%.64s\": unknown suffix \"%.16s\" (Ki Mi Gi Ti Pi Ei, k M G T P E, m, e<n>)",
                 s, p);
        return -1;
    }
    if (mant == 0) {
        *out = 0;
        return 0;
    }
    /* 2^shift first (shift <= 60, mant < 10^36 < 2^120 would overflow:
     * check), then the power of ten. */
    for (; shift > 0; shift--) {
        if (mant >> 127)
            return too_big(s, err, errlen);
        mant <<= 1;
    }
    for (; exp10 > 0; exp10--) {
        if (mant > (~(u128)0) / 10)
            return too_big(s, err, errlen);
        mant *= 10;
    }
    for (; exp10 < 0 && mant > 0; exp10++) {
        int up = mant % 10 != 0;
        mant = mant / 10 + (u128)up;    /* round up, every step: ceil(ceil(x/a)/b) = ceil(x/ab) */
    }
    if (mant > UINT64_MAX)
        return too_big(s, err, errlen);
    *out = (uint64_t)mant;
    return 0;
}

const char *dra_quantity_format(uint64_t bytes, char *buf, size_t len)
{
    static const char *sfx[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
    int i = 0;
    while (i < 6 && bytes != 0 && bytes % 1024 == 0) {
        bytes /= 1024;
        i++;
    }
    snprintf(buf, len, "%llu%s", (unsigned long long)bytes, sfx[i]);
    return buf;
}

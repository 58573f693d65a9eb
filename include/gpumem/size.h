/* Strict parsing of memory sizes and limit specifications: the one parser
 * every gpumem component uses for the limit variables (docs/limits.md).
 *
 * Sizes are binary: "4G" = "4GiB" = "4096M" = 4 * 2^30 bytes; "4.5G" is
 * allowed. Garbage, signs, whitespace, hex ("0x10"), leading zeros that look
 * octal ("010G"), overflow and 0 are errors whose message quotes the input. */
#ifndef GPUMEM_SIZE_H
#define GPUMEM_SIZE_H

#include <stddef.h>
#include <stdint.h>

#define GM_UNLIMITED UINT64_MAX

/* What a bare number (no unit) means for a given variable. */
enum gm_bare_unit {
    GM_BARE_REJECT = 0,     /* a unit is required ("4096" is refused) */
    GM_BARE_BYTES = 1,
    GM_BARE_MIB = 1 << 20,
};

/* Parses `s` into bytes. Returns 0, or -1 with a message in err (which
 * quotes s) when s is not a valid nonzero size. */
int gm_parse_size(const char *s, enum gm_bare_unit bare, uint64_t *out, char *err, size_t errlen);

/* bytes in its largest binary unit: returns the unit's power of 1024 (0 =
 * bytes .. 6 = EiB) and the value in it in *v. */
int gm_size_scale(uint64_t bytes, double *v);

/* Formats bytes for people: "4.00 GiB", "512 MiB", "100 B". */
const char *gm_format_size(uint64_t bytes, char *buf, size_t len);

#define GM_MAX_LIMIT_ENTRIES 16
#define GM_UUID_LEN 48      /* "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" + NUL, padded */

/* One term of a limit specification. */
struct gm_limit_term {
    enum { GM_TERM_ALL, GM_TERM_INDEX, GM_TERM_UUID } kind;
    int index;                  /* GM_TERM_INDEX: device index as the creator sees it */
    char uuid[GM_UUID_LEN];     /* GM_TERM_UUID: "GPU-..." (lower case hex) */
    uint64_t bytes;
};

struct gm_limit_spec {
    int n;
    struct gm_limit_term term[GM_MAX_LIMIT_ENTRIES];
};

/* Parses GPUMEM_LIMIT's forms: "4G" (every device), "0=4G,1=8G",
 * "GPU-<uuid>=4G", and mixes of them. `bare` says what a unit-less number
 * means. Returns 0, or -1 with err set (quoting the bad part). */
int gm_parse_limit_spec(const char *s, enum gm_bare_unit bare, struct gm_limit_spec *out, char *err, size_t errlen);

/* As gm_parse_limit_spec with units required, for `gpumem limit`: a size
 * may also be "none" (GM_UNLIMITED: no limit there). */
int gm_parse_limit_change(const char *s, struct gm_limit_spec *out, char *err, size_t errlen);

/* A variable that holds a size spec: what a bare number means, and
 * whether it is one number for every device (NVIDIA's names). */
struct gm_size_var {
    const char *name;
    enum gm_bare_unit bare;
    int whole_only;
};
/* The first of vars[0..n) that getenv_fn finds, parsed into out: 1, or 0
 * when none is set, or -1 on a bad value (err names the variable). */
int gm_spec_from_vars(const struct gm_size_var *vars, size_t n,
                      const char *(*getenv_fn)(const char *name, void *ctx), void *ctx, struct gm_limit_spec *out,
                      char *err, size_t errlen);

/* Reads the limit a process environment asks for (docs/limits.md), in
 * order of precedence: GPUMEM_LIMIT, NVIDIA_GPU_MEMORY_LIMIT,
 * NVIDIA_GPU_MEMORY_LIMITS, CUDA_DEVICE_MEMORY_LIMIT and
 * CUDA_DEVICE_MEMORY_LIMIT_<i>. `getenv_fn` looks a name up (getenv, or a
 * lookup in a container's env list). Returns 1 when a limit was asked for and
 * parsed into out, 0 when none was asked for, -1 on a bad value (err names
 * the variable and quotes the value). */
int gm_limit_from_env(const char *(*getenv_fn)(const char *name, void *ctx), void *ctx,
                      struct gm_limit_spec *out, char *err, size_t errlen);

#endif

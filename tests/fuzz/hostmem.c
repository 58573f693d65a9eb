/* Fuzz target: the text the host-memory check of the spill reads
 * (src/common/hostmem.c: /proc/meminfo, cgroup memory files,
 * /proc/self/cgroup) and the spill allowance's parsers (src/common/swap.c:
 * --swap, GPUMEM_SWAP, GPUMEM_SWAP_PROMOTE; the input's lines as NAME=VALUE
 * environment entries). Besides "no crash", it checks what they promise:
 *  - MemAvailable is a multiple of 1024 or unknown;
 *  - a cgroup value read back formats to the same decimal digits;
 *  - the paths found are empty or absolute, and fit their buffer;
 *  - a swap size is 0 or a size gm_parse_size accepts; errors quote the input.
 * libFuzzer options: -max_len=4096
 */
#include "gpumem/hostmem.h"
#include "gpumem/size.h"
#include "gpumem/swap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) ((c) ? (void)0 : (fprintf(stderr, "hostmem fuzz: %s:%d: %s\n", __FILE__, __LINE__, #c), abort()))

static const char *env_get(const char *name, void *ctx)
{
    char **line = ctx;
    size_t n = strlen(name);
    for (int i = 0; line[i]; i++)
        if (strncmp(line[i], name, n) == 0 && line[i][n] == '=')
            return line[i] + n + 1;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';

    uint64_t avail = gm_meminfo_available(s);
    CHECK(avail == GM_HOSTMEM_UNKNOWN || avail % 1024 == 0);

    uint64_t v;
    if (gm_cgroup_value(s, &v) == 0 && v != GM_HOSTMEM_UNKNOWN) {
        char back[32];
        snprintf(back, sizeof back, "%llu", (unsigned long long)v);
        const char *digits = s;
        while (digits[0] == '0' && digits[1] >= '0' && digits[1] <= '9')
            digits++; /* leading zeros: the same number */
        CHECK(strncmp(digits, back, strlen(back)) == 0);
    }

    size_t small = 1 + (size ? data[size - 1] % 40 : 0);
    char *v2 = malloc(small), *v1 = malloc(small);
    gm_cgroup_paths(s, v2, small, v1, small);
    CHECK(memchr(v2, '\0', small) && memchr(v1, '\0', small));
    CHECK(v2[0] == '\0' || v2[0] == '/');
    CHECK(v1[0] == '\0' || v1[0] == '/');
    free(v2);
    free(v1);

    char err[512] = "";
    if (gm_parse_swap(s, &v, err, sizeof err) == 0) {
        uint64_t w;
        CHECK(v == 0 || (gm_parse_size(s, GM_BARE_REJECT, &w, err, sizeof err) == 0 && w == v));
    } else if (size < 100) {
        CHECK(strstr(err, s) != NULL);
    }
    int sw = gm_parse_switch(s, err, sizeof err);
    CHECK(sw >= -1 && sw <= 1);

    char *line[65];
    int n = 0;
    char *copy = strdup(s);
    for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l && n < 64; l = strtok_r(NULL, "\n", &save))
        line[n++] = l;
    line[n] = NULL;
    uint64_t swap = 7;
    int promote = 7;
    if (gm_swap_from_env(env_get, line, &swap, &promote, err, sizeof err) == 0) {
        CHECK(promote == 7 || promote == 0 || promote == 1);
        CHECK(env_get("GPUMEM_SWAP", line) || swap == 7);
    } else {
        CHECK(strncmp(err, "GPUMEM_SWAP", 11) == 0);
    }
    free(copy);
    free(s);
    return 0;
}

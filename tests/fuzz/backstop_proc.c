/* Fuzz target: the backstop's parsers of /proc text (src/daemon/
 * backstop_proc.c, included directly with its rules): /proc/<pid>/stat,
 * whose comm is the process's own (any 15 bytes, parentheses and spaces
 * included: an escaper picks it), and /proc/<pid>/cgroup. The input is cut
 * as the reader's 4095-byte buffer would be. Checks: a line that does not
 * parse gives state '?' and start 0; one that does gives a ppid that is a
 * pid and a state letter from after the last ')'; a cgroup path fits its
 * buffer and is a path or nothing; bs_cgroup_under is reflexive.
 *
 * libFuzzer options: -max_len=4096 */
#include "../../src/daemon/backstop_rules.c"
#include "../../src/daemon/backstop_proc.c"

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c) ((c) ? (void)0 : (fprintf(stderr, "backstop_proc fuzz: %s:%d: %s\n", __FILE__, __LINE__, #c), abort()))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[4096];
    size_t n = size < sizeof text - 1 ? size : sizeof text - 1;
    memcpy(text, data, n);
    text[n] = '\0';

    struct bs_stat st;
    if (bs_parse_stat(text, &st) < 0) {
        CHECK(st.state == '?' && st.start == 0 && st.ppid == 0);
    } else {
        const char *close = strrchr(text, ')');
        CHECK(close && close[2] == st.state);
        CHECK(st.ppid >= 0);
        (void)bs_stat_exiting(&st);
    }

    char cg[64];
    bs_parse_cgroup(text, cg, sizeof cg);
    CHECK(strlen(cg) < sizeof cg);
    if (cg[0]) {
        CHECK(strchr(cg, '\n') == NULL);
        CHECK(bs_cgroup_under(cg, cg) || cg[0] != '/');
    }
    return 0;
}

/* Fuzz target: the parsers of /proc text (src/common/procinfo.c and
 * hostpid.c) that the readers of /proc/<pid>/stat, status and cgroup call:
 * a process names itself (comm, up to 15 bytes of anything, spaces and
 * parentheses included), so a stat line is partly the process's own text.
 * The input goes to each parser as the text its reader would have read: cut
 * to the reader's buffer (stat 1023 bytes, status 2047), and for cgroup
 * split into the lines fgets would give (4095 bytes at most each).
 * Checks: the state is '?' exactly when the line does not parse, an NSpid
 * is never negative, a cgroup.procs path is one the caller can use (under
 * /sys/fs/cgroup, ending in /cgroup.procs) or none, and the lines the
 * kernel writes for the unified hierarchy ("0::/path") and the v1 pids
 * controller ("<n>:pids:/path") give the path of that cgroup.
 *
 * libFuzzer options: -max_len=8192 */
#include "gpumem/procinfo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) ((c) ? (void)0 : (fprintf(stderr, "procinfo fuzz: %s:%d: %s\n", __FILE__, __LINE__, #c), abort()))

static char *text(const uint8_t *data, size_t size, size_t max)
{
    size_t n = size < max ? size : max;
    char *s = malloc(n + 1);
    memcpy(s, data, n);
    s[n] = '\0';
    return s;
}

static int ends_with(const char *s, const char *tail)
{
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && strcmp(s + a - b, tail) == 0;
}

static void check_procs_path(const char *p)
{
    if (!*p)
        return;
    CHECK(strncmp(p, "/sys/fs/cgroup", 14) == 0);
    CHECK(ends_with(p, "/cgroup.procs"));
}

/* The two forms the kernel writes that must be recognised: "0::<path>"
 * (unified hierarchy) and "<n>:pids:<path>". */
static void check_known_line(const char *line, const char *v2, const char *v1)
{
    const char *cg, *ctl, *got;
    size_t n = strcspn(line, "\n");
    if (strncmp(line, "0::/", 4) == 0)
        cg = line + 3, ctl = "", got = v2;
    else if (line[0] >= '1' && line[0] <= '9' && (ctl = strstr(line, ":pids:/")) &&
             strspn(line, "0123456789") == (size_t)(ctl - line))
        cg = ctl + 6, ctl = "/pids", got = v1;
    else
        return;
    char want[8192];
    size_t cl = (size_t)(line + n - cg);
    if (cl == 1)
        cl = 0; /* the root: "/sys/fs/cgroup[/pids]/cgroup.procs" */
    snprintf(want, sizeof want, "/sys/fs/cgroup%s%.*s/cgroup.procs", ctl, (int)cl, cg);
    if (strlen(want) >= 4096)
        want[0] = '\0';
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "procinfo fuzz: cgroup line \"%.*s\" gave \"%s\", expected \"%s\"\n", (int)n, line, got, want);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char state = 'x';
    char *s = text(data, size, 1023);
    uint64_t st = gm_parse_proc_stat(s, &state);
    const char *close = strrchr(s, ')');
    CHECK((state == '?' && st == 0) || (close && close[1] == ' '));
    if (!close || close[1] != ' ')
        CHECK(state == '?' && st == 0);
    free(s);

    s = text(data, size, 2047);
    CHECK(gm_parse_nspid(s) >= 0);
    free(s);

    /* /proc/<pid>/cgroup, line by line as gm_proc_cgroup_procs reads it. */
    char v2[4096] = "", v1[4096] = "", line[4096];
    size_t p = 0;
    while (p < size) {
        size_t n = 0;
        while (p < size && n < sizeof line - 1) {
            char c = (char)data[p++];
            line[n++] = c;
            if (c == '\n')
                break;
        }
        line[n] = '\0';
        char orig[sizeof line];
        memcpy(orig, line, n + 1);
        gm_parse_cgroup_line(line, v2, sizeof v2, v1, sizeof v1);
        if (!memchr(orig, '\0', n))
            check_known_line(orig, v2, v1);
        check_procs_path(v2);
        check_procs_path(v1);
    }
    return 0;
}

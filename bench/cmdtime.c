/* cmdtime: wall-clock time of whole commands, exec to exit, side by side.
 *
 *   cmdtime [-n RUNS] [-w WARMUP] NAME [VAR=VALUE...] CMD [ARG...] [::: NAME ...]...
 *
 * Runs every command once per round, in the order given, for WARMUP
 * untimed rounds (default 3) and RUNS timed ones (default 50), so a load
 * that drifts during the run falls on all of them alike. Each start is a
 * posix_spawn (PATH searched) with stdin, stdout and stderr on /dev/null;
 * VAR=VALUE words after NAME are added to (or replace in) the environment
 * of that command only. "%n" in an argument becomes the start's number
 * (warm-ups included: 0, 1, ...), for commands that need a fresh name each
 * time. A command that exits non-zero (or dies) stops the benchmark.
 *
 * Prints one line per command:
 *   name=NAME runs=N median_us=M q1_us=A q3_us=B vs_first_us=+D ratio=xR
 * median and quartiles of the time from just before posix_spawn to
 * waitpid's return; vs_first and ratio compare medians with the first
 * command's (the baseline). Never judges the figures. */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "timing.h"

extern char **environ;

struct cmd {
    const char *name;
    char **env;                 /* environ with this command's VAR=VALUE */
    char **argv;                /* the template, with %n */
    int argc;
    long long *t;
};

/* The q-th quantile (0..1) of sorted v, interpolated, in microseconds. */
static double quantile_us(const long long *v, int n, double q)
{
    double pos = q * (n - 1);
    int i = (int)pos;
    double f = pos - i;
    double x = i + 1 < n ? v[i] + f * (double)(v[i + 1] - v[i]) : (double)v[i];
    return x / 1000.0;
}

static char **with_vars(char **vars, int nvars)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + (size_t)nvars + 1, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int replaced = 0;
        for (int j = 0; j < nvars; j++) {
            size_t len = (size_t)(strchr(vars[j], '=') - vars[j]) + 1;
            if (strncmp(environ[i], vars[j], len) == 0)
                replaced = 1;
        }
        if (!replaced)
            env[k++] = environ[i];
    }
    for (int j = 0; j < nvars; j++)
        env[k++] = vars[j];
    return env;
}

/* argv with every "%n" replaced by `run`. */
static char **expand(const struct cmd *c, int run, char *store, size_t storelen)
{
    static char *argv[256];
    size_t used = 0;
    for (int i = 0; i < c->argc && i < 255; i++) {
        const char *a = c->argv[i], *p = strstr(a, "%n");
        if (!p) {
            argv[i] = (char *)a;
            continue;
        }
        int n = snprintf(store + used, storelen - used, "%.*s%d%s", (int)(p - a), a, run, p + 2);
        if (n < 0 || (size_t)n >= storelen - used)
            return NULL;
        argv[i] = store + used;
        used += (size_t)n + 1;
    }
    argv[c->argc < 255 ? c->argc : 255] = NULL;
    return argv;
}

static void usage(void)
{
    fprintf(stderr, "usage: cmdtime [-n RUNS] [-w WARMUP] NAME [VAR=VALUE...] CMD [ARG...] [::: NAME ...]...\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int runs = 50, warm = 3, c;
    while ((c = getopt(argc, argv, "+n:w:")) != -1) {
        if (c == 'n')
            runs = atoi(optarg);
        else if (c == 'w')
            warm = atoi(optarg);
        else
            usage();
    }
    if (optind >= argc || runs < 1 || runs > 100000 || warm < 0)
        usage();

    struct cmd cmds[64];
    int ncmd = 0;
    for (int i = optind; i < argc;) {
        if (ncmd == 64)
            usage();
        struct cmd *m = &cmds[ncmd++];
        memset(m, 0, sizeof *m);
        m->name = argv[i++];
        int v0 = i;
        while (i < argc && strcmp(argv[i], ":::") != 0 && strchr(argv[i], '=') && argv[i][0] != '=')
            i++;
        if (!(m->env = with_vars(argv + v0, i - v0)))
            return 1;
        m->argv = argv + i;
        while (i < argc && strcmp(argv[i], ":::") != 0)
            i++;
        m->argc = (int)(argv + i - m->argv);
        if (m->argc == 0)
            usage();
        if (i < argc)
            i++; /* ::: */
        if (!(m->t = calloc((size_t)runs, sizeof(long long))))
            return 1;
    }

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    for (int fd = 0; fd < 3; fd++)
        posix_spawn_file_actions_addopen(&fa, fd, "/dev/null", fd ? O_WRONLY : O_RDONLY, 0);

    static char store[65536];
    for (int r = 0; r < warm + runs; r++)
        for (int k = 0; k < ncmd; k++) {
            struct cmd *m = &cmds[k];
            char **av = expand(m, r, store, sizeof store);
            if (!av)
                return fprintf(stderr, "cmdtime: %s: arguments too long\n", m->name), 1;
            pid_t pid;
            int status;
            long long t0 = now_ns();
            int rc = posix_spawnp(&pid, av[0], &fa, NULL, av, m->env);
            if (rc != 0)
                return fprintf(stderr, "cmdtime: %s: cannot start %s: %s\n", m->name, av[0], strerror(rc)), 1;
            if (waitpid(pid, &status, 0) != pid)
                return perror("cmdtime: waitpid"), 1;
            long long t = now_ns() - t0;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return fprintf(stderr, "cmdtime: %s (start %d) failed: %s %d\n", m->name, r,
                               WIFEXITED(status) ? "exit status" : "signal",
                               WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status)),
                       1;
            if (r >= warm)
                m->t[r - warm] = t;
        }

    double base = 0;
    for (int k = 0; k < ncmd; k++) {
        struct cmd *m = &cmds[k];
        qsort(m->t, (size_t)runs, sizeof m->t[0], cmp_ll);
        double med = quantile_us(m->t, runs, 0.5);
        if (k == 0)
            base = med;
        printf("name=%s runs=%d median_us=%.1f q1_us=%.1f q3_us=%.1f vs_first_us=%+.1f ratio=x%.2f\n", m->name,
               runs, med, quantile_us(m->t, runs, 0.25), quantile_us(m->t, runs, 0.75), med - base,
               base > 0 ? med / base : 0.0);
    }
    return 0;
}

/* startup: what the shim adds to a process's start-up.
 *
 *   startup [-n RUNS] [-m noop|cuda] PROBE
 *
 * Run it inside a group (`gpumem run --sim -- build/bench/startup ...`): it
 * starts PROBE (build/bench/alloc_pairs) RUNS times with the environment it
 * was given (LD_PRELOAD=libgpumem.so, GPUMEM_GROUP_DIR: "with") and RUNS
 * times with LD_PRELOAD and GPUMEM_GROUP_DIR removed ("without"),
 * alternating, and prints the medians of
 *   main_us   from just before posix_spawn to the probe's main()
 *             (loading the shim, its constructor)
 *   ready_us  (-m cuda) to the end of the probe's first cuMemAlloc+cuMemFree:
 *             dlopen of the driver, cuGetProcAddress lookups, cuInit, primary
 *             context, one pair; this is where the shim's lazy start-up (group
 *             mapping, slot claim, driver resolution) is paid
 *   exit_us   to the parent's waitpid() returning (includes exit handlers)
 * The probe reports CLOCK_MONOTONIC readings through a pipe. Prints one line
 * of key=value fields. */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "timing.h"

extern char **environ;

static double median_us(long long *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_ll);
    return (n % 2 ? (double)v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0) / 1000.0;
}

/* One start of the probe; returns 0 and fills the three durations (ns). */
static int one_run(const char *probe, int cuda, char **envp, int rfd, int wfd, long long out[3])
{
    char fdarg[16];
    snprintf(fdarg, sizeof fdarg, "%d", wfd);
    char *argv[] = {(char *)probe, "-S", fdarg, "-n", cuda ? "1" : "0", NULL};
    pid_t pid;
    long long t0 = now_ns();
    if (posix_spawn(&pid, probe, NULL, NULL, argv, envp) != 0)
        return -1;
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    long long t_exit = now_ns();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    long long t[2] = {0, 0};
    ssize_t want = (ssize_t)((cuda ? 2 : 1) * sizeof t[0]);
    if (read(rfd, t, (size_t)want) != want)
        return -1;
    out[0] = t[0] - t0;
    out[1] = cuda ? t[1] - t0 : 0;
    out[2] = t_exit - t0;
    return 0;
}

int main(int argc, char **argv)
{
    int runs = 200, cuda = 0, c;
    while ((c = getopt(argc, argv, "n:m:")) != -1) {
        if (c == 'n')
            runs = atoi(optarg);
        else if (c == 'm')
            cuda = strcmp(optarg, "cuda") == 0;
        else
            return fprintf(stderr, "usage: startup [-n RUNS] [-m noop|cuda] PROBE\n"), 2;
    }
    if (optind >= argc || runs < 1 || runs > 100000)
        return fprintf(stderr, "usage: startup [-n RUNS] [-m noop|cuda] PROBE\n"), 2;
    const char *probe = argv[optind];
    if (!getenv("LD_PRELOAD"))
        fprintf(stderr, "startup: warning: no LD_PRELOAD; run me under `gpumem run`\n");

    size_t n = 0;
    while (environ[n])
        n++;
    char **bare = calloc(n + 1, sizeof *bare);
    if (!bare)
        return 1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0 && strncmp(environ[i], "GPUMEM_GROUP_DIR=", 17) != 0)
            bare[k++] = environ[i];

    int p[2];
    if (pipe(p) != 0)
        return perror("pipe"), 1;
    long long *v[2][3];
    for (int s = 0; s < 2; s++)
        for (int f = 0; f < 3; f++)
            if (!(v[s][f] = calloc((size_t)runs, sizeof(long long))))
                return 1;
    for (int i = 0; i < runs; i++) {
        for (int j = 0; j < 2; j++) {
            int with = (i + j) % 2; /* alternate which goes first */
            long long d[3];
            if (one_run(probe, cuda, with ? environ : bare, p[0], p[1], d) < 0)
                return fprintf(stderr, "startup: probe run %d (%s shim) failed\n", i, with ? "with" : "without"), 1;
            for (int f = 0; f < 3; f++)
                v[with][f][i] = d[f];
        }
    }
    double m[2][3];
    for (int s = 0; s < 2; s++)
        for (int f = 0; f < 3; f++)
            m[s][f] = median_us(v[s][f], runs);
    printf("mode=%s runs=%d main_us_without=%.1f main_us_with=%.1f", cuda ? "cuda" : "noop", runs, m[0][0], m[1][0]);
    if (cuda)
        printf(" ready_us_without=%.1f ready_us_with=%.1f", m[0][1], m[1][1]);
    printf(" exit_us_without=%.1f exit_us_with=%.1f\n", m[0][2], m[1][2]);
    return 0;
}

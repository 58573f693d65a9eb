/* gpumem: per-container GPU memory limits, accounting and monitoring. */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct command commands[] = {
    {"run", cmd_run, "run a command in a new group under a GPU memory limit"},
    {"limit", cmd_limit, "show or change a running group's limit"},
    {"rm", cmd_rm, "remove a group (--force: kill its processes first)"},
    {"ps", cmd_ps, "list groups and their GPU memory use"},
    {"top", cmd_top, "live full-screen view of GPU memory by group"},
    {"inspect", cmd_inspect, "live allocations of a group: by API, size, age, call site"},
    {"install", cmd_install, "register gpumem with Docker (install docker [--default])"},
    {"uninstall", cmd_uninstall, "remove gpumem from Docker's daemon.json"},
    {"queue", cmd_queue, "starts waiting for their request to fit, reclaims in progress"},
    {"daemon", cmd_daemon, "serve Prometheus metrics, reclaim dead processes, log events"},
};

const char *die_name = "gpumem";

int die(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", die_name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return status;
}

/* Levenshtein distance, for "did you mean" (command names are short). */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[64];
    if (la >= 64 || lb >= 64)
        return 64;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

int is_help(const char *arg) { return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0; }

static void usage(FILE *out)
{
    fprintf(out, "Usage: gpumem COMMAND [OPTIONS]\n"
                 "\n"
                 "Hard GPU memory limits for containers and process trees: the applications of\n"
                 "a group see the limit as their GPU's size, and every byte they allocate on the\n"
                 "device, across all their processes, is counted against it.\n"
                 "\n"
                 "Commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n"
                 "Options:\n"
                 "  -h, --help   this help ('gpumem help COMMAND' for a command's)\n"
                 "  --version    print gpumem's version\n"
                 "\n"
                 "Run 'gpumem COMMAND --help' for a command's options.\n"
                 "\n"
                 "Environment:\n"
                 "  GPUMEM_STATE_DIR  where groups live (default /run/gpumem as root,\n"
                 "                    $XDG_RUNTIME_DIR/gpumem or /tmp/gpumem-<uid> otherwise)\n");
}

/* An argument that is no command: the closest one within two edits, when
 * exactly one is, as a suggestion. Returns the usage-error status. */
static int unknown_command(const char *word)
{
    const char *guess = NULL;
    size_t best = 3;
    int ties = 0;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        size_t d = edit_distance(word, commands[i].name);
        if (d < best) {
            best = d;
            guess = commands[i].name;
            ties = 0;
        } else if (d == best) {
            ties++;
        }
    }
    if (word[0] == '-')
        die(2, "unknown option \"%s\"", word);
    else if (guess && !ties)
        die(2, "unknown command \"%s\"; did you mean \"%s\"?", word, guess);
    else
        die(2, "unknown command \"%s\"", word);
    fprintf(stderr, "Run 'gpumem --help' for the commands.\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        die(2, "no command given");
        usage(stderr);
        return 2;
    }
    if (is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        if (argc > 2 && strcmp(argv[1], "help") == 0) {
            char *h[] = {argv[2], "--help", NULL};
            for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
                if (strcmp(commands[i].name, argv[2]) == 0)
                    return commands[i].run(2, h);
            return unknown_command(argv[2]);
        }
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("gpumem %s\n", GPUMEM_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, argv[1]) == 0) {
            /* One prefix for every message of the command, ours and
             * getopt's (which names argv[0]): "gpumem ps: ...". */
            static char name[64];
            snprintf(name, sizeof name, "gpumem %s", commands[i].name);
            die_name = name;
            argv[1] = name;
            return commands[i].run(argc - 1, argv + 1);
        }
    return unknown_command(argv[1]);
}

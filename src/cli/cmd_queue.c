/* gpumem queue: the starts waiting for their request to fit (gpumem run
 * --wait, gpumem-runtime with GPUMEM_WAIT), in the order they will be
 * admitted, and the reclaims in progress (docs/policy.md). */
#include "cli.h"
#include "gpumem/policy.h"

#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../daemon/policy.h"

static void queue_usage(FILE *out)
{
    fprintf(out, "Usage: gpumem queue [--format table|json] [--no-headers]\n"
                 "\n"
                 "Lists the starts waiting for their request to fit (gpumem run --wait,\n"
                 "containers started with GPUMEM_WAIT), in the order they are admitted:\n"
                 "higher priority first, then earlier arrival. A start is admitted when\n"
                 "no start before it wants the same GPU and its request fits beside the\n"
                 "requests of the groups there. Then the reclaims in progress: groups the\n"
                 "daemon asked to give memory back (notified, then killed after the grace\n"
                 "period) and for whom.\n"
                 "\n"
                 "Columns: POS (position), NAME (the group it will create), PRIORITY, REQUEST\n"
                 "(the largest on any GPU), WAITED (seconds), TIMEOUT (seconds, - = none),\n"
                 "PID (the waiting process), WHY (what it waits for).\n"
                 "\n"
                 "The queue is files under $GPUMEM_STATE_DIR/.queue, one per waiting start,\n"
                 "owned by the waiting process: it needs no daemon, and an entry whose\n"
                 "process died is dropped when it is listed.\n"
                 "\n"
                 "Options:\n"
                 "  --format FMT   table (default) or json: {\"queue\":[...],\"reclaims\":[...]},\n"
                 "                 bytes as integers\n"
                 "  --no-headers   the table without its header line\n"
                 "  -h, --help     show this help\n");
}

static uint64_t largest_request(const struct gm_queue_entry *e)
{
    uint64_t r = e->request_default;
    for (uint32_t i = 0; i < e->nreq && i < GM_MAX_DEVICES; i++)
        r = e->req[i].limit > r ? e->req[i].limit : r;
    return r;
}

int cmd_queue(int argc, char **argv)
{
    static const struct option opts[] = {
        {"format", required_argument, 0, 'f'}, {"no-headers", no_argument, 0, 'H'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0},
    };
    int json = 0, headers = 1, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "table") != 0)
                return die(2, "--format \"%s\": expected table or json", optarg);
            json = strcmp(optarg, "json") == 0;
            break;
        case 'H': headers = 0; break;
        case 'h': queue_usage(stdout); return 0;
        default: queue_usage(stderr); return 2;
        }
    }
    if (optind < argc)
        return die(2, "unexpected argument \"%s\"", argv[optind]);
    char state[PATH_MAX], p[16], a[32];
    gm_state_dir(state, sizeof state);
    struct gm_queue_entry *q;
    int n = gm_queue_list(state, &q);
    struct pl_reclaim *rc;
    int nr = pl_reclaims_load(state, &rc);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    if (json) {
        printf("{\"queue\":[");
        for (int i = 0; i < n; i++) {
            printf("%s{\"position\":%d,\"name\":", i ? "," : "", i + 1);
            json_str(q[i].name);
            printf(",\"priority\":%d,\"priority_name\":", (int)q[i].priority);
            json_str(gm_priority_name(q[i].priority, p, sizeof p));
            printf(",\"request\":%llu,\"pid\":%d,\"arrival_ns\":%llu,\"waited_seconds\":%.3f,\"timeout\":",
                   (unsigned long long)largest_request(&q[i]), (int)q[i].pid, (unsigned long long)q[i].arrival_ns,
                   now > q[i].arrival_ns ? (double)(now - q[i].arrival_ns) / 1e9 : 0.0);
            if (q[i].timeout < 0)
                printf("null");
            else
                printf("%.3f", q[i].timeout);
            printf(",\"why\":");
            json_str(q[i].why);
            printf("}");
        }
        printf("],\"reclaims\":[");
        for (int i = 0; i < nr; i++) {
            printf("%s{\"victim\":", i ? "," : "");
            json_str(rc[i].victim);
            printf(",\"for\":");
            json_str(rc[i].for_group);
            printf(",\"reason\":");
            json_str(rc[i].reason);
            printf(",\"uuid\":");
            json_str(rc[i].uuid);
            printf(",\"bytes\":%llu,\"notified_unix\":%.3f,\"kill_at_unix\":%.3f}", (unsigned long long)rc[i].bytes,
                   rc[i].notified, rc[i].kill_at);
        }
        printf("]}\n");
    } else {
        if (headers)
            printf("%-4s %-20s %-8s %10s %8s %8s %8s  %s\n", "POS", "NAME", "PRIORITY", "REQUEST", "WAITED", "TIMEOUT",
                   "PID", "WHY");
        for (int i = 0; i < n; i++) {
            char to[16] = "-";
            if (q[i].timeout >= 0)
                snprintf(to, sizeof to, "%.0f", q[i].timeout);
            printf("%-4d %-20s %-8s %10s %8.0f %8s %8d  %s\n", i + 1, q[i].name,
                   gm_priority_name(q[i].priority, p, sizeof p), gm_format_size(largest_request(&q[i]), a, sizeof a),
                   now > q[i].arrival_ns ? (double)(now - q[i].arrival_ns) / 1e9 : 0.0, to, (int)q[i].pid, q[i].why);
        }
        if (n == 0 && headers)
            printf("(no start is waiting)\n");
        for (int i = 0; i < nr; i++)
            printf("reclaiming %s for %s (%s): %s on %s, killed at %.0f unless it exits first\n", rc[i].victim,
                   rc[i].for_group, rc[i].reason, gm_format_size(rc[i].bytes, a, sizeof a), rc[i].uuid,
                   rc[i].kill_at);
    }
    free(q);
    free(rc);
    return 0;
}

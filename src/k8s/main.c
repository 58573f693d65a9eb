/* gpumem-k8s: the kubelet device plugin of gpumem (see plugin.h). */
#include "plugin.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static volatile int stop_requested;

static void on_signal(int sig)
{
    stop_requested = 1;
}

/* 1 when something accepts connections on `path`: another gpumem-k8s. A
 * socket file nobody listens on is what a killed plugin leaves: it is
 * replaced. */
static int socket_alive(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path)
        return 0;
    strcpy(a.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int alive = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return alive;
}

int main(int argc, char **argv)
{
    struct kp_options o;
    char err[1024];
    int rc = kp_parse_options(argc, argv, &o, err, sizeof err);
    if (rc == 1) {
        kp_usage(stdout);
        return 0;
    }
    if (rc == 2) {
        printf("gpumem-k8s %s\n", GPUMEM_VERSION);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "gpumem-k8s: %s\n", err);
        return 2;
    }
    if (*o.sim)
        setenv("GPUMEM_SIM_STATE", o.sim_state, 1);
    const char *socks[] = {"gpumem-memory.sock", "gpumem-gpu.sock"};
    for (int i = 0; i < (*o.gpu_resource ? 2 : 1); i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", o.dir, socks[i]);
        if (socket_alive(path)) {
            fprintf(stderr, "gpumem-k8s: %s is in use by another process (another gpumem-k8s?)\n", path);
            return 1;
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return kp_run(&o, &stop_requested);
}

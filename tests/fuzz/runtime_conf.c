/* Fuzz target: gpumem-runtime's own configuration file (src/runtime/config.c,
 * rt_config_load: /etc/gpumem/runtime.conf, lines of `key = value`), read
 * from a private file named by GPUMEM_RUNTIME_CONFIG. A refusal says why;
 * an accepted file gives a real runtime that is an executable, and every
 * path a string within its field.
 * Extra sources: FUZZ_EXTRA_runtime_conf in the Makefile.
 *
 * libFuzzer options: -max_len=16384 */
#include "../../src/runtime/runtime.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(c) ((c) ? (void)0 : (fprintf(stderr, "runtime_conf fuzz: %s:%d: %s\n", __FILE__, __LINE__, #c), abort()))

static char dir[4096], path[4200];

static void cleanup(void)
{
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!*dir) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/gpumem-fuzz-conf.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        CHECK(mkdtemp(dir) != NULL);
        snprintf(path, sizeof path, "%s/runtime.conf", dir);
        setenv("GPUMEM_RUNTIME_CONFIG", path, 1);
        atexit(cleanup);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && write(fd, data, size) == (ssize_t)size);
    close(fd);

    static struct rt_config c;
    char err[1024] = "";
    memset(&c, 'x', sizeof c);
    if (rt_config_load(&c, err, sizeof err) < 0) {
        CHECK(err[0] != '\0');
        return 0;
    }
    CHECK(memchr(c.runtime, '\0', sizeof c.runtime) && memchr(c.shim, '\0', sizeof c.shim) &&
          memchr(c.docker_root, '\0', sizeof c.docker_root));
    CHECK(c.runtime[0] && access(c.runtime, X_OK) == 0);
    CHECK(c.docker_root[0]);
    return 0;
}

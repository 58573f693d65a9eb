/* Fuzz target: validation of a group's two files (src/common/group_limits.c,
 * group_usage.c). gm_limits_map and gm_usage_map must refuse anything that
 * is not a file gpumem wrote (wrong size, magic, version, counts out of
 * range) and hand readers only what they can walk safely; the lock-free
 * readers (gm_limits_read, gm_limits_for, gm_usage_total) then run over
 * whatever was accepted. The admin mutex is left alone: it is a live lock
 * shared with the group's processes, not data to parse.
 *
 * Input: byte 0 picks the file (bit 0: limits or usage) and the form
 * (bit 1): the rest of the input is the whole file as is (sizes), or
 * patches over a file the real gm_group_create wrote (so the seeds follow
 * the layout when it changes): records of a 3-byte little-endian offset
 * (modulo the file's size), a length byte and that many bytes. The files
 * live in a private directory under $TMPDIR, made once. *
 * libFuzzer options: -max_len=4096
 */
#include "gpumem/group.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(c) ((c) ? (void)0 : (fprintf(stderr, "group_region fuzz: %s:%d: %s\n", __FILE__, __LINE__, #c), abort()))

static char dir[4096], path_limits[4200], path_usage[4200];
static unsigned char *tmpl_limits, *tmpl_usage;

static void remove_dir(void)
{
    gm_group_remove(dir);
}

static unsigned char *slurp(const char *path, size_t want)
{
    unsigned char *buf = malloc(want);
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0 && read(fd, buf, want) == (ssize_t)want);
    close(fd);
    return buf;
}

/* A real group, written once: its files are the templates patches apply to. */
static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/gpumem-fuzz-group.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    CHECK(mkdtemp(dir) != NULL);
    CHECK(rmdir(dir) == 0); /* gm_group_create makes it */
    struct gm_limits l;
    gm_limits_init(&l);
    l.default_limit = 4ULL << 30;
    l.ndev = 2;
    snprintf(l.dev[0].uuid, GM_UUID_LEN, "GPU-00000000-1111-2222-3333-444444444444");
    l.dev[0].limit = 1ULL << 30;
    snprintf(l.dev[1].uuid, GM_UUID_LEN, "GPU-55555555-6666-7777-8888-999999999999");
    l.dev[1].limit = 2ULL << 30;
    snprintf(l.name, sizeof l.name, "fuzz");
    char err[512];
    if (gm_group_create(dir, &l, 0600, err, sizeof err) < 0) {
        fprintf(stderr, "group_region fuzz: %s\n", err);
        abort();
    }
    atexit(remove_dir);
    snprintf(path_limits, sizeof path_limits, "%s/limits", dir);
    snprintf(path_usage, sizeof path_usage, "%s/usage", dir);
    tmpl_limits = slurp(path_limits, sizeof(struct gm_limits));
    tmpl_usage = slurp(path_usage, sizeof(struct gm_usage));
}

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && write(fd, data, len) == (ssize_t)len);
    close(fd);
}

static void check_limits(void)
{
    char err[512];
    const struct gm_limits *l = gm_limits_map(dir, err, sizeof err);
    if (!l) {
        CHECK(err[0] != '\0');
        return;
    }
    CHECK(l->magic == GM_LIMITS_MAGIC && l->version == GM_LAYOUT_VERSION && l->size == sizeof *l);
    /* What readers (gpumem limit, ps, the daemon) walk must be in bounds. */
    CHECK(l->ndev <= GM_MAX_DEVICES);
    for (uint32_t i = 0; i < l->ndev; i++)
        CHECK(memchr(l->dev[i].uuid, '\0', GM_UUID_LEN) != NULL);
    struct gm_limits copy;
    if (gm_limits_read(l, &copy) == 0) {
        CHECK(copy.ndev <= GM_MAX_DEVICES);
        for (uint32_t i = 0; i < copy.ndev; i++)
            gm_limits_for(l, copy.dev[i].uuid);
    }
    gm_limits_for(l, "GPU-00000000-1111-2222-3333-444444444444");
    gm_limits_for(l, "");
    gm_limits_unmap(l);
}

static void check_usage(void)
{
    char err[512];
    struct gm_usage *u = gm_usage_map(dir, err, sizeof err);
    if (!u) {
        CHECK(err[0] != '\0');
        return;
    }
    CHECK(u->magic == GM_USAGE_MAGIC && u->version == GM_LAYOUT_VERSION && u->size == sizeof *u);
    CHECK(atomic_load(&u->slots_hw) <= GM_MAX_PROCS && atomic_load(&u->ndev) <= GM_MAX_DEVICES);
    uint64_t sum = 0;
    for (int d = 0; d < GM_MAX_DEVICES; d++)
        sum += gm_usage_total(u, d);
    (void)sum;
    gm_usage_unmap(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned char *img;
    if (!tmpl_limits) {
        setup();
        img = malloc(sizeof(struct gm_usage));
    }
    if (size == 0)
        return 0;
    int usage = data[0] & 1, raw = data[0] & 2;
    const char *path = usage ? path_usage : path_limits;
    size_t len = usage ? sizeof(struct gm_usage) : sizeof(struct gm_limits);
    if (raw) {
        write_file(path, data + 1, size - 1);
    } else {
        memcpy(img, usage ? tmpl_usage : tmpl_limits, len);
        size_t p = 1;
        while (p + 4 <= size) {
            size_t off = (data[p] | (size_t)data[p + 1] << 8 | (size_t)data[p + 2] << 16) % len, n = data[p + 3];
            p += 4;
            if (n > size - p)
                n = size - p;
            if (n > len - off)
                n = len - off;
            memcpy(img + off, data + p, n);
            p += n;
        }
        write_file(path, img, len);
    }
    if (usage)
        check_usage();
    else
        check_limits();
    return 0;
}

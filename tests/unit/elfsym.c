/* The out-of-process symbolizer (src/common/elfsym.c): /proc/<pid>/maps
 * lines, the symbol rules on hand-built ELF images, real addresses of this
 * process and of a forked child (our own function through .symtab, libc's
 * through .dynsym), mapped copies of our executable with spaces in the path,
 * deleted and replaced, with and without map_files, and truncated,
 * corrupted and bit-flipped copies of our executable, which must be refused
 * without a read outside them (the suite also runs under ASan+UBSan). */
#include "../testlib.h"
#include "gpumem/elfsym.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers --------------------------------------------------------- */

/* A function of this binary: the unit tests are linked without -rdynamic,
 * so only .symtab names it. */
int elfsym_test_target(volatile int *p, int n);
__attribute__((noinline)) int elfsym_test_target(volatile int *p, int n)
{
    int sum = 0;
    for (int i = 0; i < n; i++)
        sum += p[i] * (i + 1);
    return sum;
}

static uint64_t target_addr(void)
{
    return (uint64_t)(uintptr_t)&elfsym_test_target;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static int read_file(const char *path, unsigned char **data, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *len = (size_t)st.st_size;
    *data = malloc(*len);
    size_t got = 0;
    while (*data && got < *len) {
        ssize_t r = read(fd, *data + got, *len - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!*data || got != *len) {
        free(*data);
        return -1;
    }
    return 0;
}

static int write_file(const char *path, const unsigned char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int ok = write(fd, data, len) == (ssize_t)len;
    return close(fd) == 0 && ok ? 0 : -1;
}

/* Our own /proc/self/maps line that holds addr. */
static int self_mapping(uint64_t addr, struct gm_map_line *out, char *path, size_t path_size)
{
    char line[4096];
    FILE *f = fopen("/proc/self/maps", "re");
    int found = -1;
    while (f && found && fgets(line, sizeof line, f)) {
        struct gm_map_line m;
        if (gm_maps_parse_line(line, &m) == 0 && addr >= m.start && addr < m.end) {
            *out = m;
            snprintf(path, path_size, "%.*s", (int)m.path_len, m.path);
            out->path = NULL;
            found = 0;
        }
    }
    if (f)
        fclose(f);
    return found;
}

/* This executable's bytes, and the ELF vaddr of elfsym_test_target in it. */
struct self_image {
    unsigned char *img;
    size_t len;
    uint64_t vaddr;
};

static int load_self_image(struct self_image *e)
{
    struct gm_map_line m;
    char path[4096];
    if (read_file("/proc/self/exe", &e->img, &e->len) != 0)
        return -1;
    if (self_mapping(target_addr(), &m, path, sizeof path) != 0 ||
        gm_elf_offset_to_vaddr(e->img, e->len, target_addr() - m.start + m.offset, &e->vaddr) != 0) {
        free(e->img);
        return -1;
    }
    return 0;
}

#define LOAD_SELF_IMAGE(e) do { if (load_self_image(&(e)) != 0) SKIP("cannot read /proc/self/exe"); } while (0)

/* A name returned by gm_elf_symbol_at must be a string inside the image. */
static int name_inside(const unsigned char *img, size_t len, const char *name)
{
    const unsigned char *n = (const unsigned char *)name;
    return n >= img && n < img + len && memchr(n, '\0', (size_t)(img + len - n)) != NULL;
}

/* ---- /proc/<pid>/maps lines ------------------------------------------ */

static int path_is(const struct gm_map_line *m, const char *want)
{
    return m->path_len == strlen(want) && memcmp(m->path, want, m->path_len) == 0;
}

TEST(maps_lines)
{
    struct gm_map_line m;
    CHECK_EQ_INT(gm_maps_parse_line("7f2a1c000000-7f2a1c021000 r-xp 00002000 fd:01 1234   "
                                    "/usr/lib/x86_64-linux-gnu/libc.so.6\n", &m), 0);
    CHECK_EQ_U64(m.start, 0x7f2a1c000000ull);
    CHECK_EQ_U64(m.end, 0x7f2a1c021000ull);
    CHECK_EQ_U64(m.offset, 0x2000);
    CHECK_EQ_U64(m.dev_major, 0xfd);
    CHECK_EQ_U64(m.dev_minor, 1);
    CHECK_EQ_U64(m.inode, 1234);
    CHECK_STR(m.perms, "r-xp");
    CHECK(path_is(&m, "/usr/lib/x86_64-linux-gnu/libc.so.6"));
    CHECK_EQ_INT(m.deleted, 0);

    /* Anonymous: the inode ends the line, with or without a blank after it. */
    CHECK_EQ_INT(gm_maps_parse_line("7ffd0000-7ffd1000 rw-p 00000000 00:00 0 \n", &m), 0);
    CHECK(m.path_len == 0 && m.inode == 0);
    CHECK_EQ_INT(gm_maps_parse_line("7ffd0000-7ffd1000 rw-p 00000000 00:00 0\n", &m), 0);
    CHECK(m.path_len == 0);
    CHECK_EQ_INT(gm_maps_parse_line("7ffd0000-7ffd1000 rw-p 00000000 00:00 0", &m), 0);
    CHECK(m.path_len == 0);
    CHECK_EQ_INT(gm_maps_parse_line("ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0"
                                    "                  [vsyscall]\n", &m), 0);
    CHECK(path_is(&m, "[vsyscall]"));
    CHECK_STR(m.perms, "--xp");

    /* Spaces inside the path; " (deleted)" cut off; both. */
    CHECK_EQ_INT(gm_maps_parse_line("1000-2000 r--s 00000000 103:02 99 /tmp/my dir/lib x.so\n", &m), 0);
    CHECK(path_is(&m, "/tmp/my dir/lib x.so"));
    CHECK_EQ_U64(m.dev_major, 0x103);
    CHECK_EQ_INT(gm_maps_parse_line("1000-2000 r-xp 00001000 08:01 77 /tmp/a b.so (deleted)\n", &m), 0);
    CHECK(path_is(&m, "/tmp/a b.so"));
    CHECK_EQ_INT(m.deleted, 1);
    CHECK_EQ_INT(gm_maps_parse_line("1000-2000 rw-s 00000000 00:01 5 /memfd:x (deleted)", &m), 0);
    CHECK(path_is(&m, "/memfd:x") && m.deleted);
    /* Only the first line counts. */
    CHECK_EQ_INT(gm_maps_parse_line("1000-2000 r-xp 00000000 08:01 7 /a\n3000-4000 r-xp 0 0:0 0 /b\n", &m), 0);
    CHECK(path_is(&m, "/a"));

    /* The extremes of 64 bits, and one past them. */
    CHECK_EQ_INT(gm_maps_parse_line("fffffffffffff000-ffffffffffffffff r--p ffffffffffffffff ffffffff:ffffffff "
                                    "18446744073709551615 /x", &m), 0);
    CHECK_EQ_U64(m.inode, UINT64_MAX);
    CHECK_EQ_U64(m.offset, UINT64_MAX);
    CHECK_EQ_INT(gm_maps_parse_line("1fffffffffffff000-2000 r--p 0 0:0 0", &m), -1);
    CHECK_EQ_INT(gm_maps_parse_line("1000-2000 r--p 10000000000000000 0:0 0", &m), -1);
    CHECK_EQ_INT(gm_maps_parse_line("1000-2000 r--p 0 100000000:0 0", &m), -1);
    CHECK_EQ_INT(gm_maps_parse_line("1000-2000 r--p 0 0:0 18446744073709551616 /x", &m), -1);

    /* Not the format. */
    static const char *const bad[] = {
        "", "\n", "garbage", "1000-2000", "1000-2000 r-xp", "1000-2000 r-xp 0", "1000-2000 r-xp 0 08:01",
        "2000-1000 r-xp 0 0:0 0",          /* start after end */
        "1000-1000 r-xp 0 0:0 0",          /* empty */
        "0x1000-0x2000 r-xp 0 0:0 0",      /* C prefixes */
        "+1000-2000 r-xp 0 0:0 0", " 1000-2000 r-xp 0 0:0 0", "-2000 r-xp 0 0:0 0",
        "1000-2000\tr-xp 0 0:0 0", "1000-2000  r-xp 0 0:0 0",
        "1000-2000 rwxq 0 0:0 0", "1000-2000 r-x 0 0:0 0", "1000-2000 rwxpp 0 0:0 0", "1000-2000 xwrp 0 0:0 0",
        "1000-2000 r-xp 0 08-01 0", "1000-2000 r-xp 0 :01 0", "1000-2000 r-xp 0 08:01 -1 /x",
        "1000-2000 r-xp 0 08:01 12a /x", "1000-2000 r-xp 0 08:01 /x", "10g0-2000 r-xp 0 0:0 0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (gm_maps_parse_line(bad[i], &m) != -1) {
            printf("# accepted: \"%s\"\n", bad[i]);
            CHECK(0);
        }
    CHECK_EQ_INT(gm_maps_parse_line(NULL, &m), -1);
}

/* ---- the symbol rules, on a hand-built image ------------------------- */

/* Layout: header, 3 program headers at 64, 6 section headers at 0x200
 * (null, .text, .data, .symtab, .strtab, .dynsym, .dynstr); tables at 0x400.. */
enum { IMG = 0x1000, SH_OFF = 0x200, NSEC = 7, SYM_OFF = 0x600, STR_OFF = 0x900, DSYM_OFF = 0xa00, DSTR_OFF = 0xb00 };

struct builder {
    unsigned char b[IMG];
    size_t nsym, strlen_, ndsym, dstrlen;
};

static void put(struct builder *g, size_t off, const void *p, size_t n) { memcpy(g->b + off, p, n); }

static void add_sym(struct builder *g, int dyn, const char *name, uint64_t value, uint64_t size, int bind, int type,
                    uint16_t shndx)
{
    size_t *n = dyn ? &g->ndsym : &g->nsym, *sl = dyn ? &g->dstrlen : &g->strlen_;
    size_t str = dyn ? DSTR_OFF : STR_OFF;
    Elf64_Sym s = {0};
    s.st_name = name ? (uint32_t)*sl : 9999;
    s.st_info = ELF64_ST_INFO(bind, type);
    s.st_shndx = shndx;
    s.st_value = value;
    s.st_size = size;
    put(g, (dyn ? DSYM_OFF : SYM_OFF) + ++*n * sizeof s, &s, sizeof s); /* entry 0 stays null */
    if (name) {
        put(g, str + *sl, name, strlen(name) + 1);
        *sl += strlen(name) + 1;
    }
}

static void section(struct builder *g, int i, uint32_t type, uint64_t flags, uint64_t addr, uint64_t off,
                    uint64_t size, uint32_t link)
{
    Elf64_Shdr sh = {0};
    sh.sh_type = type;
    sh.sh_flags = flags;
    sh.sh_addr = addr;
    sh.sh_offset = off;
    sh.sh_size = size;
    sh.sh_link = link;
    sh.sh_entsize = type == SHT_SYMTAB || type == SHT_DYNSYM ? sizeof(Elf64_Sym) : 0;
    put(g, SH_OFF + (size_t)i * sizeof sh, &sh, sizeof sh);
}

static void build(struct builder *g, uint16_t type, uint64_t base)
{
    memset(g, 0, sizeof *g);
    g->strlen_ = g->dstrlen = 1; /* string 0 is "" */
    Elf64_Ehdr eh = {0};
    memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = type;
    eh.e_machine = EM_X86_64;
    eh.e_version = EV_CURRENT;
    eh.e_phoff = 64;
    eh.e_shoff = SH_OFF;
    eh.e_ehsize = sizeof eh;
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = 3;
    eh.e_shentsize = sizeof(Elf64_Shdr);
    eh.e_shnum = NSEC;
    put(g, 0, &eh, sizeof eh);
    /* Offsets [0, 0x800) at base, a note, [0x800, 0xc00) at base + 0x200800. */
    Elf64_Phdr ph[3] = {{0}};
    ph[0].p_type = PT_LOAD, ph[0].p_offset = 0, ph[0].p_vaddr = base, ph[0].p_filesz = 0x800;
    ph[1].p_type = PT_NOTE, ph[1].p_offset = 0x800, ph[1].p_vaddr = base + 0x5000, ph[1].p_filesz = 0x800;
    ph[2].p_type = PT_LOAD, ph[2].p_offset = 0x800, ph[2].p_vaddr = base + 0x200800, ph[2].p_filesz = 0x400;
    put(g, 64, ph, sizeof ph);

    /* .text is [0x1000, 0x2000); .data [0x3000, 0x3100). */
    add_sym(g, 0, "sized", 0x1100, 0x20, STB_GLOBAL, STT_FUNC, 1);
    add_sym(g, 0, "inner", 0x1108, 4, STB_LOCAL, STT_OBJECT, 1);
    add_sym(g, 0, "__alias", 0x1200, 0x10, STB_GLOBAL, STT_FUNC, 1);
    add_sym(g, 0, "alias", 0x1200, 0x10, STB_WEAK, STT_FUNC, 1);
    add_sym(g, 0, "a", 0x1200, 0x10, STB_LOCAL, STT_FUNC, 1);
    add_sym(g, 0, "label", 0x1300, 0, STB_LOCAL, STT_FUNC, 1);
    add_sym(g, 0, "label2", 0x1380, 0, STB_LOCAL, STT_FUNC, 1);
    add_sym(g, 0, "sized2", 0x1400, 0x10, STB_GLOBAL, STT_FUNC, 1);
    add_sym(g, 0, "zero_object", 0x1500, 0, STB_GLOBAL, STT_OBJECT, 1);
    add_sym(g, 0, "undefined", 0, 0x100000, STB_GLOBAL, STT_FUNC, SHN_UNDEF);
    add_sym(g, 0, "notype", 0x1600, 0x10, STB_GLOBAL, STT_NOTYPE, 1);
    add_sym(g, 0, "in_data", 0x1700, 0, STB_GLOBAL, STT_FUNC, 2);
    add_sym(g, 0, NULL, 0x1800, 0x10, STB_GLOBAL, STT_FUNC, 1); /* name outside the strings */
    add_sym(g, 0, "ifunc", 0x1a00, 0x10, STB_GLOBAL, STT_GNU_IFUNC, 1);
    add_sym(g, 0, "variable", 0x3000, 8, STB_GLOBAL, STT_OBJECT, 2);
    add_sym(g, 1, "dyn_sized", 0x1100, 0x20, STB_GLOBAL, STT_FUNC, 1);
    add_sym(g, 1, "dyn_only", 0x1900, 0x10, STB_GLOBAL, STT_FUNC, 1);

    section(g, 1, SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, 0x1000, 0, 0x1000, 0);
    section(g, 2, SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, 0x3000, 0, 0x100, 0);
    section(g, 3, SHT_SYMTAB, 0, 0, SYM_OFF, (g->nsym + 1) * sizeof(Elf64_Sym), 4);
    section(g, 4, SHT_STRTAB, 0, 0, STR_OFF, g->strlen_, 0);
    section(g, 5, SHT_DYNSYM, SHF_ALLOC, 0, DSYM_OFF, (g->ndsym + 1) * sizeof(Elf64_Sym), 6);
    section(g, 6, SHT_STRTAB, SHF_ALLOC, 0, DSTR_OFF, g->dstrlen, 0);
}

/* "name+0xoff" for vaddr, or "-" when nothing names it. */
static const char *lookup(const void *img, size_t len, uint64_t vaddr)
{
    static char buf[128];
    const char *name;
    uint64_t off;
    if (gm_elf_symbol_at(img, len, vaddr, &name, &off) != 0)
        return "-";
    snprintf(buf, sizeof buf, "%s+0x%" PRIx64, name, off);
    return buf;
}

TEST(symbol_rules)
{
    static struct builder g;
    build(&g, ET_DYN, 0);
    CHECK_STR(lookup(g.b, IMG, 0x1100), "sized+0x0");
    CHECK_STR(lookup(g.b, IMG, 0x111f), "sized+0x1f");
    CHECK_STR(lookup(g.b, IMG, 0x1109), "inner+0x1");  /* the innermost */
    CHECK_STR(lookup(g.b, IMG, 0x1203), "alias+0x3");  /* weak "alias" over "__alias" and local "a" */
    CHECK_STR(lookup(g.b, IMG, 0x1350), "label+0x50"); /* size 0: the nearest before */
    CHECK_STR(lookup(g.b, IMG, 0x1390), "label2+0x10");
    CHECK_STR(lookup(g.b, IMG, 0x1450), "-");          /* after sized2, which ends first */
    CHECK_STR(lookup(g.b, IMG, 0x1508), "-");          /* size-0 objects name nothing */
    CHECK_STR(lookup(g.b, IMG, 0x1605), "-");          /* STT_NOTYPE */
    CHECK_STR(lookup(g.b, IMG, 0x1710), "-");          /* size 0 in another section */
    CHECK_STR(lookup(g.b, IMG, 0x1805), "-");          /* its name is outside the table */
    CHECK_STR(lookup(g.b, IMG, 0x1905), "dyn_only+0x5"); /* .dynsym when .symtab names nothing */
    CHECK_STR(lookup(g.b, IMG, 0x1a0f), "ifunc+0xf");
    CHECK_STR(lookup(g.b, IMG, 0x3004), "variable+0x4");
    CHECK_STR(lookup(g.b, IMG, 0x50), "-");            /* the undefined symbol covers it, and counts not */
    CHECK_STR(lookup(g.b, IMG, UINT64_MAX), "-");

    /* Without .symtab (stripped), .dynsym names what it can. */
    Elf64_Shdr sh;
    memcpy(&sh, g.b + SH_OFF + 3 * sizeof sh, sizeof sh);
    sh.sh_type = SHT_PROGBITS;
    memcpy(g.b + SH_OFF + 3 * sizeof sh, &sh, sizeof sh);
    CHECK_STR(lookup(g.b, IMG, 0x1105), "dyn_sized+0x5");
    CHECK_STR(lookup(g.b, IMG, 0x1350), "-");

    /* More than 0xff00 sections: e_shnum 0, the count in section 0. */
    build(&g, ET_DYN, 0);
    Elf64_Ehdr eh;
    memcpy(&eh, g.b, sizeof eh);
    eh.e_shnum = 0;
    memcpy(g.b, &eh, sizeof eh);
    section(&g, 0, SHT_NULL, 0, 0, 0, NSEC, 0);
    CHECK_STR(lookup(g.b, IMG, 0x1105), "sized+0x5");

    /* Not an executable or a shared object. */
    eh.e_type = ET_REL;
    memcpy(g.b, &eh, sizeof eh);
    CHECK_STR(lookup(g.b, IMG, 0x1105), "-");
}

TEST(offset_to_vaddr)
{
    static struct builder g;
    uint64_t v = 0;
    build(&g, ET_DYN, 0);
    CHECK_EQ_INT(gm_elf_offset_to_vaddr(g.b, IMG, 0x10, &v), 0);
    CHECK_EQ_U64(v, 0x10);
    CHECK_EQ_INT(gm_elf_offset_to_vaddr(g.b, IMG, 0x804, &v), 0); /* the second PT_LOAD, not the note */
    CHECK_EQ_U64(v, 0x200804);
    CHECK_EQ_INT(gm_elf_offset_to_vaddr(g.b, IMG, 0xbff, &v), 0);
    CHECK_EQ_INT(gm_elf_offset_to_vaddr(g.b, IMG, 0xc00, &v), -1);
    CHECK_EQ_INT(gm_elf_offset_to_vaddr(g.b, IMG, UINT64_MAX, &v), -1);

    /* A non-PIE executable is laid out at its link address. */
    build(&g, ET_EXEC, 0x400000);
    CHECK_EQ_INT(gm_elf_offset_to_vaddr(g.b, IMG, 0x10, &v), 0);
    CHECK_EQ_U64(v, 0x400010);

    /* 0xffff program headers: the count is in section 0's sh_info. */
    Elf64_Ehdr eh;
    memcpy(&eh, g.b, sizeof eh);
    eh.e_phnum = PN_XNUM;
    memcpy(g.b, &eh, sizeof eh);
    Elf64_Shdr s0 = {0};
    s0.sh_info = 3;
    memcpy(g.b + SH_OFF, &s0, sizeof s0);
    CHECK_EQ_INT(gm_elf_offset_to_vaddr(g.b, IMG, 0x804, &v), 0);
    CHECK_EQ_U64(v, 0x600804);
    s0.sh_info = 0xffffffffu; /* more than the image holds */
    memcpy(g.b + SH_OFF, &s0, sizeof s0);
    CHECK_EQ_INT(gm_elf_offset_to_vaddr(g.b, IMG, 0x804, &v), -1);
}

/* ---- live processes -------------------------------------------------- */

static const char *exe_base(void)
{
    static char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    path[n > 0 ? n : 0] = '\0';
    return base_name(path);
}

static void *libc_symbol(const char *name)
{
    void *h = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    return h ? dlsym(h, name) : NULL; /* libc's own, not a sanitizer's interceptor */
}

/* What process `pid` (this image) says for our function and libc's qsort. */
static int symbolize_known(pid_t pid, char *fn, char *libc, size_t n)
{
    struct gm_symbolizer *s = gm_symbolizer_open(pid);
    void *q = libc_symbol("qsort");
    if (!s || !q)
        return -1;
    gm_symbolize(s, target_addr() + 5, fn, n);
    gm_symbolize(s, (uint64_t)(uintptr_t)q + 3, libc, n);
    gm_symbolizer_close(s);
    return 0;
}

TEST(this_process)
{
    char want[512], fn[512], libc[512];
    CHECK_EQ_INT(symbolize_known(getpid(), fn, libc, sizeof fn), 0);
    snprintf(want, sizeof want, "%s(elfsym_test_target+0x5)", exe_base());
    CHECK_STR(fn, want);
    CHECK_STR(libc, "libc.so.6(qsort+0x3)");

    struct gm_symbolizer *s = gm_symbolizer_open(getpid());
    CHECK(s != NULL);
    /* An IFUNC's implementation (strlen's is not in .dynsym): still libc's. */
    char out[512];
    void *sl = libc_symbol("strlen");
    CHECK(sl != NULL);
    gm_symbolize(s, (uint64_t)(uintptr_t)sl + 3, out, sizeof out);
    CHECK(strncmp(out, "libc.so.6", 9) == 0 && (out[9] == '(' || out[9] == '+'));
    CHECK(out[9] == '+' || strstr(out, "strlen") != NULL);
    /* Aliases: the name without underscores ("getpid", not "__getpid"). */
    void *gp = libc_symbol("__getpid");
    if (gp && gp == libc_symbol("getpid"))
        CHECK_STR(gm_symbolize(s, (uint64_t)(uintptr_t)gp + 1, out, sizeof out), "libc.so.6(getpid+0x1)");
    gm_symbolizer_close(s);
}

TEST(forked_child)
{
    char want[512], fn[512] = "", libc[512] = "";
    int p[2];
    CHECK_EQ_INT(pipe(p), 0);
    pid_t c = fork();
    CHECK(c >= 0);
    if (c == 0) {
        char ch;
        close(p[1]);
        while (read(p[0], &ch, 1) < 0 && errno == EINTR)
            ;
        _exit(0);
    }
    close(p[0]);
    int r = symbolize_known(c, fn, libc, sizeof fn);
    close(p[1]);
    waitpid(c, NULL, 0);
    CHECK_EQ_INT(r, 0);
    snprintf(want, sizeof want, "%s(elfsym_test_target+0x5)", exe_base());
    CHECK_STR(fn, want);
    CHECK_STR(libc, "libc.so.6(qsort+0x3)");

    /* Gone now. */
    errno = 0;
    CHECK(gm_symbolizer_open(c) == NULL);
    CHECK(errno == ENOENT || errno == ESRCH);
    CHECK(gm_symbolizer_open(0) == NULL);
    CHECK(gm_symbolizer_open(-1) == NULL);
}

/* A zombie has no mappings left: an empty view, not an error. */
TEST(zombie_has_no_mappings)
{
    char out[64], state = 0, path[64], line[512];
    pid_t c = fork();
    CHECK(c >= 0);
    if (c == 0)
        _exit(0);
    snprintf(path, sizeof path, "/proc/%d/stat", (int)c);
    for (int i = 0; i < 2000 && state != 'Z'; i++) {
        FILE *f = fopen(path, "re");
        const char *paren = f && fgets(line, sizeof line, f) ? strrchr(line, ')') : NULL;
        state = paren && paren[1] ? paren[2] : 0;
        if (f)
            fclose(f);
        if (state != 'Z')
            usleep(1000);
    }
    struct gm_symbolizer *s = state == 'Z' ? gm_symbolizer_open(c) : NULL;
    const char *got = s ? gm_symbolize(s, target_addr(), out, sizeof out) : "(none)";
    gm_symbolizer_close(s);
    waitpid(c, NULL, 0);
    CHECK(state == 'Z');
    CHECK_STR(got, "?");
}

TEST(unmapped_and_anonymous)
{
    char out[64];
    /* One read-write page between two inaccessible ones: its own mapping. */
    char *pages = mmap(NULL, 3 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(pages != MAP_FAILED);
    CHECK_EQ_INT(mprotect(pages + 4096, 4096, PROT_READ | PROT_WRITE), 0);
    struct gm_symbolizer *s = gm_symbolizer_open(getpid());
    CHECK(s != NULL);
    CHECK_STR(gm_symbolize(s, (uint64_t)(uintptr_t)pages + 4096 + 0x10, out, sizeof out), "[anon]+0x10");
    CHECK_STR(gm_symbolize(s, 0, out, sizeof out), "?");
    CHECK_STR(gm_symbolize(s, 0x10, out, sizeof out), "?");
    CHECK_STR(gm_symbolize(s, UINT64_MAX, out, sizeof out), "?");
    /* Small buffers: cut, always terminated; none at all: untouched. */
    CHECK_STR(gm_symbolize(s, (uint64_t)(uintptr_t)pages + 4096, out, 5), "[ano");
    CHECK_STR(gm_symbolize(s, (uint64_t)(uintptr_t)pages + 4096, out, 1), "");
    out[0] = 'x';
    CHECK(gm_symbolize(s, (uint64_t)(uintptr_t)pages + 4096, out, 0) == out && out[0] == 'x');
    gm_symbolizer_close(s);
    munmap(pages, 3 * 4096);
    CHECK_STR(gm_symbolize(NULL, 0x1234, out, sizeof out), "?");
    gm_symbolizer_close(NULL);
}

__attribute__((format(printf, 3, 4))) static void say(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
}
#define FAIL_WITH(...) do { say(why, n, __VA_ARGS__); goto out; } while (0)

/* Our executable copied to "/tmp/gm elfsym XXXXXX/copy of exe" and mapped
 * twice (its code, its first page); then deleted, and an impostor put at
 * its path. "" in why when every answer was right. */
static void copies_scenario(char *why, size_t n)
{
    char dir[] = "/tmp/gm elfsym XXXXXX", path[256], mf[128], out[512], want[512];
    unsigned char *img = NULL;
    size_t len;
    struct gm_map_line m;
    char *text = MAP_FAILED, *head = MAP_FAILED;
    struct gm_symbolizer *s = NULL;
    int fd = -1;
    why[0] = '\0';
    path[0] = '\0';
    if (!mkdtemp(dir))
        FAIL_WITH("mkdtemp: %s", strerror(errno));
    snprintf(path, sizeof path, "%s/copy of exe", dir);
    if (read_file("/proc/self/exe", &img, &len) != 0 || write_file(path, img, len) != 0)
        FAIL_WITH("copy /proc/self/exe to %s", path);
    if (self_mapping(target_addr(), &m, mf, sizeof mf) != 0 || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        FAIL_WITH("our own mapping");
    text = mmap(NULL, m.end - m.start, PROT_READ, MAP_PRIVATE, fd, (off_t)m.offset);
    head = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    if (text == MAP_FAILED || head == MAP_FAILED)
        FAIL_WITH("mmap: %s", strerror(errno));
    uint64_t fn = (uint64_t)(uintptr_t)text + (target_addr() - m.start) + 5;
    snprintf(want, sizeof want, "copy of exe(elfsym_test_target+0x5)");
    if (!(s = gm_symbolizer_open(getpid())))
        FAIL_WITH("open: %s", strerror(errno));
    if (strcmp(gm_symbolize(s, fn, out, sizeof out), want) != 0)
        FAIL_WITH("copy: \"%s\", expected \"%s\"", out, want);
    if (strncmp(gm_symbolize(s, (uint64_t)(uintptr_t)head, out, sizeof out), "copy of exe+0x", 14) != 0)
        FAIL_WITH("its first page: \"%s\"", out);
    gm_symbolizer_close(s);

    /* Deleted, and an impostor at its path (our executable with the
     * function renamed): never to be read for it. */
    for (unsigned char *at = img; (at = memmem(at, len - (size_t)(at - img), "elfsym_test_target", 18)); at += 18)
        memcpy(at, "elfsym_test_IMPOST", 18);
    if (unlink(path) != 0 || write_file(path, img, len) != 0)
        FAIL_WITH("replace %s: %s", path, strerror(errno));
    snprintf(mf, sizeof mf, "/proc/self/map_files/%" PRIx64 "-%" PRIx64, (uint64_t)(uintptr_t)text,
             (uint64_t)(uintptr_t)text + (m.end - m.start));
    int mf_fd = open(mf, O_RDONLY | O_CLOEXEC);
    if (mf_fd >= 0)
        close(mf_fd);
    else
        snprintf(want, sizeof want, "copy of exe+0x%" PRIx64, target_addr() - m.start + m.offset + 5);
    if (!(s = gm_symbolizer_open(getpid())))
        FAIL_WITH("open: %s", strerror(errno));
    if (strcmp(gm_symbolize(s, fn, out, sizeof out), want) != 0)
        FAIL_WITH("deleted copy (map_files %s): \"%s\", expected \"%s\"", mf_fd >= 0 ? "readable" : "not readable",
                  out, want);
out:
    gm_symbolizer_close(s);
    if (text != MAP_FAILED)
        munmap(text, m.end - m.start);
    if (head != MAP_FAILED)
        munmap(head, 4096);
    if (fd >= 0)
        close(fd);
    free(img);
    if (path[0])
        unlink(path);
    rmdir(dir);
}

TEST(mapped_copies_spaces_deleted)
{
    char why[1024];
    copies_scenario(why, sizeof why);
    if (why[0])
        printf("# %s\n", why);
    CHECK(why[0] == '\0');
}

/* Without the capability map_files needs, the same through /proc/PID/root. */
TEST(mapped_copies_without_map_files)
{
    char why[1024] = "";
    int p[2];
    CHECK_EQ_INT(pipe(p), 0);
    pid_t c = fork();
    CHECK(c >= 0);
    if (c == 0) {
        struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct d[2];
        const unsigned checkpoint_restore = 40; /* CAP_CHECKPOINT_RESTORE, Linux 5.9 */
        close(p[0]);
        if (syscall(SYS_capget, &h, d) == 0) {
            d[CAP_SYS_ADMIN / 32].effective &= ~(1u << CAP_SYS_ADMIN % 32);
            d[checkpoint_restore / 32].effective &= ~(1u << checkpoint_restore % 32);
            if (syscall(SYS_capset, &h, d) != 0)
                snprintf(why, sizeof why, "skip: capset: %s", strerror(errno));
        }
        if (!why[0]) {
            struct gm_map_line m;
            char mf[128], path[4096];
            if (self_mapping(target_addr(), &m, path, sizeof path) == 0) {
                snprintf(mf, sizeof mf, "/proc/self/map_files/%" PRIx64 "-%" PRIx64, m.start, m.end);
                int fd = open(mf, O_RDONLY | O_CLOEXEC);
                if (fd >= 0) {
                    close(fd);
                    snprintf(why, sizeof why, "skip: map_files still readable");
                }
            }
        }
        if (!why[0])
            copies_scenario(why, sizeof why);
        if (write(p[1], why, strlen(why)) < 0)
            _exit(1);
        _exit(0);
    }
    close(p[1]);
    size_t got = 0;
    ssize_t r;
    while ((r = read(p[0], why + got, sizeof why - 1 - got)) > 0 || (r < 0 && errno == EINTR))
        got += r > 0 ? (size_t)r : 0;
    why[got] = '\0';
    close(p[0]);
    int st = 0;
    waitpid(c, &st, 0);
    if (strncmp(why, "skip: ", 6) == 0)
        SKIP(why + 6);
    if (why[0])
        printf("# %s\n", why);
    CHECK(why[0] == '\0');
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ---- refusing what is not ELF64 little-endian, or is broken ---------- */

TEST(other_classes_are_refused)
{
    struct self_image e;
    const char *name;
    uint64_t off, v;
    LOAD_SELF_IMAGE(e);
    CHECK_EQ_INT(gm_elf_symbol_at(e.img, e.len, e.vaddr, &name, &off), 0);
    e.img[EI_CLASS] = ELFCLASS32;
    CHECK_EQ_INT(gm_elf_symbol_at(e.img, e.len, e.vaddr, &name, &off), -1);
    CHECK_EQ_INT(gm_elf_offset_to_vaddr(e.img, e.len, 0x10, &v), -1);
    e.img[EI_CLASS] = ELFCLASS64;
    e.img[EI_DATA] = ELFDATA2MSB;
    CHECK_EQ_INT(gm_elf_symbol_at(e.img, e.len, e.vaddr, &name, &off), -1);
    e.img[EI_DATA] = ELFDATA2LSB;
    e.img[0] = 0;
    CHECK_EQ_INT(gm_elf_symbol_at(e.img, e.len, e.vaddr, &name, &off), -1);
    free(e.img);

    /* A whole 32-bit header, exactly its 52 bytes. */
    Elf32_Ehdr e32 = {0};
    memcpy(e32.e_ident, ELFMAG, SELFMAG);
    e32.e_ident[EI_CLASS] = ELFCLASS32;
    e32.e_ident[EI_DATA] = ELFDATA2LSB;
    e32.e_type = ET_DYN;
    e32.e_phoff = sizeof e32;
    e32.e_shoff = sizeof e32;
    unsigned char *small = malloc(sizeof e32);
    CHECK(small != NULL);
    memcpy(small, &e32, sizeof e32);
    CHECK_EQ_INT(gm_elf_symbol_at(small, sizeof e32, 0, &name, &off), -1);
    CHECK_EQ_INT(gm_elf_offset_to_vaddr(small, sizeof e32, 0, &v), -1);
    free(small);
    CHECK_EQ_INT(gm_elf_symbol_at(NULL, 0, 0, &name, &off), -1);
}

/* Every truncation of our executable, in a buffer of exactly that size. */
TEST(truncated_images_are_refused)
{
    struct self_image e;
    const char *name;
    uint64_t off, v, want_v;
    LOAD_SELF_IMAGE(e);
    Elf64_Ehdr eh;
    memcpy(&eh, e.img, sizeof eh);
    /* The linker puts the section headers last: no prefix holds them. */
    CHECK_EQ_U64(eh.e_shoff + (uint64_t)eh.e_shnum * eh.e_shentsize, e.len);
    size_t ph_end = eh.e_phoff + (size_t)eh.e_phnum * eh.e_phentsize;
    CHECK_EQ_INT(gm_elf_offset_to_vaddr(e.img, e.len, 0x10, &want_v), 0);
    for (size_t i = 0; i < 700; i++) {
        size_t n = i < 300 ? i : i < 400 ? e.len - (i - 300) - 1 : (e.len / 300) * (i - 400);
        if (n >= e.len)
            continue;
        unsigned char *cut = malloc(n ? n : 1);
        CHECK(cut != NULL);
        memcpy(cut, e.img, n);
        int r = gm_elf_symbol_at(cut, n, e.vaddr, &name, &off);
        int r2 = gm_elf_offset_to_vaddr(cut, n, 0x10, &v);
        free(cut);
        if (r != -1 || (n < ph_end && r2 != -1) || (n >= ph_end && (r2 != 0 || v != want_v))) {
            printf("# length %zu of %zu: %d %d\n", n, e.len, r, r2);
            CHECK(0);
        }
    }
    free(e.img);
}

/* Counts and offsets pointing anywhere: refused, or answered from inside. */
TEST(corrupt_headers_are_refused)
{
    struct self_image e;
    const char *name;
    uint64_t off, v;
    LOAD_SELF_IMAGE(e);
    Elf64_Ehdr eh0, eh;
    memcpy(&eh0, e.img, sizeof eh0);
    static const uint64_t bad64[] = {0, 1, 63, 0x7fffffffffffffffull, UINT64_MAX, UINT64_MAX - 63};
    for (size_t i = 0; i < sizeof bad64 / sizeof bad64[0]; i++) {
        eh = eh0, eh.e_shoff = bad64[i];
        memcpy(e.img, &eh, sizeof eh);
        CHECK_EQ_INT(gm_elf_symbol_at(e.img, e.len, e.vaddr, &name, &off), -1);
        eh = eh0, eh.e_phoff = bad64[i];
        memcpy(e.img, &eh, sizeof eh);
        int r = gm_elf_offset_to_vaddr(e.img, e.len, 0x10, &v);
        CHECK(r == -1 || (bad64[i] > 0 && bad64[i] < e.len)); /* a wrong table inside may answer */
    }
    static const uint16_t bad16[] = {0, 1, 0x7fff, 0xfffe, 0xffff};
    for (size_t i = 0; i < sizeof bad16 / sizeof bad16[0]; i++) {
        eh = eh0, eh.e_shnum = bad16[i];
        memcpy(e.img, &eh, sizeof eh);
        int r = gm_elf_symbol_at(e.img, e.len, e.vaddr, &name, &off);
        CHECK(r == -1 || name_inside(e.img, e.len, name));
        eh = eh0, eh.e_shentsize = bad16[i];
        memcpy(e.img, &eh, sizeof eh);
        r = gm_elf_symbol_at(e.img, e.len, e.vaddr, &name, &off);
        CHECK(r == -1 || name_inside(e.img, e.len, name));
        eh = eh0, eh.e_phnum = bad16[i];
        memcpy(e.img, &eh, sizeof eh);
        gm_elf_offset_to_vaddr(e.img, e.len, 0x10, &v);
        eh = eh0, eh.e_phentsize = bad16[i];
        memcpy(e.img, &eh, sizeof eh);
        gm_elf_offset_to_vaddr(e.img, e.len, 0x10, &v);
    }
    memcpy(e.img, &eh0, sizeof eh0);

    /* The symbol table's own fields: offset, size, entry size, string link. */
    for (uint16_t i = 0; i < eh0.e_shnum; i++) {
        Elf64_Shdr sh0, sh;
        size_t at = eh0.e_shoff + (size_t)i * eh0.e_shentsize;
        memcpy(&sh0, e.img + at, sizeof sh0);
        if (sh0.sh_type != SHT_SYMTAB && sh0.sh_type != SHT_STRTAB)
            continue;
        for (size_t k = 0; k < sizeof bad64 / sizeof bad64[0]; k++) {
            for (int field = 0; field < 4; field++) {
                sh = sh0;
                if (field == 0) sh.sh_offset = bad64[k];
                if (field == 1) sh.sh_size = bad64[k];
                if (field == 2) sh.sh_entsize = bad64[k];
                if (field == 3) sh.sh_link = (uint32_t)bad64[k];
                memcpy(e.img + at, &sh, sizeof sh);
                int r = gm_elf_symbol_at(e.img, e.len, e.vaddr, &name, &off);
                CHECK(r == -1 || name_inside(e.img, e.len, name));
            }
        }
        memcpy(e.img + at, &sh0, sizeof sh0);
    }
    CHECK_EQ_INT(gm_elf_symbol_at(e.img, e.len, e.vaddr, &name, &off), 0);
    CHECK_STR(name, "elfsym_test_target");
    free(e.img);
}

/* Random bit flips where the parser looks: the headers, the section table,
 * the symbol and string tables. Each answer must come from inside. */
TEST(bit_flips_are_survived)
{
    struct self_image e;
    const char *name;
    uint64_t off, v;
    LOAD_SELF_IMAGE(e);
    Elf64_Ehdr eh;
    memcpy(&eh, e.img, sizeof eh);
    struct { uint64_t off, len; } regions[8] = {{0, eh.e_phoff + (uint64_t)eh.e_phnum * eh.e_phentsize},
                                                {eh.e_shoff, (uint64_t)eh.e_shnum * eh.e_shentsize}};
    size_t nregions = 2;
    for (uint16_t i = 0; i < eh.e_shnum && nregions < 8; i++) {
        Elf64_Shdr sh;
        memcpy(&sh, e.img + eh.e_shoff + (size_t)i * eh.e_shentsize, sizeof sh);
        if (sh.sh_type == SHT_SYMTAB || sh.sh_type == SHT_DYNSYM || sh.sh_type == SHT_STRTAB)
            regions[nregions].off = sh.sh_offset, regions[nregions++].len = sh.sh_size;
    }
    uint64_t x = 0x9e3779b97f4a7c15ull, answered = 0;
    for (int iter = 0; iter < 3000; iter++) {
        size_t at[4];
        unsigned char bit[4];
        int nflips = 1 + iter % 4;
        for (int k = 0; k < nflips; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t r = (size_t)(x % nregions);
            at[k] = (size_t)(regions[r].off + (x >> 8) % (regions[r].len ? regions[r].len : 1));
            bit[k] = (unsigned char)(1u << (x >> 3 & 7));
            e.img[at[k]] ^= bit[k];
        }
        uint64_t probe = iter % 2 ? e.vaddr : x >> 40;
        if (gm_elf_symbol_at(e.img, e.len, probe, &name, &off) == 0) {
            answered++;
            CHECK(name_inside(e.img, e.len, name));
        }
        if (gm_elf_offset_to_vaddr(e.img, e.len, x >> 44, &v) == 0)
            answered++;
        for (int k = nflips - 1; k >= 0; k--)
            e.img[at[k]] ^= bit[k];
    }
    CHECK(answered > 0);
    free(e.img);
}

int main(void)
{
    RUN(maps_lines);
    RUN(symbol_rules);
    RUN(offset_to_vaddr);
    RUN(this_process);
    RUN(forked_child);
    RUN(zombie_has_no_mappings);
    RUN(unmapped_and_anonymous);
    RUN(mapped_copies_spaces_deleted);
    RUN(mapped_copies_without_map_files);
    RUN(other_classes_are_refused);
    RUN(truncated_images_are_refused);
    RUN(corrupt_headers_are_refused);
    RUN(bit_flips_are_survived);
    return test_summary();
}

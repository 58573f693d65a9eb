/* Out-of-process symbolizer (include/gpumem/elfsym.h): pure ELF64 and
 * /proc/<pid>/maps parsing, then a cache of another process's mappings and
 * of the files behind them.
 *
 * The image may be any bytes (a truncated file, a file replaced under us, a
 * fuzzer's input): every header is copied out with memcpy (no alignment is
 * assumed) after a bounds check, and every count is checked against the
 * length before it is multiplied. Host-side only: it allocates. */
#include "gpumem/elfsym.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- bounds-checked reads ----------------------------------------------- */

/* 1 when [off, off + n) lies inside [0, len). */
static int in_bounds(size_t len, uint64_t off, uint64_t n)
{
    return off <= len && n <= len - off;
}

static int read_at(const void *elf, size_t len, uint64_t off, void *dst, size_t n)
{
    if (!in_bounds(len, off, n))
        return -1;
    memcpy(dst, (const char *)elf + off, n);
    return 0;
}

/* The structures are read in host byte order: little-endian hosts only. */
static int host_little_endian(void)
{
    return __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
}

static int read_ehdr(const void *elf, size_t len, Elf64_Ehdr *eh)
{
    if (!elf || !host_little_endian() || read_at(elf, len, 0, eh, sizeof *eh) != 0)
        return -1;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_ident[EI_DATA] != ELFDATA2LSB || (eh->e_type != ET_EXEC && eh->e_type != ET_DYN))
        return -1;
    return 0;
}

/* A table of n entries of entsize bytes at off, wholly inside the image. */
struct table {
    uint64_t off, n, entsize;
};

static int table_at(size_t len, uint64_t off, uint64_t n, uint64_t entsize, size_t min_entsize, struct table *t)
{
    if (entsize < min_entsize || n > len / entsize || !in_bounds(len, off, n * entsize))
        return -1;
    t->off = off;
    t->n = n;
    t->entsize = entsize;
    return 0;
}

static int entry(const void *elf, size_t len, const struct table *t, uint64_t i, void *dst, size_t n)
{
    if (i >= t->n)
        return -1;
    return read_at(elf, len, t->off + i * t->entsize, dst, n);
}

/* Section 0 holds the real counts when they do not fit the ELF header. */
static int section0(const void *elf, size_t len, const Elf64_Ehdr *eh, Elf64_Shdr *s0)
{
    if (eh->e_shoff == 0 || eh->e_shentsize < sizeof *s0)
        return -1;
    return read_at(elf, len, eh->e_shoff, s0, sizeof *s0);
}

static int section_table(const void *elf, size_t len, const Elf64_Ehdr *eh, struct table *st)
{
    uint64_t n = eh->e_shnum;
    Elf64_Shdr s0;
    if (n == 0) {
        if (section0(elf, len, eh, &s0) != 0)
            return -1;
        n = s0.sh_size;
    }
    if (eh->e_shoff == 0 || n == 0)
        return -1;
    return table_at(len, eh->e_shoff, n, eh->e_shentsize, sizeof(Elf64_Shdr), st);
}

/* ---- file offset -> vaddr ------------------------------------------------ */

int gm_elf_offset_to_vaddr(const void *elf, size_t len, uint64_t file_off, uint64_t *vaddr)
{
    Elf64_Ehdr eh;
    Elf64_Shdr s0;
    struct table pt;
    if (!vaddr || read_ehdr(elf, len, &eh) != 0 || eh.e_phoff == 0)
        return -1;
    uint64_t n = eh.e_phnum;
    if (n == PN_XNUM) {
        if (section0(elf, len, &eh, &s0) != 0)
            return -1;
        n = s0.sh_info;
    }
    if (table_at(len, eh.e_phoff, n, eh.e_phentsize, sizeof(Elf64_Phdr), &pt) != 0)
        return -1;
    for (uint64_t i = 0; i < pt.n; i++) {
        Elf64_Phdr ph;
        if (entry(elf, len, &pt, i, &ph, sizeof ph) != 0)
            return -1;
        if (ph.p_type == PT_LOAD && file_off >= ph.p_offset && file_off - ph.p_offset < ph.p_filesz) {
            *vaddr = ph.p_vaddr + (file_off - ph.p_offset);
            return 0;
        }
    }
    return -1;
}

/* ---- symbols ------------------------------------------------------------- */

struct symtab {
    struct table syms;
    const char *str;
    uint64_t strsize;
};

/* The first section of `type` (SHT_SYMTAB or SHT_DYNSYM) and its strings. */
static int find_symtab(const void *elf, size_t len, const struct table *st, uint32_t type, struct symtab *t)
{
    for (uint64_t i = 0; i < st->n; i++) {
        Elf64_Shdr sh, strsh;
        if (entry(elf, len, st, i, &sh, sizeof sh) != 0)
            return -1;
        if (sh.sh_type != type)
            continue;
        if (table_at(len, sh.sh_offset, sh.sh_entsize ? sh.sh_size / sh.sh_entsize : 0, sh.sh_entsize,
                     sizeof(Elf64_Sym), &t->syms) != 0 ||
            entry(elf, len, st, sh.sh_link, &strsh, sizeof strsh) != 0 || strsh.sh_type != SHT_STRTAB ||
            !in_bounds(len, strsh.sh_offset, strsh.sh_size))
            return -1;
        t->str = (const char *)elf + strsh.sh_offset;
        t->strsize = strsh.sh_size;
        return 0;
    }
    return -1;
}

/* Index of the allocated, non-TLS section holding vaddr; UINT64_MAX if none. */
static uint64_t section_of(const void *elf, size_t len, const struct table *st, uint64_t vaddr)
{
    for (uint64_t i = 1; i < st->n && i < SHN_LORESERVE; i++) {
        Elf64_Shdr sh;
        if (entry(elf, len, st, i, &sh, sizeof sh) != 0)
            break;
        if ((sh.sh_flags & SHF_ALLOC) && !(sh.sh_flags & SHF_TLS) && vaddr >= sh.sh_addr &&
            vaddr - sh.sh_addr < sh.sh_size)
            return i;
    }
    return UINT64_MAX;
}

/* The symbol's name if it is a non-empty string ending inside the table. */
static const char *sym_name(const struct symtab *t, uint32_t at)
{
    if (at == 0 || at >= t->strsize || !memchr(t->str + at, '\0', t->strsize - at))
        return NULL;
    return t->str + at;
}

/* Among symbols at one address, the higher rank names it: global or weak
 * before local, then fewer leading underscores. */
static int name_rank(const Elf64_Sym *s, const char *name)
{
    int underscores = 0;
    while (underscores < 7 && name[underscores] == '_')
        underscores++;
    return (ELF64_ST_BIND(s->st_info) == STB_LOCAL ? 0 : 8) + 7 - underscores;
}

struct pick {
    const char *name;
    uint64_t at;
    int rank;
};

static void consider(struct pick *p, const char *name, uint64_t at, int rank)
{
    if (!p->name || at > p->at || (at == p->at && rank > p->rank)) {
        p->name = name;
        p->at = at;
        p->rank = rank;
    }
}

static int search(const void *elf, size_t len, const struct symtab *t, uint64_t vaddr, uint64_t vsec,
                  const char **name, uint64_t *off)
{
    struct pick cover = {0}, unsized = {0};
    uint64_t barrier = 0; /* start of the last sized symbol that ends before vaddr */
    int have_barrier = 0;
    for (uint64_t i = 0; i < t->syms.n; i++) {
        Elf64_Sym s;
        if (entry(elf, len, &t->syms, i, &s, sizeof s) != 0)
            return -1;
        int type = ELF64_ST_TYPE(s.st_info);
        if ((type != STT_FUNC && type != STT_GNU_IFUNC && type != STT_OBJECT) || s.st_shndx == SHN_UNDEF ||
            s.st_value > vaddr)
            continue;
        const char *n = sym_name(t, s.st_name);
        if (!n)
            continue;
        if (s.st_size && vaddr - s.st_value < s.st_size) {
            consider(&cover, n, s.st_value, name_rank(&s, n));
        } else if (s.st_size) {
            if (!have_barrier || s.st_value > barrier)
                barrier = s.st_value;
            have_barrier = 1;
        } else if (type != STT_OBJECT && s.st_shndx == vsec) {
            consider(&unsized, n, s.st_value, name_rank(&s, n));
        }
    }
    if (!cover.name && unsized.name && (!have_barrier || unsized.at > barrier))
        cover = unsized;
    if (!cover.name)
        return -1;
    *name = cover.name;
    *off = vaddr - cover.at;
    return 0;
}

int gm_elf_symbol_at(const void *elf, size_t len, uint64_t vaddr, const char **name, uint64_t *off)
{
    static const uint32_t order[] = {SHT_SYMTAB, SHT_DYNSYM};
    Elf64_Ehdr eh;
    struct table st;
    if (!name || !off || read_ehdr(elf, len, &eh) != 0 || section_table(elf, len, &eh, &st) != 0)
        return -1;
    uint64_t vsec = section_of(elf, len, &st, vaddr);
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
        struct symtab t;
        if (find_symtab(elf, len, &st, order[k], &t) == 0 && search(elf, len, &t, vaddr, vsec, name, off) == 0)
            return 0;
    }
    return -1;
}

/* ---- /proc/<pid>/maps ---------------------------------------------------- */

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* At least one digit in `base` (16 or 10), no sign, no blanks, at most
 * max; *p is left on the first character after them. */
static int number(const char **p, unsigned base, uint64_t max, uint64_t *v)
{
    const char *s = *p;
    uint64_t x = 0;
    int d;
    for (; (d = hex_digit(*s)) >= 0 && (unsigned)d < base; s++) {
        if (x > (max - (uint64_t)d) / base)
            return -1;
        x = x * base + (uint64_t)d;
    }
    if (s == *p)
        return -1;
    *p = s;
    *v = x;
    return 0;
}

/* A number followed by `end`, which is consumed. */
static int field(const char **p, unsigned base, char end, uint64_t max, uint64_t *v)
{
    if (number(p, base, max, v) != 0 || **p != end)
        return -1;
    (*p)++;
    return 0;
}

int gm_maps_parse_line(const char *line, struct gm_map_line *m)
{
    static const char perm_chars[4][3] = {"r-", "w-", "x-", "ps"};
    static const char deleted[] = " (deleted)";
    const size_t dlen = sizeof deleted - 1;
    uint64_t major, minor;
    const char *p = line;
    if (!line || !m)
        return -1;
    memset(m, 0, sizeof *m);
    if (field(&p, 16, '-', UINT64_MAX, &m->start) != 0 || field(&p, 16, ' ', UINT64_MAX, &m->end) != 0 ||
        m->start >= m->end)
        return -1;
    for (int i = 0; i < 4; i++) {
        if (!p[i] || !memchr(perm_chars[i], p[i], 2))
            return -1;
        m->perms[i] = p[i];
    }
    if (p[4] != ' ')
        return -1;
    p += 5;
    if (field(&p, 16, ' ', UINT64_MAX, &m->offset) != 0 || field(&p, 16, ':', UINT32_MAX, &major) != 0 ||
        field(&p, 16, ' ', UINT32_MAX, &minor) != 0 || number(&p, 10, UINT64_MAX, &m->inode) != 0)
        return -1;
    m->dev_major = (uint32_t)major;
    m->dev_minor = (uint32_t)minor;
    /* The kernel pads to the path's column; the inode ends the line when
     * there is no path. */
    if (*p == ' ')
        while (*p == ' ')
            p++;
    else if (*p != '\n' && *p != '\0')
        return -1;
    m->path = p;
    m->path_len = strcspn(p, "\n");
    if (m->path_len > dlen && memcmp(p + m->path_len - dlen, deleted, dlen) == 0) {
        m->path_len -= dlen;
        m->deleted = 1;
    }
    return 0;
}

/* ---- the symbolizer ------------------------------------------------------ */

struct sym_file {
    const char *path; /* inside the maps text */
    uint32_t dev_major, dev_minor;
    uint64_t inode;
    int deleted;
    uint64_t start, end; /* one of its mappings, to open it through map_files */
    int state;           /* 0: not opened yet, 1: mapped, -1: could not */
    void *image;
    size_t len;
};

struct sym_map {
    uint64_t start, end, offset;
    size_t file;       /* index into files, or SIZE_MAX */
    const char *label; /* not file-backed: "[heap]", "[anon]", ... */
};

struct gm_symbolizer {
    pid_t pid;
    char *text; /* the maps, paths NUL-terminated in place */
    struct sym_map *maps;
    size_t nmaps;
    struct sym_file *files;
    size_t nfiles;
};

/* The whole of a /proc file, NUL-terminated ("" when empty, as for a
 * kernel thread or a zombie); NULL with errno. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0;
    errno = 0;
    ssize_t n = getdelim(&buf, &cap, '\0', f); /* no NUL in the text: up to the end */
    int e = errno, failed = n < 0 && (ferror(f) || e != 0);
    fclose(f);
    if (n < 0) {
        free(buf);
        buf = failed ? NULL : calloc(1, 1);
        errno = failed ? (e ? e : EIO) : ENOMEM;
    }
    return buf;
}

static size_t file_index(struct gm_symbolizer *s, const struct gm_map_line *m)
{
    for (size_t i = 0; i < s->nfiles; i++) {
        const struct sym_file *f = &s->files[i];
        if (f->inode == m->inode && f->dev_major == m->dev_major && f->dev_minor == m->dev_minor &&
            f->deleted == m->deleted && strcmp(f->path, m->path) == 0)
            return i;
    }
    struct sym_file *f = &s->files[s->nfiles];
    memset(f, 0, sizeof *f);
    f->path = m->path;
    f->dev_major = m->dev_major;
    f->dev_minor = m->dev_minor;
    f->inode = m->inode;
    f->deleted = m->deleted;
    f->start = m->start;
    f->end = m->end;
    return s->nfiles++;
}

static int by_start(const void *a, const void *b)
{
    const struct sym_map *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

struct gm_symbolizer *gm_symbolizer_open(pid_t pid)
{
    char path[64];
    if (pid <= 0) {
        errno = ESRCH;
        return NULL;
    }
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    char *text = slurp(path);
    if (!text)
        return NULL;
    size_t lines = 1;
    for (const char *c = text; *c; c++)
        lines += *c == '\n';
    struct gm_symbolizer *s = calloc(1, sizeof *s);
    if (s) {
        s->maps = calloc(lines, sizeof *s->maps);
        s->files = calloc(lines, sizeof *s->files);
    }
    if (!s || !s->maps || !s->files) {
        if (s) {
            free(s->maps);
            free(s->files);
        }
        free(s);
        free(text);
        errno = ENOMEM;
        return NULL;
    }
    s->pid = pid;
    s->text = text;
    for (char *line = text, *next; *line; line = next) {
        next = line + strcspn(line, "\n");
        if (*next)
            next++;
        struct gm_map_line m;
        if (gm_maps_parse_line(line, &m) != 0)
            continue;
        ((char *)m.path)[m.path_len] = '\0'; /* a newline, " (deleted)" or the end */
        struct sym_map *map = &s->maps[s->nmaps++];
        map->start = m.start;
        map->end = m.end;
        map->offset = m.offset;
        map->file = SIZE_MAX;
        map->label = m.path_len ? m.path : "[anon]";
        if (m.inode != 0 && m.path[0] == '/')
            map->file = file_index(s, &m);
    }
    qsort(s->maps, s->nmaps, sizeof *s->maps, by_start);
    return s;
}

static int open_file(const struct gm_symbolizer *s, const struct sym_file *f)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)s->pid, f->start, f->end);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 || f->deleted)
        return fd;
    if ((size_t)snprintf(path, sizeof path, "/proc/%d/root%s", (int)s->pid, f->path) < sizeof path &&
        (fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0)
        return fd;
    /* Our own view of the path: only if it is the very file (same inode). */
    struct stat st;
    fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && (fstat(fd, &st) != 0 || (uint64_t)st.st_ino != f->inode)) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void load(const struct gm_symbolizer *s, struct sym_file *f)
{
    struct stat st;
    f->state = -1;
    int fd = open_file(s, f);
    if (fd < 0)
        return;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 && (uint64_t)st.st_size <= SIZE_MAX) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) {
            f->image = p;
            f->len = (size_t)st.st_size;
            f->state = 1;
        }
    }
    close(fd);
}

static const struct sym_map *find_map(const struct gm_symbolizer *s, uint64_t addr)
{
    size_t lo = 0, hi = s->nmaps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (addr < s->maps[mid].start)
            hi = mid;
        else if (addr >= s->maps[mid].end)
            lo = mid + 1;
        else
            return &s->maps[mid];
    }
    return NULL;
}

const char *gm_symbolize(struct gm_symbolizer *s, uint64_t addr, char *out, size_t len)
{
    if (!out || len == 0)
        return out;
    const struct sym_map *m = s ? find_map(s, addr) : NULL;
    if (!m) {
        snprintf(out, len, "?");
        return out;
    }
    if (m->file == SIZE_MAX) {
        snprintf(out, len, "%s+0x%" PRIx64, m->label, addr - m->start);
        return out;
    }
    struct sym_file *f = &s->files[m->file];
    const char *slash = strrchr(f->path, '/');
    const char *base = slash ? slash + 1 : f->path;
    if (f->state == 0)
        load(s, f);
    uint64_t file_off = addr - m->start + m->offset, vaddr, off;
    const char *name;
    if (f->state < 0 || gm_elf_offset_to_vaddr(f->image, f->len, file_off, &vaddr) != 0)
        snprintf(out, len, "%s+0x%" PRIx64, base, file_off);
    else if (gm_elf_symbol_at(f->image, f->len, vaddr, &name, &off) != 0)
        snprintf(out, len, "%s+0x%" PRIx64, base, vaddr);
    else
        snprintf(out, len, "%s(%s+0x%" PRIx64 ")", base, name, off);
    return out;
}

void gm_symbolizer_close(struct gm_symbolizer *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nfiles; i++)
        if (s->files[i].state > 0)
            munmap(s->files[i].image, s->files[i].len);
    free(s->files);
    free(s->maps);
    free(s->text);
    free(s);
}

/* Naming code addresses of another process: "libfoo.so.1(func+0x1a)".
 *
 * Out of process: nothing here asks the dynamic loader (no dladdr), the
 * addresses belong to another process. Its /proc/<pid>/maps says which file
 * and file offset an address comes from; that file's ELF program headers
 * turn the offset into the address the file itself uses, and its symbol
 * table names the function there.
 *
 * Only ELF64 little-endian images are understood (on little-endian hosts);
 * anything else, 32-bit ELF included, is refused with -1. The parsers are
 * pure and safe on any bytes: every offset, size and count read from the
 * image is checked against its length. Host-side code (the CLI, the daemon):
 * the symbolizer allocates and opens files; the shim must not call it. */
#ifndef GPUMEM_ELFSYM_H
#define GPUMEM_ELFSYM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- pure ELF parsing (src/common/elfsym.c) ----------------------------- */

/* The symbol containing `vaddr` (a virtual address as the ELF file's own
 * program headers lay it out) in the ELF64 image elf[0..len) of an
 * executable or shared object (ET_EXEC or ET_DYN). Prefers .symtab, falls
 * back to .dynsym when there is none or it names nothing there. Only
 * defined STT_FUNC, STT_GNU_IFUNC and STT_OBJECT symbols with
 * st_value <= vaddr < st_value + st_size count; when none covers vaddr, a
 * function of size 0 does if it is the nearest symbol before vaddr and in
 * the same section. Among symbols starting at the same place, a global or
 * weak one beats a local one, then the one with fewer leading underscores
 * ("getpid" rather than "__getpid"). Returns 0 and sets *name (a
 * NUL-terminated string inside elf) and *off (vaddr - st_value), or -1. */
int gm_elf_symbol_at(const void *elf, size_t len, uint64_t vaddr, const char **name, uint64_t *off);

/* File offset -> ELF vaddr through the PT_LOAD program headers: the first
 * one with p_offset <= file_off < p_offset + p_filesz. 0, or -1 when the
 * offset is in no loaded segment or the image is not ELF64 little-endian. */
int gm_elf_offset_to_vaddr(const void *elf, size_t len, uint64_t file_off, uint64_t *vaddr);

/* One line of /proc/<pid>/maps:
 *   start-end perms offset major:minor inode   path
 * e.g. "7f2a1c000000-7f2a1c021000 r-xp 00002000 fd:01 1234   /usr/lib/libc.so.6".
 * The path is everything after the blanks that follow the inode, up to the
 * end of the line or a newline (it may contain spaces). */
struct gm_map_line {
    uint64_t start, end;      /* [start, end), start < end */
    uint64_t offset;          /* file offset mapped at start */
    uint32_t dev_major, dev_minor;
    uint64_t inode;           /* 0: not backed by a file */
    char perms[5];            /* "r-xp", NUL-terminated */
    const char *path;         /* inside the line; not NUL-terminated at path_len */
    size_t path_len;          /* 0: anonymous */
    int deleted;              /* the path ended in " (deleted)" (cut off path_len) */
};

/* Parses one line (with or without its newline) into *m; pure. 0, or -1 when
 * the line is not in that format (bad or missing numbers, start >= end,
 * numbers too large for 64 bits, perms not 4 characters). */
int gm_maps_parse_line(const char *line, struct gm_map_line *m);

/* ---- symbolizing a live process ------------------------------------------ */

/* Reads /proc/PID/maps once. Each mapped file is opened at most once, when
 * an address first needs it: through /proc/PID/map_files/<start>-<end>
 * when that is readable (it works across mount namespaces, i.e. for
 * processes in containers, and for deleted files; it needs
 * CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE), else /proc/PID/root/<path>,
 * else <path>; never by path for a file the process sees as deleted (a
 * file now at that path is another one). It is mapped read-only and kept
 * until gm_symbolizer_close. The view is of the maps at open time.
 * One thread at a time per symbolizer (files are opened lazily). Each
 * lookup scans the file's symbol table: fine for the call sites of one
 * process, not for millions of addresses. A file shrunk on disk while it
 * is mapped here makes reads past its new end fault (SIGBUS), as for any
 * reader that maps files. */
struct gm_symbolizer;

/* NULL with errno on failure (ESRCH/ENOENT: no such process; EACCES/EPERM:
 * not allowed to read its maps). */
struct gm_symbolizer *gm_symbolizer_open(pid_t pid);

/* Writes into out[0..len) (always NUL-terminated when len > 0) and returns out:
 *   "libfoo.so.1(func+0x1a)"  a symbol covers the address
 *   "libfoo.so.1+0x1234"      in that file, no symbol: 0x1234 is the ELF
 *                             vaddr (what `addr2line -e` takes), or the file
 *                             offset when the file could not be read
 *   "[anon]+0x10", "[heap]+0x10", "[vdso]+0x10"
 *                             not file-backed: offset from the mapping start
 *   "?"                       in no mapping
 * Only the base name of the file is written. */
const char *gm_symbolize(struct gm_symbolizer *s, uint64_t addr, char *out, size_t len);

/* Unmaps and closes everything; NULL is fine. */
void gm_symbolizer_close(struct gm_symbolizer *s);

#endif

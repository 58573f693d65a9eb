/* Looking a symbol up in one loaded object by reading its ELF dynamic
 * symbol table directly (GNU hash, or SysV hash for old objects).
 *
 * Why not dlsym(link_map, name)? glibc only builds the search list that
 * such a lookup walks for dlopen'ed objects; objects loaded at start-up
 * crash it. And dlopen(RTLD_NOLOAD) to get a proper handle cannot be used
 * while sanitizer runtimes (and other interposers) are still resolving
 * dlopen itself through our dlsym. Reading the tables needs nothing. */
#include "shim.h"

#include <elf.h>
#include <link.h>

/* Dynamic entries are relocated in place by ld.so for most objects, but
 * not where the dynamic section is read-only (the vDSO). */
static uintptr_t fix(const struct link_map *l, ElfW(Addr) p)
{
    return p < l->l_addr ? l->l_addr + p : p;
}

static uint32_t gnu_hash(const char *s)
{
    uint32_t h = 5381;
    for (; *s; s++)
        h = h * 33 + (unsigned char)*s;
    return h;
}

static uint32_t sysv_hash(const char *s)
{
    uint32_t h = 0, top;
    for (; *s; s++) {
        h = (h << 4) + (unsigned char)*s;
        top = h & 0xf0000000u;
        if (top)
            h ^= top >> 24;
        h &= ~top;
    }
    return h;
}

typedef void *(*ifunc_resolver)(void);

/* Not strcmp: sanitizer runtimes intercept it, and this runs before their
 * interceptors have anything to call. */
static int same(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

/* The symbol's address if index i of symtab defines `name` as an exported,
 * default-version function or object. */
static void *match(const struct link_map *l, const ElfW(Sym) *sym, const char *strtab, const ElfW(Half) *versym,
                   uint32_t i, const char *name)
{
    const ElfW(Sym) *s = &sym[i];
    int type = ELF64_ST_TYPE(s->st_info), bind = ELF64_ST_BIND(s->st_info);
    if (s->st_shndx == SHN_UNDEF || (bind != STB_GLOBAL && bind != STB_WEAK) ||
        (type != STT_FUNC && type != STT_OBJECT && type != STT_GNU_IFUNC && type != STT_NOTYPE))
        return NULL;
    if (versym && (versym[i] & 0x8000)) /* hidden (non-default) version */
        return NULL;
    if (!same(strtab + s->st_name, name))
        return NULL;
    void *addr = (void *)(l->l_addr + s->st_value);
    return type == STT_GNU_IFUNC ? ((ifunc_resolver)addr)() : addr;
}

void *shim_object_symbol(const struct link_map *l, const char *name)
{
    const ElfW(Sym) *symtab = NULL;
    const char *strtab = NULL;
    const uint32_t *gh = NULL, *sh = NULL;
    const ElfW(Half) *versym = NULL;
    if (!l->l_ld)
        return NULL;
    for (const ElfW(Dyn) *d = l->l_ld; d->d_tag != DT_NULL; d++) {
        switch (d->d_tag) {
        case DT_SYMTAB: symtab = (const ElfW(Sym) *)fix(l, d->d_un.d_ptr); break;
        case DT_STRTAB: strtab = (const char *)fix(l, d->d_un.d_ptr); break;
        case DT_GNU_HASH: gh = (const uint32_t *)fix(l, d->d_un.d_ptr); break;
        case DT_HASH: sh = (const uint32_t *)fix(l, d->d_un.d_ptr); break;
        case DT_VERSYM: versym = (const ElfW(Half) *)fix(l, d->d_un.d_ptr); break;
        default: break;
        }
    }
    if (!symtab || !strtab)
        return NULL;
    if (gh) {
        uint32_t nbuckets = gh[0], symoffset = gh[1], bloom_size = gh[2];
        const ElfW(Addr) *bloom = (const ElfW(Addr) *)&gh[4];
        const uint32_t *buckets = (const uint32_t *)&bloom[bloom_size];
        const uint32_t *chain = &buckets[nbuckets];
        if (!nbuckets)
            return NULL;
        uint32_t h = gnu_hash(name);
        for (uint32_t i = buckets[h % nbuckets]; i >= symoffset && i; i++) {
            uint32_t ch = chain[i - symoffset];
            if ((ch | 1) == (h | 1)) {
                void *p = match(l, symtab, strtab, versym, i, name);
                if (p)
                    return p;
            }
            if (ch & 1)
                break;
        }
        return NULL;
    }
    if (sh) {
        uint32_t nbucket = sh[0];
        const uint32_t *bucket = &sh[2], *chain = &sh[2 + nbucket];
        if (!nbucket)
            return NULL;
        for (uint32_t i = bucket[sysv_hash(name) % nbucket]; i != STN_UNDEF; i = chain[i]) {
            void *p = match(l, symtab, strtab, versym, i, name);
            if (p)
                return p;
        }
    }
    return NULL;
}

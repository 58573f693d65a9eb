/* dlsym interposition: programs that dlopen the driver (cudart, Triton,
 * pynvml, nvidia-smi) find its entry points with dlsym on the driver's
 * handle, which never searches a preloaded library. So the shim answers
 * dlsym itself for the names it hooks, and for everything else behaves
 * exactly as glibc's dlsym would for the *caller*:
 *
 *  - RTLD_NEXT means "after the object that called dlsym". Calling glibc's
 *    dlsym from here would mean "after libgpumem.so" (the classic bug that
 *    breaks every other interposer in the process), so we walk the link map
 *    from the caller's object ourselves.
 *  - RTLD_DEFAULT also consults the caller's own local scope (an object
 *    dlopen'ed RTLD_LOCAL sees its dependencies), so if the global lookup
 *    fails we retry in the caller's scope. */
#include "shim.h"

#include <dlfcn.h>
#include <link.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef void *(*dlsym_fn)(void *, const char *);
static dlsym_fn glibc_dlsym;

void *shim_real_dlsym(void *handle, const char *name)
{
    if (!glibc_dlsym) {
        /* dlvsym is not interposed; ask for dlsym at the versions glibc has
         * shipped it under (2.34 moved it into libc). */
        dlsym_fn f = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
        if (!f)
            f = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
        if (!f)
            f = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.17"); /* aarch64 */
        glibc_dlsym = f;
    }
    return glibc_dlsym ? glibc_dlsym(handle, name) : NULL;
}

/* The object that contains address `addr` (the caller). */
static struct link_map *object_of(const void *addr)
{
    Dl_info info;
    struct link_map *lm = NULL;
    if (!dladdr1(addr, &info, (void **)&lm, RTLD_DL_LINKMAP))
        return NULL;
    return lm;
}

/* First definition of `name` in an object loaded after `caller`: what
 * RTLD_NEXT means (the objects of the global scope, in load order). */
static void *next_after(struct link_map *caller, const char *name)
{
    for (struct link_map *l = caller ? caller->l_next : NULL; l; l = l->l_next) {
        void *p = shim_object_symbol(l, name);
        if (p)
            return p;
    }
    return NULL;
}

static void *lookup_for_caller(void *handle, const char *name, const void *caller)
{
    if (handle == RTLD_NEXT) {
        struct link_map *lm = object_of(caller);
        void *p = next_after(lm, name);
        if (!p)
            (void)shim_real_dlsym(RTLD_NEXT, name); /* leaves the usual dlerror() text */
        return p;
    }
    void *p = shim_real_dlsym(handle, name);
    if (!p && handle == RTLD_DEFAULT) {
        /* The caller's own local scope: itself and its dependencies. */
        struct link_map *lm = object_of(caller);
        if (lm)
            p = shim_object_symbol(lm, name);
        if (!p && lm) {
            void *h = dlopen(lm->l_name, RTLD_LAZY | RTLD_NOLOAD);
            if (h) {
                p = shim_real_dlsym(h, name);
                dlclose(h);
            }
        }
    }
    return p;
}

EXPORT void *dlsym(void *handle, const char *name)
{
    const void *caller = __builtin_return_address(0);
    void *p = lookup_for_caller(handle, name, caller);
    /* Only driver and NVML names can be ours; everything else returns here
     * without touching the rest of the shim (which also keeps this path safe
     * for sanitizer runtimes resolving their interceptors at start-up). */
    if (!p || !((name[0] == 'c' && name[1] == 'u') || (name[0] == 'n' && name[1] == 'v')))
        return p;
    void *hook = shim_hook_for_symbol(name);
    if (!hook || hook == p)
        return p;
    /* `p` is the driver's (or NVML's) own function: remember it as the real
     * one and give the caller our hook. */
    void **slot = shim_real_slot(name);
    if (slot && !*slot)
        *slot = p;
    else if (slot && *slot != p)
        return p; /* some other library's function of the same name: leave it alone */
    return hook;
}

/* fork() with other threads inside the simulated driver: one pthread_atfork,
 * registered when the library is loaded, holds every lock that allocating or
 * freeing device memory can take (the registry's and the heap's; no code
 * holds one of each at once) across the fork. Otherwise a child could
 * inherit a lock held by a thread that does not exist in it, and its first
 * cuMemAlloc or cuMemFree would wait forever, or find a list half updated.
 *
 * Not covered: the context, pool and VMM locks (contexts, stream-ordered
 * pools and VMM calls in a child forked mid-call). sim/common's state
 * resets itself in the child (simstate.c). */
#include "internal.h"

void sim_mutex_fork(pthread_mutex_t *m, enum sim_fork_phase phase)
{
    switch (phase) {
    case SIM_FORK_PREPARE: pthread_mutex_lock(m); break;
    case SIM_FORK_PARENT: pthread_mutex_unlock(m); break;
    case SIM_FORK_CHILD: pthread_mutex_init(m, NULL); break;
    }
}

static void prepare(void)
{
    sim_registry_fork(SIM_FORK_PREPARE);
    sim_heap_fork(SIM_FORK_PREPARE);
}

static void parent(void)
{
    sim_heap_fork(SIM_FORK_PARENT);
    sim_registry_fork(SIM_FORK_PARENT);
}

static void child(void)
{
    sim_heap_fork(SIM_FORK_CHILD);
    sim_registry_fork(SIM_FORK_CHILD);
}

__attribute__((constructor)) static void register_fork_handlers(void)
{
    pthread_atfork(prepare, parent, child);
}

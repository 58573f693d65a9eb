/* fork() with other threads inside the simulated driver: one pthread_atfork,
 * registered when the library is loaded, holds the heap's locks (heap.c)
 * across the fork. Otherwise a child could inherit a lock held by a thread
 * that does not exist in it, and its first cuMemAlloc or cuMemFree would
 * wait forever, or find a free list half updated.
 *
 * Not covered: the registry's, context, pool and VMM locks. sim/common's
 * state resets itself in the child (simstate.c). */
#include "internal.h"

void sim_mutex_fork(pthread_mutex_t *m, enum sim_fork_phase phase)
{
    switch (phase) {
    case SIM_FORK_PREPARE: pthread_mutex_lock(m); break;
    case SIM_FORK_PARENT: pthread_mutex_unlock(m); break;
    case SIM_FORK_CHILD: pthread_mutex_init(m, NULL); break;
    }
}

static void prepare(void) { sim_heap_fork(SIM_FORK_PREPARE); }
static void parent(void) { sim_heap_fork(SIM_FORK_PARENT); }
static void child(void) { sim_heap_fork(SIM_FORK_CHILD); }

__attribute__((constructor)) static void register_fork_handlers(void)
{
    pthread_atfork(prepare, parent, child);
}

/* Facts about processes read from /proc, without allocating. */
#ifndef GPUMEM_PROCINFO_H
#define GPUMEM_PROCINFO_H

#include <stdint.h>
#include <sys/types.h>

/* Start time of `pid` in clock ticks since boot (/proc/<pid>/stat field 22),
 * or 0 when the process does not exist. Together with the pid it names one
 * process for the life of the machine. */
uint64_t gm_proc_start_time(pid_t pid);

/* The process's short command name (/proc/<pid>/comm), "" if unknown. */
void gm_proc_comm(pid_t pid, char *buf, size_t len);

/* 1 when (pid, start_time) is still alive, 0 when it has gone. */
int gm_proc_alive(pid_t pid, uint64_t start_time);

#endif

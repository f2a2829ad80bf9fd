/* How much memory the machine has for this process, asked in one place: sessions (the arena),
 * weights and datasets compare what they are about to allocate with it and refuse with a clear
 * message instead of failing, or being killed, half-way.  Nothing prints, nothing is cached
 * (the figure changes as other programs run). */
#ifndef CNN_RUNTIME_SYSMEM_H
#define CNN_RUNTIME_SYSMEM_H

#include <stddef.h>
#include <stdint.h>

/* Bytes this process may still allocate: the environment variable CNN_MEMORY_LIMIT (a count of
 * bytes; for tests and for users who want a smaller bound) when it is set to a number; else the
 * smaller of MemAvailable in /proc/meminfo and the memory cgroup's limit (cgroup v2
 * memory.max, v1 memory.limit_in_bytes, of this process's cgroup or the root of the mounted
 * hierarchy; "max" or a huge value is no limit); else sysconf's available pages.  UINT64_MAX
 * when nothing tells. */
uint64_t rt_mem_available(void);

/* 0 when `bytes` fit in rt_mem_available().  Otherwise -1 and msg (msglen bytes) holds
 * "<what> needs N GiB, the machine has M GiB available" (MiB or KiB for smaller figures). */
int rt_mem_check(uint64_t bytes, const char *what, char *msg, size_t msglen);

/* Formats bytes as "1.5 GiB", "300.0 MiB", "12.0 KiB" or "100 bytes". */
void rt_mem_format(char *buf, size_t len, uint64_t bytes);

#endif

/* The machine's available memory (runtime/sysmem.h). */
#include "runtime/sysmem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A cgroup limit at or past this is "no limit" (v1 writes 2^63 rounded down to a page). */
#define NO_LIMIT (UINT64_C(1) << 60)

/* The first number in the file at path; 0 when absent or not a number ("max"). */
static uint64_t read_number(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[64];
    uint64_t v = 0;
    if (fgets(line, sizeof line, f)) {
        char *end;
        errno = 0;
        unsigned long long x = strtoull(line, &end, 10);
        if (end != line && errno == 0)
            v = (uint64_t)x;
    }
    fclose(f);
    return v;
}

/* MemAvailable from /proc/meminfo in bytes; 0 when absent. */
static uint64_t meminfo_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    uint64_t v = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
            v = (uint64_t)kb * 1024;
            break;
        }
    }
    fclose(f);
    return v;
}

/* The memory cgroup limit of this process in bytes; 0 when there is none.  /proc/self/cgroup
 * names the cgroup ("0::/path" for v2, "N:memory:/path" for v1); inside a container the
 * hierarchy is often mounted at its own cgroup, so the root of the mount is tried too. */
static uint64_t cgroup_limit(void)
{
    char v2[512] = "", v1[512] = "";
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\n")] = '\0';
            if (strncmp(line, "0::", 3) == 0)
                snprintf(v2, sizeof v2, "%s", line + 3);
            else {
                char *c = strchr(line, ':');
                if (c && strncmp(c + 1, "memory:", 7) == 0)
                    snprintf(v1, sizeof v1, "%s", c + 8);
            }
        }
        fclose(f);
    }
    char path[700];
    uint64_t lim = 0;
    const char *dirs[][2] = {{"/sys/fs/cgroup", v2}, {"/sys/fs/cgroup", ""},
                             {"/sys/fs/cgroup/memory", v1}, {"/sys/fs/cgroup/memory", ""}};
    for (int i = 0; i < 4 && !lim; i++) {
        const char *file = i < 2 ? "memory.max" : "memory.limit_in_bytes";
        if (i % 2 == 0 && !dirs[i][1][0])
            continue;
        snprintf(path, sizeof path, "%s%s/%s", dirs[i][0], strcmp(dirs[i][1], "/") == 0 ? "" : dirs[i][1], file);
        lim = read_number(path);
    }
    return lim >= NO_LIMIT ? 0 : lim;
}

uint64_t rt_mem_available(void)
{
    const char *env = getenv("CNN_MEMORY_LIMIT");
    if (env && *env) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(env, &end, 10);
        if (*end == '\0' && errno == 0)
            return (uint64_t)v;
    }
    uint64_t avail = meminfo_available();
    if (!avail) {
        long pages = sysconf(_SC_AVPHYS_PAGES), size = sysconf(_SC_PAGESIZE);
        if (pages > 0 && size > 0)
            avail = (uint64_t)pages * (uint64_t)size;
    }
    uint64_t lim = cgroup_limit();
    if (lim && (!avail || lim < avail))
        avail = lim;
    return avail ? avail : UINT64_MAX;
}

void rt_mem_format(char *buf, size_t len, uint64_t bytes)
{
    static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes < 1024) {
        snprintf(buf, len, "%llu bytes", (unsigned long long)bytes);
        return;
    }
    double v = (double)bytes / 1024;
    int u = 0;
    while (v >= 1024 && u < 5)
        v /= 1024, u++;
    snprintf(buf, len, "%.1f %s", v, unit[u]);
}

int rt_mem_check(uint64_t bytes, const char *what, char *msg, size_t msglen)
{
    uint64_t avail = rt_mem_available();
    if (bytes <= avail)
        return 0;
    char need[32], have[32];
    rt_mem_format(need, sizeof need, bytes);
    rt_mem_format(have, sizeof have, avail);
    snprintf(msg, msglen, "%s needs %s, the machine has %s available", what, need, have);
    return -1;
}

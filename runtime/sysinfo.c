/* What a benchmark report says of the machine: the CPU's model name and the instruction sets
 * the kernels use. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "ops/native/native.h"
#include "runtime/cnn.h"

static char cpu_model[128] = "unknown";
static char cpu_isa[128];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void read_cpuinfo(void)
{
    bool vnni = false, bf16 = false;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[8192];
        bool have_model = false, have_flags = false;
        while ((!have_model || !have_flags) && fgets(line, sizeof line, f)) {
            char *colon = strchr(line, ':');
            if (!colon)
                continue;
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            v[strcspn(v, "\n")] = '\0';
            if (!have_model && strncmp(line, "model name", 10) == 0) {
                snprintf(cpu_model, sizeof cpu_model, "%s", v);
                have_model = true;
            } else if (!have_flags && strncmp(line, "flags", 5) == 0) {
                vnni = strstr(v, " avx512_vnni") != NULL;
                bf16 = strstr(v, " avx512_bf16") != NULL;
                have_flags = true;
            }
        }
        fclose(f);
    }
    snprintf(cpu_isa, sizeof cpu_isa, "%s%s%s", op_native_isa_name(op_native_isa_active()), vnni ? "+vnni" : "",
             bf16 ? "+bf16" : "");
}

const char *cnn_cpu_model(void)
{
    pthread_once(&once, read_cpuinfo);
    return cpu_model;
}

const char *cnn_cpu_isa(void)
{
    pthread_once(&once, read_cpuinfo);
    return cpu_isa;
}

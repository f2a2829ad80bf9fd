/* Helpers of the suites that run `cnnc` on files of their own: a temporary folder per test
 * (make_tmp/remove_tmp as the suite's init and fini), paths in it, and running cnnc. */
#ifndef CNN_TESTS_CLI_UTIL_H
#define CNN_TESTS_CLI_UTIL_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];

static inline void make_tmp(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cnnc-test-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static inline void remove_tmp(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_expect_eq(system(cmd), 0);
}

static inline const char *tmp(const char *name)
{
    static char buf[8][1024];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

/* Runs cnnc with args followed by redirections (after its stderr went to the pipe); its exit
 * status, the output in *out (malloc'd). */
static inline int run_cnnc_redirected(char **out, const char *args, const char *redirect)
{
    char cmd[4096];
    const char *c = getenv("CNNC");
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1 %s", c ? c : "build/cnnc", args, redirect);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap);
    while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0)
        len += n;
    buf[len] = '\0';
    int st = pclose(p);
    *out = buf;
    cr_assert(WIFEXITED(st), "cnnc %s: status %d\n%s", args, st, buf);
    return WEXITSTATUS(st);
}

/* Runs cnnc with args; its exit status, the output in *out (malloc'd). */
static inline int run_cnnc(char **out, const char *args)
{
    return run_cnnc_redirected(out, args, "");
}

#endif

/* Files the runtime and `cnnc` write and read: writers never replace what is not a regular
 * file (a FIFO, /dev/null) and keep a file's mode and symlinks; write errors on standard output
 * or a log are errors (exit 1 with a message); a source is capped in size (16 MiB), also when
 * read from /dev/zero or a FIFO that never ends. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/cnn.h"
#include "runtime/npy.h"

#include "cli_util.h"

TestSuite(files, .init = make_tmp, .fini = remove_tmp, .timeout = 120);

static const float values[6] = {1, 2, 3, 4, 5, 6};
static const int64_t dims[2] = {2, 3};
#define NPY_BYTES 152 /* 128 of header, 24 of data */

static void write_npy(const char *path)
{
    char err[512] = "";
    cr_assert_eq(rt_npy_write(path, 2, dims, values, err, sizeof err), RT_NPY_OK, "%s", err);
}

Test(files, a_fifo_is_written_in_place)
{
    const char *fifo = tmp("out.npy");
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) { /* the reader: counts the bytes; gives up after 20 s (a writer that renamed
                     * a file over the FIFO never opens it) */
        alarm(20);
        int fd = open(fifo, O_RDONLY);
        char buf[4096];
        ssize_t n, total = 0;
        while (fd >= 0 && (n = read(fd, buf, sizeof buf)) > 0)
            total += n;
        _exit(total == NPY_BYTES ? 0 : 1);
    }
    write_npy(fifo);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the reader did not get the whole file");
    struct stat sb;
    cr_assert_eq(stat(fifo, &sb), 0);
    cr_expect(S_ISFIFO(sb.st_mode), "the FIFO was replaced");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q tmp", tmpdir);
    cr_expect_neq(system(cmd), 0, "a temporary file was left behind");
}

Test(files, dev_null_stays_a_device)
{
    struct stat sb;
    if (stat("/dev/null", &sb) != 0 || !S_ISCHR(sb.st_mode) || access("/dev/null", W_OK) != 0)
        cr_skip_test("/dev/null is not a writable character device here");
    write_npy("/dev/null");
    cr_assert_eq(stat("/dev/null", &sb), 0);
    cr_expect(S_ISCHR(sb.st_mode), "/dev/null is no longer a character device");
    char *out;
    char args[1024];
    const char *d = getenv("CNN_FIXTURES");
    snprintf(args, sizeof args, "run '%s/lenet5.cnn' -o /dev/null", d ? d : "tests/fixtures");
    int rc = run_cnnc(&out, args);
    cr_expect_eq(rc, 0, "%s", out);
    free(out);
    cr_assert_eq(stat("/dev/null", &sb), 0);
    cr_expect(S_ISCHR(sb.st_mode), "cnnc run -o /dev/null replaced /dev/null");
}

Test(files, mode_and_symlinks_are_kept)
{
    const char *file = tmp("w.npy");
    write_npy(file);
    cr_assert_eq(chmod(file, 0600), 0);
    write_npy(file);
    struct stat sb;
    cr_assert_eq(stat(file, &sb), 0);
    cr_expect_eq(sb.st_mode & 07777, 0600, "mode %o", (unsigned)(sb.st_mode & 07777));
    cr_expect(S_ISREG(sb.st_mode));

    const char *link = tmp("link.npy");
    cr_assert_eq(symlink(file, link), 0);
    cr_assert_eq(truncate(file, 0), 0);
    write_npy(link);
    cr_assert_eq(lstat(link, &sb), 0);
    cr_expect(S_ISLNK(sb.st_mode), "the symlink was replaced by a file");
    cr_assert_eq(stat(file, &sb), 0);
    cr_expect_eq(sb.st_size, NPY_BYTES, "the file the link names was not written");
    cr_expect_eq(sb.st_mode & 07777, 0600);
}

static const char *fx(const char *name)
{
    static char buf[8][1024];
    static int k;
    k = (k + 1) % 8;
    const char *d = getenv("CNN_FIXTURES");
    snprintf(buf[k], sizeof buf[k], "%s/%s", d ? d : "tests/fixtures", name);
    return buf[k];
}

/* cnnc ARGS with standard output on /dev/full: exit 1 and the needle on stderr */
static void expect_full(const char *needle, const char *args, const char *redirect)
{
    char *out;
    int rc = run_cnnc_redirected(&out, args, redirect);
    cr_expect_eq(rc, 1, "cnnc %s %s: exit %d\n%s", args, redirect, rc, out);
    cr_expect(strstr(out, needle) != NULL, "cnnc %s %s: output lacks \"%s\":\n%s", args, redirect, needle, out);
    free(out);
}

Test(files, write_errors_are_errors)
{
    if (access("/dev/full", W_OK) != 0)
        cr_skip_test("no /dev/full");
    char args[4096];
    const char *stdout_full = "cannot write to standard output: No space left on device";
    const char *ex = getenv("CNN_EXAMPLES");
    snprintf(args, sizeof args, "emit '%s/lenet5.cnn'", ex ? ex : "examples");
    expect_full(stdout_full, args, ">/dev/full");
    snprintf(args, sizeof args, "'%s/lenet5.cnn'", ex ? ex : "examples");
    expect_full(stdout_full, args, ">/dev/full");
    snprintf(args, sizeof args, "run '%s'", fx("lenet5.cnn"));
    expect_full(stdout_full, args, ">/dev/full");
    snprintf(args, sizeof args, "eval '%s' -w '%s' --data '%s'", fx("train_res.sgd.cnn"),
             fx("train_res.init.safetensors"), fx("train_res_data"));
    expect_full(stdout_full, args, ">/dev/full");
    snprintf(args, sizeof args, "train '%s' --data '%s' --steps 5", fx("train_res.sgd.cnn"), fx("train_res_data"));
    expect_full(stdout_full, args, ">/dev/full");
    snprintf(args, sizeof args, "train '%s' --data '%s' --log /dev/full --steps 5", fx("train_res.sgd.cnn"),
             fx("train_res_data"));
    expect_full("cannot write the log /dev/full: No space left on device", args, ">/dev/null");
}

/* cnnc SOURCE under a 20 s timeout: exit 1 with the limit named */
static void expect_too_big(const char *source)
{
    char cmd[2048];
    const char *c = getenv("CNNC");
    snprintf(cmd, sizeof cmd, "timeout 20 '%s' '%s' 2>&1", c ? c : "build/cnnc", source);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = '\0';
    int st = pclose(p);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 1, "cnnc %s: status %d\n%s", source, st, buf);
    cr_expect(strstr(buf, "error: the source is larger than 16777216 bytes (16 MiB), the limit") != NULL,
              "cnnc %s:\n%s", source, buf);
}

Test(files, sources_are_capped)
{
    if (access("/dev/zero", R_OK) == 0)
        expect_too_big("/dev/zero");
    const char *fifo = tmp("src.cnn");
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) { /* an endless writer; ends with SIGPIPE or the alarm */
        alarm(30);
        int fd = open(fifo, O_WRONLY);
        char spaces[4096];
        memset(spaces, ' ', sizeof spaces);
        while (fd >= 0 && write(fd, spaces, sizeof spaces) > 0)
            ;
        _exit(0);
    }
    expect_too_big(fifo);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);

    size_t len = CNN_MAX_SOURCE_BYTES + 1;
    char *src = malloc(len);
    cr_assert_not_null(src);
    memset(src, ' ', len);
    cnn_model *m = NULL;
    cr_expect_eq(cnn_model_compile(&m, "big.cnn", src, len, NULL), CNN_ERR_INPUT);
    cr_expect(strstr(cnn_model_errmsg(m), "big.cnn: error: the source is 16777217 bytes, more than the limit") != NULL,
              "%s", cnn_model_errmsg(m));
    cnn_model_destroy(m);
    free(src);
}

/* Faults lose nothing (issue 16, item 4): a weights file written by `cnnc train --save` over a
 * valid one survives SIGKILL at any moment (the old file byte for byte, or a complete new
 * one), the temporary files killed runs leave are removed by the next write of that target, and
 * a full disk (a 64 KiB tmpfs) or a read-only folder give a clear error, exit 1, with the old
 * file intact and no temporary file left.  The mounts need root and a kernel that lets this
 * process mount; otherwise those tests say so and pass (a read-only folder falls back to
 * chmod 555 when not root). */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/cli_util.h"
#include "tests/file_util.h"
#include "runtime/cnn.h"
#include "runtime/fileio.h"

TestSuite(faults, .init = make_tmp, .fini = remove_tmp, .timeout = 240);

static const char *cnnc_path(void)
{
    const char *c = getenv("CNNC");
    return c ? c : "build/cnnc";
}

static void put(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* A training split of n 8x8 images in 4 classes in folder dir. */
static void write_idx(const char *dir, int n)
{
    size_t ilen = 16 + (size_t)n * 64, llen = 8 + (size_t)n;
    unsigned char *img = malloc(ilen), *lab = malloc(llen);
    be32(img, 0x803), be32(img + 4, (uint32_t)n), be32(img + 8, 8), be32(img + 12, 8);
    be32(lab, 0x801), be32(lab + 4, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        lab[8 + i] = (unsigned char)(i % 4);
        for (int k = 0; k < 64; k++)
            img[16 + (size_t)i * 64 + k] = (unsigned char)((i * 7 + k * 3) % 256);
    }
    char p[1100];
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", dir);
    put(p, img, ilen);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte", dir);
    put(p, lab, llen);
    free(img), free(lab);
}

/* A network whose weights file is `hidden` * 65 * 4 bytes or so. */
static void write_net(const char *path, int hidden)
{
    char src[512];
    int n = snprintf(src, sizeof src,
                     "network fault_net {\n    input image[1, 8, 8];\n"
                     "    output logits = image -> flatten -> dense(%d) -> relu -> dense(4);\n}\n"
                     "train fault_net { optimizer = sgd(lr=0.01); batch = 16; epochs = 1; }\n",
                     hidden);
    put(path, src, (size_t)n);
}

/* Temporary files of target (its name followed by ".PID-K.tmp") in its folder. */
static int count_temps(const char *dir, const char *base)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    size_t blen = strlen(base);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, base, blen) == 0 && e->d_name[blen] == '.' && len > blen + 4 &&
            strcmp(e->d_name + len - 4, ".tmp") == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* Starts cnnc with argv (argv[0] ignored), output to /dev/null. */
static pid_t spawn(char *const argv[])
{
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1), dup2(fd, 2);
        execv(cnnc_path(), argv);
        _exit(127);
    }
    return pid;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* 1 when path is a complete weights file of the model: it loads. */
static int loads(cnn_model *m, const char *path)
{
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 0), CNN_OK);
    cnn_status st = cnn_weights_load(w, path, false);
    if (st != CNN_OK)
        cr_log_error("%s: %s", path, cnn_weights_errmsg(w));
    cnn_weights_destroy(w);
    return st == CNN_OK;
}

static uint64_t xs = 0x243f6a8885a308d3ULL;
static uint64_t rnd(void)
{
    xs ^= xs << 13, xs ^= xs >> 7, xs ^= xs << 17;
    return xs;
}

Test(faults, sigkill_during_save_keeps_old_or_new_file)
{
    const char *net = tmp("net.cnn"), *data = tmp("data"), *w = tmp("w.safetensors");
    write_net(net, 3000); /* about 780 KB of weights: the save is a good part of a run */
    write_idx(data, 64);
    char seed[32];
    char *argv[] = {"cnnc", "train", (char *)net, "--data", (char *)data, "-w", (char *)w, "--save", (char *)w,
                    "--steps", "1", "--threads", "1", "--seed", seed, "-q", NULL};
    /* the first W: from a run without -w */
    char *first[] = {"cnnc", "train", (char *)net, "--data", (char *)data, "--save", (char *)w, "--steps", "1",
                     "--threads", "1", "-q", NULL};
    int st;
    waitpid(spawn(first), &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the first save failed: %d", st);

    cnn_model *m = NULL;
    cr_assert_eq(cnn_model_load(&m, net, NULL), CNN_OK);
    size_t oldlen;
    char *old = test_read_file(w, &oldlen);
    cr_assert(loads(m, w));

    /* how long a whole run takes (the kills land anywhere in it, and a bit after) */
    double t = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(seed, sizeof seed, "%d", 1000 + i);
        double t0 = now();
        waitpid(spawn(argv), &st, 0);
        double dt = now() - t0;
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a complete run failed: %d", st);
        t = dt > t ? dt : t;
    }
    free(old);
    old = test_read_file(w, &oldlen);

    int kept_old = 0, got_new = 0, finished = 0, left_temps = 0, cleaned = 0;
    const int trials = 100;
    char wbase[] = "w.safetensors";
    for (int i = 0; i < trials; i++) {
        int before = count_temps(tmpdir, wbase);
        snprintf(seed, sizeof seed, "%d", i);
        pid_t pid = spawn(argv);
        useconds_t delay = (useconds_t)(rnd() % (uint64_t)(t * 1.1e6 + 1));
        usleep(delay);
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        if (WIFEXITED(st)) {
            finished++;
            cr_assert_eq(WEXITSTATUS(st), 0, "trial %d: exit %d", i, WEXITSTATUS(st));
        }
        size_t len;
        char *now_bytes = test_read_file(w, &len);
        cr_assert_not_null(now_bytes, "trial %d: %s is gone", i, w);
        if (len == oldlen && memcmp(now_bytes, old, len) == 0) {
            kept_old++;
            free(now_bytes);
        } else {
            cr_assert(loads(m, w), "trial %d (killed after %u us): %s is neither the old file nor a complete new one",
                      i, (unsigned)delay, w);
            got_new++;
            free(old);
            old = now_bytes, oldlen = len;
        }
        int after = count_temps(tmpdir, wbase);
        if (after > 0)
            left_temps++;
        /* the run that got as far as writing removed every earlier stale file first */
        if (before > 0 && after < before)
            cleaned++;
    }
    /* one run to the end: every temporary file the killed runs left is gone */
    int stale_before = count_temps(tmpdir, wbase);
    snprintf(seed, sizeof seed, "%d", 7777);
    waitpid(spawn(argv), &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    int stale_after = count_temps(tmpdir, wbase);
    cr_log_info("%d SIGKILLs within %.0f ms runs: old file kept %d, new complete file %d (%d runs had finished); "
                "%d kills left a temporary file, later runs cleaned them %d times; before the last run %d, after %d",
                trials, t * 1e3, kept_old, got_new, finished, left_temps, cleaned, stale_before, stale_after);
    cr_assert_eq(stale_after, 0, "%d temporary files left after a complete run", stale_after);
    cr_assert(loads(m, w));
    free(old);
    cnn_model_destroy(m);
}

/* A stale temporary file of a dead writer is removed when the target is next written; one of a
 * live process, of this process, of another target or of another shape is not. */
Test(faults, stale_temporary_files_cleaned)
{
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    waitpid(child, NULL, 0); /* a PID no process has now */
    char dead[1100], live[1100], mine[1100], other[1100], odd[1100];
    const char *target = tmp("out.safetensors");
    snprintf(dead, sizeof dead, "%s.%ld-0.tmp", target, (long)child);
    snprintf(live, sizeof live, "%s.1-0.tmp", target);
    snprintf(mine, sizeof mine, "%s.%ld-3.tmp", target, (long)getpid());
    snprintf(other, sizeof other, "%s.%ld-0.tmp", tmp("other.safetensors"), (long)child);
    snprintf(odd, sizeof odd, "%s.%ldx-0.tmp", target, (long)child);
    const char *all[] = {dead, live, mine, other, odd};
    for (int i = 0; i < 5; i++)
        put(all[i], "x", 1);

    cnn_model *m = NULL;
    const char src[] = "network n { input x[3]; output y = x -> dense(2); }";
    cr_assert_eq(cnn_model_compile(&m, "n.cnn", src, strlen(src), NULL), CNN_OK);
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 0), CNN_OK);
    cr_assert_eq(cnn_weights_save(w, target), CNN_OK, "%s", cnn_weights_errmsg(w));
    cr_assert_neq(access(dead, F_OK), 0, "the dead writer's %s is still there", dead);
    for (int i = 1; i < 5; i++)
        cr_assert_eq(access(all[i], F_OK), 0, "%s was removed", all[i]);
    cr_assert_eq(rt_out_clean_stale(target), 0);
    /* the same through rt_out_open, which says how many it removed */
    put(dead, "x", 1);
    rt_outfile o;
    cr_assert_eq(rt_out_open(&o, target), 0);
    cr_assert_eq(o.stale_removed, 1);
    rt_out_abort(&o);
    cr_assert_neq(access(dead, F_OK), 0);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

/* ---- a full disk and a read-only folder ---- */

/* Mounts a tmpfs of `size` at dir; 0, or -1 with the reason logged. */
static int mount_tmpfs(const char *dir, const char *size)
{
    if (geteuid() != 0) {
        cr_log_warn("skipped: not root, cannot mount a tmpfs at %s", dir);
        return -1;
    }
    char opts[64];
    snprintf(opts, sizeof opts, "size=%s,mode=0755", size);
    if (mount("tmpfs", dir, "tmpfs", 0, opts) != 0) {
        cr_log_warn("skipped: mount -t tmpfs -o %s at %s failed: %s", opts, dir, strerror(errno));
        return -1;
    }
    return 0;
}

Test(faults, full_disk_keeps_old_file)
{
    const char *mnt = tmp("small");
    cr_assert_eq(mkdir(mnt, 0755), 0);
    if (mount_tmpfs(mnt, "64k") != 0)
        return;
    const char *net = tmp("big.cnn"), *data = tmp("data");
    write_net(net, 2000); /* about 520 KB: cannot fit in 64 KiB */
    write_idx(data, 32);
    char w[1100];
    snprintf(w, sizeof w, "%s/w.safetensors", mnt);
    const char old[] = "the previous file, whatever it held";
    put(w, old, sizeof old);

    char args[4096], *out = NULL;
    snprintf(args, sizeof args, "train '%s' --data '%s' --save '%s' --steps 1 --threads 1 -q", net, data, w);
    int rc = run_cnnc(&out, args);
    size_t len = 0;
    char *now_bytes = test_file_bytes(w, &len);
    int temps = count_temps(mnt, "w.safetensors");
    umount2(mnt, MNT_DETACH);
    cr_log_info("full disk: exit %d: %s", rc, out);
    cr_assert_eq(rc, 1, "exit %d: %s", rc, out);
    cr_assert_not_null(strstr(out, w), "the message does not name %s: %s", w, out);
    cr_assert_not_null(strstr(out, "No space left on device"), "%s", out);
    cr_assert(now_bytes && len == sizeof old && memcmp(now_bytes, old, len) == 0, "the old file changed");
    cr_assert_eq(temps, 0, "%d temporary files left on the full disk", temps);
    free(now_bytes);
    free(out);
}

Test(faults, read_only_folder_keeps_old_file)
{
    const char *dir = tmp("ro");
    cr_assert_eq(mkdir(dir, 0755), 0);
    int mounted = 0;
    if (geteuid() == 0) {
        if (mount_tmpfs(dir, "1m") != 0)
            return;
        mounted = 1;
    }
    char w[1100];
    snprintf(w, sizeof w, "%s/w.safetensors", dir);
    const char old[] = "the previous file";
    put(w, old, sizeof old);
    if (mounted) {
        if (mount("tmpfs", dir, "tmpfs", MS_REMOUNT | MS_RDONLY, "size=1m") != 0) {
            cr_log_warn("skipped: remounting %s read-only failed: %s", dir, strerror(errno));
            umount2(dir, MNT_DETACH);
            return;
        }
    } else {
        cr_assert_eq(chmod(dir, 0555), 0);
    }
    const char *net = tmp("n.cnn"), *data = tmp("data");
    write_net(net, 16);
    write_idx(data, 32);
    char args[4096], *out = NULL;
    snprintf(args, sizeof args, "train '%s' --data '%s' --save '%s' --steps 1 --threads 1 -q", net, data, w);
    int rc = run_cnnc(&out, args);
    size_t len = 0;
    char *now_bytes = test_file_bytes(w, &len);
    int temps = count_temps(dir, "w.safetensors");
    if (mounted)
        umount2(dir, MNT_DETACH);
    else
        chmod(dir, 0755);
    cr_log_info("read-only folder (%s): exit %d: %s", mounted ? "read-only tmpfs" : "chmod 555", rc, out);
    cr_assert_eq(rc, 1, "exit %d: %s", rc, out);
    cr_assert_not_null(strstr(out, w), "the message does not name %s: %s", w, out);
    cr_assert(strstr(out, "Read-only file system") || strstr(out, "Permission denied"), "%s", out);
    cr_assert(now_bytes && len == sizeof old && memcmp(now_bytes, old, len) == 0, "the old file changed");
    cr_assert_eq(temps, 0);
    free(now_bytes);
    free(out);
}

/* ---- memory: what a session, weights and cnnc refuse before allocating ---- */

#include "runtime/sysmem.h"

static cnn_model *compile_text(const char *src)
{
    cnn_model *m = NULL;
    cr_assert_eq(cnn_model_compile(&m, "t.cnn", src, strlen(src), NULL), CNN_OK, "%s", cnn_model_errmsg(m));
    return m;
}

static const char LENET[] =
    "network lenet { input image[1, 28, 28];\n"
    "  output y = image -> conv2d(6, 5, pad=2) -> relu -> maxpool(2) -> conv2d(16, 5) -> relu -> maxpool(2)\n"
    "    -> flatten -> dense(120) -> relu -> dense(84) -> relu -> dense(10); }\n";
/* 16 channels of 1024 x 1024 per example: 64 MiB of activations at batch 1, tiny weights */
static const char WIDE[] = "network wide { input x[1, 1024, 1024]; output y = x -> conv2d(16, 3, pad=1) -> relu; }\n";

Test(faults, memory_figure_is_sane)
{
    unsetenv("CNN_MEMORY_LIMIT");
    uint64_t avail = rt_mem_available();
    cr_assert_gt(avail, 1u << 20, "%llu bytes available?", (unsigned long long)avail);
    setenv("CNN_MEMORY_LIMIT", "12345", 1);
    cr_assert_eq(rt_mem_available(), 12345);
    char b[32];
    rt_mem_format(b, sizeof b, 3ull << 30);
    cr_assert_str_eq(b, "3.0 GiB");
    rt_mem_format(b, sizeof b, 1536ull << 20);
    cr_assert_str_eq(b, "1.5 GiB");
    rt_mem_format(b, sizeof b, 100);
    cr_assert_str_eq(b, "100 bytes");
}

Test(faults, session_larger_than_memory_is_refused)
{
    setenv("CNN_MEMORY_LIMIT", "10000000", 1); /* 9.5 MiB */
    cnn_model *m = compile_text(LENET);
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 0), CNN_OK);
    cnn_session *s = NULL;
    cnn_status st = cnn_session_create(&s, m, w, NULL, 4096, CNN_MODE_INFER, NULL);
    cr_log_info("%s", cnn_session_errmsg(s));
    cr_assert_eq(st, CNN_ERR_INPUT, "status %d: %s", st, cnn_session_errmsg(s));
    /* (the arena's size depends on the plan: which backends run the first layer) */
    double need = 0.0;
    cr_assert_eq(sscanf(cnn_session_errmsg(s), "the inference arena at batch 4096 needs %lf MiB, the machine has 9.5 MiB available",
                        &need), 1, "%s", cnn_session_errmsg(s));
    cr_assert(need > 30.0 && need < 60.0, "%s", cnn_session_errmsg(s));
    cr_assert(strstr(cnn_session_errmsg(s), "MiB, the machine has 9.5 MiB available"), "%s", cnn_session_errmsg(s));
    cnn_session_destroy(s);
    cr_assert_eq(cnn_session_create(&s, m, w, NULL, 64, CNN_MODE_INFER, NULL), CNN_OK, "%s", cnn_session_errmsg(s));
    cnn_session_destroy(s);
    cnn_weights_destroy(w);

    setenv("CNN_MEMORY_LIMIT", "100000", 1);
    cr_assert_eq(cnn_weights_create(&w, m, 0), CNN_ERR_NOMEM);
    cr_log_info("%s", cnn_weights_errmsg(w));
    cr_assert_str_eq(cnn_weights_errmsg(w), "storing the weights needs 241.0 KiB, the machine has 97.7 KiB available");
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

Test(faults, cnnc_memory_exit_statuses)
{
    const char *lenet = tmp("lenet.cnn"), *wide = tmp("wide.cnn");
    put(lenet, LENET, sizeof LENET - 1);
    put(wide, WIDE, sizeof WIDE - 1);
    setenv("CNN_MEMORY_LIMIT", "10000000", 1);
    struct {
        const char *args;
        int rc;
        const char *needle, *needle2;
    } cases[] = {
        /* the batch makes it too large: usage */
        {"run '%s' --batch 4096", 2, "the inference arena at batch 4096 needs ",
         "note: the network fits at batch 1; try a smaller --batch"},
        /* too large at batch 1: the network */
        {"run '%s' --batch 4", 1, "the inference arena at batch 4 needs ", "MiB, the machine has 9.5 MiB available"},
        {"run '%s'", 1, "the inference arena at batch 1 needs ", "MiB, the machine has 9.5 MiB available"},
    };
    const char *nets[] = {lenet, wide, wide};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[2048], *out = NULL;
        snprintf(args, sizeof args, cases[i].args, nets[i]);
        int rc = run_cnnc(&out, args);
        cr_log_info("cnnc %s: exit %d: %s", args, rc, out);
        cr_expect_eq(rc, cases[i].rc, "cnnc %s: exit %d: %s", args, rc, out);
        cr_expect_not_null(strstr(out, cases[i].needle), "cnnc %s: %s", args, out);
        cr_expect_not_null(strstr(out, cases[i].needle2), "cnnc %s: %s", args, out);
        free(out);
    }
    /* the weights of the network: exit 1 */
    setenv("CNN_MEMORY_LIMIT", "100000", 1);
    char args[2048], *out = NULL;
    snprintf(args, sizeof args, "run '%s'", lenet);
    int rc = run_cnnc(&out, args);
    cr_log_info("cnnc %s: exit %d: %s", args, rc, out);
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect_not_null(strstr(out, "storing the weights needs 241.0 KiB, the machine has 97.7 KiB available"), "%s", out);
    free(out);
}

/* A data folder larger than the memory left: refused with both figures before its images are
 * read (IDX: the header's count; CIFAR-10: the files' sizes). */
Test(faults, dataset_larger_than_memory_is_refused)
{
    char err[1024];
    bool absent = false;
    cnn_dataset *d = NULL;
    /* Fashion-MNIST's training images: 60,000 x 28 x 28 bytes = 44.9 MiB */
    setenv("CNN_MEMORY_LIMIT", "10000000", 1);
    cnn_status st = cnn_dataset_load(&d, "/usr/share/datasets/fashion-mnist", "train", &absent, err, sizeof err);
    unsetenv("CNN_MEMORY_LIMIT");
    if (absent) {
        cr_log_warn("no /usr/share/datasets/fashion-mnist: skipped");
        return;
    }
    cr_log_info("%s", err);
    cr_assert_eq(st, CNN_ERR_INPUT, "%s", err);
    cr_assert_null(d);
    cr_expect_not_null(strstr(err, "60000 images of 28x28: loading its images needs 44.9 MiB, the machine has 9.5 MiB "
                                   "available"), "%s", err);
    /* CIFAR-10: 3 records of 3073 bytes, refused at a limit below their 9,228 bytes */
    const char *dir = tmp("cifar");
    cr_assert_eq(mkdir(dir, 0700), 0);
    static unsigned char recs[3 * 3073];
    char path[2048];
    snprintf(path, sizeof path, "%s/data_batch_1.bin", dir);
    put(path, (const char *)recs, sizeof recs);
    setenv("CNN_MEMORY_LIMIT", "5000", 1);
    st = cnn_dataset_load(&d, dir, "train", &absent, err, sizeof err);
    unsetenv("CNN_MEMORY_LIMIT");
    cr_log_info("%s", err);
    cr_assert_eq(st, CNN_ERR_INPUT, "%s", err);
    cr_expect_not_null(strstr(err, "3 images: loading its images needs 9.0 KiB, the machine has 4.9 KiB available"), "%s",
                       err);
    cr_assert_eq(cnn_dataset_load(&d, dir, "train", &absent, err, sizeof err), CNN_OK, "%s", err);
    cnn_dataset_destroy(d);
}

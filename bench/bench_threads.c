/* Throughput on 1 and 2 threads, on an idle machine and beside a busy process.
 *
 *   bench_threads NET.cnn [batch=1] [backend=auto] [mode=infer] [window=1.0] [rounds=3]
 *
 * backend: auto, ref, native, onednn; mode: infer (cnn_session_run) or train
 * (cnn_session_train_step, learning rate 1e-4).  Each round measures four configurations one
 * after the other (idle 1 thread, idle 2 threads, busy 2 threads, busy 1 thread; odd rounds
 * swap the two idle ones and the two busy ones, so neither is always first); "busy" runs
 * beside a child process the bench starts (`yes` writing to /dev/null, or a spinning child if
 * `yes` cannot be run), killed after the busy configurations and on any exit or signal.  Each
 * configuration runs for `window` seconds of wall time per round; its figure is the total
 * images over the total wall time of all rounds (a mean, so a collapse in some runs shows),
 * with the slowest and fastest round's images/s.  Printed: images/s per configuration, then
 * busy 2T / idle 2T and idle 2T / idle 1T, and a one-line summary ("RESULT ...") for tables. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "runtime/cnn.h"

static volatile pid_t busy_pid = 0;

static void busy_stop(void)
{
    pid_t p = busy_pid;
    if (p > 0) {
        kill(p, SIGKILL);
        waitpid(p, NULL, 0);
        busy_pid = 0;
    }
}

static void on_signal(int sig)
{
    pid_t p = busy_pid;
    if (p > 0)
        kill(p, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int busy_start(void)
{
    pid_t parent = getpid();
    pid_t p = fork();
    if (p < 0) {
        perror("fork");
        return -1;
    }
    if (p == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives the bench */
        if (getppid() != parent)
            _exit(0);
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            close(fd);
        }
        execlp("yes", "yes", (char *)NULL);
        for (volatile unsigned long x = 0;; x++) /* no `yes`: spin */
            ;
    }
    busy_pid = p;
    usleep(20000); /* let it start */
    return 0;
}

typedef struct conf {
    const char *name;
    int threads;
    int busy;
    double images, seconds, lo, hi;
} conf;

static cnn_status one_run(cnn_session *s, int train, const float *labels)
{
    return train ? cnn_session_train_step(s, labels, true, NULL, NULL) : cnn_session_run(s);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s NET.cnn [batch] [auto|ref|native|onednn] [infer|train] [window] [rounds]\n",
                argv[0]);
        return 2;
    }
    int64_t batch = argc > 2 ? atoll(argv[2]) : 1;
    const char *bname = argc > 3 ? argv[3] : "auto";
    int train = argc > 4 && strcmp(argv[4], "train") == 0;
    double window = argc > 5 ? atof(argv[5]) : 1.0;
    int rounds = argc > 6 ? atoi(argv[6]) : 3;
    cnn_backend backend = CNN_BACKEND_AUTO;
    if (strcmp(bname, "ref") == 0) backend = CNN_BACKEND_REF;
    else if (strcmp(bname, "native") == 0) backend = CNN_BACKEND_NATIVE;
    else if (strcmp(bname, "onednn") == 0) backend = CNN_BACKEND_ONEDNN;
    else if (strcmp(bname, "auto") != 0) {
        fprintf(stderr, "unknown backend %s\n", bname);
        return 2;
    }
    if (batch < 1 || rounds < 1 || !(window > 0)) {
        fprintf(stderr, "bad batch, window or rounds\n");
        return 2;
    }
    atexit(busy_stop);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);

    cnn_model *m = NULL;
    cnn_weights *w = NULL;
    if (cnn_model_load(&m, argv[1], NULL) != CNN_OK) {
        fprintf(stderr, "%s\n", cnn_model_errmsg(m));
        return 1;
    }
    if (cnn_weights_create(&w, m, 1) != CNN_OK) {
        fprintf(stderr, "%s\n", cnn_weights_errmsg(w));
        return 1;
    }
    cnn_session *s[3] = {NULL, NULL, NULL}; /* by thread count */
    float *labels = calloc((size_t)batch, sizeof(float));
    if (!labels)
        return 3;
    for (int i = 0; i < batch; i++) labels[i] = (float)(i % 2);
    for (int t = 1; t <= 2; t++) {
        cnn_options o;
        cnn_options_default(&o);
        o.threads = t;
        o.backend = backend;
        if (cnn_session_create(&s[t], m, w, &o, batch, train ? CNN_MODE_TRAIN : CNN_MODE_INFER, NULL) != CNN_OK) {
            fprintf(stderr, "%d threads: %s\n", t, cnn_session_errmsg(s[t]));
            return 1;
        }
        if (train) cnn_session_set_lr(s[t], 1e-4);
        bench_fill_input(m, s[t], batch);
        for (int r = 0; r < 3; r++) /* warm-up: primitives, weight reorders */
            if (one_run(s[t], train, labels) != CNN_OK) {
                fprintf(stderr, "%d threads: %s\n", t, cnn_session_errmsg(s[t]));
                return 1;
            }
    }
    conf cf[4] = {{"idle 1T", 1, 0, 0, 0, 1e30, 0}, {"idle 2T", 2, 0, 0, 0, 1e30, 0},
                  {"busy 2T", 2, 1, 0, 0, 1e30, 0}, {"busy 1T", 1, 1, 0, 0, 1e30, 0}};
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < 4; i++) {
            /* odd rounds swap the order within the idle pair and within the busy pair */
            int k = r % 2 ? i ^ 1 : i;
            if (cf[k].busy && busy_pid == 0 && busy_start() != 0)
                return 3;
            if (!cf[k].busy)
                busy_stop();
            cnn_session *ss = s[cf[k].threads];
            double t0 = now(), t1 = t0;
            int64_t n = 0;
            while (t1 - t0 < window) {
                if (one_run(ss, train, labels) != CNN_OK) {
                    fprintf(stderr, "%s: %s\n", cf[k].name, cnn_session_errmsg(ss));
                    return 1;
                }
                n++;
                t1 = now();
            }
            double ips = (double)(n * batch) / (t1 - t0);
            cf[k].images += (double)(n * batch);
            cf[k].seconds += t1 - t0;
            if (ips < cf[k].lo) cf[k].lo = ips;
            if (ips > cf[k].hi) cf[k].hi = ips;
        }
    busy_stop();
    printf("%s, batch %lld, %s backend, %s, %d rounds of %.2f s per configuration (%s)\n", argv[1], (long long)batch,
           bname, train ? "training step" : "inference", rounds, window, cnn_cpu_isa());
    double ips[4];
    for (int k = 0; k < 4; k++) {
        ips[k] = cf[k].images / cf[k].seconds;
        printf("  %-8s %10.1f images/s  [%.1f - %.1f]\n", cf[k].name, ips[k], cf[k].lo, cf[k].hi);
    }
    printf("  busy2T/idle2T %.2f   idle2T/idle1T %.2f   busy1T/idle1T %.2f\n", ips[2] / ips[1], ips[1] / ips[0],
           ips[3] / ips[0]);
    const char *net = strrchr(argv[1], '/');
    printf("RESULT %s b%lld %s %s idle1T %.1f idle2T %.1f busy2T %.1f busy1T %.1f busy2T/idle2T %.2f 2T/1T %.2f\n",
           net ? net + 1 : argv[1], (long long)batch, bname, train ? "train" : "infer", ips[0], ips[1], ips[2], ips[3],
           ips[2] / ips[1], ips[1] / ips[0]);
    for (int t = 1; t <= 2; t++) cnn_session_destroy(s[t]);
    free(labels);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    return 0;
}

/* Micro-benchmark of the oneDNN convolution and dense kernels (ops/onednn/).  On this Zen 4
 * machine oneDNN's conv 3x3 64->64 at 56x56 reaches 115-124 GFLOP/s on 1 thread, near the
 * single-core FMA peak of about 117 GFLOP/s.  For each case and thread count it prints GFLOP/s (a
 * multiply-add counts 2) for
 *   prim:   the convolution primitive alone (oneDNN's chosen layouts, as in the anchors),
 *   kernel: the whole kernel run (reorders of x and w from NCHW/OIHW and of y back included),
 * medians over 7 timed batches of iterations, and the implementation oneDNN chose.
 *
 *   bench_conv_onednn [seconds-per-measurement, default 0.25] [case-name filter]
 * With BENCH_STEPS set in the environment it also prints each step's time (reorders and the
 * primitive, marked *); BENCH_THREADS=n measures n threads only (default: 1, then 2). */
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench_util.h"
#include "ops/kernels.h"
#include "ops/onednn/dnn_common.h"
#include "ops/onednn/onednn.h"

typedef struct bcase {
    const char *name;
    int64_t n, c, h, w, f, k, pad;
    int64_t units; /* > 0: a dense layer [n, c] -> [n, units] instead of a conv */
} bcase;

static const bcase cases[] = {
    {"conv 3x3 64->64 56x56 b1", 1, 64, 56, 56, 64, 3, 1, 0},
    {"conv 3x3 128->128 16x16 b1", 1, 128, 16, 16, 128, 3, 1, 0},
    {"LeNet c1 1->6 k5 28x28 p2 b1", 1, 1, 28, 28, 6, 5, 2, 0},
    {"LeNet c2 6->16 k5 14x14 b1", 1, 6, 14, 14, 16, 5, 0, 0},
    {"LeNet c1 1->6 k5 28x28 p2 b64", 64, 1, 28, 28, 6, 5, 2, 0},
    {"LeNet c2 6->16 k5 14x14 b64", 64, 6, 14, 14, 16, 5, 0, 0},
    {"conv 3x3 3->64 32x32 b64", 64, 3, 32, 32, 64, 3, 1, 0},
    {"resnet20 3x3 16->16 32x32 b64", 64, 16, 32, 32, 16, 3, 1, 0},
    {"resnet20 3x3 64->64 8x8 b64", 64, 64, 8, 8, 64, 3, 1, 0},
    {"dense 64x1024->1024", 64, 1024, 1, 1, 0, 0, 0, 1024},
};

static float *random_buffer(int64_t n, unsigned *seed)
{
    float *p = malloc((size_t)n * sizeof(float));
    if (!p) exit(1);
    for (int64_t i = 0; i < n; i++) p[i] = (float)rand_r(seed) / (float)RAND_MAX - 0.5f;
    return p;
}

static void set_t(op_tensor *t, float *data, int rank, const int64_t *d)
{
    memset(t, 0, sizeof *t);
    t->data = data;
    t->rank = rank;
    for (int i = 0; i < rank; i++) t->d[i] = d[i];
}

/* Median seconds per call of steps [from, to) of the prepared program (or the whole run). */
static double time_calls(const op_kernel *k, op_call *c, int from, int to, double budget)
{
    char err[256];
    op_dnn_prog *p = c->state;
    int iters = 1;
    for (;;) { /* calibrate: iterations filling about budget/7 seconds */
        double t0 = now();
        for (int i = 0; i < iters; i++) {
            int rc = from < 0 ? k->run(c, err, sizeof err) : op_dnn_exec(p, c, from, to, err, sizeof err);
            if (rc) {
                fprintf(stderr, "run failed: %s\n", err);
                exit(1);
            }
        }
        double dt = now() - t0;
        if (dt > budget / 7 || iters > (1 << 20)) break;
        iters *= 2;
    }
    double med[7];
    for (int r = 0; r < 7; r++) {
        double t0 = now();
        for (int i = 0; i < iters; i++)
            if (from < 0)
                k->run(c, err, sizeof err);
            else
                op_dnn_exec(p, c, from, to, err, sizeof err);
        med[r] = (now() - t0) / iters;
    }
    qsort(med, 7, sizeof med[0], cmp_double);
    return med[3];
}

int main(int argc, char **argv)
{
    double budget = argc > 1 ? atof(argv[1]) : 0.25;
    bool steps = getenv("BENCH_STEPS") != NULL;
    int tmin = 1, tmax = 2;
    if (getenv("BENCH_THREADS")) tmin = tmax = atoi(getenv("BENCH_THREADS"));
    if (budget <= 0) budget = 0.25;
    printf("%-32s %3s  %10s  %10s  %s\n", "case", "thr", "prim GF/s", "kernel GF/s", "implementation");
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const bcase *b = &cases[ci];
        if (argc > 2 && !strstr(b->name, argv[2])) continue;
        for (int nt = tmin; nt <= tmax; nt++) {
            op_node node;
            memset(&node, 0, sizeof node);
            op_call c;
            memset(&c, 0, sizeof c);
            unsigned seed = 42;
            double flops;
            float *bufs[4];
            if (b->units > 0) {
                node.op = OP_DENSE;
                node.attrs.dense.units = b->units;
                node.attrs.dense.bias = true;
                set_t(&c.in[0], bufs[0] = random_buffer(b->n * b->c, &seed), 2, (int64_t[]){b->n, b->c});
                set_t(&c.in[1], bufs[1] = random_buffer(b->units * b->c, &seed), 2, (int64_t[]){b->units, b->c});
                set_t(&c.in[2], bufs[2] = random_buffer(b->units, &seed), 1, (int64_t[]){b->units});
                set_t(&c.out[0], bufs[3] = random_buffer(b->n * b->units, &seed), 2, (int64_t[]){b->n, b->units});
                flops = 2.0 * (double)b->n * (double)b->c * (double)b->units;
            } else {
                node.op = OP_CONV2D;
                op_conv_attrs *a = &node.attrs.conv;
                a->sdims = 2;
                a->filters = b->f;
                a->kernel[0] = a->kernel[1] = b->k;
                a->stride[0] = a->stride[1] = 1;
                a->pad[0] = a->pad[1] = b->pad;
                a->dilation[0] = a->dilation[1] = 1;
                a->groups = 1;
                a->bias = true;
                int64_t oh = b->h + 2 * b->pad - b->k + 1, ow = b->w + 2 * b->pad - b->k + 1;
                set_t(&c.in[0], bufs[0] = random_buffer(b->n * b->c * b->h * b->w, &seed), 4,
                      (int64_t[]){b->n, b->c, b->h, b->w});
                set_t(&c.in[1], bufs[1] = random_buffer(b->f * b->c * b->k * b->k, &seed), 4,
                      (int64_t[]){b->f, b->c, b->k, b->k});
                set_t(&c.in[2], bufs[2] = random_buffer(b->f, &seed), 1, (int64_t[]){b->f});
                set_t(&c.out[0], bufs[3] = random_buffer(b->n * b->f * oh * ow, &seed), 4,
                      (int64_t[]){b->n, b->f, oh, ow});
                flops = 2.0 * (double)(b->n * b->f * oh * ow) * (double)(b->c * b->k * b->k);
            }
            c.node = &node;
            c.nin = 3;
            c.nout = 1;
            c.batch = b->n;
            c.nthreads = nt;
            omp_set_num_threads(nt);
            const op_kernel *k = op_onednn_kernel(node.op);
            char err[256];
            if (k->prepare(&c, err, sizeof err)) {
                fprintf(stderr, "%s: prepare failed: %s\n", b->name, err);
                return 1;
            }
            if (k->run(&c, err, sizeof err)) { /* fills the blocked copies the primitive reads */
                fprintf(stderr, "%s: run failed: %s\n", b->name, err);
                return 1;
            }
            op_dnn_prog *p = c.state;
            double tp = time_calls(k, &c, p->main_step, p->main_step + 1, budget);
            double tk = time_calls(k, &c, -1, -1, budget);
            printf("%-32s %3d  %10.1f  %10.1f  %s\n", b->name, nt, flops / tp * 1e-9, flops / tk * 1e-9,
                   op_onednn_impl_name(c.state));
            if (steps) { /* where a run's time goes, step by step */
                printf("    steps (us):");
                for (int i = 0; i < p->nsteps; i++)
                    printf(" %s%.1f", i == p->main_step ? "*" : "", 1e6 * time_calls(k, &c, i, i + 1, budget / 4));
                printf("   (whole run %.1f)\n", 1e6 * tk);
            }
            fflush(stdout);
            k->release(c.state);
            for (int i = 0; i < 4; i++) free(bufs[i]);
        }
    }
    return 0;
}

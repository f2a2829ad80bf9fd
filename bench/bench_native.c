/* Benchmark of the native SIMD kernels (ops/native/) against the reference kernels and, when
 * the build has it, oneDNN's (op_kernel_get(op, OP_BACKEND_ONEDNN), its whole run: reorders
 * from and to NCHW/OIHW included).  For each case and thread count (1, then 2: both
 * omp_set_num_threads and op_call.nthreads) it prints GFLOP/s (a multiply-add counts 2), the
 * median of RUNS timed runs, each run repeating the call until it lasts about 20 ms (the
 * reference: one call per run).  Native is measured at every ISA level the CPU has.
 *
 *   bench_native [--no-ref] [--bwd] [--mem] [--int8] [--wino] [case-name filter]
 * --no-ref skips the (slow) reference; --bwd adds the backward kernels (data and weights) of
 * every case.  The columns of the default table:
 *   nat-<level>  native at that ISA level, plain activations (NCHW, the GEMM paths);
 *   nat-cl       native at the top level with channels-last activations (NHWC: the direct
 *                kernels of ops/native/native_conv_cl.c on avx512, plain copies elsewhere),
 *                for the 2-D convolutions of more than one input channel, "-" for the rest;
 *   ref          the reference kernel, plain;
 *   onednn       oneDNN with channels-last activations where nat-cl is timed (as the layout
 *                pass gives its convolutions in a network, so the two compare like for like),
 *                plain for the rest;
 *   cl/dnn       nat-cl as a percentage of onednn: the two are timed run by run in turn (the
 *                order alternating), and this is the median of the RUNS pairs' ratios, then
 *                the lowest and highest of them.  On a shared machine whose speed drifts
 *                within a second, timed one after the other their medians had read 65-102%
 *                on one case and thread count from one invocation to the next.
 * Weights are packed (native) or reordered (oneDNN) by the warm-up call and kept, their version
 * not changing between calls, as in inference; in training they change every step, so that
 * each convolution call of a step packs them again (forced on every call here, native's packing
 * took about a quarter of vgg_small's 128->128 forward at batch 1 on 2 threads).  On the
 * development machine (an Intel Xeon with AVX-512, 2 vCPUs) oneDNN reaches about 185-200
 * GFLOP/s on one core for the 3x3 convolutions; no FMA peak is quoted, the vCPU's clock being
 * unknown.
 * --mem times the memory-bound kernels instead (batchnorm, pooling, element-wise ops, the SGD
 * update, on resnet20's and LeNet-5's shapes at batch 64) and prints GB/s: the bytes of every
 * tensor the call reads and writes, once, over the median time (batchnorm also channels-last,
 * the "nhwc" cases: native and oneDNN both read and write that order, as in a network).
 * --int8 times the int8 convolution (conv_q, the input quantised in the node, fused relu and
 * pooling as in the networks) of the first layers the native int8 kernel is for, in ms per
 * call: native int8 at each level (plain tensors), native int8 at the top level with
 * channels-last tensors, oneDNN int8, and the fp32 convolution on oneDNN and native; oneDNN
 * gets channels-last tensors, as the layout pass gives it in a network.
 * --wino times Winograd's F(4x4, 3x3) on the 3x3 cases of 16k channels (see run_wino). */
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench_util.h"
#include "ops/kernels.h"
#include "ops/native/native.h"

#define RUNS 11
#define RUN_SECONDS 0.02

typedef struct bcase {
    const char *name;
    int64_t n, c, h, w, f, k, pad;
    int64_t units; /* > 0: dense [n, c] -> [n, units] */
    int64_t d;     /* > 0: a 3-D convolution of depth d (kernel k x k x k, pad on every axis) */
} bcase;

static const bcase cases[] = {
    {"conv 3x3 64->64 56x56 b1", 1, 64, 56, 56, 64, 3, 1, 0, 0},
    {"conv 3x3 128->128 16x16 b8", 8, 128, 16, 16, 128, 3, 1, 0, 0},
    {"vgg_small 3x3 64->64 32x32 b1", 1, 64, 32, 32, 64, 3, 1, 0, 0},
    {"vgg_small 3x3 128->128 16x16 b1", 1, 128, 16, 16, 128, 3, 1, 0, 0},
    {"vgg_small 3x3 256->256 8x8 b1", 1, 256, 8, 8, 256, 3, 1, 0, 0},
    {"resnet20 3x3 16->16 32x32 b64", 64, 16, 32, 32, 16, 3, 1, 0, 0},
    {"resnet20 3x3 32->32 16x16 b64", 64, 32, 16, 16, 32, 3, 1, 0, 0},
    {"resnet20 3x3 64->64 8x8 b64", 64, 64, 8, 8, 64, 3, 1, 0, 0},
    {"LeNet c1 1->6 k5 28x28 p2 b64", 64, 1, 28, 28, 6, 5, 2, 0, 0},
    {"LeNet c2 6->16 k5 14x14 b64", 64, 6, 14, 14, 16, 5, 0, 0, 0},
    {"LeNet c2 6->16 k5 14x14 b32", 32, 6, 14, 14, 16, 5, 0, 0, 0},
    {"resnet20 c1 3->16 k3 32x32 b64", 64, 3, 32, 32, 16, 3, 1, 0, 0},
    {"dense 64x1024->1024", 64, 1024, 1, 1, 0, 0, 0, 1024, 0},
    {"conv3d 3x3x3 16->32 16^3 b8", 8, 16, 16, 16, 32, 3, 1, 0, 16},
};

static float *random_buffer(int64_t n, unsigned *seed)
{
    float *p = aligned_alloc(64, ((size_t)(n > 0 ? n : 1) * sizeof(float) + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)rand_r(seed) / (float)RAND_MAX - 0.5f;
    return p;
}

static void set_t(op_tensor *t, float *data, int rank, const int64_t *d)
{
    memset(t, 0, sizeof *t);
    t->data = data;
    t->rank = rank;
    for (int i = 0; i < rank; i++)
        t->d[i] = d[i];
}

typedef enum which { FWD, BWD_DATA, BWD_WEIGHTS } which;

/* One call of a case, with its buffers. */
typedef struct bcall {
    op_node node;
    op_call c;
    float *bufs[12];
    int nbufs;
    double flops;
} bcall;

static float *buf(bcall *b, int64_t n, unsigned *seed)
{
    return b->bufs[b->nbufs++] = random_buffer(n, seed);
}

/* A convolution case: 2-D, or 3-D (depth bc->d, a k x k x k kernel, pad on every axis). */
static void make_conv(bcall *b, const bcase *bc, which w, unsigned *seed)
{
    op_call *c = &b->c;
    op_conv_attrs *a = &b->node.attrs.conv;
    bool three = bc->d > 0;
    int r = three ? 5 : 4;
    a->sdims = three ? 3 : 2;
    a->filters = bc->f;
    a->kernel[0] = a->kernel[1] = bc->k;
    a->stride[0] = a->stride[1] = 1;
    a->pad[0] = a->pad[1] = bc->pad;
    a->dilation[0] = a->dilation[1] = 1;
    a->kernel_d = three ? bc->k : 1;
    a->stride_d = a->dilation_d = 1;
    a->pad_d = three ? bc->pad : 0;
    a->groups = 1;
    a->bias = true;
    int64_t od = three ? bc->d + 2 * bc->pad - bc->k + 1 : 1, id = three ? bc->d : 1;
    int64_t kd = three ? bc->k : 1;
    int64_t oh = bc->h + 2 * bc->pad - bc->k + 1, ow = bc->w + 2 * bc->pad - bc->k + 1;
    int64_t x[5] = {bc->n, bc->c, id, bc->h, bc->w}, wt[5] = {bc->f, bc->c, kd, bc->k, bc->k};
    int64_t bias[1] = {bc->f}, y[5] = {bc->n, bc->f, od, oh, ow};
    if (!three) { /* drop the depth */
        memmove(x + 2, x + 3, 2 * sizeof x[0]);
        memmove(wt + 2, wt + 3, 2 * sizeof wt[0]);
        memmove(y + 2, y + 3, 2 * sizeof y[0]);
    }
    int64_t nx = bc->n * bc->c * id * bc->h * bc->w, nw = bc->f * bc->c * kd * bc->k * bc->k;
    int64_t ny = bc->n * bc->f * od * oh * ow;
    b->flops = 2.0 * (double)ny * (double)(bc->c * kd * bc->k * bc->k);
    switch (w) {
    case FWD:
        b->node.op = three ? OP_CONV3D : OP_CONV2D;
        set_t(&c->in[0], buf(b, nx, seed), r, x);
        set_t(&c->in[1], buf(b, nw, seed), r, wt);
        set_t(&c->in[2], buf(b, bc->f, seed), 1, bias);
        set_t(&c->out[0], buf(b, ny, seed), r, y);
        c->nin = 3;
        c->nout = 1;
        break;
    case BWD_DATA:
        b->node.op = OP_CONV_BWD_DATA;
        a->bias = false;
        set_t(&c->in[0], buf(b, ny, seed), r, y);
        set_t(&c->in[1], buf(b, nw, seed), r, wt);
        set_t(&c->out[0], buf(b, nx, seed), r, x);
        c->nin = 2;
        c->nout = 1;
        break;
    case BWD_WEIGHTS:
        b->node.op = OP_CONV_BWD_WEIGHTS;
        set_t(&c->in[0], buf(b, ny, seed), r, y);
        set_t(&c->in[1], buf(b, nx, seed), r, x);
        set_t(&c->out[0], buf(b, nw, seed), r, wt);
        set_t(&c->out[1], buf(b, bc->f, seed), 1, bias);
        c->nin = 2;
        c->nout = 2;
        break;
    }
}

static void make_call(bcall *b, const bcase *bc, which w, int nt)
{
    memset(b, 0, sizeof *b);
    unsigned seed = 42;
    op_call *c = &b->c;
    if (bc->units > 0) {
        int64_t x[2] = {bc->n, bc->c}, wt[2] = {bc->units, bc->c}, bias[1] = {bc->units};
        int64_t y[2] = {bc->n, bc->units};
        b->node.attrs.dense.units = bc->units;
        b->node.attrs.dense.bias = w != BWD_DATA;
        b->flops = 2.0 * (double)bc->n * (double)bc->c * (double)bc->units;
        switch (w) {
        case FWD:
            b->node.op = OP_DENSE;
            set_t(&c->in[0], buf(b, bc->n * bc->c, &seed), 2, x);
            set_t(&c->in[1], buf(b, bc->units * bc->c, &seed), 2, wt);
            set_t(&c->in[2], buf(b, bc->units, &seed), 1, bias);
            set_t(&c->out[0], buf(b, bc->n * bc->units, &seed), 2, y);
            c->nin = 3;
            c->nout = 1;
            break;
        case BWD_DATA:
            b->node.op = OP_DENSE_BWD_DATA;
            set_t(&c->in[0], buf(b, bc->n * bc->units, &seed), 2, y);
            set_t(&c->in[1], buf(b, bc->units * bc->c, &seed), 2, wt);
            set_t(&c->out[0], buf(b, bc->n * bc->c, &seed), 2, x);
            c->nin = 2;
            c->nout = 1;
            break;
        case BWD_WEIGHTS:
            b->node.op = OP_DENSE_BWD_WEIGHTS;
            set_t(&c->in[0], buf(b, bc->n * bc->units, &seed), 2, y);
            set_t(&c->in[1], buf(b, bc->n * bc->c, &seed), 2, x);
            set_t(&c->out[0], buf(b, bc->units * bc->c, &seed), 2, wt);
            set_t(&c->out[1], buf(b, bc->units, &seed), 1, bias);
            c->nin = 2;
            c->nout = 2;
            break;
        }
    } else {
        make_conv(b, bc, w, &seed);
    }
    c->node = &b->node;
    c->batch = bc->n;
    c->nthreads = nt;
}

/* The 2-D convolution cases (not the first LeNet layer's single channel, nor 3-D) are also
 * timed on channels-last activations. */
static bool has_cl(const bcase *bc)
{
    return bc->units == 0 && bc->d == 0 && bc->c > 1;
}

/* Marks the call's batched activations channels-last (or plain again). */
static void set_cl(bcall *b, which w, bool cl)
{
    op_call *c = &b->c;
    int lay = cl ? OP_LAYOUT_NHWC : OP_LAYOUT_PLAIN;
    c->in[0].layout = lay;
    if (w == BWD_WEIGHTS)
        c->in[1].layout = lay;
    else
        c->out[0].layout = lay;
}

static void free_call(bcall *b)
{
    for (int i = 0; i < b->nbufs; i++)
        free(b->bufs[i]);
}

static void run_or_die(const op_kernel *k, op_call *c, const char *what)
{
    char err[512];
    if (k->run(c, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", what, err);
        exit(1);
    }
}

/* Kernel k made ready on its own copy of a call: prepared, its scratch, warmed up, and the
 * calls per timed run (enough for about RUN_SECONDS; one when single). */
typedef struct timed {
    const op_kernel *k;
    op_call c;
    void *scratch;
    int iters;
    double flops;
    const char *what;
} timed;

static void timed_start(timed *t, const op_kernel *k, const bcall *b, bool single, const char *what)
{
    char err[512];
    *t = (timed){.k = k, .c = b->c, .iters = 1, .flops = b->flops, .what = what};
    op_call *c = &t->c;
    c->state = NULL;
    c->scratch = NULL;
    if (k->prepare && k->prepare(c, err, sizeof err) != 0) {
        fprintf(stderr, "%s: prepare: %s\n", what, err);
        exit(1);
    }
    if (k->scratch) {
        size_t bytes = k->scratch(c);
        if (bytes) {
            t->scratch = aligned_alloc(64, (bytes + 63) / 64 * 64);
            c->scratch = t->scratch;
        }
    }
    run_or_die(k, c, what); /* warm up: caches, pages, oneDNN's first reorders */
    if (!single) {
        for (;;) {
            double t0 = now();
            for (int i = 0; i < t->iters; i++)
                run_or_die(k, c, what);
            if (now() - t0 >= RUN_SECONDS || t->iters >= (1 << 20))
                break;
            t->iters *= 2;
        }
    }
}

/* One timed run: GFLOP/s. */
static double timed_run(timed *t)
{
    double t0 = now();
    for (int i = 0; i < t->iters; i++)
        run_or_die(t->k, &t->c, t->what);
    return t->flops / ((now() - t0) / t->iters) * 1e-9;
}

static void timed_end(timed *t)
{
    if (t->k->release)
        t->k->release(t->c.state);
    free(t->scratch);
}

/* The middle of n values (n odd: RUNS), sorting them. */
static double median_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    return v[n / 2];
}

/* Median GFLOP/s of kernel k on call b (prepare/scratch as the runtime does), or NAN. */
static double measure(const op_kernel *k, bcall *b, bool single, const char *what)
{
    if (!k)
        return NAN;
    timed t;
    timed_start(&t, k, b, single, what);
    double rate[RUNS];
    for (int r = 0; r < RUNS; r++)
        rate[r] = timed_run(&t);
    timed_end(&t);
    return median_of(rate, RUNS);
}

/* Kernels a and b on call c, interleaved run by run (a b, then b a, ...) so that the machine's
 * load falls on both alike: each one's median GFLOP/s, and the median of the RUNS pairs' ratios
 * a / b with the lowest and highest of them. */
typedef struct paired {
    double a, b, ratio, lo, hi;
} paired;

static paired measure_pair2(const op_kernel *ka, const char *wa, bcall *ca, const op_kernel *kb, const char *wb,
                            bcall *cb)
{
    paired p = {NAN, NAN, NAN, NAN, NAN};
    if (!ka || !kb)
        return p;
    timed ta, tb;
    timed_start(&ta, ka, ca, false, wa);
    timed_start(&tb, kb, cb, false, wb);
    double ra[RUNS], rb[RUNS], q[RUNS];
    for (int r = 0; r < RUNS; r++) {
        if (r % 2) {
            rb[r] = timed_run(&tb);
            ra[r] = timed_run(&ta);
        } else {
            ra[r] = timed_run(&ta);
            rb[r] = timed_run(&tb);
        }
        q[r] = ra[r] / rb[r];
    }
    timed_end(&ta);
    timed_end(&tb);
    p.a = median_of(ra, RUNS);
    p.b = median_of(rb, RUNS);
    p.ratio = median_of(q, RUNS); /* sorts q */
    p.lo = q[0];
    p.hi = q[RUNS - 1];
    return p;
}

static paired measure_pair(const op_kernel *ka, const char *wa, const op_kernel *kb, const char *wb, bcall *c)
{
    return measure_pair2(ka, wa, c, kb, wb, c);
}

static void print_gf(double v);

/* ---- memory-bound kernels (--mem) */

typedef enum mkind { M_BN_TRAIN, M_BN_BWD, M_BN_BWD_RELU, M_MAXPOOL, M_MAXPOOL_BWD, M_RELU, M_ACT_BWD, M_ADD,
                     M_GAP, M_GAP_BWD, M_SGD } mkind;

typedef struct mcase {
    const char *name;
    mkind kind;
    int64_t n, c, h, w;
    int layout; /* of the [n, c, h, w] tensors (the reference, plain only, is left out otherwise) */
} mcase;

static const mcase mcases[] = {
    {"batchnorm train 16x32x32 b64", M_BN_TRAIN, 64, 16, 32, 32, 0},
    {"batchnorm train 64x8x8 b64", M_BN_TRAIN, 64, 64, 8, 8, 0},
    {"batchnorm bwd 16x32x32 b64", M_BN_BWD, 64, 16, 32, 32, 0},
    {"batchnorm bwd 64x8x8 b64", M_BN_BWD, 64, 64, 8, 8, 0},
    {"batchnorm train 16x32x32 b64 nhwc", M_BN_TRAIN, 64, 16, 32, 32, OP_LAYOUT_NHWC},
    {"batchnorm train 64x8x8 b64 nhwc", M_BN_TRAIN, 64, 64, 8, 8, OP_LAYOUT_NHWC},
    {"batchnorm bwd 16x32x32 b64 nhwc", M_BN_BWD, 64, 16, 32, 32, OP_LAYOUT_NHWC},
    {"batchnorm bwd 64x8x8 b64 nhwc", M_BN_BWD, 64, 64, 8, 8, OP_LAYOUT_NHWC},
    {"batchnorm bwd+relu 16x32x32 b64 nhwc", M_BN_BWD_RELU, 64, 16, 32, 32, OP_LAYOUT_NHWC},
    {"maxpool 2x2 6x28x28 b64", M_MAXPOOL, 64, 6, 28, 28, 0},
    {"maxpool bwd 2x2 6x28x28 b64", M_MAXPOOL_BWD, 64, 6, 28, 28, 0},
    {"relu 16x32x32 b64", M_RELU, 64, 16, 32, 32, 0},
    {"act_bwd relu 16x32x32 b64", M_ACT_BWD, 64, 16, 32, 32, 0},
    {"add+relu 16x32x32 b64", M_ADD, 64, 16, 32, 32, 0},
    {"global_avgpool 64x8x8 b64", M_GAP, 64, 64, 8, 8, 0},
    {"global_avgpool bwd 64x8x8 b64", M_GAP_BWD, 64, 64, 8, 8, 0},
    {"sgd momentum+wd 272474", M_SGD, 1, 1, 1, 272474, 0},
};

static void make_mem_call(bcall *b, const mcase *mc, int nt)
{
    memset(b, 0, sizeof *b);
    unsigned seed = 42;
    op_call *c = &b->c;
    int64_t x[4] = {mc->n, mc->c, mc->h, mc->w}, ch[1] = {mc->c};
    int64_t pooled[4] = {mc->n, mc->c, mc->h / 2, mc->w / 2}, nc[2] = {mc->n, mc->c};
    int64_t numel = mc->n * mc->c * mc->h * mc->w, vec[1] = {numel};
    double bytes = 0.0;
#define IN(shape, rank, count)                                                 \
    (set_t(&c->in[c->nin++], buf(b, count, &seed), rank, shape), bytes += 4.0 * (double)(count))
#define OUT(shape, rank, count)                                                \
    (set_t(&c->out[c->nout++], buf(b, count, &seed), rank, shape), bytes += 4.0 * (double)(count))
    switch (mc->kind) {
    case M_BN_TRAIN:
        b->node.op = OP_BATCHNORM;
        b->node.attrs.bn = (op_bn_attrs){.eps = 1e-5f, .momentum = 0.1f, .training = true};
        IN(x, 4, numel);
        for (int k = 0; k < 4; k++)
            IN(ch, 1, mc->c);
        for (int64_t i = 0; i < mc->c; i++)
            c->in[4].data[i] = 1.0f;
        OUT(x, 4, numel);
        OUT(ch, 1, mc->c);
        OUT(ch, 1, mc->c);
        break;
    case M_BN_BWD:
    case M_BN_BWD_RELU:
        b->node.op = OP_BATCHNORM_BWD;
        b->node.attrs.bn = (op_bn_attrs){.eps = 1e-5f, .momentum = 0.1f, .training = true};
        IN(x, 4, numel);
        IN(x, 4, numel);
        for (int k = 0; k < 3; k++)
            IN(ch, 1, mc->c);
        if (mc->kind == M_BN_BWD_RELU) { /* the fused activation's output, read for its mask */
            b->node.attrs.bn.act = OP_ACT_RELU;
            IN(x, 4, numel);
        }
        OUT(x, 4, numel);
        OUT(ch, 1, mc->c);
        OUT(ch, 1, mc->c);
        break;
    case M_MAXPOOL:
    case M_MAXPOOL_BWD:
        b->node.op = mc->kind == M_MAXPOOL ? OP_MAXPOOL : OP_MAXPOOL_BWD;
        b->node.attrs.pool = (op_pool_attrs){.sdims = 2, .size = {2, 2}, .stride = {2, 2}};
        if (mc->kind == M_MAXPOOL_BWD)
            IN(pooled, 4, numel / 4);
        IN(x, 4, numel);
        if (mc->kind == M_MAXPOOL)
            OUT(pooled, 4, numel / 4);
        else
            OUT(x, 4, numel);
        break;
    case M_RELU:
        b->node.op = OP_RELU;
        b->node.attrs.act.act = OP_ACT_RELU;
        IN(x, 4, numel);
        OUT(x, 4, numel);
        break;
    case M_ACT_BWD:
        b->node.op = OP_ACT_BWD;
        b->node.attrs.act.act = OP_ACT_RELU;
        IN(x, 4, numel);
        IN(x, 4, numel);
        OUT(x, 4, numel);
        break;
    case M_ADD:
        b->node.op = OP_ADD;
        b->node.attrs.act.act = OP_ACT_RELU;
        IN(x, 4, numel);
        IN(x, 4, numel);
        OUT(x, 4, numel);
        break;
    case M_GAP:
        b->node.op = OP_GLOBAL_AVGPOOL;
        IN(x, 4, numel);
        OUT(nc, 2, mc->n * mc->c);
        break;
    case M_GAP_BWD:
        b->node.op = OP_GLOBAL_AVGPOOL_BWD;
        IN(nc, 2, mc->n * mc->c);
        OUT(x, 4, numel);
        break;
    case M_SGD:
        b->node.op = OP_SGD_UPDATE;
        b->node.attrs.optim = (op_optim_attrs){.lr = 1e-3, .momentum = 0.9, .weight_decay = 1e-4};
        IN(vec, 1, numel);
        IN(vec, 1, numel);
        IN(vec, 1, numel);
        bytes += 8.0 * (double)numel; /* param and velocity written back */
        break;
    }
#undef IN
#undef OUT
    for (int k = 0; k < c->nin + c->nout; k++) {
        op_tensor *t = k < c->nin ? &c->in[k] : &c->out[k - c->nin];
        if (t->rank == 4)
            t->layout = mc->layout;
    }
    b->flops = bytes;
    c->node = &b->node;
    c->batch = mc->n;
    c->nthreads = nt;
}

static int run_mem(bool ref, const char *filter)
{
    op_native_isa_level top = op_native_isa_supported();
    printf("GB/s (bytes read and written once / median time of %d runs); native ISA levels up "
           "to %s\n", RUNS, op_native_isa_name(top));
    printf("%-34s %3s", "case", "thr");
    for (int l = (int)top; l >= 0; l--) {
        char h[32];
        snprintf(h, sizeof h, "nat-%s", op_native_isa_name((op_native_isa_level)l));
        printf(" %9s", h);
    }
    printf(" %9s %9s\n", "ref", "onednn");
    for (size_t ci = 0; ci < sizeof mcases / sizeof mcases[0]; ci++) {
        const mcase *mc = &mcases[ci];
        if (filter && !strstr(mc->name, filter))
            continue;
        for (int nt = 1; nt <= 2; nt++) {
            bcall b;
            make_mem_call(&b, mc, nt);
            omp_set_num_threads(nt);
            printf("%-34s %3d", mc->name, nt);
            fflush(stdout);
            for (int l = (int)top; l >= 0; l--) {
                op_native_force_isa((op_native_isa_level)l);
                print_gf(measure(op_kernel_get(b.node.op, OP_BACKEND_NATIVE), &b, false, "native"));
                fflush(stdout);
            }
            op_native_force_isa(top);
            print_gf(ref && !mc->layout ? measure(op_kernel_get(b.node.op, OP_BACKEND_REF), &b, false, "ref") : NAN);
            fflush(stdout);
            print_gf(measure(op_kernel_get(b.node.op, OP_BACKEND_ONEDNN), &b, false, "onednn"));
            printf("\n");
            fflush(stdout);
            free_call(&b);
        }
    }
    return 0;
}

/* ---- int8 first layers (--int8) */

typedef struct qbcase {
    const char *name;
    int64_t n, c, h, w, f, k, pad;
    bool pool;
} qbcase;

static const qbcase qcases[] = {
    {"LeNet c1 1->6 k5 28x28 p2 +pool b64", 64, 1, 28, 28, 6, 5, 2, true},
    {"resnet20 stem 3->16 k3 32x32 b64", 64, 3, 32, 32, 16, 3, 1, false},
    {"vgg_small c1 3->64 k3 32x32 b64", 64, 3, 32, 32, 64, 3, 1, false},
    {"LeNet c2 6->16 k5 14x14 +pool b64", 64, 6, 14, 14, 16, 5, 0, true},
};

/* The conv (fp32: conv2d; int8: conv_q with its scales) of case q, with relu (and pooling). */
static void make_qcall(bcall *b, const qbcase *q, bool int8, bool cl, int nt)
{
    memset(b, 0, sizeof *b);
    unsigned seed = 7;
    op_call *c = &b->c;
    op_conv_attrs *a = &b->node.attrs.conv;
    b->node.op = int8 ? OP_CONV_Q : OP_CONV2D;
    snprintf(b->node.name, sizeof b->node.name, "conv2d_1");
    a->sdims = 2, a->filters = q->f, a->groups = 1, a->bias = true, a->act = OP_ACT_RELU;
    for (int i = 0; i < 2; i++)
        a->kernel[i] = q->k, a->stride[i] = 1, a->pad[i] = q->pad, a->dilation[i] = 1;
    a->kernel_d = a->stride_d = a->dilation_d = 1;
    int64_t oh = q->h + 2 * q->pad - q->k + 1, ow = q->w + 2 * q->pad - q->k + 1, yh = oh, yw = ow;
    if (q->pool) {
        a->pool = true;
        for (int i = 0; i < 2; i++)
            a->pool_size[i] = a->pool_stride[i] = 2;
        yh = oh / 2, yw = ow / 2;
    }
    if (int8)
        a->prec = OP_PREC_INT8, a->q_unsigned = true;
    int64_t x[4] = {q->n, q->c, q->h, q->w}, wt[4] = {q->f, q->c, q->k, q->k}, fv[1] = {q->f}, one[1] = {1};
    int64_t y[4] = {q->n, q->f, yh, yw};
    set_t(&c->in[0], buf(b, q->n * q->c * q->h * q->w, &seed), 4, x);
    for (int64_t i = 0; i < q->n * q->c * q->h * q->w; i++)
        c->in[0].data[i] += 0.5f; /* [0, 1) like an image */
    set_t(&c->in[1], buf(b, q->f * q->c * q->k * q->k, &seed), 4, wt);
    set_t(&c->in[2], buf(b, q->f, &seed), 1, fv);
    c->nin = 3;
    if (int8) {
        set_t(&c->in[3], buf(b, q->f, &seed), 1, fv);
        for (int64_t i = 0; i < q->f; i++)
            c->in[3].data[i] = 0.5f / 127.0f;
        set_t(&c->in[4], buf(b, 1, &seed), 1, one);
        c->in[4].data[0] = 1.0f / 255.0f;
        c->nin = 5;
    }
    set_t(&c->out[0], buf(b, q->n * q->f * yh * yw, &seed), 4, y);
    c->nout = 1;
    if (cl) { /* every batched tensor with more than one channel */
        if (q->c > 1)
            c->in[0].layout = 1;
        c->out[0].layout = 1;
    }
    b->flops = 2.0 * (double)(q->n * q->f * oh * ow) * (double)(q->c * q->k * q->k);
    c->node = &b->node;
    c->batch = q->n;
    c->nthreads = nt;
}

static void print_ms(const bcall *b, double gf)
{
    if (isnan(gf))
        printf(" %9s", "-");
    else
        printf(" %9.3f", b->flops / (gf * 1e9) * 1e3);
}

static int run_int8(const char *filter)
{
    op_native_isa_level top = op_native_isa_supported();
    printf("ms per call, median of %d runs; native int8 path at the top level: %s\n", RUNS,
           op_native_conv_q_level());
    printf("%-36s %3s", "case", "thr");
    for (int l = (int)top; l >= 0; l--) {
        op_native_force_isa((op_native_isa_level)l);
        char h[32];
        snprintf(h, sizeof h, "i8-%s", op_native_conv_q_level());
        printf(" %9s", h);
    }
    op_native_force_isa(top);
    printf(" %9s %9s %9s %9s\n", "i8-nat-cl", "i8-onednn", "f32-dnn", "f32-nat");
    for (size_t ci = 0; ci < sizeof qcases / sizeof qcases[0]; ci++) {
        const qbcase *q = &qcases[ci];
        if (filter && !strstr(q->name, filter))
            continue;
        for (int nt = 1; nt <= 2; nt++) {
            omp_set_num_threads(nt);
            printf("%-36s %3d", q->name, nt);
            fflush(stdout);
            bcall b;
            make_qcall(&b, q, true, false, nt);
            for (int l = (int)top; l >= 0; l--) {
                op_native_force_isa((op_native_isa_level)l);
                print_ms(&b, measure(op_kernel_get(OP_CONV_Q, OP_BACKEND_NATIVE), &b, false, "native int8"));
                fflush(stdout);
            }
            op_native_force_isa(top);
            free_call(&b);
            make_qcall(&b, q, true, true, nt);
            print_ms(&b, measure(op_kernel_get(OP_CONV_Q, OP_BACKEND_NATIVE), &b, false, "native int8 cl"));
            print_ms(&b, measure(op_kernel_get(OP_CONV_Q, OP_BACKEND_ONEDNN), &b, false, "onednn int8"));
            free_call(&b);
            make_qcall(&b, q, false, true, nt);
            print_ms(&b, measure(op_kernel_get(OP_CONV2D, OP_BACKEND_ONEDNN), &b, false, "onednn fp32"));
            free_call(&b);
            make_qcall(&b, q, false, false, nt);
            print_ms(&b, measure(op_kernel_get(OP_CONV2D, OP_BACKEND_NATIVE), &b, false, "native fp32"));
            free_call(&b);
            printf("\n");
            fflush(stdout);
        }
    }
    return 0;
}

static void print_gf(double v)
{
    if (isnan(v))
        printf(" %9s", "-");
    else
        printf(" %9.1f", v);
}

/* --wino: the 3x3 stride-1 cases of 16k channels and filters by Winograd's F(4x4, 3x3) (the
 * node asking for it): native (channels-last, ops/native/native_conv_wino.c) against native's
 * direct kernels on the same tensors, and against oneDNN's Winograd on blocked tensors (nChw16c,
 * the only layout it takes), each pair interleaved run by run; forward, backward to the data and
 * to the weights; GFLOP/s counted as direct convolution's. */
static bool wino_case(const bcase *bc)
{
    return bc->units == 0 && bc->d == 0 && bc->k == 3 && bc->pad == 1 && bc->c % 16 == 0 && bc->f % 16 == 0;
}

static int run_wino(const char *filter)
{
    printf("GFLOP/s (direct convolution's FLOPs), median of %d runs; pairs interleaved run by run, "
           "ratios the median of the %d pairs' with their range\n", RUNS, RUNS);
    printf("%-34s %3s %9s %9s %9s %15s %9s %15s\n", "case", "thr", "nat-wino", "nat-cl", "dnn-wino", "wino/cl",
           "wino", "wino/dnn-wino");
    static const char *const wname[] = {"", " bwd-data", " bwd-wts"};
    const op_kernel *nat = NULL, *dnn = NULL;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const bcase *bc = &cases[ci];
        if (!wino_case(bc) || (filter && !strstr(bc->name, filter)))
            continue;
        for (int w = FWD; w <= BWD_WEIGHTS; w++)
            for (int nt = 1; nt <= 2; nt++) {
                bcall a, d, o;
                make_call(&a, bc, (which)w, nt);
                make_call(&d, bc, (which)w, nt);
                make_call(&o, bc, (which)w, nt);
                set_cl(&a, (which)w, true);
                set_cl(&d, (which)w, true);
                a.node.attrs.conv.winograd = o.node.attrs.conv.winograd = true;
                o.c.in[0].layout = OP_LAYOUT_BLOCK16;
                if (w == BWD_WEIGHTS)
                    o.c.in[1].layout = OP_LAYOUT_BLOCK16;
                else
                    o.c.out[0].layout = OP_LAYOUT_BLOCK16;
                nat = op_kernel_get(a.node.op, OP_BACKEND_NATIVE);
                dnn = op_kernel_get(a.node.op, OP_BACKEND_ONEDNN);
                omp_set_num_threads(nt);
                char label[80];
                snprintf(label, sizeof label, "%s%s", bc->name, wname[w]);
                printf("%-34s %3d", label, nt);
                fflush(stdout);
                paired pc = measure_pair2(nat, "native winograd", &a, nat, "native direct", &d);
                paired pd = measure_pair2(nat, "native winograd", &a, dnn, "onednn winograd", &o);
                print_gf(pc.a);
                print_gf(pc.b);
                print_gf(pd.b);
                printf(" %4.0f%% %4.0f-%.0f%%", 100.0 * pc.ratio, 100.0 * pc.lo, 100.0 * pc.hi);
                print_gf(pd.a);
                if (!isnan(pd.ratio))
                    printf(" %4.0f%% %4.0f-%.0f%%", 100.0 * pd.ratio, 100.0 * pd.lo, 100.0 * pd.hi);
                printf("\n");
                fflush(stdout);
                free_call(&a);
                free_call(&d);
                free_call(&o);
            }
    }
    return 0;
}

int main(int argc, char **argv)
{
    bool ref = true, bwd = false, mem = false, int8 = false, wino = false;
    const char *filter = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-ref") == 0)
            ref = false;
        else if (strcmp(argv[i], "--bwd") == 0)
            bwd = true;
        else if (strcmp(argv[i], "--mem") == 0)
            mem = true;
        else if (strcmp(argv[i], "--int8") == 0)
            int8 = true;
        else if (strcmp(argv[i], "--wino") == 0)
            wino = true;
        else
            filter = argv[i];
    }
    if (mem)
        return run_mem(ref, filter);
    if (int8)
        return run_int8(filter);
    if (wino)
        return run_wino(filter);
    op_native_isa_level top = op_native_isa_supported();
    printf("GFLOP/s, median of %d runs; native ISA levels up to %s; nat-cl and onednn on "
           "channels-last activations (2-D convolutions), interleaved run by run: cl/dnn the "
           "median of the %d pairs' ratios\n", RUNS, op_native_isa_name(top), RUNS);
    printf("%-34s %3s", "case", "thr");
    for (int l = (int)top; l >= 0; l--) {
        char h[32];
        snprintf(h, sizeof h, "nat-%s", op_native_isa_name((op_native_isa_level)l));
        printf(" %9s", h);
    }
    printf(" %9s %9s %9s %6s %s\n", "nat-cl", "ref", "onednn", "cl/dnn", "pairs' range");
    static const char *const wname[] = {"", " bwd-data", " bwd-wts"};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const bcase *bc = &cases[ci];
        if (filter && !strstr(bc->name, filter))
            continue;
        for (int w = FWD; w <= (bwd ? BWD_WEIGHTS : FWD); w++) {
            for (int nt = 1; nt <= 2; nt++) {
                bcall b;
                make_call(&b, bc, (which)w, nt);
                omp_set_num_threads(nt);
                char label[80];
                snprintf(label, sizeof label, "%s%s", bc->name, wname[w]);
                printf("%-34s %3d", label, nt);
                fflush(stdout);
                for (int l = (int)top; l >= 0; l--) {
                    op_native_force_isa((op_native_isa_level)l);
                    print_gf(measure(op_kernel_get(b.node.op, OP_BACKEND_NATIVE), &b, false,
                                     "native"));
                    fflush(stdout);
                }
                op_native_force_isa(top);
                bool cl = has_cl(bc);
                double ncl = NAN, dnn = NAN;
                paired pr = {NAN, NAN, NAN, NAN, NAN};
                if (cl) {
                    set_cl(&b, (which)w, true);
                    pr = measure_pair(op_kernel_get(b.node.op, OP_BACKEND_NATIVE), "native cl",
                                      op_kernel_get(b.node.op, OP_BACKEND_ONEDNN), "onednn", &b);
                    ncl = pr.a;
                    dnn = pr.b;
                    if (isnan(ncl)) /* no oneDNN in this build */
                        ncl = measure(op_kernel_get(b.node.op, OP_BACKEND_NATIVE), &b, false, "native cl");
                    set_cl(&b, (which)w, false);
                }
                print_gf(ncl);
                print_gf(ref ? measure(op_kernel_get(b.node.op, OP_BACKEND_REF), &b, true, "ref")
                             : NAN);
                fflush(stdout);
                if (!cl)
                    dnn = measure(op_kernel_get(b.node.op, OP_BACKEND_ONEDNN), &b, false, "onednn");
                print_gf(dnn);
                if (!isnan(pr.ratio))
                    printf(" %5.0f%% %4.0f-%.0f%%", 100.0 * pr.ratio, 100.0 * pr.lo, 100.0 * pr.hi);
                printf("\n");
                fflush(stdout);
                free_call(&b);
            }
        }
    }
    return 0;
}

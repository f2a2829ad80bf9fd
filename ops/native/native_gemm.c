/* The native backend's blocked SGEMM driver (see native_gemm.h).  Loop structure of one job:
 *   for each column chunk (ncp panels of NR columns):
 *     for each K block:  pack the chunk's B panels (kc x NR each, L2-resident)
 *                        for each row panel of the job's A (MR x kc, L1-resident):
 *                          for each B panel: micro-kernel into the chunk's C block
 *     store the C block through the callback (epilogue), or keep it as a K-split partial.
 * Jobs are (problem, row block, column group, K part), handed out dynamically. */
#include <string.h>

#include "ops/native/native_gemm.h"
#include "ops/native/native_par.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define KC_MAX OP_NATIVE_KC_MAX
#define MC_MAX 512      /* rows per job in the normal mode */
#define NCP_MAX 4       /* B panels per column chunk */
#define NCP_OWN 4       /* own-rows mode: fixed, so the store order never depends on threads */

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* The micro-tile for this shape: AVX-512's 8 x 48 unless the problem is so small in both
 * directions that AVX2's 6 x 16 tile (as fast per FLOP on Zen 4, which splits zmm in two)
 * wastes much less on padding; decided by the shapes alone. */
static const op_native_isa *tile_isa(const op_native_gemm *g, const op_native_isa *isa)
{
#ifdef OP_NATIVE_HAVE_X86
    if (isa == &op_native_isa_avx512) {
        const op_native_isa *alt = &op_native_isa_avx2;
        double big = (double)(cdiv(g->m, isa->mr) * isa->mr) * (double)(cdiv(g->n, isa->nr) * isa->nr);
        double small = (double)(cdiv(g->m, alt->mr) * alt->mr) * (double)(cdiv(g->n, alt->nr) * alt->nr);
        if (small < 0.6 * big)
            return alt;
    }
#endif
    return isa;
}

/* The blocking of one call: everything derived from the shapes, the ISA and the threads. */
typedef struct gplan {
    int64_t mr, nr;
    int64_t kseg, nseg, kcs, nbs, nkb;   /* K: segments of kseg, each in nbs blocks of <= kcs */
    int64_t mc, mcp, nrb;                /* rows per row block, padded to MR, row blocks */
    int64_t npan, ncp, ncg;              /* B panels per problem, per chunk, column groups */
    int64_t ksplit, njobs;
    size_t a_floats, b_floats, c_floats, part_floats;  /* A (all), B and C per thread, partials */
} gplan;

static void make_plan(const op_native_gemm *g, const op_native_isa *isa, int nt, gplan *p)
{
    memset(p, 0, sizeof *p);
    p->mr = isa->mr;
    p->nr = isa->nr;
    p->kseg = g->kseg > 0 && g->kseg < g->k ? g->kseg : g->k;
    p->nseg = p->kseg > 0 ? cdiv(g->k, p->kseg) : 0;
    p->nbs = p->kseg > 0 ? cdiv(p->kseg, KC_MAX) : 0;
    p->kcs = p->nbs > 0 ? cdiv(p->kseg, p->nbs) : 0;
    p->nkb = p->nseg * p->nbs;
    p->ksplit = g->ksplit > 1 && !g->own_rows ? min64(g->ksplit, max64(p->nkb, 1)) : 1;
    p->npan = cdiv(g->n, p->nr);
    if (g->own_rows) {
        int64_t align = g->row_align > 0 ? g->row_align : 1;
        int64_t units = cdiv(g->m, align);        /* rows come in units of align */
        /* enough row blocks to feed every thread a few times, each at least a few panels */
        int64_t want = cdiv(4 * nt, max64(g->nprob, 1));
        int64_t per = max64(1, cdiv(units, want));
        per = max64(per, cdiv(2 * p->mr, align));
        per = min64(per, max64(1, MC_MAX / align));
        p->mc = min64(per * align, g->m);
        p->ncp = min64(NCP_OWN, max64(p->npan, 1));
        p->ncg = 1;
    } else {
        p->mc = g->m <= MC_MAX ? g->m : cdiv(cdiv(g->m, cdiv(g->m, MC_MAX)), p->mr) * p->mr;
        int64_t nrb = p->mc > 0 ? cdiv(g->m, p->mc) : 0;
        /* panels per chunk: the largest whose jobs share out evenly over the threads
         * (within 5%), else the most even; the arithmetic does not depend on it */
        int64_t reps = g->nprob * nrb * p->ksplit, best = 1;
        double best_eff = -1.0;
        for (int64_t ncp = min64(NCP_MAX, max64(p->npan, 1)); ncp >= 1; ncp--) {
            int64_t jobs = reps * cdiv(p->npan, ncp);
            double eff = (double)(reps * p->npan) / (double)(nt * cdiv(jobs, nt) * ncp);
            if (eff > best_eff + 1e-9) {
                best_eff = eff;
                best = ncp;
            }
            if (eff >= 0.95)
                break;
        }
        p->ncp = best;
        p->ncg = cdiv(p->npan, p->ncp);
    }
    if (p->mc < 1)
        p->mc = 1;
    p->nrb = cdiv(g->m, p->mc);
    p->mcp = cdiv(p->mc, p->mr) * p->mr;
    p->njobs = g->nprob * p->nrb * p->ncg * p->ksplit;
    p->a_floats = op_native_round16((size_t)(g->na * p->nrb * p->mcp * g->k));
    p->b_floats = op_native_round16((size_t)(p->ncp * p->nr * max64(p->kcs, 1)));
    p->c_floats = op_native_round16((size_t)(p->mcp * p->ncp * p->nr));
    p->part_floats = p->ksplit > 1 ? (size_t)p->njobs * p->c_floats : 0;
}

size_t op_native_gemm_scratch(const op_native_gemm *g, const op_native_isa *isa, int nthreads)
{
    gplan p;
    isa = tile_isa(g, isa);
    int nt = nthreads > 0 ? nthreads : 1;
    make_plan(g, isa, nt, &p);
    return (p.a_floats + (size_t)nt * (p.b_floats + p.c_floats) + p.part_floats) * sizeof(float);
}

/* K block t: its first index and length. */
static void kblock(const gplan *p, const op_native_gemm *g, int64_t t, int64_t *k0, int64_t *kc)
{
    int64_t s = t / p->nbs, q = t % p->nbs;
    int64_t seg_end = min64((s + 1) * p->kseg, g->k);
    *k0 = s * p->kseg + q * p->kcs;
    *kc = min64(p->kcs, seg_end - *k0);
}

/* Packs K block t of A's panel mp of row block rb for matrix a (panels are [K][MR]). */
static void pack_a_block(const op_native_gemm *g, const gplan *p, const op_native_isa *isa,
                         int64_t a, int64_t rb, int64_t mp, int64_t t, float *apack)
{
    int64_t row0 = rb * p->mc + mp * p->mr;
    int64_t rows_end = min64((rb + 1) * p->mc, g->m);
    float *dst = apack + ((a * p->nrb + rb) * p->mcp + mp * p->mr) * g->k;
    int64_t nrows = min64(p->mr, rows_end - row0);
    int64_t k0, kc;
    kblock(p, g, t, &k0, &kc);
    if (nrows > 0)
        g->pack_a(g->ctx, isa, a, row0, nrows, k0, kc, dst + k0 * p->mr);
    else
        memset(dst + k0 * p->mr, 0, (size_t)(kc * p->mr) * sizeof(float));
}

/* One job: problem b, row block rb, column group cg, K part ks; C ends in cbuf (or part). */
static void run_job(const op_native_gemm *g, const gplan *p, const op_native_isa *isa,
                    int64_t job, const float *apack, float *bbuf, float *cbuf, float *part)
{
    int64_t ks = job % p->ksplit, rest = job / p->ksplit;
    int64_t cg = rest % p->ncg;
    rest /= p->ncg;
    int64_t rb = rest % p->nrb, b = rest / p->nrb;
    int64_t a = b % g->na;
    int64_t row0 = rb * p->mc, nrows = min64(p->mc, g->m - row0);
    int64_t mpan = cdiv(nrows, p->mr);
    int64_t chunk = p->ncp * p->nr, ldc = chunk;
    int64_t col_lo = g->own_rows ? 0 : cg * chunk;
    int64_t col_hi = g->own_rows ? g->n : min64(g->n, col_lo + chunk);
    int64_t t_lo = p->nkb * ks / p->ksplit, t_hi = p->nkb * (ks + 1) / p->ksplit;
    const float *ablock = apack + (a * p->nrb + rb) * p->mcp * g->k;

    for (int64_t col0 = col_lo; col0 < col_hi; col0 += chunk) {
        int64_t ncols = min64(chunk, col_hi - col0), npan = cdiv(ncols, p->nr);
        if (t_lo >= t_hi)
            memset(cbuf, 0, (size_t)(p->mcp * ldc) * sizeof(float));
        for (int64_t t = t_lo; t < t_hi; t++) {
            int64_t k0, kc;
            kblock(p, g, t, &k0, &kc);
            for (int64_t q = 0; q < npan; q++)
                g->pack_b(g->ctx, isa, b, col0 + q * p->nr, min64(p->nr, ncols - q * p->nr), k0,
                          kc, bbuf + q * kc * p->nr);
            for (int64_t mp = 0; mp < mpan; mp++) {
                const float *ap = ablock + mp * p->mr * g->k + k0 * p->mr;
                for (int64_t q = 0; q < npan; q++)
                    isa->ukr(kc, ap, bbuf + q * kc * p->nr, cbuf + mp * p->mr * ldc + q * p->nr,
                             ldc, t > t_lo);
            }
        }
        if (p->ksplit > 1)
            memcpy(part + (size_t)job * p->c_floats, cbuf, (size_t)(p->mcp * ldc) * sizeof(float));
        else
            g->store(g->ctx, isa, b, row0, nrows, col0, ncols, cbuf, ldc);
    }
}

/* Sums the K parts of output block blk (problem, row block, column group) in order and stores. */
static void reduce_parts(const op_native_gemm *g, const gplan *p, const op_native_isa *isa,
                         int64_t blk, const float *part, float *cbuf)
{
    int64_t cg = blk % p->ncg, rest = blk / p->ncg;
    int64_t rb = rest % p->nrb, b = rest / p->nrb;
    int64_t chunk = p->ncp * p->nr, n = p->mcp * chunk;
    const float *src = part + (size_t)blk * p->ksplit * p->c_floats;
    memcpy(cbuf, src, (size_t)n * sizeof(float));
    for (int64_t ks = 1; ks < p->ksplit; ks++) {
        const float *s = src + (size_t)ks * p->c_floats;
        for (int64_t i = 0; i < n; i++)
            cbuf[i] += s[i];
    }
    int64_t row0 = rb * p->mc, col0 = cg * chunk;
    g->store(g->ctx, isa, b, row0, min64(p->mc, g->m - row0), col0, min64(chunk, g->n - col0),
             cbuf, chunk);
}

void op_native_gemm_run(const op_native_gemm *g, const op_native_isa *isa, int nthreads,
                        float *scratch)
{
    gplan p;
    int nt = nthreads > 0 ? nthreads : 1;
    isa = tile_isa(g, isa);
    make_plan(g, isa, nt, &p);
    float *apack = scratch;
    float *tbufs = apack + p.a_floats;
    float *part = tbufs + (size_t)nt * (p.b_floats + p.c_floats);
    int64_t apanels = g->na * p.nrb * (p.mcp / p.mr);
    int64_t nblocks = p.njobs / p.ksplit;
    bool work = g->m > 0 && g->n > 0;

    int64_t next_job = 0, next_block = 0;
    NAT_PAR(nt, {
        float *bbuf = tbufs + (size_t)nat_tid * (p.b_floats + p.c_floats);
        float *cbuf = bbuf + p.b_floats;
        if (g->npre > 0) {
            NAT_STATIC(i, g->npre)
                g->pre(g->ctx, isa, i);
            NAT_BARRIER();
        }
        if (work) {
            NAT_STATIC(i, apanels * p.nkb) {
                int64_t t = i % p.nkb, pi = i / p.nkb, per = p.mcp / p.mr;
                int64_t mp = pi % per, rb = (pi / per) % p.nrb, a = pi / per / p.nrb;
                pack_a_block(g, &p, isa, a, rb, mp, t, apack);
            }
            NAT_BARRIER();
            NAT_DYNAMIC(j, p.njobs, next_job)
                run_job(g, &p, isa, j, apack, bbuf, cbuf, part);
            NAT_BARRIER();
            if (p.ksplit > 1) {
                NAT_DYNAMIC(blk, nblocks, next_block)
                    reduce_parts(g, &p, isa, blk, part, cbuf);
                NAT_BARRIER();
            }
        }
        if (g->npost > 0) {
            NAT_STATIC(i, g->npost)
                g->post(g->ctx, isa, i);
            NAT_BARRIER();
        }
    });
}

void op_native_parallel_for(int64_t n, int nthreads, const op_native_isa *isa, void *ctx,
                            void (*fn)(void *ctx, const op_native_isa *isa, int64_t item))
{
    int nt = nthreads > 0 ? nthreads : 1;
    int64_t next = 0;
    NAT_PAR(nt, NAT_DYNAMIC(i, n, next) fn(ctx, isa, i););
}

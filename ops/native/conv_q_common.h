/* The native int8 convolution's job (see native_conv_q.h), compiled once per level: the file
 * that includes this defines NQ_TILE (the FB x NV tile: vpdpbusd, vpmaddwd, or exact C) and
 * NQ_NV(fb) (vectors per tile) first, and NQ_JOB, the name of the job routine to define.  The
 * rest is plain C (input quantisation, tap-word expansion, epilogue, pooling, stores), left to
 * the compiler's vectoriser under each level's flags.  Those flags include -ffp-contract=off:
 * the float epilogue must round exactly as the reference's separate multiply and add do. */
#include <math.h>
#include <string.h>

#include "ops/native/native_conv_q.h"
#include "ops/quant.h"
#include "ops/ref.h"

/* Hooks a level may define first (vectorised): NQ_QUANT_ROW(d, x, n, inv, is_unsigned) stores
 * the quantised x[0 .. n) at d (s8 plus 128); NQ_EXPAND(d, b0, b1, b2, b3, n) stores
 * d[m] = b0[m] | b1[m] << 8 | b2[m] << 16 | b3[m] << 24 for m < n (n a multiple of 16);
 * NQ_POOL_ROWS(p, t, r0, rs, cy0, y0, y1, ybase, ys) finishes one filter's pooled rows (residual,
 * activation, pooling, store) and returns true, or false to leave it to the C code below;
 * NQ_POOL_GROUP(p, tb, tsf, n, grp, cy0, y0, y1) the same for all the group's filters. */
#ifndef NQ_QUANT_ROW
#define NQ_QUANT_ROW nq_quant_row_c
#endif
#ifndef NQ_EXPAND
#define NQ_EXPAND nq_expand_c
#endif

__attribute__((unused)) static void nq_quant_row_c(uint8_t *d, const float *x, int64_t n, float inv, bool is_unsigned)
{
    if (is_unsigned)
        for (int64_t i = 0; i < n; i++) d[i] = (uint8_t)op_q_act(x[i], inv, true);
    else
        for (int64_t i = 0; i < n; i++) d[i] = (uint8_t)(op_q_act(x[i], inv, false) + 128);
}

__attribute__((unused)) static void nq_expand_c(uint32_t *d, const uint8_t *b0, const uint8_t *b1, const uint8_t *b2,
                                                const uint8_t *b3, int64_t n)
{
    for (int64_t m = 0; m < n; m++)
        d[m] = (uint32_t)b0[m] | (uint32_t)b1[m] << 8 | (uint32_t)b2[m] << 16 | (uint32_t)b3[m] << 24;
}

/* The residual's k * t for element i (ops/quant.h's op_q_res_term). */
static inline float nq_res_kt(const nq_res *r, size_t i)
{
    float t;
    if (r->dt == OP_DT_F32) {
        t = ((const float *)r->r)[i];
        if (r->mode == NQ_R_F32_Q)
            t = (float)op_q_act(t, r->inv, r->uns);
    } else {
        t = r->dt == OP_DT_U8 ? (float)((const uint8_t *)r->r)[i] : (float)((const int8_t *)r->r)[i];
        if (r->mode == NQ_R_I8_DQ)
            t = t * r->sr;
    }
    return r->k * t;
}

/* One tile output value v (already ((float)acc + bq) * m) through d's epilogue, stored at i. */
static inline void nq_put(const nq_dst *d, size_t i, float v)
{
    if (d->res && d->res->r)
        v += nq_res_kt(d->res, i);
    if (d->act == OP_ACT_RELU)
        v = v > 0.0f ? v : 0.0f;
    else if (d->act == OP_ACT_LEAKY_RELU)
        v = v > 0.0f ? v : d->alpha * v;
    if (d->dt == OP_DT_U8)
        ((uint8_t *)d->y)[i] = (uint8_t)op_q_out(v, true);
    else if (d->dt == OP_DT_S8)
        ((int8_t *)d->y)[i] = (int8_t)op_q_out(v, false);
    else
        ((float *)d->y)[i] = v;
}

/* Channel ch (of the whole input) of image n at padded row pr, quantised into the sw phase rows
 * of q (wq bytes each): byte m of phase row s is padded column m * sw + s (the stored zero
 * outside the image). */
static void nq_fill_row(const nq_conv *p, int64_t n, int64_t ch, int64_t pr, uint8_t *q)
{
    int64_t ih = pr - p->ph, sw = p->sw, wq = p->wq;
    if (ih < 0 || ih >= p->h) {
        memset(q, p->padval, (size_t)(sw * wq));
        return;
    }
    /* element col of the row: off + col * st (channels-last: the channels interleaved) */
    size_t off = p->xcl ? ((size_t)(n * p->h + ih) * (size_t)p->w) * (size_t)p->c + (size_t)ch
                        : ((size_t)(n * p->c + ch) * (size_t)p->h + (size_t)ih) * (size_t)p->w;
    int64_t st = p->xcl ? p->c : 1;
    const float *xf = (const float *)p->x + off;
    const uint8_t *xu = (const uint8_t *)p->x + off;
    const int8_t *xs = (const int8_t *)p->x + off;
    float inv = p->inv_si;
    if (sw == 1 && st == 1) {
        uint8_t *d = q + p->pw;
        memset(q, p->padval, (size_t)p->pw);
        memset(d + p->w, p->padval, (size_t)(wq - p->pw - p->w));
        if (p->xdt == OP_DT_U8)
            memcpy(d, xu, (size_t)p->w);
        else if (p->xdt == OP_DT_S8)
            for (int64_t i = 0; i < p->w; i++) d[i] = (uint8_t)(xs[i] + 128);
        else
            NQ_QUANT_ROW(d, xf, p->w, inv, p->is_unsigned);
        return;
    }
    for (int64_t s = 0; s < sw; s++)
        for (int64_t m = 0; m < wq; m++) {
            int64_t col = m * sw + s - p->pw;
            uint8_t b = p->padval;
            if (col >= 0 && col < p->w) {
                if (p->xdt == OP_DT_U8)
                    b = xu[col * st];
                else if (p->xdt == OP_DT_S8)
                    b = (uint8_t)(xs[col * st] + 128);
                else
                    b = (uint8_t)(op_q_act(xf[col * st], inv, p->is_unsigned) + (p->is_unsigned ? 0 : 128));
            }
            q[s * wq + m] = b;
        }
}

/* Channel ch's bytes of a quantised channels-last row (element col at row[col * st]; NULL: a
 * padding row) into the sw phase rows of q, as nq_fill_row does. */
static void nq_fill_from(const nq_conv *p, const uint8_t *row, int64_t st, uint8_t *q)
{
    int64_t sw = p->sw, wq = p->wq;
    if (!row) {
        memset(q, p->padval, (size_t)(sw * wq));
        return;
    }
    if (sw == 1) {
        memset(q, p->padval, (size_t)p->pw);
        memset(q + p->pw + p->w, p->padval, (size_t)(wq - p->pw - p->w));
        uint8_t *d = q + p->pw;
        for (int64_t col = 0; col < p->w; col++) d[col] = row[col * st];
        return;
    }
    for (int64_t s = 0; s < sw; s++)
        for (int64_t m = 0; m < wq; m++) {
            int64_t col = m * sw + s - p->pw;
            q[s * wq + m] = col >= 0 && col < p->w ? row[col * st] : p->padval;
        }
}

/* Row ih of image n, all channels, channels-last, quantised into d (w * c bytes, s8 plus 128). */
static void nq_quant_cl_row(const nq_conv *p, int64_t n, int64_t ih, uint8_t *d)
{
    int64_t len = p->w * p->c;
    size_t off = (size_t)(n * p->h + ih) * (size_t)len;
    if (p->xdt == OP_DT_U8)
        memcpy(d, (const uint8_t *)p->x + off, (size_t)len);
    else if (p->xdt == OP_DT_S8)
        for (int64_t i = 0; i < len; i++) d[i] = (uint8_t)(((const int8_t *)p->x)[off + (size_t)i] + 128);
    else
        NQ_QUANT_ROW(d, (const float *)p->x + off, len, p->inv_si, p->is_unsigned);
}

/* The tap words of one quantised row q: phase row s of e (wm words) holds at m the word of
 * padded column X = m * sw + s: bytes X, X + dw, X + 2 dw, X + 3 dw. */
static void nq_expand(const nq_conv *p, const uint8_t *q, uint32_t *e)
{
    int64_t sw = p->sw, wq = p->wq, wm = p->wm;
    for (int64_t s = 0; s < sw; s++) {
        const uint8_t *b[4];
        for (int u = 0; u < 4; u++) {
            int64_t a = s + u * p->dw;
            b[u] = q + (a % sw) * wq + a / sw;
        }
        NQ_EXPAND(e + s * wm, b[0], b[1], b[2], b[3], wm);
    }
}

/* row[i] = act(row[i] + the residual's term at element r0 + i * rs) for i < len (r0 < 0: none). */
static void nq_act_row(const nq_conv *p, float *row, int64_t r0, int64_t rs, int64_t len)
{
    if (r0 >= 0 && p->res.mode == NQ_R_F32 && rs == 1)
        for (int64_t i = 0; i < len; i++) row[i] += ((const float *)p->res.r)[r0 + i];
    else if (r0 >= 0)
        for (int64_t i = 0; i < len; i++) row[i] += nq_res_kt(&p->res, (size_t)(r0 + i * rs));
    switch (p->act) {
    case OP_ACT_NONE: break;
    case OP_ACT_RELU:
        for (int64_t i = 0; i < len; i++) row[i] = row[i] > 0.0f ? row[i] : 0.0f;
        break;
    case OP_ACT_LEAKY_RELU: {
        float al = p->alpha;
        for (int64_t i = 0; i < len; i++) row[i] = row[i] > 0.0f ? row[i] : al * row[i];
        break;
    }
    default:
        for (int64_t i = 0; i < len; i++) row[i] = op_apply_act(p->act, p->alpha, row[i]);
        break;
    }
}

/* Stores v[0 .. len) at elements at + i * st of the output (f32, or u8/s8: sat(rne(v))). */
static void nq_store(const nq_conv *p, size_t at, int64_t st, const float *v, int64_t len)
{
    if (p->ydt == OP_DT_U8) {
        uint8_t *d = (uint8_t *)p->y + at;
        for (int64_t i = 0; i < len; i++) d[i * st] = (uint8_t)op_q_out(v[i], true);
    } else if (p->ydt == OP_DT_S8) {
        int8_t *d = (int8_t *)p->y + at;
        for (int64_t i = 0; i < len; i++) d[i * st] = (int8_t)op_q_out(v[i], false);
    } else if (st == 1) {
        memcpy((float *)p->y + at, v, sizeof(float) * (size_t)len);
    } else {
        float *d = (float *)p->y + at;
        for (int64_t i = 0; i < len; i++) d[i * st] = v[i];
    }
}

/* Element (y, x) of filter fg of image n in a tensor of h x w planes: its index and (*st) the
 * step to the next x, plain or channels-last. */
static inline size_t nq_at(const nq_conv *p, bool cl, int64_t n, int64_t fg, int64_t y, int64_t x, int64_t h,
                           int64_t w, int64_t *st)
{
    *st = cl ? p->f : 1;
    return cl ? ((size_t)(n * h + y) * (size_t)w + (size_t)x) * (size_t)p->f + (size_t)fg
              : ((size_t)(n * p->f + fg) * (size_t)h + (size_t)y) * (size_t)w + (size_t)x;
}

/* Pooled row py of one filter's activated convolution rows t (row cy0 first, stride owp) into
 * out: the reference's window order and comparison (NaN never wins, -inf when nothing does). */
static void nq_pool_row(const nq_conv *p, const float *t, int64_t cy0, int64_t py, float *out)
{
    int64_t owp = p->owp;
    if (p->psh == 2 && p->psw == 2 && p->pst_h == 2 && p->pst_w == 2 && p->pph == 0 && p->ppw == 0) {
        const float *a = t + (2 * py - cy0) * owp, *b = a + owp;
        for (int64_t px = 0; px < p->yw; px++) {
            float best = -INFINITY, e;
            e = a[2 * px], best = e > best ? e : best;
            e = a[2 * px + 1], best = e > best ? e : best;
            e = b[2 * px], best = e > best ? e : best;
            e = b[2 * px + 1], best = e > best ? e : best;
            out[px] = best;
        }
        return;
    }
    for (int64_t px = 0; px < p->yw; px++) {
        float best = -INFINITY;
        for (int64_t i = 0; i < p->psh; i++) {
            int64_t ch = py * p->pst_h - p->pph + i;
            if (ch < 0 || ch >= p->oh)
                continue;
            const float *row = t + (ch - cy0) * owp;
            for (int64_t j = 0; j < p->psw; j++) {
                int64_t cw = px * p->pst_w - p->ppw + j;
                if (cw >= 0 && cw < p->ow && row[cw] > best)
                    best = row[cw];
            }
        }
        out[px] = best;
    }
}

/* The tile in exact integer C (the scalar and AVX2 levels): NQ_MAX_NV vectors of 16 outputs
 * (E words at e + vb[v]) by p->fb filters (w [k4][fb] words of four s8), the nf filters kept
 * put through d (nq_dst).  The sums wrap modulo 2^32 as vpdpbusd's (and the reference's int32
 * cast) do. */
__attribute__((unused)) static void nq_tile_c(const nq_conv *p, const uint32_t *e, const int64_t *vb,
                                              const int64_t *to, const int64_t *cnt, const int64_t *koff,
                                              const int32_t *w, int nf, const int32_t *comp, const float *bq,
                                              const float *m, const nq_dst *d)
{
    int fb = (int)p->fb;
    for (int v = 0; v < NQ_MAX_NV; v++) {
        uint32_t acc[NQ_MAX_FB][16];
        memset(acc, 0, sizeof acc);
        for (int64_t k = 0; k < p->k4; k++) {
            const uint32_t *xe = e + vb[v] + koff[k];
            const int8_t *wk = (const int8_t *)(const void *)(w + k * fb);
            for (int f = 0; f < fb; f++) {
                int32_t w0 = wk[4 * f], w1 = wk[4 * f + 1], w2 = wk[4 * f + 2], w3 = wk[4 * f + 3];
                for (int l = 0; l < 16; l++) {
                    uint32_t x = xe[l];
                    int32_t s = (int32_t)(x & 255u) * w0 + (int32_t)(x >> 8 & 255u) * w1 +
                                (int32_t)(x >> 16 & 255u) * w2 + (int32_t)(x >> 24) * w3;
                    acc[f][l] += (uint32_t)s;
                }
            }
        }
        for (int f = 0; f < nf; f++)
            for (int l = 0; l < cnt[v]; l++)
                nq_put(d, d->base + (size_t)(f * d->fs + to[v] + l * d->ls),
                       ((float)(int32_t)(acc[f][l] + (uint32_t)comp[f]) + bq[f]) * m[f]);
    }
}

void NQ_JOB(const nq_conv *p, int64_t n, int64_t grp, int64_t y0, int64_t y1, void *scratch)
{
    int64_t cy0 = y0, cy1 = y1;
    if (p->pool) {
        cy0 = y0 * p->pst_h - p->pph;
        cy0 = cy0 < 0 ? 0 : cy0;
        cy1 = (y1 - 1) * p->pst_h - p->pph + p->psh;
        cy1 = cy1 > p->oh ? p->oh : cy1;
    }
    if (cy1 <= cy0)
        cy1 = cy0; /* pooling windows in the padding only: nothing to convolve */
    uint8_t *q = scratch;
    uint32_t *e = (uint32_t *)(void *)(q + nq_part_q(p));
    float *tb = (float *)(void *)((char *)e + nq_part_e(p));
    int64_t *koff = (int64_t *)(void *)((char *)tb + nq_part_t(p));
    int64_t *vb = koff + p->k4, *to = vb + p->crows * p->owv + NQ_MAX_NV, *cnt = to + p->crows * p->owv + NQ_MAX_NV;
    /* without pooling the tiles write the output (epilogue and all, but sigmoid and tanh; the
     * residual in the output's layout) */
    bool direct = !p->pool && (p->act == OP_ACT_NONE || p->act == OP_ACT_RELU || p->act == OP_ACT_LEAKY_RELU) &&
                  (!p->res.r || p->res.cl == p->ycl);
    int64_t sw = p->sw, wm = p->wm, irows = p->irows, owp = p->owp;

    /* the input rows this job reads, quantised and expanded */
    int64_t ir0 = cy0 * p->sh, nir = cy1 > cy0 ? (cy1 - 1 - cy0) * p->sh + (p->kh - 1) * p->dh + 1 : 0;
    if (p->xcl) { /* each channels-last row quantised once, then split by channel */
        uint8_t *row = q + p->sw * p->wq;
        for (int64_t r = 0; r < nir; r++) {
            int64_t ih = ir0 + r - p->ph;
            bool in = ih >= 0 && ih < p->h;
            if (in)
                nq_quant_cl_row(p, n, ih, row);
            for (int64_t c = 0; c < p->cpg; c++) {
                nq_fill_from(p, in ? row + grp * p->cpg + c : NULL, p->c, q);
                nq_expand(p, q, e + (c * irows + r) * sw * wm);
            }
        }
    } else {
        for (int64_t c = 0; c < p->cpg; c++)
            for (int64_t r = 0; r < nir; r++) {
                nq_fill_row(p, n, grp * p->cpg + c, ir0 + r, q);
                nq_expand(p, q, e + (c * irows + r) * sw * wm);
            }
    }

    /* the reduction's word offsets, and the output vectors (padded with copies of the last) */
    for (int64_t c = 0; c < p->cpg; c++)
        for (int64_t i = 0; i < p->kh; i++)
            for (int64_t t = 0; t < p->t; t++) {
                int64_t a = 4 * t * p->dw;
                koff[(c * p->kh + i) * p->t + t] = ((c * irows + i * p->dh) * sw + a % sw) * wm + a / sw;
            }
    int64_t nv = 0;
    for (int64_t oy = cy0; oy < cy1; oy++)
        for (int64_t b = 0; b < p->owv; b++, nv++) {
            vb[nv] = (oy * p->sh - ir0) * sw * wm + b * 16;
            to[nv] = !direct ? (oy - cy0) * owp + b * 16 : (oy * p->ow + b * 16) * (p->ycl ? p->f : 1);
            cnt[nv] = direct && p->ow - b * 16 < 16 ? p->ow - b * 16 : 16;
        }
    for (int j = 0; j < NQ_MAX_NV && nv > 0; j++) {
        vb[nv + j] = vb[nv - 1];
        to[nv + j] = to[nv - 1];
        cnt[nv + j] = 0; /* padding: stores nothing (a residual may be the output itself) */
    }

    /* the convolution rows: into the output, or through the multipliers into tb [fpgp][crows][owp] */
    int64_t tsf = p->crows * owp, nblk = p->fpgp / p->fb;
    nq_dst d = {.y = tb, .dt = OP_DT_F32, .fs = tsf, .ls = 1, .act = OP_ACT_NONE};
    if (direct)
        d = (nq_dst){.y = p->y, .dt = p->ydt, .fs = p->ycl ? 1 : p->oh * p->ow, .ls = p->ycl ? p->f : 1,
                     .res = &p->res, .act = p->act, .alpha = p->alpha};
    int nvt = NQ_NV(p->fb);
    for (int64_t blk = 0; blk < nblk; blk++) {
        const int32_t *w = p->wd + (grp * nblk + blk) * p->k4 * p->fb;
        int64_t left = p->fpg - blk * p->fb;
        int nf = (int)(left < p->fb ? left : p->fb);
        int64_t gi = grp * p->fpgp + blk * p->fb, fg0 = grp * p->fpg + blk * p->fb;
        int64_t st;
        d.base = direct ? nq_at(p, p->ycl, n, fg0, 0, 0, p->oh, p->ow, &st) : (size_t)(blk * p->fb * tsf);
        for (int64_t v0 = 0; v0 < nv; v0 += nvt)
            NQ_TILE(p, e, vb + v0, to + v0, cnt + v0, koff, w, nf, p->comp + gi, p->bq + gi, p->m + gi, &d);
    }
    if (direct)
        return;

    /* residual, activation, pooling, store */
#ifdef NQ_POOL_GROUP
    if (p->pool && NQ_POOL_GROUP(p, tb, tsf, n, grp, cy0, y0, y1))
        return;
#endif
    float *pooled = tb + p->fpgp * tsf;
    for (int64_t fl = 0; fl < p->fpg; fl++) {
        int64_t fg = grp * p->fpg + fl, rs = 1, ys;
        float *tf = tb + fl * tsf;
        /* the residual's element (oy, 0) is rf + oy * rrow, the next column rs on */
        int64_t rf = p->res.r ? (int64_t)nq_at(p, p->res.cl, n, fg, 0, 0, p->oh, p->ow, &rs) : -1;
        int64_t rrow = p->ow * rs;
        size_t ybase = nq_at(p, p->ycl, n, fg, 0, 0, p->yh, p->yw, &ys);
        if (!p->pool) {
            for (int64_t oy = y0; oy < y1; oy++) {
                float *row = tf + (oy - cy0) * owp;
                nq_act_row(p, row, rf >= 0 ? rf + oy * rrow : -1, rs, p->ow);
                nq_store(p, ybase + (size_t)(oy * p->yw * ys), ys, row, p->ow);
            }
            continue;
        }
#ifdef NQ_POOL_ROWS
        if (NQ_POOL_ROWS(p, tf, rf, rs, cy0, y0, y1, ybase, ys))
            continue;
#endif
        for (int64_t oy = cy0; oy < cy1; oy++)
            nq_act_row(p, tf + (oy - cy0) * owp, rf >= 0 ? rf + oy * rrow : -1, rs, p->ow);
        for (int64_t py = y0; py < y1; py++) {
            nq_pool_row(p, tf, cy0, py, pooled);
            nq_store(p, ybase + (size_t)(py * p->yw * ys), ys, pooled, p->yw);
        }
    }
}

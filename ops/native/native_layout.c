/* Native reorder: a batched activation between the plain order (NCHW, NCL) and channels-last
 * (NHWC, NWC), with the reference's checks and result (ops/ref_layout.c).  Per image, a C x S
 * transpose by tiles of 16 channels by 16 positions, so that both sides move whole cache lines
 * (the reference moves one element at a time along the strided side: one of vgg_small's
 * 64x32x32 activations at batch 64 took it 8 ms); the images and the position tiles split
 * between the threads.  An all-native plan has these where its plain layers (a first layer on
 * few channels, a convolution with a fused pooling, global pooling, dense) meet the 2-D
 * convolutions that run channels-last (compiler/pass_layout.c, op_caps.wide_cl). */
#include "ops/native/native_common.h"
#include "ops/native/native_par.h"

#define TILE 16

/* dst[s*C + c] = src[c*S + s] (to_cl), or dst[c*S + s] = src[s*C + c], for one image */
static void transpose_tile(const float *src, float *dst, int64_t C, int64_t S, int64_t c0, int64_t s0, bool to_cl)
{
    int64_t c1 = c0 + TILE < C ? c0 + TILE : C, s1 = s0 + TILE < S ? s0 + TILE : S;
    if (to_cl) {
        for (int64_t s = s0; s < s1; s++)
            for (int64_t c = c0; c < c1; c++)
                dst[s * C + c] = src[c * S + s];
    } else {
        for (int64_t c = c0; c < c1; c++)
            for (int64_t s = s0; s < s1; s++)
                dst[c * S + s] = src[s * C + c];
    }
}

int op_native_reorder(op_call *c, char *err, size_t errlen)
{
    bool to_cl;
    int r = ref_reorder_check(c, "native reorder", &to_cl, err, errlen);
    if (r != 0)
        return r < 0 ? -1 : 0;
    const op_tensor *x = &c->in[0];
    const float *src = x->data;
    float *dst = c->out[0].data;
    int64_t n = x->d[0], C = x->d[1], S = ref_spatial(x);
    int64_t ct = (C + TILE - 1) / TILE, st = (S + TILE - 1) / TILE;
    NAT_FOR(nat_threads(c), q, n * st, {
        int64_t b = q / st, j = q % st;
        for (int64_t i = 0; i < ct; i++)
            transpose_tile(src + b * C * S, dst + b * C * S, C, S, i * TILE, j * TILE, to_cl);
    });
    return 0;
}

/* Batches from a dataset's bytes (data.h): augmentation (random_crop, random_flip) on the bytes,
 * then the conversion to the batch's channel count (RGB to gray as ITU-R 601 luma, the integer
 * formula PIL's "L" conversion uses; gray to RGB replicated), the scaling to [0, 1] and the
 * normalisation, the last two through a table of 256 floats per channel.  The table's entries
 * are computed in float as torchvision's ToTensor and Normalize do: (b / 255 - mean) / std.
 *
 * Randomness: the choices for the example at position p of epoch e's order (the step j of the
 * pipeline) come from a splitmix64 finaliser chained over (seed, e, p, j), so they depend on
 * nothing else: not on threads, timing, batch boundaries or where a run was resumed. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "runtime/data.h"

#define GOLDEN 0x9e3779b97f4a7c15ULL
#define MAX_PAD 65535

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The random word for step j of the pipeline on the example at position pos of epoch `epoch`. */
static uint64_t augment_word(uint64_t seed, int64_t epoch, int64_t pos, int j)
{
    uint64_t h = mix64(seed + GOLDEN);
    h = mix64(h ^ ((uint64_t)epoch + GOLDEN));
    h = mix64(h ^ ((uint64_t)pos + 2 * GOLDEN));
    return mix64(h + (uint64_t)(j + 1) * GOLDEN);
}

cnn_status rt_batch_maker_init(rt_batch_maker *m, const cnn_dataset *d, int64_t channels,
                               const cnn_train_config *tc, bool augment, uint64_t seed, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    m->d = d;
    m->seed = seed;
    m->channels = channels ? channels : d->channels;
    if (m->channels != d->channels && m->channels != 1 && m->channels != 3) {
        snprintf(err, errlen, "%s: images of %" PRId64 " channels cannot be made into %" PRId64, d->where, d->channels,
                 m->channels);
        return CNN_ERR_INPUT;
    }
    if (m->channels > 3) { /* only a dataset's own count gets here: none has more than 3 */
        snprintf(err, errlen, "%s: %" PRId64 " channels", d->where, m->channels);
        return CNN_ERR_INTERNAL;
    }
    int nn = tc ? tc->nnormalize : 0;
    if (nn != 0 && nn != 1 && nn != m->channels) {
        snprintf(err, errlen, "normalize gives %d means and standard deviations, but the images have %" PRId64
                 " channel%s (give one pair, or one per channel)", nn, m->channels, m->channels == 1 ? "" : "s");
        return CNN_ERR_INPUT;
    }
    for (int c = 0; c < nn; c++)
        if (!isfinite(tc->mean[c]) || !isfinite(tc->std[c]) || !(tc->std[c] > 0)) {
            snprintf(err, errlen, "normalize: channel %d has mean %g and standard deviation %g; the mean must be "
                     "finite and the deviation a positive finite number", c, tc->mean[c], tc->std[c]);
            return CNN_ERR_INPUT;
        }
    for (int64_t c = 0; c < m->channels; c++) {
        for (int v = 0; v < 256; v++) {
            float x = (float)v / 255.0f;
            if (nn) {
                int k = nn == 1 ? 0 : (int)c;
                x = (x - (float)tc->mean[k]) / (float)tc->std[k];
            }
            m->table[c][v] = x;
        }
    }
    if (augment && tc) {
        if (tc->naugment < 0 || tc->naugment > CNN_MAX_AUGMENT) {
            snprintf(err, errlen, "augment: %d steps (at most %d)", tc->naugment, CNN_MAX_AUGMENT);
            return CNN_ERR_INPUT;
        }
        for (int j = 0; j < tc->naugment; j++) {
            const cnn_augment_step *a = &tc->augment[j];
            if (a->kind == CNN_AUGMENT_RANDOM_CROP && (a->pad < 0 || a->pad > MAX_PAD)) {
                snprintf(err, errlen, "augment: random_crop(%" PRId64 "): the pad must be 0 to %d", a->pad, MAX_PAD);
                return CNN_ERR_INPUT;
            }
            if (a->kind != CNN_AUGMENT_RANDOM_CROP && a->kind != CNN_AUGMENT_RANDOM_FLIP) {
                snprintf(err, errlen, "augment: unknown step kind %d", a->kind);
                return CNN_ERR_INPUT;
            }
            m->augment[m->naugment++] = *a;
        }
    }
    return CNN_OK;
}

size_t rt_batch_scratch_bytes(const rt_batch_maker *m)
{
    return (size_t)(2 * m->d->channels * m->d->height * m->d->width);
}

/* random_crop: out(y, x) = in(y + oy - pad, x + ox - pad), 0 outside; oy, ox in [0, 2 pad]. */
static void crop(const uint8_t *in, uint8_t *out, int64_t C, int64_t H, int64_t W, int64_t pad, uint64_t r)
{
    uint64_t span = (uint64_t)(2 * pad + 1);
    int64_t dy = (int64_t)((r & 0xffffffffu) % span) - pad, dx = (int64_t)((r >> 32) % span) - pad;
    for (int64_t c = 0; c < C; c++)
        for (int64_t y = 0; y < H; y++) {
            uint8_t *o = out + (c * H + y) * W;
            int64_t sy = y + dy;
            if (sy < 0 || sy >= H) {
                memset(o, 0, (size_t)W);
                continue;
            }
            const uint8_t *i = in + (c * H + sy) * W;
            int64_t x0 = dx < 0 ? -dx : 0, x1 = dx > 0 ? W - dx : W; /* x with 0 <= x + dx < W */
            if (x1 <= x0) {
                memset(o, 0, (size_t)W);
                continue;
            }
            memset(o, 0, (size_t)x0);
            memcpy(o + x0, i + x0 + dx, (size_t)(x1 - x0));
            memset(o + x1, 0, (size_t)(W - x1));
        }
}

/* random_flip: mirrored left to right when the top bit of r is set (p = 0.5). */
static bool flip(const uint8_t *in, uint8_t *out, int64_t C, int64_t H, int64_t W, uint64_t r)
{
    if (!(r >> 63))
        return false;
    for (int64_t row = 0; row < C * H; row++) {
        const uint8_t *i = in + row * W;
        uint8_t *o = out + row * W;
        for (int64_t x = 0; x < W; x++)
            o[x] = i[W - 1 - x];
    }
    return true;
}

void rt_batch_make(const rt_batch_maker *m, const int64_t *order, int64_t first, int64_t n, int64_t epoch,
                   float *x, float *labels, uint8_t *scratch)
{
    const cnn_dataset *d = m->d;
    int64_t C = d->channels, H = d->height, W = d->width, plane = H * W, per = C * plane;
    int64_t out_per = m->channels * plane;
    for (int64_t i = 0; i < n; i++) {
        int64_t pos = first + i, idx = order ? order[pos] : pos;
        const uint8_t *img = d->pixels + idx * per;
        for (int j = 0; j < m->naugment; j++) {
            uint8_t *dst = scratch + (img == scratch ? per : 0);
            uint64_t r = augment_word(m->seed, epoch, pos, j);
            if (m->augment[j].kind == CNN_AUGMENT_RANDOM_CROP) {
                if (m->augment[j].pad == 0)
                    continue;
                crop(img, dst, C, H, W, m->augment[j].pad, r);
            } else if (!flip(img, dst, C, H, W, r)) {
                continue;
            }
            img = dst;
        }
        float *o = x + i * out_per;
        if (m->channels == C) {
            for (int64_t c = 0; c < C; c++) {
                const float *t = m->table[c];
                const uint8_t *s = img + c * plane;
                float *oc = o + c * plane;
                for (int64_t k = 0; k < plane; k++)
                    oc[k] = t[s[k]];
            }
        } else if (C == 3) { /* to gray: ITU-R 601 luma, rounded as PIL rounds it */
            const float *t = m->table[0];
            for (int64_t k = 0; k < plane; k++) {
                uint32_t g = ((uint32_t)img[k] * 19595u + (uint32_t)img[plane + k] * 38470u +
                              (uint32_t)img[2 * plane + k] * 7471u + 0x8000u) >> 16;
                o[k] = t[g];
            }
        } else { /* gray to RGB: the one channel in each */
            for (int64_t c = 0; c < m->channels; c++) {
                const float *t = m->table[c];
                float *oc = o + c * plane;
                for (int64_t k = 0; k < plane; k++)
                    oc[k] = t[img[k]];
            }
        }
        labels[i] = (float)d->labels[idx];
    }
}

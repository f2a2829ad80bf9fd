/* Convolution geometry shared by every backend's convolution kernels (see conv_geom.h). */
#include "ops/conv_geom.h"

#include "ops/desc_common.h"
#include "ops/ref_common.h"

/* Reads [N,C,(H,)W] as 4-D (h = 1 for a rank-3 tensor). */
void op_conv_view4(const op_tensor *t, int64_t *n, int64_t *c, int64_t *h, int64_t *w)
{
    *n = t->d[0];
    *c = t->d[1];
    *h = t->rank == 4 ? t->d[2] : 1;
    *w = t->d[t->rank - 1];
}

/* Checks the attributes against the input shape x and the weight shape wt and fills g;
 * sdims 3 only when allow3. */
static int geom_make(const op_conv_attrs *a, const op_tensor *x, const op_tensor *wt,
                     const char *name, op_conv_geom *g, bool allow3, char *err, size_t errlen)
{
    char s1[64], s2[64];
    if (a->sdims != 1 && a->sdims != 2 && !(allow3 && a->sdims == 3))
        return ref_fail(err, errlen, "%s: sdims is %d, expected 1 or 2%s", name, a->sdims,
                        allow3 ? " or 3" : "");
    if (x->rank != a->sdims + 2)
        return ref_fail(err, errlen, "%s: %d-D convolution needs a rank-%d input, got %s", name,
                        a->sdims, a->sdims + 2, ref_shape_str(x, s1, sizeof s1));
    if (wt->rank != a->sdims + 2)
        return ref_fail(err, errlen, "%s: %d-D convolution needs a rank-%d weight, got %s", name,
                        a->sdims, a->sdims + 2, ref_shape_str(wt, s1, sizeof s1));
    if (a->sdims == 1 && (a->kernel[0] != 1 || a->stride[0] != 1 || a->pad[0] != 0 ||
                          a->dilation[0] != 1))
        return ref_fail(err, errlen,
                        "%s: 1-D convolution needs kernel 1, stride 1, pad 0, dilation 1 at "
                        "index 0, got %lld, %lld, %lld, %lld", name, (long long)a->kernel[0],
                        (long long)a->stride[0], (long long)a->pad[0],
                        (long long)a->dilation[0]);
    for (int i = 0; i < 2; i++)
        if (a->kernel[i] < 1 || a->stride[i] < 1 || a->dilation[i] < 1 || a->pad[i] < 0)
            return ref_fail(err, errlen,
                            "%s: bad geometry kernel %lld, stride %lld, dilation %lld, pad %lld",
                            name, (long long)a->kernel[i], (long long)a->stride[i],
                            (long long)a->dilation[i], (long long)a->pad[i]);
    bool three = a->sdims == 3;
    if (three && (a->kernel_d < 1 || a->stride_d < 1 || a->dilation_d < 1 || a->pad_d < 0))
        return ref_fail(err, errlen,
                        "%s: bad depth geometry kernel %lld, stride %lld, dilation %lld, pad %lld",
                        name, (long long)a->kernel_d, (long long)a->stride_d,
                        (long long)a->dilation_d, (long long)a->pad_d);
    g->n = x->d[0];
    g->c = x->d[1];
    g->d = three ? x->d[2] : 1;
    g->h = x->rank >= 4 ? x->d[x->rank - 2] : 1;
    g->w = x->d[x->rank - 1];
    g->f = wt->d[0];
    g->g = a->groups;
    if (g->g < 1 || g->c % g->g != 0 || g->f % g->g != 0)
        return ref_fail(err, errlen, "%s: %lld groups do not divide %lld channels and %lld filters",
                        name, (long long)g->g, (long long)g->c, (long long)g->f);
    if (a->filters > 0 && a->filters != g->f)
        return ref_fail(err, errlen, "%s: attributes say %lld filters, the weight has %lld", name,
                        (long long)a->filters, (long long)g->f);
    g->cpg = g->c / g->g;
    g->fpg = g->f / g->g;
    g->kh = a->kernel[0];
    g->kw = a->kernel[1];
    g->sh = a->stride[0];
    g->sw = a->stride[1];
    g->ph = a->pad[0];
    g->pw = a->pad[1];
    g->dh = a->dilation[0];
    g->dw = a->dilation[1];
    g->kd = three ? a->kernel_d : 1;
    g->sd = three ? a->stride_d : 1;
    g->pd = three ? a->pad_d : 0;
    g->dd = three ? a->dilation_d : 1;
    int64_t wkh = a->sdims >= 2 ? wt->d[wt->rank - 2] : 1;
    int64_t wkd = three ? wt->d[2] : 1;
    if (wt->d[1] != g->cpg || wkd != g->kd || wkh != g->kh || wt->d[wt->rank - 1] != g->kw) {
        if (three)
            return ref_fail(err, errlen,
                            "%s: weight %s does not fit input %s with %lld groups and kernel "
                            "%lldx%lldx%lld", name, ref_shape_str(wt, s1, sizeof s1),
                            ref_shape_str(x, s2, sizeof s2), (long long)g->g, (long long)g->kd,
                            (long long)g->kh, (long long)g->kw);
        return ref_fail(err, errlen,
                        "%s: weight %s does not fit input %s with %lld groups and kernel %lldx%lld",
                        name, ref_shape_str(wt, s1, sizeof s1), ref_shape_str(x, s2, sizeof s2),
                        (long long)g->g, (long long)g->kh, (long long)g->kw);
    }
    if (!op_desc_window_out(g->d, g->kd, g->sd, g->pd, g->dd, &g->od) ||
        !op_desc_window_out(g->h, g->kh, g->sh, g->ph, g->dh, &g->oh) ||
        !op_desc_window_out(g->w, g->kw, g->sw, g->pw, g->dw, &g->ow))
        return ref_fail(err, errlen, "%s: output of input %s is too large", name, ref_shape_str(x, s1, sizeof s1));
    if (g->od < 1 || g->oh < 1 || g->ow < 1)
        return ref_fail(err, errlen, "%s: input %s is smaller than the kernel", name,
                        ref_shape_str(x, s1, sizeof s1));
    return 0;
}

int op_conv_geom_make(const op_conv_attrs *a, const op_tensor *x, const op_tensor *wt,
                      const char *name, op_conv_geom *g, char *err, size_t errlen)
{
    return geom_make(a, x, wt, name, g, false, err, errlen);
}

int op_conv_geom_make3(const op_conv_attrs *a, const op_tensor *x, const op_tensor *wt,
                       const char *name, op_conv_geom *g, char *err, size_t errlen)
{
    return geom_make(a, x, wt, name, g, true, err, errlen);
}

/* Checks that t is [n, c, (h,) w] in the rank of the convolution. */
int op_conv_check_act(const op_tensor *t, int sdims, int64_t n, int64_t c, int64_t h, int64_t w,
                      const char *name, const char *what, char *err, size_t errlen)
{
    char s1[64];
    bool ok = t->rank == sdims + 2 && t->d[0] == n && t->d[1] == c &&
              (sdims == 1 ? h == 1 : t->d[2] == h) && t->d[t->rank - 1] == w;
    if (ok)
        return 0;
    if (sdims == 1)
        return ref_fail(err, errlen, "%s: %s is %s, expected [%lld, %lld, %lld]", name, what,
                        ref_shape_str(t, s1, sizeof s1), (long long)n, (long long)c,
                        (long long)w);
    return ref_fail(err, errlen, "%s: %s is %s, expected [%lld, %lld, %lld, %lld]", name, what,
                    ref_shape_str(t, s1, sizeof s1), (long long)n, (long long)c, (long long)h,
                    (long long)w);
}


int op_conv_check_act3(const op_tensor *t, int sdims, int64_t n, int64_t c, int64_t d, int64_t h,
                       int64_t w, const char *name, const char *what, char *err, size_t errlen)
{
    char s1[64];
    if (sdims != 3)
        return op_conv_check_act(t, sdims, n, c, h, w, name, what, err, errlen);
    if (t->rank == 5 && t->d[0] == n && t->d[1] == c && t->d[2] == d && t->d[3] == h &&
        t->d[4] == w)
        return 0;
    return ref_fail(err, errlen, "%s: %s is %s, expected [%lld, %lld, %lld, %lld, %lld]", name,
                    what, ref_shape_str(t, s1, sizeof s1), (long long)n, (long long)c,
                    (long long)d, (long long)h, (long long)w);
}

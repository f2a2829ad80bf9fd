/* Pooling geometry shared by the backends (ops/pool_geom.h). */
#include "ops/pool_geom.h"

#include "ops/ref_common.h"

int op_pool_geom_make(const op_pool_attrs *a, const op_tensor *x, bool max, const char *name, op_pool_geom *g,
                      char *err, size_t errlen)
{
    char s1[64];
    if (a->sdims != 1 && a->sdims != 2 && a->sdims != 3)
        return ref_fail(err, errlen, "%s: sdims is %d, expected 1, 2 or 3", name, a->sdims);
    if (x->rank != a->sdims + 2)
        return ref_fail(err, errlen, "%s: %d-D pooling needs a rank-%d tensor, got %s", name,
                        a->sdims, a->sdims + 2, ref_shape_str(x, s1, sizeof s1));
    if (a->sdims == 1 && (a->size[0] != 1 || a->stride[0] != 1 || a->pad[0] != 0))
        return ref_fail(err, errlen,
                        "%s: 1-D pooling needs size 1, stride 1, pad 0 at index 0, got %lld, "
                        "%lld, %lld", name, (long long)a->size[0], (long long)a->stride[0],
                        (long long)a->pad[0]);
    for (int i = 0; i < 2; i++) {
        if (a->size[i] < 1 || a->stride[i] < 1 || a->pad[i] < 0)
            return ref_fail(err, errlen, "%s: bad geometry size %lld, stride %lld, pad %lld",
                            name, (long long)a->size[i], (long long)a->stride[i],
                            (long long)a->pad[i]);
        if (max && a->pad[i] >= a->size[i])
            return ref_fail(err, errlen, "%s: pad %lld must be smaller than size %lld", name,
                            (long long)a->pad[i], (long long)a->size[i]);
    }
    bool three = a->sdims == 3;
    if (three) {
        if (a->size_d < 1 || a->stride_d < 1 || a->pad_d < 0)
            return ref_fail(err, errlen, "%s: bad depth geometry size %lld, stride %lld, pad %lld",
                            name, (long long)a->size_d, (long long)a->stride_d,
                            (long long)a->pad_d);
        if (max && a->pad_d >= a->size_d)
            return ref_fail(err, errlen, "%s: depth pad %lld must be smaller than size %lld",
                            name, (long long)a->pad_d, (long long)a->size_d);
    }
    g->sdims = a->sdims;
    g->n = x->d[0];
    g->c = x->d[1];
    g->d = three ? x->d[2] : 1;
    g->h = x->rank >= 4 ? x->d[x->rank - 2] : 1;
    g->w = x->d[x->rank - 1];
    g->kd = three ? a->size_d : 1;
    g->kh = a->size[0];
    g->kw = a->size[1];
    g->sd = three ? a->stride_d : 1;
    g->sh = a->stride[0];
    g->sw = a->stride[1];
    g->pd = three ? a->pad_d : 0;
    g->ph = a->pad[0];
    g->pw = a->pad[1];
    if (three && (g->d + 2 * g->pd < g->kd || g->h + 2 * g->ph < g->kh ||
                  g->w + 2 * g->pw < g->kw))
        return ref_fail(err, errlen, "%s: input %s is smaller than the %lldx%lldx%lld window",
                        name, ref_shape_str(x, s1, sizeof s1), (long long)g->kd,
                        (long long)g->kh, (long long)g->kw);
    if (g->h + 2 * g->ph < g->kh || g->w + 2 * g->pw < g->kw)
        return ref_fail(err, errlen, "%s: input %s is smaller than the %lldx%lld window", name,
                        ref_shape_str(x, s1, sizeof s1), (long long)g->kh, (long long)g->kw);
    g->od = (g->d + 2 * g->pd - g->kd) / g->sd + 1;
    g->oh = (g->h + 2 * g->ph - g->kh) / g->sh + 1;
    g->ow = (g->w + 2 * g->pw - g->kw) / g->sw + 1;
    return 0;
}

int op_global_pool_check(const op_call *c, const char *name, bool bwd, int64_t *nc, int64_t *s, char *err,
                         size_t errlen)
{
    char s1[64];
    if (ref_check_call(c, name, 1, 1, 1, 1, err, errlen))
        return -1;
    const op_tensor *plane = bwd ? &c->out[0] : &c->in[0], *pooled = bwd ? &c->in[0] : &c->out[0];
    if (plane->rank < 2)
        return ref_fail(err, errlen, "%s: %s %s has no channel axis", name, bwd ? "dx" : "input",
                        ref_shape_str(plane, s1, sizeof s1));
    *nc = plane->d[0] * plane->d[1], *s = ref_spatial(plane);
    if (pooled->rank != 2 || pooled->d[0] != plane->d[0] || pooled->d[1] != plane->d[1])
        return ref_fail(err, errlen, "%s: %s is %s, expected [%lld, %lld]", name, bwd ? "dy" : "output",
                        ref_shape_str(pooled, s1, sizeof s1), (long long)plane->d[0], (long long)plane->d[1]);
    if (!bwd && *s == 0)
        return ref_fail(err, errlen, "%s: input has no spatial elements", name);
    return 0;
}

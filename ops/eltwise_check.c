/* The element-wise and data-movement ops' call checks (ops/eltwise_check.h). */
#include "ops/eltwise_check.h"

#include <math.h>
#include <string.h>

#include "ops/ref_common.h"

static int check_same(const op_tensor *a, const op_tensor *b, const char *name, const char *wa,
                      const char *wb, char *err, size_t errlen)
{
    char s1[64], s2[64];
    if (!ref_same_shape(a, b))
        return ref_fail(err, errlen, "%s: %s is %s but %s is %s", name, wa,
                        ref_shape_str(a, s1, sizeof s1), wb, ref_shape_str(b, s2, sizeof s2));
    /* element by element over flat memory: any order, the same for both */
    if (a->layout != b->layout)
        return ref_fail(err, errlen, "%s: %s and %s are in different layouts", name, wa, wb);
    return 0;
}

static bool act_known(op_act act)
{
    return act == OP_ACT_NONE || act == OP_ACT_RELU || act == OP_ACT_SIGMOID ||
           act == OP_ACT_TANH || act == OP_ACT_LEAKY_RELU;
}

/* The activation of attrs.act into *act, *alpha: known (and, when named, not none). */
static int read_act(const op_call *c, const char *name, bool named, op_act *act, float *alpha, char *err,
                    size_t errlen)
{
    *act = c->node->attrs.act.act;
    *alpha = c->node->attrs.act.alpha;
    if (named && (*act == OP_ACT_NONE || !act_known(*act)))
        return ref_fail(err, errlen, "%s: attrs.act names no activation (%d)", name, (int)*act);
    if (!act_known(*act))
        return ref_fail(err, errlen, "%s: unknown activation %d", name, (int)*act);
    return 0;
}

int op_elt_check_act(const op_call *c, const char *name, bool plain_only, op_act *act, float *alpha, char *err,
                     size_t errlen)
{
    if (ref_check_call_layouts(c, name, 1, 1, 1, 1, plain_only, err, errlen) ||
        read_act(c, name, true, act, alpha, err, errlen))
        return -1;
    return check_same(&c->out[0], &c->in[0], name, "output", "input", err, errlen);
}

int op_elt_check_act_bwd(const op_call *c, const char *name, bool plain_only, op_act *act, float *alpha, char *err,
                         size_t errlen)
{
    if (ref_check_call_layouts(c, name, 2, OP_MAX_IN, 1, 1, plain_only, err, errlen) ||
        check_same(&c->in[1], &c->in[0], name, "y", "dy", err, errlen) ||
        check_same(&c->out[0], &c->in[0], name, "dx", "dy", err, errlen))
        return -1;
    for (int k = 2; k < c->nin; k++)
        if (check_same(&c->in[k], &c->in[0], name, "a gradient summed into dy", "dy", err, errlen))
            return -1;
    return read_act(c, name, false, act, alpha, err, errlen);
}

int op_elt_check_add(const op_call *c, const char *name, bool plain_only, op_act *act, float *alpha, char *err,
                     size_t errlen)
{
    if (ref_check_call_layouts(c, name, 2, OP_MAX_IN, 1, 1, plain_only, err, errlen))
        return -1;
    for (int k = 1; k < c->nin; k++)
        if (check_same(&c->in[k], &c->in[0], name, "an input", "input 0", err, errlen))
            return -1;
    if (check_same(&c->out[0], &c->in[0], name, "output", "input 0", err, errlen))
        return -1;
    return read_act(c, name, false, act, alpha, err, errlen);
}

int op_elt_check_flatten(const op_call *c, const char *name, char *err, size_t errlen)
{
    char s1[64], s2[64];
    if (ref_check_call(c, name, 1, 1, 1, 1, err, errlen))
        return -1;
    const op_tensor *x = &c->in[0], *y = &c->out[0];
    /* flatten is also autodiff's reshape of a gradient back to the input's shape: any output
     * with the same batch and element count */
    if (x->rank < 1 || y->rank < 1 || y->d[0] != x->d[0] || op_tensor_numel(y) != op_tensor_numel(x))
        return ref_fail(err, errlen, "%s: output %s does not flatten input %s", name,
                        ref_shape_str(y, s1, sizeof s1), ref_shape_str(x, s2, sizeof s2));
    return 0;
}

int op_elt_check_dropout(const op_call *c, const char *name, op_dropout_gen *gen, char *err, size_t errlen)
{
    if (ref_check_call(c, name, 1, 1, 1, 2, err, errlen) ||
        check_same(&c->out[0], &c->in[0], name, "output", "input", err, errlen))
        return -1;
    const op_dropout_attrs *a = &c->node->attrs.dropout;
    if (!a->training) {
        if (c->nout != 1)
            return ref_fail(err, errlen, "%s: inference makes 1 output, got %d", name, c->nout);
        if (c->out[0].data != c->in[0].data)
            memmove(c->out[0].data, c->in[0].data, (size_t)op_tensor_numel(&c->in[0]) * sizeof(float));
        return 1;
    }
    if (c->nout != 2)
        return ref_fail(err, errlen, "%s: training makes 2 outputs (y, mask), got %d", name, c->nout);
    if (check_same(&c->out[1], &c->in[0], name, "mask", "input", err, errlen))
        return -1;
    if (!(a->p >= 0.0f && a->p < 1.0f))
        return ref_fail(err, errlen, "%s: p = %g is outside [0, 1)", name, (double)a->p);
    /* P(u < threshold) = threshold / 2^53 = p exactly (p*2^53 is an integer for p >= 2^-29) */
    gen->threshold = (uint64_t)llround((double)a->p * 9007199254740992.0);
    gen->scale = (float)(1.0 / (1.0 - (double)a->p));
    gen->key = op_splitmix64(c->seed);
    return 0;
}

int op_elt_check_dropout_bwd(const op_call *c, const char *name, char *err, size_t errlen)
{
    if (ref_check_call(c, name, 2, 2, 1, 1, err, errlen) ||
        check_same(&c->in[1], &c->in[0], name, "mask", "dy", err, errlen) ||
        check_same(&c->out[0], &c->in[0], name, "dx", "dy", err, errlen))
        return -1;
    return 0;
}

int op_elt_check_softmax(const op_call *c, const char *name, bool bwd, int64_t *n, int64_t *ch, int64_t *s,
                         char *err, size_t errlen)
{
    int nin = bwd ? 2 : 1;
    if (ref_check_call(c, name, nin, nin, 1, 1, err, errlen))
        return -1;
    if (c->in[0].rank < 2)
        return ref_fail(err, errlen, "%s: %s has rank %d, expected a batch axis and features", name,
                        bwd ? "dy" : "input", c->in[0].rank);
    if (bwd ? check_same(&c->in[1], &c->in[0], name, "y", "dy", err, errlen) ||
                  check_same(&c->out[0], &c->in[0], name, "dx", "dy", err, errlen)
            : check_same(&c->out[0], &c->in[0], name, "output", "input", err, errlen))
        return -1;
    *n = c->in[0].d[0], *ch = c->in[0].d[1], *s = ref_spatial(&c->in[0]);
    return 0;
}

/* Whether t is [n, any, rest of ref] (every axis but 1 equal to ref's). */
static bool concat_fits(const op_tensor *t, const op_tensor *ref)
{
    if (t->rank != ref->rank || t->rank < 2 || t->d[0] != ref->d[0])
        return false;
    for (int i = 2; i < t->rank; i++)
        if (t->d[i] != ref->d[i])
            return false;
    return true;
}

int op_elt_check_concat(const op_call *c, const char *name, char *err, size_t errlen)
{
    char s1[64], s2[64];
    if (ref_check_call(c, name, 1, OP_MAX_IN, 1, 1, err, errlen))
        return -1;
    const op_tensor *y = &c->out[0];
    int64_t total_c = 0;
    for (int k = 0; k < c->nin; k++) {
        if (!concat_fits(&c->in[k], y))
            return ref_fail(err, errlen, "%s: input %d is %s, which does not fit output %s outside axis 1", name, k,
                            ref_shape_str(&c->in[k], s1, sizeof s1), ref_shape_str(y, s2, sizeof s2));
        total_c += c->in[k].d[1];
    }
    if (total_c != y->d[1])
        return ref_fail(err, errlen, "%s: inputs have %lld channels together, output has %lld", name,
                        (long long)total_c, (long long)y->d[1]);
    return 0;
}

int op_elt_check_concat_bwd(const op_call *c, const char *name, int64_t *off, char *err, size_t errlen)
{
    char s1[64], s2[64];
    if (ref_check_call(c, name, 1, 1, 1, 1, err, errlen))
        return -1;
    const op_tensor *dy = &c->in[0], *dx = &c->out[0];
    *off = c->node->attrs.slice.offset;
    if (!concat_fits(dx, dy) || *off < 0 || *off + dx->d[1] > dy->d[1])
        return ref_fail(err, errlen, "%s: dx %s at channel offset %lld is not a slice of dy %s", name,
                        ref_shape_str(dx, s1, sizeof s1), (long long)*off, ref_shape_str(dy, s2, sizeof s2));
    return 0;
}

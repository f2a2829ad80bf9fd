/* Reference reorder: moves a batched activation between the plain order (NCHW, NCL) and
 * channels-last (NHWC, NWC).  The only reference kernel that sees channels-last tensors: the
 * layout pass (compiler/pass_layout.c) inserts it where a oneDNN region meets the rest. */
#include <string.h>

#include "ops/ref_common.h"

int ref_reorder_check(op_call *c, const char *name, bool *to_cl, char *err, size_t errlen)
{
    char s1[64], s2[64];
    if (!c->node)
        return ref_fail(err, errlen, "%s: call has no node (attributes)", name);
    if (c->nin != 1 || c->nout != 1)
        return ref_fail(err, errlen, "%s: expected 1 input and 1 output, got %d and %d", name, c->nin, c->nout);
    const op_tensor *x = &c->in[0], *y = &c->out[0];
    if (!ref_same_shape(x, y) || x->rank < 1 || x->rank > OP_MAX_DIMS)
        return ref_fail(err, errlen, "%s: output %s differs from input %s", name, ref_shape_str(y, s1, sizeof s1),
                        ref_shape_str(x, s2, sizeof s2));
    const op_reorder_attrs *a = &c->node->attrs.reorder;
    if ((int)a->from != x->layout || (int)a->to != y->layout)
        return ref_fail(err, errlen, "%s: attributes say layout %d -> %d, the tensors are %d -> %d", name,
                        (int)a->from, (int)a->to, x->layout, y->layout);
    if (x->layout == OP_LAYOUT_BLOCK16 || y->layout == OP_LAYOUT_BLOCK16)
        return ref_fail(err, errlen, "%s: converts plain and channels-last tensors only, not oneDNN's blocked layout",
                        name);
    int64_t total = op_tensor_numel(x);
    if (total == 0)
        return 1;
    if (!x->data || !y->data)
        return ref_fail(err, errlen, "%s: a tensor has no data", name);
    if (x->data == y->data)
        return ref_fail(err, errlen, "%s: output aliases the input", name);
    if (a->from == a->to || x->rank < 3) {
        memcpy(y->data, x->data, (size_t)total * sizeof(float));
        return 1;
    }
    *to_cl = a->to == OP_LAYOUT_NHWC;
    return 0;
}

/* x [N,C,S...] -> y of the same shape; attrs.reorder says from which order to which, and the
 * tensors' layout fields must agree.  Plain index (n*C + c)*S + s, channels-last (n*S + s)*C + c. */
OP_REF_KERNEL(op_ref_reorder)
{
    bool to_cl;
    int r = ref_reorder_check(c, "reorder", &to_cl, err, errlen);
    if (r != 0)
        return r < 0 ? -1 : 0;
    const op_tensor *x = &c->in[0];
    ref_layout_copy(x->data, c->out[0].data, x->d[0], x->d[1], ref_spatial(x), sizeof(float), to_cl, ref_threads(c));
    return 0;
}

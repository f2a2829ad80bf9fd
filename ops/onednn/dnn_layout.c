/* oneDNN reorder between our two activation layouts (compiler/pass_layout.c inserts it):
 *
 *   reorder:  x [N,C,...] in attrs.reorder.from  ->  y, the same shape, in attrs.reorder.to
 *
 * plain is NCHW / NCL, channels-last NHWC / NWC, blocked nChw16c; one reorder primitive does it. */
#include "ops/onednn/dnn_common.h"

static int reorder_build(op_dnn_prog *p, const op_call *c, char *err, size_t errlen)
{
    if (c->nin != 1 || c->nout != 1)
        return op_dnn_errf(err, errlen, "oneDNN reorder: expected 1 input and 1 output");
    const op_tensor *x = &c->in[0], *y = &c->out[0];
    bool same = x->rank == y->rank && x->rank >= 1 && x->rank <= OP_MAX_DIMS;
    for (int k = 0; same && k < x->rank; k++) same = x->d[k] == y->d[k];
    if (!same) return op_dnn_errf(err, errlen, "oneDNN reorder: x and y differ in shape");
    const op_reorder_attrs *a = &c->node->attrs.reorder;
    if ((int)a->from != x->layout || (int)a->to != y->layout)
        return op_dnn_errf(err, errlen, "oneDNN reorder: attributes say layout %d -> %d, the tensors are %d -> %d",
                           (int)a->from, (int)a->to, x->layout, y->layout);
    dnnl_memory_desc_t xmd = op_dnn_md_layout(x->rank, x->d, (op_layout)x->layout);
    dnnl_memory_desc_t ymd = op_dnn_md_layout(y->rank, y->d, (op_layout)y->layout);
    int xm = op_dnn_mem_bound(p, &xmd, OP_DNN_IN, 0, err, errlen);
    int ym = xm < 0 ? -1 : op_dnn_mem_bound(p, &ymd, OP_DNN_OUT, 0, err, errlen);
    if (ym < 0) return -1;
    p->main_step = op_dnn_reorder(p, xm, ym, false, err, errlen);
    return p->main_step < 0 ? -1 : 0;
}

OP_DNN_SIMPLE_KERNEL(op_dnn_reorder_kernel, reorder_build, OP_LAYOUT_EITHER, true);

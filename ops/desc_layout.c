/* Layout changes: reorder (attrs.reorder), made by compiler/pass_layout.c after autodiff.  A
 * copy, so no FLOPs and no gradient rule; never in place (it reads and writes every element
 * at another position). */
#include "ops/desc_common.h"

const char *op_layout_name(op_layout l)
{
    return l == OP_LAYOUT_NHWC ? "nhwc" : l == OP_LAYOUT_BLOCK16 ? "nChw16c" : "nchw";
}

/* "nchw->nhwc" */
static void reorder_describe(const op_attrs *a, char *buf, size_t n)
{
    snprintf(buf, n, "%s->%s", op_layout_name(a->reorder.from), op_layout_name(a->reorder.to));
}

const op_def op_def_reorder = {
    .op = OP_REORDER, .name = "reorder", .min_inputs = 1, .max_inputs = 1, .shape = op_desc_same_shape,
    .describe = reorder_describe,
};

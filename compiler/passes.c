/* The pass pipeline table and the graph verifier. */
#include "compiler/passes.h"
#include "ops/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/registry.h"

static const pass_info pipeline[] = {
    {"fold_bn", PASS_FOLD_BN, pass_fold_bn},
    {"fuse", PASS_FUSE, pass_fuse},
    {"dce", PASS_DCE, pass_dce},
    {"precision", 0, pass_precision},     /* always: a no-op in fp32 */
    {"backend", 0, pass_backend},         /* always: every node gets its backend */
    {"conv_algo", 0, pass_conv_algo},     /* always: direct or Winograd, per backend (a no-op when direct) */
    {"layout", PASS_LAYOUT, pass_layout}, /* it needs the final nodes and their backends */
    {"precision_io", 0, pass_precision_io}, /* always: int8 tensors between int8 nodes (a no-op else) */
    {NULL, 0, NULL},
};

const pass_info *pass_pipeline(void) { return pipeline; }

void pass_note_fused(ir_node *into, const ir_node *from)
{
    const char *a = into->fused[0] ? into->fused : into->name;
    const char *b = from->fused[0] ? from->fused : from->name;
    char buf[sizeof into->fused];
    size_t la = strlen(a), lb = strlen(b);
    if (la + 1 + lb >= sizeof buf) {
        if (la >= sizeof buf - 1)
            return; /* full: keep what is there */
        lb = sizeof buf - 2 - la;
    }
    memcpy(buf, a, la);
    buf[la] = '+';
    memcpy(buf + la + 1, b, lb);
    buf[la + 1 + lb] = '\0';
    memcpy(into->fused, buf, sizeof buf);
}

int pass_run_pipeline(ir_graph *g, unsigned passes, const pass_ctx *ctx, bool verify, char *err,
                      size_t errlen)
{
    if (verify && pass_verify(g, err, errlen) != 0)
        return -1;
    for (const pass_info *p = pipeline; p->name; p++) {
        if (p->bit && !(passes & p->bit))
            continue;
        int changes = 0;
        if (p->run(g, ctx, &changes, err, errlen) != 0)
            return -1;
        if (verify && pass_verify(g, err, errlen) != 0) {
            /* prefix the pass's name to the verifier's message */
            char msg[512];
            snprintf(msg, sizeof msg, "after pass %s: %s", p->name, err);
            snprintf(err, errlen, "%s", msg);
            return -1;
        }
    }
    return 0;
}

/* Node n's output 0 against its op's shape rule.  Layer ops' rules read their tensor inputs
 * (the batched ones before the parameters, as compiler/build.c gives them); the compiler's own
 * ops' rules read all their inputs.  Ops without a rule are not checked. */
static int verify_shape(const ir_graph *g, int n, char *err, size_t errlen)
{
    const ir_node *nd = &g->nodes[n];
    const op_def *def = op_def_get(nd->op);
    if (!def || !def->shape || nd->nout < 1)
        return 0;
    op_shape in[OP_MAX_IN];
    int nin = 0;
    for (int k = 0; k < nd->nin; k++) {
        const ir_value *v = &g->vals[nd->in[k]];
        if (def->is_layer && !v->batched)
            break;
        in[nin++] = v->shape;
    }
    op_shape out;
    memset(&out, 0, sizeof out);
    op_err e = {.msg = "", .arg = -1};
    const op_shape *have = &g->vals[nd->out[0]].shape;
    if (def->shape(&nd->attrs, in, nin, &out, &e) != 0) {
        snprintf(err, errlen, "node %s (%s): its shape rule fails: %s", nd->name, def->name, e.msg);
        return -1;
    }
    if (!op_shape_equal(&out, have)) {
        char a[64], b[64];
        snprintf(err, errlen, "node %s (%s): output %s has shape %s, its shape rule gives %s", nd->name, def->name,
                 g->vals[nd->out[0]].name, op_shape_str(have, a, sizeof a), op_shape_str(&out, b, sizeof b));
        return -1;
    }
    return 0;
}

int pass_verify(const ir_graph *g, char *err, size_t errlen)
{
    int *made_by = cnn_mem_malloc(sizeof(int) * (size_t)(g->nvals + 1));
    if (!made_by) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int v = 0; v < g->nvals; v++)
        made_by[v] = -1;
    int rc = 0;
    for (int n = 0; n < g->nnodes && rc == 0; n++) {
        const ir_node *nd = &g->nodes[n];
        if (nd->dead)
            continue;
        if ((unsigned)nd->op >= OP_COUNT || nd->nin < 0 || nd->nin > OP_MAX_IN || nd->nout < 0 ||
            nd->nout > OP_MAX_OUT) {
            snprintf(err, errlen, "node %d (%s): bad op or arity", n, nd->name);
            rc = -1;
            break;
        }
        for (int k = 0; k < nd->nin && rc == 0; k++) {
            int v = nd->in[k];
            if (v < 0 || v >= g->nvals) {
                snprintf(err, errlen, "node %s: input %d out of range", nd->name, k);
                rc = -1;
            } else if (g->vals[v].producer >= 0 && made_by[v] < 0) {
                snprintf(err, errlen, "node %s reads %s before it is made", nd->name, g->vals[v].name);
                rc = -1;
            }
        }
        for (int k = 0; k < nd->nout && rc == 0; k++) {
            int v = nd->out[k];
            if (v < 0 || v >= g->nvals) {
                snprintf(err, errlen, "node %s: output %d out of range", nd->name, k);
                rc = -1;
            } else if (made_by[v] >= 0 || g->vals[v].producer != n) {
                snprintf(err, errlen, "value %s is made by more than one node", g->vals[v].name);
                rc = -1;
            } else {
                made_by[v] = n;
            }
        }
    }
    for (int n = 0; n < g->nnodes && rc == 0; n++)
        if (!g->nodes[n].dead)
            rc = verify_shape(g, n, err, errlen);
    for (int i = 0; i < g->noutputs && rc == 0; i++) {
        int v = g->outputs[i];
        if (v < 0 || v >= g->nvals || (g->vals[v].producer >= 0 && made_by[v] < 0)) {
            snprintf(err, errlen, "output %s is not made by any node", g->output_names[i]);
            rc = -1;
        }
    }
    cnn_mem_free(made_by);
    return rc;
}

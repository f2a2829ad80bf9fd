/* Dead-node elimination: a node stays when one of its outputs is a graph output or the loss,
 * is read by a node that stays, or when it has effects beyond its outputs (optimiser updates,
 * training-mode batchnorm updating running statistics).  Everything else is marked dead. */
#include "compiler/passes.h"
#include "ops/mem.h"
#include "ops/registry.h"

#include <stdlib.h>
#include <stdio.h>

static bool has_effects(const ir_node *nd)
{
    const op_def *def = op_def_get(nd->op);
    return nd->nout == 0 || (def->updates_inputs && def->updates_inputs(&nd->attrs));
}

int pass_dce(ir_graph *g, const pass_ctx *ctx, int *changes, char *err, size_t errlen)
{
    (void)ctx;
    bool *needed = cnn_mem_calloc((size_t)g->nvals + 1, sizeof(bool));
    if (!needed) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < g->noutputs; i++)
        needed[g->outputs[i]] = true;
    if (g->loss >= 0)
        needed[g->loss] = true;
    /* nodes only read earlier values, so one backward sweep settles everything */
    for (int n = g->nnodes - 1; n >= 0; n--) {
        ir_node *nd = &g->nodes[n];
        if (nd->dead)
            continue;
        bool keep = has_effects(nd);
        for (int k = 0; k < nd->nout && !keep; k++)
            keep = needed[nd->out[k]];
        if (!keep) {
            nd->dead = true;
            (*changes)++;
            continue;
        }
        for (int k = 0; k < nd->nin; k++)
            needed[nd->in[k]] = true;
    }
    cnn_mem_free(needed);
    return 0;
}

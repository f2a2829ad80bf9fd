/* The graph container of compiler/ir.h: growable arrays of values and nodes, cloning, and
 * small shape helpers.  No op-specific knowledge lives here (that is compiler/registry.c). */
#include "compiler/ir.h"
#include "ops/mem.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void copy_name(char *dst, const char *src)
{
    if (!src) {
        dst[0] = '\0';
        return;
    }
    size_t n = strlen(src);
    if (n >= OP_NAME_MAX)
        n = OP_NAME_MAX - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

ir_graph *ir_graph_create(const char *name)
{
    ir_graph *g = cnn_mem_calloc(1, sizeof *g);
    if (!g)
        return NULL;
    copy_name(g->name, name);
    g->loss = -1;
    g->label = -1;
    return g;
}

void ir_graph_destroy(ir_graph *g)
{
    if (!g)
        return;
    cnn_mem_free(g->vals);
    cnn_mem_free(g->nodes);
    cnn_mem_free(g);
}

ir_graph *ir_graph_clone(const ir_graph *g)
{
    if (!g)
        return NULL;
    ir_graph *c = cnn_mem_malloc(sizeof *c);
    if (!c)
        return NULL;
    *c = *g;
    c->vals = NULL;
    c->nodes = NULL;
    c->capvals = g->nvals;
    c->capnodes = g->nnodes;
    if (g->nvals > 0) {
        c->vals = cnn_mem_malloc((size_t)g->nvals * sizeof *c->vals);
        if (!c->vals)
            goto oom;
        memcpy(c->vals, g->vals, (size_t)g->nvals * sizeof *c->vals);
    }
    if (g->nnodes > 0) {
        c->nodes = cnn_mem_malloc((size_t)g->nnodes * sizeof *c->nodes);
        if (!c->nodes)
            goto oom;
        memcpy(c->nodes, g->nodes, (size_t)g->nnodes * sizeof *c->nodes);
    }
    return c;
oom:
    ir_graph_destroy(c);
    return NULL;
}

/* Grows an array of `size`-byte items so that it holds at least need; 0 or -1. */
static int grow(void **items, int *cap, int need, size_t size)
{
    if (need <= *cap)
        return 0;
    int ncap = *cap > 0 ? *cap : 16;
    while (ncap < need) {
        if (ncap > INT32_MAX / 2)
            return -1;
        ncap *= 2;
    }
    void *p = cnn_mem_realloc(*items, (size_t)ncap * size);
    if (!p)
        return -1;
    *items = p;
    *cap = ncap;
    return 0;
}

int ir_add_value(ir_graph *g, ir_valkind kind, const op_shape *shape, bool batched, const char *name)
{
    void *items = g->vals;
    if (grow(&items, &g->capvals, g->nvals + 1, sizeof *g->vals) != 0)
        return -1;
    g->vals = items;
    ir_value *v = &g->vals[g->nvals];
    memset(v, 0, sizeof *v);
    if (shape)
        v->shape = *shape;
    v->batched = batched;
    v->kind = kind;
    copy_name(v->name, name);
    v->producer = -1;
    v->param_of = -1;
    return g->nvals++;
}

int ir_add_node(ir_graph *g, op_kind op, const op_attrs *attrs, int nin, const int *in, int nout,
                const int *out, const char *name, lang_span span)
{
    if (nin < 0 || nin > OP_MAX_IN || nout < 0 || nout > OP_MAX_OUT)
        return -1;
    void *items = g->nodes;
    if (grow(&items, &g->capnodes, g->nnodes + 1, sizeof *g->nodes) != 0)
        return -1;
    g->nodes = items;
    int idx = g->nnodes;
    ir_node *n = &g->nodes[idx];
    memset(n, 0, sizeof *n);
    n->op = op;
    if (attrs)
        n->attrs = *attrs;
    n->nin = nin;
    n->nout = nout;
    for (int k = 0; k < nin; k++)
        n->in[k] = in[k];
    for (int k = 0; k < nout; k++) {
        n->out[k] = out[k];
        if (out[k] >= 0 && out[k] < g->nvals)
            g->vals[out[k]].producer = idx;
    }
    copy_name(n->name, name);
    n->span = span;
    g->nnodes++;
    return idx;
}

int ir_value_readers(const ir_graph *g, int v)
{
    int count = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const ir_node *n = &g->nodes[i];
        if (n->dead)
            continue;
        for (int k = 0; k < n->nin; k++) {
            if (n->in[k] == v) {
                count++;
                break;
            }
        }
    }
    return count;
}

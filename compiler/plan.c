/* Scheduling and memory planning: turns an optimised graph into an ir_plan.
 *
 * The schedule is the graph's live nodes in order (every pass keeps the node list
 * topologically ordered).  Each arena value gets a live range over the schedule: from the
 * step that makes it to the last step that reads it; graph inputs, labels, outputs and the
 * loss are pinned for the whole run.  An elementwise op whose registry entry declares it
 * in-place-safe writes over its first input when that input has no other reader, and a conv
 * with a fused residual over that residual when this conv is its last reader (the sum post-op
 * then needs no copy of it; op_def.sum_input).  Buffers
 * are then placed greedily by size: each at the lowest offset where it overlaps no buffer
 * live at the same time (as in ggml's and TFLite's arena planners).  In a training plan the
 * parameters' final gradients come first, one after the other at the start of the arena in
 * the order the backward pass makes them (plan.h: ir_plan.grads), never in-place aliases. */
#include "compiler/plan.h"
#include "ops/mem.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/checked.h"
#include "ops/registry.h"

#define PLAN_ALIGN 64

/* Every value's bytes are at most OP_MAX_BYTES when this is called (compute_liveness), so
 * the sums below stay far from overflow; they saturate anyway. */
static size_t align_up(size_t n)
{
    size_t r;
    return ck_align_up(n, PLAN_ALIGN, &r) ? r : SIZE_MAX;
}

static size_t sat_add(size_t a, size_t b)
{
    size_t r;
    return ck_add_size(a, b, &r) ? r : SIZE_MAX;
}

/* "2.00 PiB" */
static void human_bytes(char *buf, size_t n, size_t b)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double x = (double)b;
    int u = 0;
    while (x >= 1024.0 && u < 6) {
        x /= 1024.0;
        u++;
    }
    snprintf(buf, n, u ? "%.2f %s" : "%.0f %s", x, units[u]);
}

static bool value_pinned(const ir_graph *g, int v)
{
    const ir_value *val = &g->vals[v];
    if (val->kind == IR_VAL_INPUT || val->kind == IR_VAL_LABEL)
        return true;
    if (v == g->loss)
        return true;
    for (int i = 0; i < g->noutputs; i++)
        if (g->outputs[i] == v)
            return true;
    return false;
}

static int root_of(const plan_value *pv, int v)
{
    while (pv[v].alias_of >= 0)
        v = pv[v].alias_of;
    return v;
}

/* The bytes of every value for the whole batch; -1 with err filled when one is larger than
 * OP_MAX_BYTES (or than any size_t). */
static int value_bytes(ir_plan *p, char *err, size_t errlen)
{
    const ir_graph *g = p->graph;
    for (int v = 0; v < g->nvals; v++) {
        const ir_value *val = &g->vals[v];
        int64_t n = op_shape_numel(&val->shape), batch = val->batched ? p->batch : 1;
        size_t bytes, elem = val->dtype == OP_DT_F32 ? sizeof(float) : 1; /* u8, s8 */
        if (!ck_bytes(n, batch, elem, &bytes) || bytes > OP_MAX_BYTES) {
            char dims[OP_MAX_RANK * 24], h[32];
            op_shape_dims_str(&val->shape, dims, sizeof dims);
            bool fits = ck_bytes(n, batch, elem, &bytes);
            if (fits)
                human_bytes(h, sizeof h, bytes);
            snprintf(err, errlen, "%s: %" PRId64 " x %s floats need %s%zu bytes%s%s%s; the limit is %zu bytes (1 TiB)",
                     val->name, batch, dims[0] ? dims : "1", fits ? "" : "more than ", fits ? bytes : SIZE_MAX,
                     fits ? " (" : "", fits ? h : "", fits ? ")" : "", OP_MAX_BYTES);
            return -1;
        }
        p->vals[v].bytes = bytes;
    }
    return 0;
}

/* The parameters' final gradients (plan.h): for each parameter, the first-made PGRAD value
 * that no sum of its contributions reads (a shared parameter's), in the order the steps make
 * them; marks them in is_grad.  -1 when out of memory. */
static int find_grads(ir_plan *p, const int *step_of_node, bool *is_grad)
{
    const ir_graph *g = p->graph;
    bool *summed = cnn_mem_calloc((size_t)g->nvals + 1, sizeof(bool));
    int *best = cnn_mem_malloc(sizeof(int) * (size_t)(g->nvals + 1));
    p->grads = cnn_mem_calloc((size_t)g->nvals + 1, sizeof(plan_grad));
    if (!summed || !best || !p->grads) {
        cnn_mem_free(summed), cnn_mem_free(best);
        return -1;
    }
    /* a step whose inputs, two or more, are all gradients of the parameter whose gradient it
     * makes sums that parameter's contributions (a gradient-norm or scaling step reads other
     * tensors too: the gradients it reads stay final) */
    for (int s = 0; s < p->nsteps; s++) {
        const ir_node *nd = &g->nodes[p->steps[s].node];
        if (nd->nin < 2 || nd->nout < 1 || g->vals[nd->out[0]].kind != IR_VAL_PGRAD)
            continue;
        int pr = g->vals[nd->out[0]].param_of;
        bool sum = pr >= 0;
        for (int k = 0; k < nd->nin && sum; k++)
            sum = g->vals[nd->in[k]].kind == IR_VAL_PGRAD && g->vals[nd->in[k]].param_of == pr;
        for (int k = 0; k < nd->nin && sum; k++)
            summed[nd->in[k]] = true;
    }
    for (int v = 0; v < g->nvals; v++)
        best[v] = -1;
    for (int v = 0; v < g->nvals; v++) {
        const ir_value *val = &g->vals[v];
        if (val->kind != IR_VAL_PGRAD || val->param_of < 0 || val->param_of >= g->nvals || summed[v] ||
            val->producer < 0 || step_of_node[val->producer] < 0)
            continue;
        int *b = &best[val->param_of];
        if (*b < 0 || step_of_node[val->producer] < step_of_node[g->vals[*b].producer])
            *b = v;
    }
    /* in step order: a step makes at most OP_MAX_OUT of them */
    for (int s = 0; s < p->nsteps; s++) {
        const ir_node *nd = &g->nodes[p->steps[s].node];
        for (int k = 0; k < nd->nout; k++) {
            int v = nd->out[k], pr = g->vals[v].param_of;
            if (g->vals[v].kind == IR_VAL_PGRAD && pr >= 0 && pr < g->nvals && best[pr] == v && !is_grad[v]) {
                is_grad[v] = true;
                p->grads[p->ngrads++] = (plan_grad){.value = v, .step = s, .bytes = p->vals[v].bytes};
            }
        }
    }
    p->grads_read_step = p->nsteps;
    for (int s = 0; s < p->nsteps && p->grads_read_step == p->nsteps; s++) {
        const ir_node *nd = &g->nodes[p->steps[s].node];
        for (int k = 0; k < nd->nin; k++)
            if (is_grad[nd->in[k]])
                p->grads_read_step = s;
    }
    cnn_mem_free(summed);
    cnn_mem_free(best);
    return 0;
}

/* Reorder nd copies bytes to the same places: channels-last to blocked by 16 or back, of a
 * value of exactly 16 channels ([16, spatial...] per example), whose element (n, s, c) is at
 * n*S*16 + s*16 + c in both orders. */
static bool same_bytes(const ir_graph *g, const ir_node *nd)
{
    op_layout from = nd->attrs.reorder.from, to = nd->attrs.reorder.to;
    bool pair = (from == OP_LAYOUT_NHWC && to == OP_LAYOUT_BLOCK16) || (from == OP_LAYOUT_BLOCK16 && to == OP_LAYOUT_NHWC);
    const ir_value *v = &g->vals[nd->in[0]];
    return pair && v->batched && v->shape.rank >= 2 && v->shape.d[0] == 16 && v->layout == from &&
           g->vals[nd->out[0]].layout == to && v->dtype == g->vals[nd->out[0]].dtype;
}

/* Live ranges and locations of every value; in-place aliases when allowed (never for a final
 * gradient, which keeps its own place in the gradient region). */
static void compute_liveness(ir_plan *p, const plan_options *opt, const int *step_of_node, const bool *is_grad)
{
    ir_graph *g = p->graph;
    int last_step = p->nsteps - 1;
    for (int v = 0; v < g->nvals; v++) {
        plan_value *pv = &p->vals[v];
        const ir_value *val = &g->vals[v];
        pv->loc = PLAN_LOC_NONE;
        pv->alias_of = -1;
        pv->first = -1;
        pv->last = -1;
        switch (val->kind) {
        case IR_VAL_PARAM: case IR_VAL_STATE: pv->loc = PLAN_LOC_WEIGHTS; break;
        case IR_VAL_OPTSTATE: pv->loc = PLAN_LOC_OPTSTATE; break;
        default: pv->loc = PLAN_LOC_ARENA; break;
        }
        if (val->producer >= 0 && !g->nodes[val->producer].dead)
            pv->first = pv->last = step_of_node[val->producer];
    }
    for (int s = 0; s < p->nsteps; s++) {
        const ir_node *nd = &g->nodes[p->steps[s].node];
        for (int k = 0; k < nd->nin; k++) {
            plan_value *pv = &p->vals[nd->in[k]];
            if (pv->first < 0)
                pv->first = s;
            if (s > pv->last)
                pv->last = s;
        }
    }
    for (int v = 0; v < g->nvals; v++) {
        plan_value *pv = &p->vals[v];
        if (pv->loc != PLAN_LOC_ARENA)
            continue;
        if (value_pinned(g, v)) {
            pv->first = 0;
            pv->last = last_step;
        } else if (pv->first < 0) {
            pv->loc = PLAN_LOC_NONE; /* made and read by nothing that runs */
        }
    }
    /* weights-only steps (batchnorm folding): their outputs live outside the arena */
    for (int s = 0; s < p->nsteps; s++) {
        const ir_node *nd = &g->nodes[p->steps[s].node];
        bool constant = nd->nin > 0 && nd->nout > 0;
        for (int k = 0; k < nd->nin && constant; k++) {
            plan_loc l = p->vals[nd->in[k]].loc;
            constant = l == PLAN_LOC_WEIGHTS || l == PLAN_LOC_CONST;
        }
        const op_def *def = op_def_get(nd->op);
        if (def->updates_inputs && def->updates_inputs(&nd->attrs))
            constant = false; /* they change what they read */
        p->steps[s].constant = constant;
        if (constant)
            for (int k = 0; k < nd->nout; k++)
                p->vals[nd->out[k]].loc = PLAN_LOC_CONST;
    }
    if (!opt->inplace)
        return;
    for (int s = 0; s < p->nsteps; s++) {
        const ir_node *nd = &g->nodes[p->steps[s].node];
        if (nd->op != OP_REORDER || !same_bytes(g, nd))
            continue;
        int in = nd->in[0], out = nd->out[0], r = root_of(p->vals, in);
        if (p->vals[in].loc != PLAN_LOC_ARENA || p->vals[out].loc != PLAN_LOC_ARENA || value_pinned(g, out) ||
            is_grad[in] || is_grad[r] || is_grad[out] || p->vals[in].bytes != p->vals[out].bytes)
            continue;
        p->vals[out].alias_of = r;
        p->steps[s].view = true;
        if (p->vals[out].last > p->vals[r].last)
            p->vals[r].last = p->vals[out].last;
    }
    for (int s = 0; s < p->nsteps; s++) {
        const ir_node *nd = &g->nodes[p->steps[s].node];
        const op_def *def = op_def_get(nd->op);
        /* elementwise ops over input 0 (read by them alone); a fused residual summed in place
         * (read earlier by others, as a block's input is: this step is its last reader) */
        int k_in = def->inplace ? 0 : def->sum_input ? def->sum_input(&nd->attrs) : -1;
        if (k_in < 0 || k_in >= nd->nin || nd->nout < 1)
            continue;
        int in = nd->in[k_in], out = nd->out[0];
        int r = root_of(p->vals, in);
        if (p->vals[in].loc != PLAN_LOC_ARENA || p->vals[out].loc != PLAN_LOC_ARENA)
            continue;
        if (value_pinned(g, in) || value_pinned(g, r) || value_pinned(g, out))
            continue;
        if (is_grad[in] || is_grad[r] || is_grad[out])
            continue;
        if (p->vals[in].bytes != p->vals[out].bytes || (g->vals[in].dtype == OP_DT_F32) != (g->vals[out].dtype == OP_DT_F32) ||
            (k_in == 0 && ir_value_readers(g, in) != 1))
            continue;
        if (p->vals[r].last != s) /* another alias of the same memory is read later */
            continue;
        bool used_twice = false; /* the node reads the same memory through another input */
        for (int k = 0; k < nd->nin; k++)
            if (k != k_in && p->vals[nd->in[k]].loc == PLAN_LOC_ARENA && root_of(p->vals, nd->in[k]) == r)
                used_twice = true;
        if (used_twice)
            continue;
        p->vals[out].alias_of = r;
        if (p->vals[out].last > p->vals[r].last)
            p->vals[r].last = p->vals[out].last;
    }
}

typedef struct placed {
    size_t offset, bytes;
    int first, last;
} placed;

static int cmp_by_size(const void *a, const void *b, void *ctx)
{
    const plan_value *pv = ctx;
    const plan_value *x = &pv[*(const int *)a], *y = &pv[*(const int *)b];
    if (x->bytes != y->bytes)
        return x->bytes > y->bytes ? -1 : 1;
    if (x->first != y->first)
        return x->first < y->first ? -1 : 1;
    return *(const int *)a - *(const int *)b;
}

static int cmp_placed(const void *a, const void *b)
{
    const placed *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Greedy by size: biggest buffers first, each at the lowest offset that is free for its whole
 * live range. */
static int place_buffers(ir_plan *p, const plan_options *opt, const bool *is_grad)
{
    ir_graph *g = p->graph;
    int *roots = cnn_mem_malloc(sizeof(int) * (size_t)(g->nvals + 1));
    placed *done = cnn_mem_malloc(sizeof(placed) * (size_t)(g->nvals + 1));
    placed *overlap = cnn_mem_malloc(sizeof(placed) * (size_t)(g->nvals + 1));
    if (!roots || !done || !overlap) {
        cnn_mem_free(roots), cnn_mem_free(done), cnn_mem_free(overlap);
        return -1;
    }
    int nroots = 0;
    for (int v = 0; v < g->nvals; v++)
        if (p->vals[v].loc == PLAN_LOC_ARENA && p->vals[v].alias_of < 0 && !is_grad[v])
            roots[nroots++] = v;
    /* the gradient region first, each gradient with its own live range */
    size_t arena = 0;
    int ndone = 0;
    for (int i = 0; i < p->ngrads; i++) {
        plan_value *pv = &p->vals[p->grads[i].value];
        pv->offset = p->grads[i].offset = arena;
        done[ndone++] = (placed){arena, pv->bytes, pv->first, pv->last};
        arena = sat_add(arena, align_up(pv->bytes));
    }
    p->grad_offset = 0;
    p->grad_bytes = arena;
    if (!opt->plan_memory) {
        for (int i = 0; i < nroots; i++) {
            p->vals[roots[i]].offset = arena;
            arena = sat_add(arena, align_up(p->vals[roots[i]].bytes));
        }
    } else {
        qsort_r(roots, (size_t)nroots, sizeof(int), cmp_by_size, p->vals);
        for (int i = 0; i < nroots; i++) {
            plan_value *pv = &p->vals[roots[i]];
            int nov = 0;
            for (int j = 0; j < ndone; j++)
                if (done[j].first <= pv->last && pv->first <= done[j].last)
                    overlap[nov++] = done[j];
            qsort(overlap, (size_t)nov, sizeof(placed), cmp_placed);
            size_t off = 0, need = align_up(pv->bytes);
            for (int j = 0; j < nov; j++) {
                if (overlap[j].offset >= sat_add(off, need))
                    break;
                size_t end = sat_add(overlap[j].offset, align_up(overlap[j].bytes));
                if (end > off)
                    off = end;
            }
            pv->offset = off;
            done[ndone++] = (placed){off, pv->bytes, pv->first, pv->last};
            if (sat_add(off, need) > arena)
                arena = sat_add(off, need);
        }
    }
    for (int v = 0; v < g->nvals; v++)
        if (p->vals[v].loc == PLAN_LOC_ARENA && p->vals[v].alias_of >= 0)
            p->vals[v].offset = p->vals[root_of(p->vals, v)].offset;
    p->arena_bytes = arena;

    /* the figures: naive (each value its own buffer) and the live-set lower bound */
    p->naive_bytes = 0;
    for (int v = 0; v < g->nvals; v++)
        if (p->vals[v].loc == PLAN_LOC_ARENA)
            p->naive_bytes = sat_add(p->naive_bytes, align_up(p->vals[v].bytes));
    p->lower_bound = 0;
    for (int i = 0; i < p->ngrads; i++)
        roots[nroots++] = p->grads[i].value;
    for (int s = 0; s < p->nsteps; s++) {
        size_t live = 0;
        for (int i = 0; i < nroots; i++) {
            const plan_value *pv = &p->vals[roots[i]];
            if (pv->first <= s && s <= pv->last)
                live = sat_add(live, align_up(pv->bytes));
        }
        if (live > p->lower_bound)
            p->lower_bound = live;
    }
    cnn_mem_free(roots);
    cnn_mem_free(done);
    cnn_mem_free(overlap);
    return 0;
}

ir_plan *plan_create(ir_graph *g, const plan_options *opt, plan_status *why, char *err, size_t errlen)
{
    plan_status ignored;
    if (!why)
        why = &ignored;
    *why = PLAN_FAILED;
    ir_plan *p = cnn_mem_calloc(1, sizeof *p);
    int *step_of_node = cnn_mem_malloc(sizeof(int) * (size_t)(g->nnodes + 1));
    if (!p || !step_of_node) {
        snprintf(err, errlen, "out of memory while planning");
        cnn_mem_free(p), cnn_mem_free(step_of_node);
        ir_graph_destroy(g);
        return NULL;
    }
    p->graph = g;
    p->batch = opt->batch;
    p->vals = cnn_mem_calloc((size_t)g->nvals + 1, sizeof(plan_value));
    p->steps = cnn_mem_calloc((size_t)g->nnodes + 1, sizeof(plan_step));
    if (!p->vals || !p->steps) {
        snprintf(err, errlen, "out of memory while planning");
        cnn_mem_free(step_of_node);
        plan_destroy(p);
        return NULL;
    }
    for (int n = 0; n < g->nnodes; n++) {
        step_of_node[n] = -1;
        if (g->nodes[n].dead)
            continue;
        step_of_node[n] = p->nsteps;
        p->steps[p->nsteps].node = n;
        p->steps[p->nsteps].backend = g->nodes[n].backend;
        p->nsteps++;
    }
    /* the schedule must read only what earlier steps (or the outside) made */
    for (int s = 0; s < p->nsteps; s++) {
        const ir_node *nd = &g->nodes[p->steps[s].node];
        for (int k = 0; k < nd->nin; k++) {
            int prod = g->vals[nd->in[k]].producer;
            if (prod >= 0 && (g->nodes[prod].dead || step_of_node[prod] >= s)) {
                snprintf(err, errlen, "internal error: %s reads %s before it is made", nd->name,
                         g->vals[nd->in[k]].name);
                cnn_mem_free(step_of_node);
                plan_destroy(p);
                return NULL;
            }
        }
    }
    if (value_bytes(p, err, errlen) != 0) {
        *why = PLAN_TOO_LARGE;
        cnn_mem_free(step_of_node);
        plan_destroy(p);
        return NULL;
    }
    bool *is_grad = cnn_mem_calloc((size_t)g->nvals + 1, sizeof(bool));
    if (!is_grad) {
        snprintf(err, errlen, "out of memory while planning");
        cnn_mem_free(step_of_node);
        plan_destroy(p);
        return NULL;
    }
    int rc = find_grads(p, step_of_node, is_grad);
    if (rc == 0) {
        compute_liveness(p, opt, step_of_node, is_grad);
        rc = place_buffers(p, opt, is_grad);
    }
    cnn_mem_free(step_of_node);
    cnn_mem_free(is_grad);
    if (rc != 0) {
        snprintf(err, errlen, "out of memory while planning");
        plan_destroy(p);
        return NULL;
    }
    if (p->arena_bytes > OP_MAX_BYTES) {
        char h[32];
        human_bytes(h, sizeof h, p->arena_bytes);
        snprintf(err, errlen, "the activations need an arena of %s%zu bytes (%s) at batch %" PRId64
                 "; the limit is %zu bytes (1 TiB)", p->arena_bytes == SIZE_MAX ? "more than " : "", p->arena_bytes,
                 h, p->batch, OP_MAX_BYTES);
        *why = PLAN_TOO_LARGE;
        plan_destroy(p);
        return NULL;
    }
    *why = PLAN_OK;
    return p;
}

void plan_destroy(ir_plan *p)
{
    if (!p)
        return;
    ir_graph_destroy(p->graph);
    cnn_mem_free(p->vals);
    cnn_mem_free(p->steps);
    cnn_mem_free(p->grads);
    cnn_mem_free(p);
}

int plan_check_overlap(const ir_plan *p, char *err, size_t errlen)
{
    const ir_graph *g = p->graph;
    for (int a = 0; a < g->nvals; a++) {
        const plan_value *x = &p->vals[a];
        if (x->loc != PLAN_LOC_ARENA)
            continue;
        int ra = root_of(p->vals, a);
        for (int b = a + 1; b < g->nvals; b++) {
            const plan_value *y = &p->vals[b];
            if (y->loc != PLAN_LOC_ARENA || root_of(p->vals, b) == ra)
                continue;
            /* the root's range covers all its aliases */
            const plan_value *rx = &p->vals[ra], *ry = &p->vals[root_of(p->vals, b)];
            bool time = rx->first <= ry->last && ry->first <= rx->last;
            bool space = x->offset < y->offset + y->bytes && y->offset < x->offset + x->bytes;
            if (time && space && x->bytes && y->bytes) {
                snprintf(err, errlen, "%s [%zu, +%zu) steps %d..%d overlaps %s [%zu, +%zu) steps %d..%d",
                         g->vals[a].name, x->offset, x->bytes, rx->first, rx->last, g->vals[b].name,
                         y->offset, y->bytes, ry->first, ry->last);
                return -1;
            }
            if (x->offset + x->bytes > p->arena_bytes) {
                snprintf(err, errlen, "%s ends past the arena", g->vals[a].name);
                return -1;
            }
        }
    }
    return 0;
}

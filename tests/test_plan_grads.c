/* The training plan's gradient region (compiler/plan.h, what data-parallel training averages):
 * one final gradient per trainable parameter, in the order the steps make them, placed one
 * after the other from the region's start, none read before grads_read_step, which is the first
 * optimiser update (or, with clip_grad_norm, the gradient norm before it); at -O2 and -O0. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/plan.h"
#include "ops/registry.h"
#include "runtime/cnn.h"
#include "runtime/rt.h"

static void check_region(const char *name, unsigned passes, double clip)
{
    char path[1024];
    const char *dir = getenv("CNN_EXAMPLES");
    snprintf(path, sizeof path, "%s/%s.cnn", dir ? dir : "examples", name);
    cnn_model *m;
    cr_assert_eq(cnn_model_load(&m, path, NULL), CNN_OK, "%s", cnn_model_errmsg(m));
    cnn_options o;
    cnn_options_default(&o);
    o.passes = passes;
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    tc.clip_grad_norm = clip;
    char err[4096];
    ir_plan *p = rt_model_plan(m, &o, 3, true, &tc, NULL, err, sizeof err);
    cr_assert_not_null(p, "%s: %s", name, err);
    const ir_graph *g = p->graph;
    int params = 0;
    for (int v = 0; v < g->nvals; v++)
        params += g->vals[v].kind == IR_VAL_PARAM;
    cr_expect_eq(p->ngrads, params, "%s: %d gradients for %d parameters", name, p->ngrads, params);
    cr_expect_eq(p->grad_offset, 0);
    size_t end = p->grad_offset;
    int first_update = p->nsteps;
    for (int s = 0; s < p->nsteps && first_update == p->nsteps; s++) {
        const op_def *def = op_def_get(g->nodes[p->steps[s].node].op);
        if (g->nodes[p->steps[s].node].nout == 0 && def->updates_inputs && def->updates_inputs(&g->nodes[p->steps[s].node].attrs))
            first_update = s;
    }
    if (clip == 0)
        cr_expect_eq(p->grads_read_step, first_update, "%s: gradients read at step %d, the first update is %d", name,
                     p->grads_read_step, first_update);
    else /* the gradient norm reads them first */
        cr_expect(p->grads_read_step < first_update && g->nodes[p->steps[p->grads_read_step].node].nout > 0,
                  "%s: gradients read at step %d, the first update is %d", name, p->grads_read_step, first_update);
    for (int i = 0; i < p->ngrads; i++) {
        const plan_grad *gr = &p->grads[i];
        const plan_value *pv = &p->vals[gr->value];
        cr_expect_eq(g->vals[gr->value].kind, IR_VAL_PGRAD);
        cr_expect_eq(pv->loc, PLAN_LOC_ARENA);
        cr_expect_eq(pv->alias_of, -1, "%s: a gradient is an in-place alias", name);
        cr_expect_eq(gr->offset, end, "%s: gradient %d is not right after the one before", name, i);
        cr_expect_eq(pv->offset, gr->offset);
        cr_expect_eq(gr->bytes, pv->bytes);
        cr_expect(i == 0 || gr->step >= p->grads[i - 1].step, "%s: not in step order", name);
        cr_expect(gr->step < p->grads_read_step, "%s: gradient %d is made after it is read", name, i);
        end += (gr->bytes + 63) / 64 * 64;
    }
    cr_expect_eq(p->grad_bytes, end - p->grad_offset);
    cr_expect_eq(plan_check_overlap(p, err, sizeof err), 0, "%s: %s", name, err);
    plan_destroy(p);
    cnn_model_destroy(m);
}

Test(plan_grads, contiguous_in_backward_order_and_read_only_by_the_updates)
{
    const char *nets[] = {"lenet5", "resnet20", "vgg_small", "signal1d"};
    for (size_t i = 0; i < sizeof nets / sizeof nets[0]; i++) {
        check_region(nets[i], CNN_PASSES_O2, 0);
        check_region(nets[i], 0, 0);
        check_region(nets[i], CNN_PASSES_O2, 1.0);
    }
}

Test(plan_grads, inference_plans_have_none)
{
    char path[1024];
    const char *dir = getenv("CNN_EXAMPLES");
    snprintf(path, sizeof path, "%s/lenet5.cnn", dir ? dir : "examples");
    cnn_model *m;
    cr_assert_eq(cnn_model_load(&m, path, NULL), CNN_OK);
    cnn_options o;
    cnn_options_default(&o);
    char err[4096];
    ir_plan *p = rt_model_plan(m, &o, 2, false, NULL, NULL, err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    cr_expect_eq(p->ngrads, 0);
    cr_expect_eq(p->grad_bytes, 0);
    plan_destroy(p);
    cnn_model_destroy(m);
}

/* Training parity with PyTorch for spec section 7's newer settings: every fixture of
 * tests/fixtures/train_extra.json (made by make_train_extra.py: AdamW, label smoothing,
 * clip_grad_norm, the step and cosine schedules, and all of them together) trained from its
 * initial weights for its steps, the learning rate set before each step from cnn_train_lr
 * (checked against PyTorch's rate), on every backend; each step's loss (the smoothed one when
 * smoothing) and every tensor after the steps compared with PyTorch's. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/file_util.h"
#include "compiler/plan.h"
#include "runtime/cnn.h"
#include "runtime/rt.h"
#include "runtime/safetensors.h"

static const char *fixtures(void)
{
    const char *d = getenv("CNN_FIXTURES");
    return d ? d : "tests/fixtures";
}

static char *fixture_path(const char *name)
{
    static char buf[8][1024];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%.700s/%.300s", fixtures(), name);
    return buf[k];
}

static bool quick(void) { return getenv("CNN_TEST_QUICK") != NULL; }

static cJSON *item(const cJSON *o, const char *key)
{
    cJSON *v = cJSON_GetObjectItem(o, key);
    cr_assert_not_null(v, "train_extra.json: no '%s'", key);
    return v;
}

/* An IDX file of unsigned bytes: its dims and data (malloc'd, freed by the caller). */
static unsigned char *read_idx(const char *path, int64_t *dims, int *rank)
{
    size_t len;
    unsigned char *raw = (unsigned char *)test_file_bytes(path, &len);
    cr_assert_not_null(raw, "cannot read %s", path);
    cr_assert(len >= 4 && raw[0] == 0 && raw[1] == 0 && raw[2] == 8 && raw[3] >= 1 && raw[3] <= 3, "%s: not IDX", path);
    *rank = raw[3];
    size_t off = 4, n = 1;
    for (int k = 0; k < *rank; k++, off += 4) {
        cr_assert(len >= off + 4);
        dims[k] = (int64_t)raw[off] << 24 | (int64_t)raw[off + 1] << 16 | (int64_t)raw[off + 2] << 8 | raw[off + 3];
        n *= (size_t)dims[k];
    }
    cr_assert_eq(len, off + n, "%s: size", path);
    memmove(raw, raw + off, n);
    return raw;
}

typedef struct run_config {
    cnn_backend backend;
    unsigned passes;
    int threads;
} run_config;

static const char *backend_str(cnn_backend b)
{
    return b == CNN_BACKEND_REF ? "ref" : b == CNN_BACKEND_ONEDNN ? "onednn" : b == CNN_BACKEND_NATIVE ? "native" : "auto";
}

typedef struct worst {
    double weight, loss, lr;
} worst;

/* The train config holds what the manifest says the train section sets. */
static void check_config(const cJSON *fx, const cnn_train_config *tc, const char *what)
{
    const cJSON *o = item(fx, "optimizer");
    const char *kind = item(o, "kind")->valuestring;
    int want = strcmp(kind, "adamw") == 0 ? 2 : strcmp(kind, "adam") == 0 ? 1 : 0;
    cr_assert_eq(tc->optimizer, want, "%s: optimizer", what);
    cr_assert_float_eq(tc->lr, item(o, "lr")->valuedouble, 1e-12, "%s: lr", what);
    cr_assert_float_eq(tc->weight_decay, item(o, "weight_decay")->valuedouble, 1e-12, "%s: weight_decay", what);
    if (want) {
        cr_assert_float_eq(tc->beta1, item(o, "beta1")->valuedouble, 1e-12, "%s", what);
        cr_assert_float_eq(tc->beta2, item(o, "beta2")->valuedouble, 1e-12, "%s", what);
        cr_assert_float_eq(tc->eps, item(o, "eps")->valuedouble, 1e-15, "%s", what);
    } else {
        cr_assert_float_eq(tc->momentum, item(o, "momentum")->valuedouble, 1e-12, "%s", what);
    }
    cr_assert_float_eq(tc->label_smoothing, item(fx, "label_smoothing")->valuedouble, 1e-12, "%s: smoothing", what);
    cr_assert_float_eq(tc->clip_grad_norm, item(fx, "clip_grad_norm")->valuedouble, 1e-12, "%s: clip", what);
    const cJSON *sch = item(fx, "schedule");
    const char *sk = item(sch, "kind")->valuestring;
    if (strcmp(sk, "step") == 0) {
        cr_assert_eq(tc->schedule, CNN_SCHEDULE_STEP, "%s", what);
        cr_assert_eq(tc->schedule_every, item(sch, "every")->valueint, "%s", what);
        cr_assert_float_eq(tc->schedule_gamma, item(sch, "gamma")->valuedouble, 1e-12, "%s", what);
    } else if (strcmp(sk, "cosine") == 0) {
        cr_assert_eq(tc->schedule, CNN_SCHEDULE_COSINE, "%s", what);
        cr_assert_float_eq(tc->warmup_epochs, item(sch, "warmup")->valuedouble, 1e-12, "%s", what);
    } else {
        cr_assert_eq(tc->schedule, CNN_SCHEDULE_CONSTANT, "%s", what);
    }
    cr_assert_eq(tc->batch, item(fx, "batch")->valueint, "%s: batch", what);
    cr_assert_eq(tc->epochs, item(fx, "epochs")->valueint, "%s: epochs", what);
}

static void train_fixture(const cJSON *fx, const run_config *rc, worst *w_out)
{
    const char *name = item(fx, "name")->valuestring;
    char what[256];
    snprintf(what, sizeof what, "%s (%s, %s, %d threads)", name, backend_str(rc->backend), rc->passes ? "-O2" : "-O0",
             rc->threads);
    cnn_model *m;
    cr_assert_eq(cnn_model_load(&m, fixture_path(item(fx, "cnn")->valuestring), NULL), CNN_OK, "%s: %s", what,
                 cnn_model_errmsg(m));
    cnn_weights *w;
    cr_assert_eq(cnn_weights_create(&w, m, 0), CNN_OK);
    cr_assert_eq(cnn_weights_load(w, fixture_path(item(fx, "init")->valuestring), false), CNN_OK, "%s: %s", what,
                 cnn_weights_errmsg(w));
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    check_config(fx, &tc, what);

    char path[1024];
    int64_t xd[3], yd[3];
    int xr, yr;
    const char *ddir = item(fx, "data_dir")->valuestring;
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", ddir);
    unsigned char *px = read_idx(fixture_path(path), xd, &xr);
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", ddir);
    unsigned char *ly = read_idx(fixture_path(path), yd, &yr);
    cr_assert(xr == 3 && yr == 1 && xd[0] == yd[0], "%s: data", what);
    int64_t per = xd[1] * xd[2];

    int64_t batch = item(fx, "batch")->valueint;
    int steps = item(fx, "steps")->valueint;
    int64_t spe = item(fx, "steps_per_epoch")->valueint;
    cr_assert_eq(spe * batch, xd[0], "%s: an epoch is the whole training set", what);
    cnn_options o;
    cnn_options_default(&o);
    o.backend = rc->backend;
    o.passes = rc->passes;
    o.threads = rc->threads;
    cnn_session *s;
    cr_assert_eq(cnn_session_create(&s, m, w, &o, batch, CNN_MODE_TRAIN, &tc), CNN_OK, "%s: %s", what,
                 cnn_session_errmsg(s));
    const cJSON *losses = item(fx, "step_losses"), *lrs = item(fx, "step_lrs");
    for (int st = 0; st < steps; st++) {
        double lr = cnn_train_lr(&tc, st, spe, steps), want_lr = cJSON_GetArrayItem(lrs, st)->valuedouble;
        w_out->lr = fmax(w_out->lr, fabs(lr - want_lr));
        cr_expect(fabs(lr - want_lr) <= 1e-12 + 1e-9 * want_lr, "%s: step %d lr %.12g, PyTorch %.12g", what, st, lr,
                  want_lr);
        cr_assert_eq(cnn_session_set_lr(s, lr), CNN_OK, "%s: %s", what, cnn_session_errmsg(s));
        /* no shuffling: batch b of the epoch is images b*batch .. (b+1)*batch-1 */
        int64_t first = (st % spe) * batch;
        float *x = cnn_session_input(s, 0), labels[64];
        for (int64_t i = 0; i < batch * per; i++)
            x[i] = (float)px[first * per + i] / 255.0f;
        for (int64_t i = 0; i < batch; i++)
            labels[i] = (float)ly[first + i];
        float loss;
        cr_assert_eq(cnn_session_train_step(s, labels, true, &loss, NULL), CNN_OK, "%s: %s", what,
                     cnn_session_errmsg(s));
        double want = cJSON_GetArrayItem(losses, st)->valuedouble;
        w_out->loss = fmax(w_out->loss, fabs(loss - want));
        cr_expect(fabs(loss - want) <= 1e-4 * fabs(want) + 2e-5, "%s: step %d loss %.7f, PyTorch %.7f", what, st + 1,
                  (double)loss, want);
    }
    /* every tensor (running statistics included) against PyTorch's */
    double atol = item(item(fx, "tolerance"), "atol")->valuedouble;
    rt_st_file *f;
    char err[1024];
    cr_assert_eq(rt_st_read(&f, fixture_path(item(fx, "expected")->valuestring), err, sizeof err), RT_ST_OK, "%s", err);
    for (int i = 0; i < cnn_weights_count(w); i++) {
        const char *tn;
        int rank;
        int64_t dims[CNN_WEIGHT_MAX_RANK];
        float *d = cnn_weights_tensor(w, i, &tn, &rank, dims);
        const rt_st_tensor *t = rt_st_find(f, tn);
        cr_assert_not_null(t, "%s: %s missing from the expected weights", what, tn);
        for (int64_t k = 0; k < t->numel; k++) {
            double diff = fabs((double)d[k] - (double)t->data[k]);
            w_out->weight = fmax(w_out->weight, diff);
            if (!(diff <= atol + 1e-4 * fabs((double)t->data[k]))) {
                cr_expect(false, "%s: %s[%lld] is %.8g, PyTorch %.8g", what, tn, (long long)k, (double)d[k],
                          (double)t->data[k]);
                break;
            }
        }
    }
    rt_st_free(f);
    cnn_session_destroy(s);
    free(px);
    free(ly);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

Test(train_parity, new_settings_match_pytorch, .timeout = 600)
{
    char *text = test_file_bytes(fixture_path("train_extra.json"), NULL);
    cr_assert_not_null(text, "cannot read %s", fixture_path("train_extra.json"));
    cJSON *man = cJSON_Parse(text);
    free(text);
    cr_assert_not_null(man, "train_extra.json does not parse");
    run_config cfgs[] = {
        {CNN_BACKEND_REF, 0, 1},
        {CNN_BACKEND_REF, CNN_PASSES_O2, 2},
        {CNN_BACKEND_ONEDNN, CNN_PASSES_O2, 2},
        {CNN_BACKEND_AUTO, CNN_PASSES_O2, 1},
        {CNN_BACKEND_NATIVE, CNN_PASSES_O2, 2},
    };
    int ncfg = quick() ? 2 : (int)(sizeof cfgs / sizeof cfgs[0]);
    int n = 0;
    worst all = {0, 0, 0};
    const cJSON *fx;
    cJSON_ArrayForEach(fx, item(man, "training"))
    {
        worst wf = {0, 0, 0};
        for (int c = 0; c < ncfg; c++)
            train_fixture(fx, &cfgs[c], &wf);
        cr_log_info("%-22s max |w - PyTorch| %.2g, |loss - PyTorch| %.2g, |lr - PyTorch| %.2g",
                    item(fx, "name")->valuestring, wf.weight, wf.loss, wf.lr);
        all.weight = fmax(all.weight, wf.weight);
        all.loss = fmax(all.loss, wf.loss);
        all.lr = fmax(all.lr, wf.lr);
        n++;
    }
    cr_assert_geq(n, 7, "a fixture per setting at least");
    cr_log_info("%d fixtures x %d configurations: worst |w - PyTorch| %.2g, |loss - PyTorch| %.2g, |lr - PyTorch| %.2g",
                n, ncfg, all.weight, all.loss, all.lr);
    cJSON_Delete(man);
}

/* A clip_grad_norm above every gradient norm changes nothing, bit for bit: the scale is
 * exactly 1 then.  (The fixtures' clip entries show that a lower one clips as PyTorch.) */
Test(train_parity, a_clip_that_never_binds_is_no_clip)
{
    const char *src_a = "network n {\n    input x[1, 8, 8];\n    output y = x -> conv2d(4, 3) -> relu -> flatten -> dense(3);\n}\n"
                        "train n { optimizer = sgd(lr=0.1, momentum=0.9); batch = 4; }\n";
    const char *src_b = "network n {\n    input x[1, 8, 8];\n    output y = x -> conv2d(4, 3) -> relu -> flatten -> dense(3);\n}\n"
                        "train n { optimizer = sgd(lr=0.1, momentum=0.9); clip_grad_norm = 1e6; batch = 4; }\n";
    cnn_model *ma, *mb;
    cr_assert_eq(cnn_model_compile(&ma, "a.cnn", src_a, strlen(src_a), NULL), CNN_OK);
    cr_assert_eq(cnn_model_compile(&mb, "b.cnn", src_b, strlen(src_b), NULL), CNN_OK, "%s", cnn_model_errmsg(mb));
    cnn_weights *wa, *wb;
    cr_assert_eq(cnn_weights_create(&wa, ma, 7), CNN_OK);
    cr_assert_eq(cnn_weights_create(&wb, mb, 7), CNN_OK);
    cnn_train_config ca, cb;
    cnn_model_train_config(ma, &ca);
    cnn_model_train_config(mb, &cb);
    cnn_session *sa, *sb;
    cr_assert_eq(cnn_session_create(&sa, ma, wa, NULL, 4, CNN_MODE_TRAIN, &ca), CNN_OK);
    cr_assert_eq(cnn_session_create(&sb, mb, wb, NULL, 4, CNN_MODE_TRAIN, &cb), CNN_OK);
    float labels[4] = {0, 1, 2, 1};
    for (int st = 0; st < 3; st++) {
        float *xa = cnn_session_input(sa, 0), *xb = cnn_session_input(sb, 0);
        for (int i = 0; i < 4 * 64; i++)
            xa[i] = xb[i] = (float)((i * 37 + st * 11) % 17) / 17.0f;
        float la, lb;
        cr_assert_eq(cnn_session_train_step(sa, labels, true, &la, NULL), CNN_OK);
        cr_assert_eq(cnn_session_train_step(sb, labels, true, &lb, NULL), CNN_OK, "%s", cnn_session_errmsg(sb));
        cr_expect_eq(la, lb);
    }
    for (int i = 0; i < cnn_weights_count(wa); i++) {
        const char *na, *nb;
        int ra, rb;
        int64_t da[CNN_WEIGHT_MAX_RANK], db[CNN_WEIGHT_MAX_RANK], n = 1;
        float *a = cnn_weights_tensor(wa, i, &na, &ra, da), *b = cnn_weights_tensor(wb, i, &nb, &rb, db);
        for (int k = 0; k < ra; k++)
            n *= da[k];
        cr_expect(memcmp(a, b, sizeof(float) * (size_t)n) == 0, "%s differs", na);
    }
    cnn_session_destroy(sa);
    cnn_session_destroy(sb);
    cnn_weights_destroy(wa);
    cnn_weights_destroy(wb);
    cnn_model_destroy(ma);
    cnn_model_destroy(mb);
}

/* The training plan of a network with more parameters than one node reads (resnet20: 64):
 * grad_sqnorm steps chained through partial sums after every gradient is made, one clip_scale,
 * and every update after it reading its factor last; adamw's state has Adam's names. */
Test(train_parity, clipping_is_its_own_steps_after_every_gradient)
{
    const char *ex = getenv("CNN_EXAMPLES");
    char path[1024];
    snprintf(path, sizeof path, "%.900s/resnet20.cnn", ex ? ex : "examples");
    cnn_model *m;
    cr_assert_eq(cnn_model_load(&m, path, NULL), CNN_OK, "%s", cnn_model_errmsg(m));
    cnn_weights *w;
    cr_assert_eq(cnn_weights_create(&w, m, 1), CNN_OK);
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    tc.optimizer = 2, tc.lr = 0.001, tc.weight_decay = 0.01, tc.clip_grad_norm = 1.0, tc.label_smoothing = 0.1;
    cnn_session *s;
    cr_assert_eq(cnn_session_create(&s, m, w, NULL, 2, CNN_MODE_TRAIN, &tc), CNN_OK, "%s", cnn_session_errmsg(s));
    const ir_plan *p = s->plan;
    const ir_graph *g = p->graph;
    int last_grad = -1, first_norm = -1, nnorm = 0, scale_step = -1, scale_val = -1, nupd = 0, nparams = 0;
    for (int st = 0; st < p->nsteps; st++) {
        const ir_node *nd = &g->nodes[p->steps[st].node];
        for (int k = 0; k < nd->nout; k++)
            if (g->vals[nd->out[k]].kind == IR_VAL_PGRAD)
                last_grad = st;
        if (nd->op == OP_GRAD_SQNORM) {
            if (first_norm < 0)
                first_norm = st;
            cr_expect_eq(nd->attrs.clip.accumulate, nnorm > 0, "%s", nd->name);
            nnorm++;
        } else if (nd->op == OP_CLIP_SCALE) {
            cr_expect_eq(scale_step, -1, "one clip_scale");
            scale_step = st;
            scale_val = nd->out[0];
            cr_expect_eq(nd->attrs.clip.max_norm, 1.0);
        } else if (nd->op == OP_ADAMW_UPDATE) {
            cr_expect_gt(st, scale_step, "%s runs after clip_scale", nd->name);
            cr_expect(nd->attrs.optim.clip, "%s", nd->name);
            cr_expect_eq(nd->in[nd->nin - 1], scale_val, "%s reads the clip factor last", nd->name);
            cr_expect(strstr(g->vals[nd->in[2]].name, ".exp_avg") != NULL, "%s", g->vals[nd->in[2]].name);
            cr_expect(strstr(g->vals[nd->in[3]].name, ".exp_avg_sq") != NULL, "%s", g->vals[nd->in[3]].name);
            nupd++;
        } else if (nd->op == OP_XENT_LOSS) {
            cr_expect_float_eq(nd->attrs.loss.label_smoothing, 0.1, 1e-15);
        }
        cr_expect(nd->op != OP_SGD_UPDATE && nd->op != OP_ADAM_UPDATE, "%s", nd->name);
    }
    for (int v = 0; v < g->nvals; v++)
        nparams += g->vals[v].kind == IR_VAL_PGRAD;
    cr_assert_gt(nparams, 2 * 16, "enough gradients to chain");
    cr_expect_gt(first_norm, last_grad, "the norm is taken once every gradient is final");
    cr_expect_gt(scale_step, first_norm);
    cr_expect_eq(nupd, nparams, "an update per parameter");
    cr_expect_eq(nnorm, 1 + (nparams - 16 + 14) / 15, "%d grad_sqnorm steps for %d gradients", nnorm, nparams);
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

/* A train config made by hand with values the language would refuse: refused when the session
 * is made, with a message, not at the first step. */
Test(train_parity, bad_config_values_are_refused)
{
    const char *src = "network n {\n    input x[4];\n    output y = x -> dense(3);\n}\n";
    cnn_model *m;
    cr_assert_eq(cnn_model_compile(&m, "n.cnn", src, strlen(src), NULL), CNN_OK);
    cnn_weights *w;
    cr_assert_eq(cnn_weights_create(&w, m, 1), CNN_OK);
    const struct {
        double smoothing, clip;
        const char *msg;
    } bad[] = {
        {1.0, 0, "label_smoothing must be in [0, 1), got 1"},
        {-0.1, 0, "label_smoothing must be in [0, 1)"},
        {NAN, 0, "label_smoothing must be in [0, 1)"},
        {0, -1, "clip_grad_norm must be a positive number"},
        {0, NAN, "clip_grad_norm must be a positive number"},
        {0, INFINITY, "clip_grad_norm must be a positive number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cnn_train_config tc;
        cnn_model_train_config(m, &tc);
        tc.label_smoothing = bad[i].smoothing;
        tc.clip_grad_norm = bad[i].clip;
        cnn_session *s = NULL;
        cnn_status st = cnn_session_create(&s, m, w, NULL, 2, CNN_MODE_TRAIN, &tc);
        cr_expect_neq(st, CNN_OK, "case %zu accepted", i);
        cr_expect_not_null(s, "case %zu: no session to tell why", i);
        if (s) {
            cr_expect(strstr(cnn_session_errmsg(s), bad[i].msg) != NULL, "case %zu: %s", i, cnn_session_errmsg(s));
            cnn_session_destroy(s);
        }
    }
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

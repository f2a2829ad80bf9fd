/* Conformance with PyTorch: every fixture network of tests/fixtures/manifest.json run through
 * the public API on each backend, at -O0 and -O2, batch 1 and 7, 1 and 2 threads, against
 * PyTorch's outputs; -O2 against -O0; training steps against PyTorch's weights after them;
 * and the memory planner's overlap check on every plan. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
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
    snprintf(buf[k], sizeof buf[k], "%s/%s", fixtures(), name);
    return buf[k];
}

static cJSON *load_manifest(void)
{
    char *text = test_file_bytes(fixture_path("manifest.json"), NULL);
    cr_assert_not_null(text, "cannot read %s", fixture_path("manifest.json"));
    cJSON *m = cJSON_Parse(text);
    free(text);
    cr_assert_not_null(m, "manifest.json does not parse");
    return m;
}

static bool quick(void) { return getenv("CNN_TEST_QUICK") != NULL; }

/* max over elements of |a-b| */
static double max_abs_diff(const float *a, const float *b, int64_t n)
{
    double m = 0.0;
    for (int64_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

/* max over elements of |a-b| / (atol + rtol*|b|); <= 1 passes */
static double worst_ratio(const float *a, const float *b, int64_t n, double atol, double rtol, int64_t *where)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double r = fabs((double)a[i] - (double)b[i]) / (atol + rtol * fabs((double)b[i]));
        if (!(r <= worst)) { /* catches NaN too */
            worst = isnan(r) ? INFINITY : r;
            *where = i;
        }
    }
    return worst;
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

/* Runs model m with weights w on input file in_path; returns the outputs (malloc'd, one
 * buffer per output concatenated in order) and checks the plan's overlap. */
static float *run_fixture(cnn_model *m, cnn_weights *w, const char *in_path, const run_config *rc, int64_t *batch_out,
                          const char *what)
{
    float *in;
    int rank;
    int64_t dims[8];
    char err[1024];
    cr_assert_eq(cnn_npy_read(in_path, &in, &rank, dims, err, sizeof err), CNN_OK, "%s", err);
    int64_t batch = dims[0], per = 1;
    for (int k = 1; k < rank; k++)
        per *= dims[k];
    cnn_options o;
    cnn_options_default(&o);
    o.backend = rc->backend;
    o.passes = rc->passes;
    o.threads = rc->threads;
    cnn_session *s;
    cr_assert_eq(cnn_session_create(&s, m, w, &o, batch, CNN_MODE_INFER, NULL), CNN_OK, "%s: %s", what,
                 cnn_session_errmsg(s));
    cr_assert_eq(plan_check_overlap(s->plan, err, sizeof err), 0, "%s: plan overlap: %s", what, err);
    memcpy(cnn_session_input(s, 0), in, sizeof(float) * (size_t)(batch * per));
    cr_assert_eq(cnn_session_run(s), CNN_OK, "%s: %s", what, cnn_session_errmsg(s));
    int64_t total = 0;
    for (int i = 0; i < cnn_model_output_count(m); i++) {
        int64_t od[4];
        int orank = cnn_model_output_shape(m, i, od);
        int64_t n = batch;
        for (int k = 0; k < orank; k++)
            n *= od[k];
        total += n;
    }
    float *out = malloc(sizeof(float) * (size_t)total);
    int64_t off = 0;
    for (int i = 0; i < cnn_model_output_count(m); i++) {
        int64_t od[4];
        int orank = cnn_model_output_shape(m, i, od);
        int64_t n = batch;
        for (int k = 0; k < orank; k++)
            n *= od[k];
        memcpy(out + off, cnn_session_output(s, i), sizeof(float) * (size_t)n);
        off += n;
    }
    cnn_session_destroy(s);
    free(in);
    *batch_out = batch;
    return out;
}

/* The expected outputs of one batch file index, concatenated in output order. */
static float *expected_outputs(cJSON *fx, int bi, int64_t *count)
{
    cJSON *names = cJSON_GetObjectItem(fx, "output_names");
    cJSON *named = cJSON_GetObjectItem(fx, "named_outputs");
    float *all = NULL;
    int64_t total = 0;
    cJSON *nm;
    cJSON_ArrayForEach(nm, names)
    {
        cJSON *files = cJSON_GetObjectItem(named, nm->valuestring);
        const char *file = cJSON_GetArrayItem(files, bi)->valuestring;
        float *d;
        int rank;
        int64_t dims[8];
        char err[1024];
        cr_assert_eq(cnn_npy_read(fixture_path(file), &d, &rank, dims, err, sizeof err), CNN_OK, "%s", err);
        int64_t n = 1;
        for (int k = 0; k < rank; k++)
            n *= dims[k];
        all = realloc(all, sizeof(float) * (size_t)(total + n));
        memcpy(all + total, d, sizeof(float) * (size_t)n);
        total += n;
        free(d);
    }
    *count = total;
    return all;
}

Test(conformance, fixtures_match_pytorch, .timeout = 600)
{
    cJSON *man = load_manifest();
    cJSON *fx;
    int checked = 0;
    cJSON_ArrayForEach(fx, cJSON_GetObjectItem(man, "inference"))
    {
        const char *name = cJSON_GetObjectItem(fx, "name")->valuestring;
        cnn_model *m;
        cr_assert_eq(cnn_model_load(&m, fixture_path(cJSON_GetObjectItem(fx, "cnn")->valuestring), NULL), CNN_OK,
                     "%s: %s", name, cnn_model_errmsg(m));
        cnn_weights *w;
        cr_assert_eq(cnn_weights_create(&w, m, 0), CNN_OK);
        cr_assert_eq(cnn_weights_load(w, fixture_path(cJSON_GetObjectItem(fx, "weights")->valuestring), false), CNN_OK,
                     "%s: %s", name, cnn_weights_errmsg(w));
        cJSON *tol = cJSON_GetObjectItem(fx, "tolerance");
        double atol = cJSON_GetObjectItem(tol, "atol")->valuedouble, rtol = cJSON_GetObjectItem(tol, "rtol")->valuedouble;
        run_config cfgs[] = {
            {CNN_BACKEND_REF, 0, 1},
            {CNN_BACKEND_REF, CNN_PASSES_O2, 2},
            {CNN_BACKEND_ONEDNN, 0, 2},
            {CNN_BACKEND_ONEDNN, CNN_PASSES_O2, 1},
            {CNN_BACKEND_ONEDNN, CNN_PASSES_O2, 2},
            {CNN_BACKEND_AUTO, CNN_PASSES_O2, 2},
            {CNN_BACKEND_NATIVE, 0, 1},
            {CNN_BACKEND_NATIVE, CNN_PASSES_O2, 2},
        };
        int ncfg = quick() ? 2 : (int)(sizeof cfgs / sizeof cfgs[0]);
        double worst[CNN_BACKEND_ONEDNN + 1] = {0}; /* per backend: max |cnnc - PyTorch| */
        cJSON *inputs = cJSON_GetObjectItem(fx, "inputs");
        for (int bi = 0; bi < cJSON_GetArraySize(inputs); bi++) {
            int64_t nexp;
            float *exp = expected_outputs(fx, bi, &nexp);
            float *o0 = NULL;
            for (int c = 0; c < ncfg; c++) {
                char what[256];
                snprintf(what, sizeof what, "%s batch file %d, %s, %s, %d threads", name, bi, backend_str(cfgs[c].backend),
                         cfgs[c].passes ? "-O2" : "-O0", cfgs[c].threads);
                int64_t batch;
                float *got = run_fixture(m, w, fixture_path(cJSON_GetArrayItem(inputs, bi)->valuestring), &cfgs[c],
                                         &batch, what);
                int64_t where = 0;
                double r = worst_ratio(got, exp, nexp, atol, rtol, &where);
                worst[cfgs[c].backend] = fmax(worst[cfgs[c].backend], max_abs_diff(got, exp, nexp));
                cr_expect(r <= 1.0, "%s: output %lld is %.8g, PyTorch %.8g (%.2fx the tolerance)", what,
                          (long long)where, (double)got[where], (double)exp[where], r);
                if (c == 0) {
                    o0 = got;
                    continue;
                }
                /* -O2 and other backends against the reference at -O0 */
                r = worst_ratio(got, o0, nexp, 1e-6, 1e-5, &where);
                cr_expect(r <= 1.0, "%s: output %lld is %.8g, ref -O0 %.8g", what, (long long)where,
                          (double)got[where], (double)o0[where]);
                free(got);
                checked++;
            }
            free(o0);
            free(exp);
        }
        cr_log_info("%s: max |cnnc - PyTorch| over batches 1 and 7: ref %.2g, onednn %.2g, native %.2g, auto %.2g", name,
                    worst[CNN_BACKEND_REF], worst[CNN_BACKEND_ONEDNN], worst[CNN_BACKEND_NATIVE],
                    worst[CNN_BACKEND_AUTO]);
        cnn_weights_destroy(w);
        cnn_model_destroy(m);
    }
    cr_assert_gt(checked, 10);
    cr_log_info("%d fixture runs compared with PyTorch and the reference", checked);
    cJSON_Delete(man);
}

/* ---- training parity ---- */

/* Checks every tensor of w against the file's; returns the largest absolute difference. */
static double check_weights_match(cnn_weights *w, const char *expected_path, double atol, double rtol,
                                  const char *what)
{
    double worst = 0.0;
    rt_st_file *f;
    char err[1024];
    cr_assert_eq(rt_st_read(&f, expected_path, err, sizeof err), RT_ST_OK, "%s", err);
    for (int i = 0; i < cnn_weights_count(w); i++) {
        const char *name;
        int rank;
        int64_t dims[CNN_WEIGHT_MAX_RANK];
        float *d = cnn_weights_tensor(w, i, &name, &rank, dims);
        const rt_st_tensor *t = rt_st_find(f, name);
        cr_assert_not_null(t, "%s: %s missing from %s", what, name, expected_path);
        int64_t where = 0;
        double r = worst_ratio(d, t->data, t->numel, atol, rtol, &where);
        worst = fmax(worst, max_abs_diff(d, t->data, t->numel));
        cr_expect(r <= 1.0, "%s: %s[%lld] is %.8g, PyTorch %.8g (%.2fx the tolerance)", what, name, (long long)where,
                  (double)d[where], (double)t->data[where], r);
    }
    rt_st_free(f);
    return worst;
}

static void train_fixture(cJSON *fx, const run_config *rc)
{
    const char *name = cJSON_GetObjectItem(fx, "name")->valuestring;
    char what[256];
    snprintf(what, sizeof what, "%s (%s, %s, %d threads)", name, backend_str(rc->backend), rc->passes ? "-O2" : "-O0",
             rc->threads);
    cnn_model *m;
    cr_assert_eq(cnn_model_load(&m, fixture_path(cJSON_GetObjectItem(fx, "cnn")->valuestring), NULL), CNN_OK, "%s: %s",
                 what, cnn_model_errmsg(m));
    cnn_weights *w;
    cr_assert_eq(cnn_weights_create(&w, m, 0), CNN_OK);
    cr_assert_eq(cnn_weights_load(w, fixture_path(cJSON_GetObjectItem(fx, "init")->valuestring), false), CNN_OK, "%s: %s",
                 what, cnn_weights_errmsg(w));
    cnn_dataset *d = NULL;
    char err[1024];
    bool absent;
    /* volumes come as .npy (IDX holds images): [N, 1, D, H, W] already scaled, labels [N] */
    cJSON *fmt = cJSON_GetObjectItem(fx, "data_format");
    bool npy = cJSON_IsString(fmt) && strcmp(fmt->valuestring, "npy") == 0;
    float *npy_x = NULL, *npy_y = NULL;
    int64_t npy_per = 1;
    if (npy) {
        int xr, yr;
        int64_t xd[8], yd[8];
        cr_assert_eq(cnn_npy_read(fixture_path(cJSON_GetObjectItem(fx, "train_inputs")->valuestring), &npy_x, &xr, xd,
                                  err, sizeof err),
                     CNN_OK, "%s", err);
        cr_assert_eq(cnn_npy_read(fixture_path(cJSON_GetObjectItem(fx, "train_labels")->valuestring), &npy_y, &yr, yd,
                                  err, sizeof err),
                     CNN_OK, "%s", err);
        cr_assert(yr == 1 && yd[0] == xd[0], "%s: labels do not match the inputs", what);
        for (int k = 1; k < xr; k++)
            npy_per *= xd[k];
    } else {
        cr_assert_eq(cnn_dataset_load(&d, fixture_path(cJSON_GetObjectItem(fx, "data_dir")->valuestring), "train",
                                      &absent, err, sizeof err),
                     CNN_OK, "%s", err);
    }
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    int64_t batch = cJSON_GetObjectItem(fx, "batch")->valueint;
    int steps = cJSON_GetObjectItem(fx, "steps")->valueint;
    cr_assert_eq(tc.batch, batch, "%s: the train section's batch", what);
    cnn_options o;
    cnn_options_default(&o);
    o.backend = rc->backend;
    o.passes = rc->passes;
    o.threads = rc->threads;
    cnn_session *s;
    cr_assert_eq(cnn_session_create(&s, m, w, &o, batch, CNN_MODE_TRAIN, &tc), CNN_OK, "%s: %s", what,
                 cnn_session_errmsg(s));
    cr_assert_eq(plan_check_overlap(s->plan, err, sizeof err), 0, "%s: plan overlap: %s", what, err);
    float labels[64];
    cJSON *losses = cJSON_GetObjectItem(fx, "step_losses");
    for (int st = 0; st < steps; st++) {
        if (npy) {
            memcpy(cnn_session_input(s, 0), npy_x + st * batch * npy_per, sizeof(float) * (size_t)(batch * npy_per));
            memcpy(labels, npy_y + st * batch, sizeof(float) * (size_t)batch);
        } else {
            cnn_dataset_batch(d, NULL, st * batch, batch, cnn_session_input(s, 0), labels);
        }
        float loss;
        int64_t correct;
        cr_assert_eq(cnn_session_train_step(s, labels, true, &loss, &correct), CNN_OK, "%s: %s", what,
                     cnn_session_errmsg(s));
        double want = cJSON_GetArrayItem(losses, st)->valuedouble;
        cr_expect(fabs(loss - want) <= 1e-4 * fabs(want) + 2e-5, "%s: step %d loss %.7f, PyTorch %.7f", what, st + 1,
                  (double)loss, want);
    }
    cJSON *tol = cJSON_GetObjectItem(fx, "tolerance");
    double dw = check_weights_match(w, fixture_path(cJSON_GetObjectItem(fx, "expected")->valuestring),
                                    cJSON_GetObjectItem(tol, "atol")->valuedouble, 1e-4, what);
    cr_log_info("%s: after %d steps, max |w - PyTorch's w| %.2g", what, steps, dw);
    cnn_session_destroy(s);
    if (d)
        cnn_dataset_destroy(d);
    free(npy_x);
    free(npy_y);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

Test(conformance, training_steps_match_pytorch, .timeout = 600)
{
    cJSON *man = load_manifest();
    cJSON *fx;
    run_config cfgs[] = {
        {CNN_BACKEND_REF, 0, 1},
        {CNN_BACKEND_REF, CNN_PASSES_O2, 2},
        {CNN_BACKEND_ONEDNN, CNN_PASSES_O2, 2},
        {CNN_BACKEND_AUTO, CNN_PASSES_O2, 1},
        {CNN_BACKEND_NATIVE, CNN_PASSES_O2, 2},
    };
    int ncfg = quick() ? 2 : (int)(sizeof cfgs / sizeof cfgs[0]);
    int n = 0;
    cJSON_ArrayForEach(fx, cJSON_GetObjectItem(man, "training"))
    {
        for (int c = 0; c < ncfg; c++)
            train_fixture(fx, &cfgs[c]);
        n++;
    }
    cr_assert_gt(n, 2);
    cr_log_info("%d training fixtures, %d configurations each", n, ncfg);
    cJSON_Delete(man);
}

/* Training checkpoints: the session's tensors and the run's state in one safetensors file (see
 * checkpoint.h).  Every number of the metadata is a string, as safetensors' metadata must be:
 * integers in decimal, doubles with 17 significant digits (exact round trip), "nan" for a
 * metric that was not measured. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/mem.h"
#include "runtime/checkpoint.h"
#include "runtime/safetensors.h"

static const char *const optstate_suffixes[] = {".momentum_buffer", ".exp_avg", ".exp_avg_sq"};

bool rt_ckpt_is_optstate_key(const cnn_weights *w, const char *key)
{
    size_t len = strlen(key);
    for (size_t k = 0; k < sizeof optstate_suffixes / sizeof optstate_suffixes[0]; k++) {
        size_t ls = strlen(optstate_suffixes[k]);
        if (len <= ls || strcmp(key + len - ls, optstate_suffixes[k]) != 0)
            continue;
        for (int i = 0; i < w->count; i++)
            if (strlen(w->t[i].name) == len - ls && strncmp(w->t[i].name, key, len - ls) == 0)
                return true;
    }
    return false;
}

static const char *optimizer_name(int o) { return o == 0 ? "sgd" : o == 1 ? "adam" : o == 2 ? "adamw" : "?"; }

/* ---- writing ---- */

enum { MAX_META = 64, VAL_LEN = 512 };

typedef struct meta_list {
    int n;
    const char *keys[MAX_META];
    char vals[MAX_META][VAL_LEN];
} meta_list;

static void put_str(meta_list *m, const char *key, const char *val)
{
    if (m->n == MAX_META)
        return;
    m->keys[m->n] = key;
    snprintf(m->vals[m->n], VAL_LEN, "%s", val);
    m->n++;
}

static void put_i64(meta_list *m, const char *key, int64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "%" PRId64, v);
    put_str(m, key, b);
}

static void put_u64(meta_list *m, const char *key, uint64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "%" PRIu64, v);
    put_str(m, key, b);
}

static void put_f64(meta_list *m, const char *key, double v)
{
    char b[40];
    if (isnan(v))
        snprintf(b, sizeof b, "nan");
    else
        snprintf(b, sizeof b, "%.17g", v);
    put_str(m, key, b);
}

static const char *backend_name(cnn_backend b)
{
    return b == CNN_BACKEND_REF ? "ref" : b == CNN_BACKEND_NATIVE ? "native" : b == CNN_BACKEND_ONEDNN ? "onednn" : "auto";
}

cnn_status rt_ckpt_write(cnn_session *s, const char *path, const rt_ckpt_state *cs, char *err, size_t errlen)
{
    meta_list *m = cnn_mem_calloc(1, sizeof *m);
    const cnn_weights *w = s->weights;
    rt_st_tensor *ts = cnn_mem_calloc((size_t)(w->count + s->noptstate) + 1, sizeof *ts);
    if (!m || !ts) {
        cnn_mem_free(m);
        cnn_mem_free(ts);
        snprintf(err, errlen, "%s: out of memory", path);
        return CNN_ERR_NOMEM;
    }
    const cnn_train_config *tc = &s->train;
    put_str(m, "format", RT_CKPT_FORMAT);
    put_i64(m, "version", RT_CKPT_VERSION);
    put_str(m, "network", cnn_model_name(s->model));
    put_i64(m, "epochs_done", cs->epochs_done);
    put_i64(m, "epoch_step", cs->epoch_step);
    put_i64(m, "steps_per_epoch", cs->steps_per_epoch);
    put_i64(m, "total_steps", cs->total_steps);
    put_i64(m, "step", cs->step);
    put_i64(m, "session_step", cs->session_step);
    put_f64(m, "lr", cs->lr);
    put_str(m, "shuffle", cs->shuffle ? "true" : "false");
    put_u64(m, "shuffle_state", cs->shuffle_state);
    put_u64(m, "shuffle_seed", cs->shuffle_seed);
    put_u64(m, "seed", cs->seed);
    put_i64(m, "batch", cs->batch);
    put_i64(m, "examples", cs->examples);
    put_i64(m, "val", cs->val);
    put_str(m, "loss", tc->loss == 1 ? "mse" : "cross_entropy");
    put_str(m, "optimizer", optimizer_name(tc->optimizer));
    put_f64(m, "momentum", tc->momentum);
    put_str(m, "nesterov", tc->nesterov ? "true" : "false");
    put_f64(m, "weight_decay", tc->weight_decay);
    put_f64(m, "beta1", tc->beta1);
    put_f64(m, "beta2", tc->beta2);
    put_f64(m, "eps", tc->eps);
    put_i64(m, "threads", s->nthreads);
    put_str(m, "backend", backend_name(s->opt.backend));
    put_f64(m, "epoch_loss_sum", cs->epoch_loss_sum);
    put_i64(m, "epoch_correct", cs->epoch_correct);
    put_i64(m, "epoch_seen", cs->epoch_seen);
    put_f64(m, "first_loss", cs->first_loss);
    put_f64(m, "best_accuracy", cs->best_accuracy);
    put_i64(m, "best_epoch", cs->best_epoch);
    put_i64(m, "bad_epochs", cs->bad_epochs);
    put_f64(m, "elapsed", cs->elapsed);
    put_f64(m, "train_loss", cs->train_loss);
    put_f64(m, "train_accuracy", cs->train_accuracy);
    put_f64(m, "val_loss", cs->val_loss);
    put_f64(m, "val_accuracy", cs->val_accuracy);
    put_f64(m, "test_loss", cs->test_loss);
    put_f64(m, "test_accuracy", cs->test_accuracy);
    const char *vals[MAX_META];
    for (int i = 0; i < m->n; i++)
        vals[i] = m->vals[i];
    int n = 0;
    for (int i = 0; i < w->count; i++, n++) {
        ts[n].name = w->t[i].name;
        ts[n].rank = w->t[i].shape.rank;
        for (int k = 0; k < w->t[i].shape.rank; k++)
            ts[n].dims[k] = w->t[i].shape.d[k];
        ts[n].data = w->t[i].data;
    }
    for (int i = 0; i < s->noptstate; i++, n++) {
        ts[n].name = s->optstate[i].name;
        ts[n].rank = s->optstate[i].shape.rank;
        for (int k = 0; k < s->optstate[i].shape.rank; k++)
            ts[n].dims[k] = s->optstate[i].shape.d[k];
        ts[n].data = s->optstate[i].data;
    }
    rt_st_status rs = rt_st_write_meta(path, n, ts, m->n, m->keys, vals, err, errlen);
    cnn_mem_free(ts);
    cnn_mem_free(m);
    if (rs == RT_ST_OK)
        return CNN_OK;
    return rs == RT_ST_ENOMEM ? CNN_ERR_NOMEM : rs == RT_ST_EIO ? CNN_ERR_INPUT : CNN_ERR_INTERNAL;
}

/* ---- reading ---- */

typedef struct reader {
    const rt_st_file *f;
    const char *path;
    char *err;
    size_t errlen;
    bool bad;
} reader;

static const char *need(reader *r, const char *key)
{
    const char *v = rt_st_meta(r->f, key);
    if (!v && !r->bad) {
        snprintf(r->err, r->errlen, "%s: the checkpoint's metadata has no '%s'", r->path, key);
        r->bad = true;
    }
    return v;
}

static int64_t get_i64(reader *r, const char *key)
{
    const char *v = need(r, key);
    if (!v)
        return 0;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < 0) {
        if (!r->bad)
            snprintf(r->err, r->errlen, "%s: the checkpoint's metadata '%s' is '%.40s', not a non-negative integer",
                     r->path, key, v);
        r->bad = true;
        return 0;
    }
    return (int64_t)x;
}

static uint64_t get_u64(reader *r, const char *key)
{
    const char *v = need(r, key);
    if (!v)
        return 0;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-') {
        if (!r->bad)
            snprintf(r->err, r->errlen, "%s: the checkpoint's metadata '%s' is '%.40s', not an unsigned integer",
                     r->path, key, v);
        r->bad = true;
        return 0;
    }
    return (uint64_t)x;
}

static double get_f64(reader *r, const char *key)
{
    const char *v = need(r, key);
    if (!v)
        return NAN;
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end) {
        if (!r->bad)
            snprintf(r->err, r->errlen, "%s: the checkpoint's metadata '%s' is '%.40s', not a number", r->path, key, v);
        r->bad = true;
        return NAN;
    }
    return x;
}

static bool get_bool(reader *r, const char *key)
{
    const char *v = need(r, key);
    if (v && strcmp(v, "true") != 0 && strcmp(v, "false") != 0 && !r->bad) {
        snprintf(r->err, r->errlen, "%s: the checkpoint's metadata '%s' is '%.40s', not true or false", r->path, key, v);
        r->bad = true;
    }
    return v && strcmp(v, "true") == 0;
}

static bool same_shape(const rt_st_tensor *t, const op_shape *s)
{
    if (t->rank != s->rank)
        return false;
    for (int k = 0; k < s->rank; k++)
        if (t->dims[k] != s->d[k])
            return false;
    return true;
}

static void shape_text(char *buf, size_t n, const op_shape *s)
{
    int64_t d[OP_MAX_RANK];
    for (int k = 0; k < s->rank; k++)
        d[k] = s->d[k];
    rt_st_format_shape(buf, n, s->rank, d);
}

/* Checks that f holds exactly the n tensors (names, shapes) plus those of `more` (m of them). */
static bool check_tensors(reader *r, const rt_tensor *t, int n, const rt_tensor *more, int m, const char *what_more)
{
    for (int pass = 0; pass < 2; pass++) {
        const rt_tensor *list = pass ? more : t;
        int cnt = pass ? m : n;
        for (int i = 0; i < cnt; i++) {
            const rt_st_tensor *ft = rt_st_find(r->f, list[i].name);
            char need_s[96], have_s[96];
            if (!ft) {
                snprintf(r->err, r->errlen,
                         "%s: the checkpoint has no tensor %s, which this run's %s has: it was written for "
                         "another network or optimiser",
                         r->path, list[i].name, pass ? what_more : "network");
                return false;
            }
            if (!same_shape(ft, &list[i].shape)) {
                shape_text(need_s, sizeof need_s, &list[i].shape);
                rt_st_format_shape(have_s, sizeof have_s, ft->rank, ft->dims);
                snprintf(r->err, r->errlen, "%s: %s has shape %s in the checkpoint, this run's network needs %s",
                         r->path, list[i].name, have_s, need_s);
                return false;
            }
        }
    }
    if (r->f->count != n + m) {
        for (int j = 0; j < r->f->count; j++) {
            bool known = false;
            for (int i = 0; i < n && !known; i++)
                known = strcmp(t[i].name, r->f->tensors[j].name) == 0;
            for (int i = 0; i < m && !known; i++)
                known = strcmp(more[i].name, r->f->tensors[j].name) == 0;
            if (!known) {
                snprintf(r->err, r->errlen,
                         "%s: the checkpoint has tensor %s, which this run's network and optimiser do not: it was "
                         "written for another network or optimiser",
                         r->path, r->f->tensors[j].name);
                return false;
            }
        }
    }
    return true;
}

/* Reads and checks the format and version; NULL (with err) when f is no checkpoint. */
static bool check_format(reader *r)
{
    const char *fmt = rt_st_meta(r->f, "format");
    if (!fmt || strcmp(fmt, RT_CKPT_FORMAT) != 0) {
        snprintf(r->err, r->errlen,
                 "%s: not a cnnc checkpoint (its metadata has no format \"%s\"); a weights file loads with -w",
                 r->path, RT_CKPT_FORMAT);
        return false;
    }
    int64_t v = get_i64(r, "version");
    if (r->bad)
        return false;
    if (v != RT_CKPT_VERSION) {
        snprintf(r->err, r->errlen, "%s: checkpoint format version %" PRId64 ", this cnnc reads version %d", r->path, v,
                 RT_CKPT_VERSION);
        return false;
    }
    return true;
}

static cnn_status read_file(rt_st_file **f, const char *path, char *err, size_t errlen)
{
    rt_st_status rs = rt_st_read(f, path, err, errlen);
    if (rs == RT_ST_OK)
        return CNN_OK;
    return rs == RT_ST_ENOMEM ? CNN_ERR_NOMEM : CNN_ERR_INPUT;
}

/* A mismatch between the checkpoint and this run: the file, what, and both values. */
static cnn_status mismatch(reader *r, const char *what, const char *had, const char *has, const char *hint)
{
    snprintf(r->err, r->errlen, "%s: the checkpoint was written with %s %s, this run has %s %s%s", r->path, what, had,
             what, has, hint);
    return CNN_ERR_INPUT;
}

static cnn_status mismatch_i(reader *r, const char *what, uint64_t had, uint64_t has, const char *hint)
{
    char a[32], b[32];
    snprintf(a, sizeof a, "%" PRIu64, had);
    snprintf(b, sizeof b, "%" PRIu64, has);
    return mismatch(r, what, a, b, hint);
}

cnn_status rt_ckpt_read(cnn_session *s, const char *path, const rt_ckpt_state *want, rt_ckpt_state *cs, char *err,
                        size_t errlen)
{
    rt_st_file *f = NULL;
    cnn_status st = read_file(&f, path, err, errlen);
    if (st != CNN_OK)
        return st;
    reader r = {.f = f, .path = path, .err = err, .errlen = errlen};
    st = CNN_ERR_INPUT;
    if (!check_format(&r))
        goto done;
    const char *net = need(&r, "network"), *opt = need(&r, "optimizer");
    memset(cs, 0, sizeof *cs);
    cs->epochs_done = get_i64(&r, "epochs_done");
    cs->epoch_step = get_i64(&r, "epoch_step");
    cs->steps_per_epoch = get_i64(&r, "steps_per_epoch");
    cs->total_steps = get_i64(&r, "total_steps");
    cs->step = get_i64(&r, "step");
    cs->session_step = get_i64(&r, "session_step");
    cs->lr = get_f64(&r, "lr");
    cs->shuffle = get_bool(&r, "shuffle");
    cs->shuffle_state = get_u64(&r, "shuffle_state");
    cs->shuffle_seed = get_u64(&r, "shuffle_seed");
    cs->seed = get_u64(&r, "seed");
    cs->batch = get_i64(&r, "batch");
    cs->examples = get_i64(&r, "examples");
    cs->val = get_i64(&r, "val");
    cs->epoch_loss_sum = get_f64(&r, "epoch_loss_sum");
    cs->epoch_correct = get_i64(&r, "epoch_correct");
    cs->epoch_seen = get_i64(&r, "epoch_seen");
    cs->first_loss = get_f64(&r, "first_loss");
    cs->best_accuracy = get_f64(&r, "best_accuracy");
    cs->best_epoch = get_i64(&r, "best_epoch");
    cs->bad_epochs = get_i64(&r, "bad_epochs");
    cs->elapsed = get_f64(&r, "elapsed");
    cs->train_loss = get_f64(&r, "train_loss");
    cs->train_accuracy = get_f64(&r, "train_accuracy");
    cs->val_loss = get_f64(&r, "val_loss");
    cs->val_accuracy = get_f64(&r, "val_accuracy");
    cs->test_loss = get_f64(&r, "test_loss");
    cs->test_accuracy = get_f64(&r, "test_accuracy");
    if (r.bad)
        goto done;
    int64_t at;
    if (cs->steps_per_epoch < 1 || cs->epoch_step > cs->steps_per_epoch ||
        __builtin_mul_overflow(cs->epochs_done, cs->steps_per_epoch, &at) ||
        __builtin_add_overflow(at, cs->epoch_step, &at) || at != cs->step) {
        snprintf(err, errlen,
                 "%s: the checkpoint's position is not one: step %" PRId64 " after %" PRId64 " epochs of %" PRId64
                 " steps and %" PRId64 " more",
                 path, cs->step, cs->epochs_done, cs->steps_per_epoch, cs->epoch_step);
        goto done;
    }
    /* the set-up must be this run's */
    if (strcmp(net, cnn_model_name(s->model)) != 0) {
        st = mismatch(&r, "network", net, cnn_model_name(s->model), "");
        goto done;
    }
    if (strcmp(opt, optimizer_name(s->train.optimizer)) != 0) {
        st = mismatch(&r, "optimizer", opt, optimizer_name(s->train.optimizer), "");
        goto done;
    }
    if (cs->batch != want->batch) {
        st = mismatch_i(&r, "batch", (uint64_t)cs->batch, (uint64_t)want->batch, " (--batch)");
        goto done;
    }
    if (cs->seed != want->seed) {
        st = mismatch_i(&r, "seed", cs->seed, want->seed, " (--seed)");
        goto done;
    }
    if (cs->shuffle_seed != want->shuffle_seed) {
        st = mismatch_i(&r, "shuffle seed", cs->shuffle_seed, want->shuffle_seed, "");
        goto done;
    }
    if (cs->val != want->val) {
        st = mismatch_i(&r, "validation examples", (uint64_t)cs->val, (uint64_t)want->val, " (--val)");
        goto done;
    }
    if (cs->examples != want->examples) {
        st = mismatch_i(&r, "training examples", (uint64_t)cs->examples, (uint64_t)want->examples,
                        " (another data folder?)");
        goto done;
    }
    if (cs->shuffle != want->shuffle) {
        st = mismatch(&r, "shuffling", cs->shuffle ? "on" : "off", want->shuffle ? "on" : "off", " (--no-shuffle)");
        goto done;
    }
    if (!check_tensors(&r, s->weights->t, s->weights->count, s->optstate, s->noptstate, "optimiser"))
        goto done;
    /* everything fits: load */
    if (!rt_weights_claim_write(s->weights)) {
        snprintf(err, errlen, "%s: the weights are in use by a session running on another thread", path);
        st = CNN_ERR_USAGE;
        goto done;
    }
    for (int i = 0; i < s->weights->count; i++) {
        const rt_st_tensor *t = rt_st_find(f, s->weights->t[i].name);
        memcpy(s->weights->t[i].data, t->data, sizeof(float) * (size_t)t->numel);
    }
    for (int i = 0; i < s->noptstate; i++) {
        const rt_st_tensor *t = rt_st_find(f, s->optstate[i].name);
        memcpy(s->optstate[i].data, t->data, sizeof(float) * (size_t)t->numel);
    }
    atomic_fetch_add(&s->weights->version, 1);
    rt_weights_release_write(s->weights);
    s->step = cs->session_step;
    st = CNN_OK;
done:
    rt_st_free(f);
    return st;
}

cnn_status rt_ckpt_read_weights(const cnn_weights *w, const char *path, float **bufs, int64_t *epochs_done, char *err,
                                size_t errlen)
{
    rt_st_file *f = NULL;
    cnn_status st = read_file(&f, path, err, errlen);
    if (st != CNN_OK)
        return st;
    reader r = {.f = f, .path = path, .err = err, .errlen = errlen};
    st = CNN_ERR_INPUT;
    for (int i = 0; i < w->count; i++) {
        const rt_st_tensor *t = rt_st_find(f, w->t[i].name);
        if (!t || !same_shape(t, &w->t[i].shape)) {
            snprintf(err, errlen, "%s: %s tensor %s of this run's network", path, t ? "another shape of" : "no",
                     w->t[i].name);
            goto done;
        }
    }
    for (int i = 0; i < w->count; i++)
        memcpy(bufs[i], rt_st_find(f, w->t[i].name)->data, sizeof(float) * (size_t)op_shape_numel(&w->t[i].shape));
    *epochs_done = rt_st_meta(f, "epochs_done") ? get_i64(&r, "epochs_done") : 0;
    st = CNN_OK;
done:
    rt_st_free(f);
    return st;
}

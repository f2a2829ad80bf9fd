/* Semantic analysis, step 4 (see lang/sema.c): train sections (spec section 7).  Each one
 * names a network; its settings (loss, optimizer, schedule, augment, normalize,
 * clip_grad_norm, batch, epochs) are checked and filled in with the spec's defaults.  Calls
 * in settings (the optimizers, cross_entropy, the schedules, random_crop) have their
 * arguments bound like a layer's, by lang/sema_args.c, against the schemas here. */
#include <stdio.h>
#include <string.h>

#include "lang/sema_int.h"

static const op_argspec sgd_args[] = {
    {"lr", OP_ARG_FLOAT, OP_ARGF_FPOS, NULL},
    {"momentum", OP_ARG_FLOAT, OP_ARGF_NONNEG, "0"},
    {"nesterov", OP_ARG_BOOL, 0, "false"},
    {"weight_decay", OP_ARG_FLOAT, OP_ARGF_NONNEG, "0"},
};

static const op_argspec adam_args[] = {
    {"lr", OP_ARG_FLOAT, OP_ARGF_FPOS, "0.001"},
    {"beta1", OP_ARG_FLOAT, OP_ARGF_UNIT, "0.9"},
    {"beta2", OP_ARG_FLOAT, OP_ARGF_UNIT, "0.999"},
    {"eps", OP_ARG_FLOAT, OP_ARGF_FPOS, "1e-8"},
    {"weight_decay", OP_ARG_FLOAT, OP_ARGF_NONNEG, "0"},
};

/* adamw: adam's arguments, weight decay 0.01 by default (decoupled: PyTorch's AdamW) */
static const op_argspec adamw_args[] = {
    {"lr", OP_ARG_FLOAT, OP_ARGF_FPOS, "0.001"},
    {"beta1", OP_ARG_FLOAT, OP_ARGF_UNIT, "0.9"},
    {"beta2", OP_ARG_FLOAT, OP_ARGF_UNIT, "0.999"},
    {"eps", OP_ARG_FLOAT, OP_ARGF_FPOS, "1e-8"},
    {"weight_decay", OP_ARG_FLOAT, OP_ARGF_NONNEG, "0.01"},
};

static const op_argspec xent_args[] = {
    {"label_smoothing", OP_ARG_FLOAT, OP_ARGF_UNIT, "0"},
};

static const op_argspec step_args[] = {
    {"every", OP_ARG_INT, OP_ARGF_POSITIVE, NULL},
    {"gamma", OP_ARG_FLOAT, OP_ARGF_FPOS, "0.1"},
};

static const op_argspec cosine_args[] = {
    {"warmup", OP_ARG_FLOAT, OP_ARGF_NONNEG, "0"},
};

static const op_argspec crop_args[] = {
    {"pad", OP_ARG_INT, OP_ARGF_NONNEG, NULL},
};

enum { S_LOSS, S_OPTIMIZER, S_SCHEDULE, S_AUGMENT, S_NORMALIZE, S_CLIP, S_BATCH, S_EPOCHS, S_COUNT };
static const char *const train_settings[S_COUNT] = {"loss",      "optimizer",      "schedule", "augment",
                                                    "normalize", "clip_grad_norm", "batch",    "epochs"};

/* Arguments of a setting's calls, for "is an argument of ..." hints on a setting so named. */
static const struct {
    const op_argspec *spec;
    int n;
    const char *example;
} arg_homes[] = {
    {sgd_args, 4, "optimizer = sgd(%s=...)"},
    {adam_args, 5, "optimizer = adam(%s=...)"},
    {xent_args, 1, "loss = cross_entropy(%s=...)"},
    {step_args, 2, "schedule = step(%s=...)"},
    {cosine_args, 1, "schedule = cosine(%s=...)"},
    {crop_args, 1, "augment = random_crop(%s=...)"},
};

lang_train sema_train_defaults(void)
{
    return (lang_train){
        .present = false,
        .loss = LANG_LOSS_CROSS_ENTROPY,
        .optimizer = LANG_OPTIM_SGD,
        .lr = 0.01,
        .momentum = 0,
        .weight_decay = 0,
        .beta1 = 0.9,
        .beta2 = 0.999,
        .eps = 1e-8,
        .nesterov = false,
        .batch = 64,
        .epochs = 1,
        .schedule = LANG_SCHEDULE_CONSTANT,
        .schedule_gamma = 0.1,
    };
}

/* The name a loss or optimizer setting is written as (a name, a string, or a call's name). */
static const char *setting_word(const ast_expr *e)
{
    if (e->kind == AST_NAME || e->kind == AST_STRING)
        return e->u.str;
    if (e->kind == AST_CALL)
        return e->u.call.name;
    return NULL;
}

/* Binds call (or bare name) e's arguments against spec: compile-time values, no names in
 * scope.  False when anything was wrong (reported). */
static bool bind_call(sema *s, const ast_expr *e, const char *callee, const op_argspec *spec, int nspec,
                      op_argval *v, lang_span *vspan)
{
    const ast_arg *args = e->kind == AST_CALL ? e->u.call.args : NULL;
    for (const ast_arg *a = args; a; a = a->next)
        sema_resolve_free_expr(s, a->value);
    scope sc = {0};
    env E = {.s = s, .sc = &sc};
    return sema_bind_spec_args(&E, callee, spec, nspec, args, e->span, v, vspan);
}

/* Where a call's name is (the name itself for a bare name). */
static lang_span word_span(const ast_expr *e)
{
    return e->kind == AST_CALL ? e->u.call.name_span : e->span;
}

static void unknown_word(sema *s, const ast_expr *e, const char *what, const char *w, const char *const *known,
                         int nknown, const char *expected)
{
    suggestion g;
    sema_suggest_init(&g, w);
    for (int i = 0; i < nknown; i++)
        sema_suggest_try(&g, known[i]);
    if (g.best)
        sema_error(s, word_span(e), "unknown %s '%s'%s", what, w, sema_suggest_text(&g));
    else
        sema_error(s, word_span(e), "unknown %s '%s'; expected %s", what, w, expected);
}

static void train_loss(sema *s, const ast_expr *e, lang_train *t)
{
    if (e->kind == AST_ERROR)
        return;
    const char *w = e->kind == AST_NAME || e->kind == AST_CALL ? setting_word(e) : NULL;
    if (e->kind == AST_STRING)
        w = e->u.str;
    if (!w) {
        sema_error(s, e->span, "'loss' must be cross_entropy or mse");
        return;
    }
    if (strcmp(w, "cross_entropy") == 0) {
        op_argval v[1];
        lang_span vspan[1];
        if (e->kind == AST_CALL && !bind_call(s, e, "cross_entropy", xent_args, 1, v, vspan))
            return;
        t->loss = LANG_LOSS_CROSS_ENTROPY;
        t->label_smoothing = e->kind == AST_CALL ? v[0].f : 0.0;
    } else if (strcmp(w, "mse") == 0) {
        op_argval v[1];
        lang_span vspan[1];
        if (e->kind == AST_CALL && !bind_call(s, e, "mse", NULL, 0, v, vspan))
            return;
        t->loss = LANG_LOSS_MSE;
        t->label_smoothing = 0.0;
    } else {
        static const char *const known[] = {"cross_entropy", "mse"};
        unknown_word(s, e, "loss", w, known, 2, "cross_entropy or mse");
    }
}

static void train_optimizer(sema *s, const ast_expr *e, lang_train *t)
{
    if (e->kind == AST_ERROR)
        return;
    const char *w = e->kind == AST_NAME || e->kind == AST_CALL ? setting_word(e) : NULL;
    if (!w) {
        sema_error(s, e->span, "'optimizer' must be sgd(...), adam(...) or adamw(...)");
        return;
    }
    op_argval v[OP_MAX_ARGS];
    lang_span vspan[OP_MAX_ARGS];
    if (strcmp(w, "sgd") == 0) {
        if (!bind_call(s, e, "sgd", sgd_args, 4, v, vspan))
            return;
        t->optimizer = LANG_OPTIM_SGD;
        t->lr = v[0].f;
        t->momentum = v[1].f;
        t->nesterov = v[2].b;
        t->weight_decay = v[3].f;
        if (t->nesterov && !(t->momentum > 0))
            sema_error(s, vspan[2], "sgd: nesterov needs a positive momentum");
    } else if (strcmp(w, "adam") == 0 || strcmp(w, "adamw") == 0) {
        bool decoupled = w[4] == 'w';
        if (!bind_call(s, e, w, decoupled ? adamw_args : adam_args, 5, v, vspan))
            return;
        t->optimizer = decoupled ? LANG_OPTIM_ADAMW : LANG_OPTIM_ADAM;
        t->lr = v[0].f;
        t->beta1 = v[1].f;
        t->beta2 = v[2].f;
        t->eps = v[3].f;
        t->weight_decay = v[4].f;
        t->momentum = 0;
        t->nesterov = false;
    } else {
        static const char *const known[] = {"sgd", "adam", "adamw"};
        unknown_word(s, e, "optimizer", w, known, 3, "sgd, adam or adamw");
    }
}

static void train_schedule(sema *s, const ast_expr *e, lang_train *t)
{
    if (e->kind == AST_ERROR)
        return;
    const char *w = e->kind == AST_NAME || e->kind == AST_CALL ? setting_word(e) : NULL;
    if (!w) {
        sema_error(s, e->span, "'schedule' must be constant, step(every, gamma) or cosine(warmup)");
        return;
    }
    op_argval v[2];
    lang_span vspan[2];
    if (strcmp(w, "constant") == 0) {
        if (e->kind == AST_CALL && !bind_call(s, e, "constant", NULL, 0, v, vspan))
            return;
        t->schedule = LANG_SCHEDULE_CONSTANT;
    } else if (strcmp(w, "step") == 0) {
        if (!bind_call(s, e, "step", step_args, 2, v, vspan))
            return;
        t->schedule = LANG_SCHEDULE_STEP;
        t->schedule_every = v[0].i[0];
        t->schedule_gamma = v[1].f;
    } else if (strcmp(w, "cosine") == 0) {
        if (!bind_call(s, e, "cosine", cosine_args, 1, v, vspan))
            return;
        t->schedule = LANG_SCHEDULE_COSINE;
        t->warmup_epochs = v[0].f;
    } else {
        static const char *const known[] = {"constant", "step", "cosine"};
        unknown_word(s, e, "schedule", w, known, 3, "constant, step or cosine");
    }
}

/* The first input's shape as "x [1, 28, 28]" for messages. */
static const char *input_text(const lang_network *net, char *buf, size_t cap)
{
    char sh[64];
    snprintf(buf, cap, "%s is %s", net->inputs[0].name, op_shape_str(&net->inputs[0].shape, sh, sizeof sh));
    return buf;
}

/* One step of an augment pipeline. */
static void augment_step(sema *s, const ast_expr *e, const lang_network *net, lang_train *t, bool *ok)
{
    if (e->kind == AST_ERROR) {
        *ok = false;
        return;
    }
    const char *w = e->kind == AST_NAME || e->kind == AST_CALL ? setting_word(e) : NULL;
    if (!w) {
        sema_error(s, e->span, "an augment step must be random_crop(pad) or random_flip");
        *ok = false;
        return;
    }
    op_argval v[1];
    lang_span vspan[1];
    lang_augment kind;
    int64_t pad = 0;
    if (strcmp(w, "random_crop") == 0) {
        if (!bind_call(s, e, "random_crop", crop_args, 1, v, vspan)) {
            *ok = false;
            return;
        }
        kind = LANG_AUGMENT_RANDOM_CROP;
        pad = v[0].i[0];
    } else if (strcmp(w, "random_flip") == 0) {
        if (e->kind == AST_CALL && !bind_call(s, e, "random_flip", NULL, 0, v, vspan)) {
            *ok = false;
            return;
        }
        kind = LANG_AUGMENT_RANDOM_FLIP;
    } else {
        static const char *const known[] = {"random_crop", "random_flip"};
        unknown_word(s, e, "augment step", w, known, 2, "random_crop or random_flip");
        *ok = false;
        return;
    }
    if (net->ninputs >= 1 && net->inputs[0].shape.rank != 3) {
        char in[128];
        sema_error(s, word_span(e), "%s needs an image input [C, H, W]; %s", w, input_text(net, in, sizeof in));
        *ok = false;
        return;
    }
    if (t->naugment == LANG_MAX_AUGMENT) {
        sema_error(s, e->span, "'augment' has more than %d steps", LANG_MAX_AUGMENT);
        *ok = false;
        return;
    }
    t->augment[t->naugment].kind = kind;
    t->augment[t->naugment].pad = pad;
    t->naugment++;
}

/* a -> b -> c parses as ((a -> b) -> c): the steps in order, left to right. */
static void augment_pipeline(sema *s, const ast_expr *e, const lang_network *net, lang_train *t, bool *ok)
{
    if (e->kind == AST_BINARY && e->u.bin.op == AST_OP_ARROW) {
        augment_pipeline(s, e->u.bin.lhs, net, t, ok);
        augment_pipeline(s, e->u.bin.rhs, net, t, ok);
        return;
    }
    augment_step(s, e, net, t, ok);
}

static void train_augment(sema *s, const ast_expr *e, const lang_network *net, lang_train *t)
{
    lang_train u = *t;
    u.naugment = 0;
    bool ok = true;
    augment_pipeline(s, e, net, &u, &ok);
    if (!ok)
        return;
    t->naugment = u.naugment;
    memcpy(t->augment, u.augment, sizeof t->augment);
}

/* A number of a normalize setting: any compile-time int or float. */
static bool normalize_number(sema *s, const ast_expr *e, double *out)
{
    sema_resolve_free_expr(s, e);
    scope sc = {0};
    env E = {.s = s, .sc = &sc};
    value v = sema_eval(&E, e);
    char got[128];
    if (v.t == V_ERROR)
        return false;
    if (v.t != V_INT && v.t != V_FLOAT) {
        sema_error(s, v.span, "'normalize' takes numbers, got %s", sema_describe(&v, got, sizeof got));
        return false;
    }
    *out = v.t == V_INT ? (double)v.i : v.f;
    return true;
}

/* One side of normalize (the means or the stds): a number, or a tuple of them.  Returns how
 * many (0 after an error). */
static int normalize_side(sema *s, const ast_expr *e, const char *what, double *vals, bool *ok)
{
    if (e->kind == AST_ERROR) {
        *ok = false;
        return 0;
    }
    if (e->kind != AST_TUPLE)
        return normalize_number(s, e, &vals[0]) ? 1 : (*ok = false, 0);
    if (e->u.tuple.n > LANG_MAX_NORMALIZE) {
        sema_error(s, e->span, "'normalize' has %d %s; at most %d (one per channel)", e->u.tuple.n, what,
                   LANG_MAX_NORMALIZE);
        *ok = false;
        return 0;
    }
    int n = 0;
    for (const ast_expr *it = e->u.tuple.items; it; it = it->next, n++) {
        if (it->kind == AST_TUPLE) {
            sema_error(s, it->span, "'normalize' %s must be numbers, got a tuple", what);
            *ok = false;
        } else if (it->kind == AST_ERROR || !normalize_number(s, it, &vals[n])) {
            *ok = false;
        }
    }
    return n;
}

static void train_normalize(sema *s, const ast_expr *e, const lang_network *net, lang_train *t)
{
    if (e->kind == AST_ERROR)
        return;
    if (e->kind != AST_TUPLE || e->u.tuple.n != 2) {
        sema_error(s, e->span, "'normalize' must be (mean, std) or ((m1, m2, ...), (s1, s2, ...))");
        return;
    }
    const ast_expr *me = e->u.tuple.items, *se = me->next;
    double mean[LANG_MAX_NORMALIZE], std[LANG_MAX_NORMALIZE];
    bool ok = true;
    int nm = normalize_side(s, me, "means", mean, &ok);
    int ns = normalize_side(s, se, "stds", std, &ok);
    if (!ok)
        return;
    if ((me->kind == AST_TUPLE) != (se->kind == AST_TUPLE) || nm != ns) {
        sema_error(s, e->span, "'normalize' has %d mean%s and %d std%s; give as many of each", nm, nm == 1 ? "" : "s",
                   ns, ns == 1 ? "" : "s");
        return;
    }
    int k = 0;
    for (const ast_expr *it = se->kind == AST_TUPLE ? se->u.tuple.items : se; k < ns; k++) {
        if (!(std[k] > 0)) {
            sema_error(s, it->span, "'normalize': std must be a positive number, got %g", std[k]);
            ok = false;
        }
        if (se->kind == AST_TUPLE)
            it = it->next;
    }
    if (!ok)
        return;
    if (me->kind == AST_TUPLE && net->ninputs >= 1) {
        const op_shape *sh = &net->inputs[0].shape;
        char in[128];
        if (sh->rank < 2)
            sema_error(s, e->span, "'normalize' has %d values per channel, but the input has no channels; %s", nm,
                       input_text(net, in, sizeof in));
        else if (sh->d[0] != nm)
            sema_error(s, e->span, "'normalize' has %d values per channel, but the input has %lld channel%s; %s", nm,
                       (long long)sh->d[0], sh->d[0] == 1 ? "" : "s", input_text(net, in, sizeof in));
        if (sh->rank < 2 || sh->d[0] != nm)
            return;
    }
    t->nnormalize = nm;
    for (int i = 0; i < nm; i++)
        t->mean[i] = mean[i], t->std[i] = std[i];
}

static void train_clip(sema *s, const ast_expr *e, lang_train *t)
{
    sema_resolve_free_expr(s, e);
    scope sc = {0};
    env E = {.s = s, .sc = &sc};
    value v = sema_eval(&E, e);
    char got[128];
    if (v.t == V_ERROR)
        return;
    double x = v.t == V_INT ? (double)v.i : v.t == V_FLOAT ? v.f : -1.0;
    if ((v.t != V_INT && v.t != V_FLOAT) || !(x > 0)) {
        sema_error(s, v.span, "'clip_grad_norm' must be a positive number, got %s", sema_describe(&v, got, sizeof got));
        return;
    }
    t->clip_grad_norm = x;
}

static void train_count(sema *s, const char *setting, const ast_expr *e, int64_t *out)
{
    sema_resolve_free_expr(s, e);
    scope sc = {0};
    env E = {.s = s, .sc = &sc};
    value v = sema_eval(&E, e);
    char got[128];
    if (v.t == V_ERROR)
        return;
    if (v.t != V_INT || v.i <= 0) {
        sema_error(s, v.span, "'%s' must be a positive integer, got %s", setting, sema_describe(&v, got, sizeof got));
        return;
    }
    *out = v.i;
}

/* A setting name that is no setting: an argument of one of the settings' calls, or a typo. */
static void unknown_setting(sema *s, const ast_setting *st)
{
    for (size_t h = 0; h < sizeof arg_homes / sizeof arg_homes[0]; h++)
        if (sema_find_spec(arg_homes[h].spec, arg_homes[h].n, st->name) >= 0) {
            char example[96];
            snprintf(example, sizeof example, arg_homes[h].example, st->name);
            sema_error(s, st->name_span, "unknown setting '%s' in train section; '%s' is an argument of the %.*s, as in %s",
                       st->name, st->name, (int)strcspn(arg_homes[h].example, " "), arg_homes[h].example, example);
            return;
        }
    suggestion g;
    sema_suggest_init(&g, st->name);
    for (int j = 0; j < S_COUNT; j++)
        sema_suggest_try(&g, train_settings[j]);
    sema_error(s, st->name_span, "unknown setting '%s' in train section%s", st->name, sema_suggest_text(&g));
}

void sema_check_train(sema *s, const ast_item *it, lang_program *prog)
{
    lang_network *net = NULL;
    for (int i = 0; i < prog->nnetworks; i++)
        if (strcmp(prog->networks[i].name, it->name) == 0)
            net = &prog->networks[i];
    if (!net) {
        suggestion g;
        sema_suggest_init(&g, it->name);
        for (int i = 0; i < prog->nnetworks; i++)
            sema_suggest_try(&g, prog->networks[i].name);
        sema_error(s, it->name_span, "train section for unknown network '%s'%s", it->name, sema_suggest_text(&g));
        return;
    }
    if (net->train.present) {
        sema_error(s, it->name_span, "network '%s' already has a train section", it->name);
        return;
    }
    lang_train t = sema_train_defaults();
    t.present = true;
    bool seen[S_COUNT] = {false};
    for (const ast_setting *st = it->settings; st; st = st->next) {
        int k = -1;
        for (int j = 0; j < S_COUNT; j++)
            if (strcmp(st->name, train_settings[j]) == 0)
                k = j;
        if (k < 0) {
            unknown_setting(s, st);
            continue;
        }
        if (seen[k]) {
            sema_error(s, st->name_span, "setting '%s' is given twice", st->name);
            continue;
        }
        seen[k] = true;
        switch (k) {
        case S_LOSS: train_loss(s, st->value, &t); break;
        case S_OPTIMIZER: train_optimizer(s, st->value, &t); break;
        case S_SCHEDULE: train_schedule(s, st->value, &t); break;
        case S_AUGMENT: train_augment(s, st->value, net, &t); break;
        case S_NORMALIZE: train_normalize(s, st->value, net, &t); break;
        case S_CLIP: train_clip(s, st->value, &t); break;
        case S_BATCH: train_count(s, "batch", st->value, &t.batch); break;
        case S_EPOCHS: train_count(s, "epochs", st->value, &t.epochs); break;
        }
    }
    net->train = t;
}

/* Semantic analysis, step 4 (see lang/sema.c): train sections (spec section 7).  Each one
 * names a network; its settings (loss, optimizer with its arguments, batch, epochs) are
 * checked and filled in with the spec's defaults.  The optimizers' arguments are bound like
 * a layer's, by lang/sema_args.c, against the schemas here. */
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

static const char *const train_settings[] = {"loss", "optimizer", "batch", "epochs"};

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

static void train_loss(sema *s, const ast_expr *e, lang_train *t)
{
    const char *w = e->kind == AST_CALL && e->u.call.nargs == 0 ? e->u.call.name : setting_word(e);
    if (e->kind == AST_ERROR)
        return;
    if (!w || (e->kind == AST_CALL && e->u.call.nargs > 0)) {
        sema_error(s, e->span, "'loss' must be cross_entropy or mse");
        return;
    }
    if (strcmp(w, "cross_entropy") == 0) {
        t->loss = LANG_LOSS_CROSS_ENTROPY;
    } else if (strcmp(w, "mse") == 0) {
        t->loss = LANG_LOSS_MSE;
    } else {
        suggestion g;
        sema_suggest_init(&g, w);
        sema_suggest_try(&g, "cross_entropy");
        sema_suggest_try(&g, "mse");
        sema_error(s, e->span, "unknown loss '%s'%s", w, g.best ? sema_suggest_text(&g) : "; expected cross_entropy or mse");
    }
}

static void train_optimizer(sema *s, const ast_expr *e, lang_train *t)
{
    if (e->kind == AST_ERROR)
        return;
    const char *w = e->kind == AST_NAME || e->kind == AST_CALL ? setting_word(e) : NULL;
    if (!w) {
        sema_error(s, e->span, "'optimizer' must be sgd(...) or adam(...)");
        return;
    }
    const ast_arg *args = e->kind == AST_CALL ? e->u.call.args : NULL;
    bool sgd = strcmp(w, "sgd") == 0;
    if (!sgd && strcmp(w, "adam") != 0) {
        suggestion g;
        sema_suggest_init(&g, w);
        sema_suggest_try(&g, "sgd");
        sema_suggest_try(&g, "adam");
        sema_error(s, e->kind == AST_CALL ? e->u.call.name_span : e->span, "unknown optimizer '%s'%s", w,
              g.best ? sema_suggest_text(&g) : "; expected sgd or adam");
        return;
    }
    /* the arguments: compile-time values, no names in scope */
    for (const ast_arg *a = args; a; a = a->next)
        sema_resolve_free_expr(s, a->value);
    scope sc = {0};
    env E = {.s = s, .sc = &sc};
    op_argval v[OP_MAX_ARGS];
    lang_span vspan[OP_MAX_ARGS];
    if (sgd) {
        if (!sema_bind_spec_args(&E, "sgd", sgd_args, 4, args, e->span, v, vspan))
            return;
        t->optimizer = LANG_OPTIM_SGD;
        t->lr = v[0].f;
        t->momentum = v[1].f;
        t->nesterov = v[2].b;
        t->weight_decay = v[3].f;
        if (t->nesterov && !(t->momentum > 0))
            sema_error(s, vspan[2], "sgd: nesterov needs a positive momentum");
    } else {
        if (!sema_bind_spec_args(&E, "adam", adam_args, 5, args, e->span, v, vspan))
            return;
        t->optimizer = LANG_OPTIM_ADAM;
        t->lr = v[0].f;
        t->beta1 = v[1].f;
        t->beta2 = v[2].f;
        t->eps = v[3].f;
        t->weight_decay = v[4].f;
        t->momentum = 0;
        t->nesterov = false;
    }
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
    bool seen[4] = {false};
    for (const ast_setting *st = it->settings; st; st = st->next) {
        int k = -1;
        for (int j = 0; j < 4; j++)
            if (strcmp(st->name, train_settings[j]) == 0)
                k = j;
        if (k < 0) {
            if (sema_find_spec(sgd_args, 4, st->name) >= 0 || sema_find_spec(adam_args, 5, st->name) >= 0) {
                sema_error(s, st->name_span, "unknown setting '%s' in train section; '%s' is an argument of the optimizer, as in optimizer = sgd(%s=...)",
                      st->name, st->name, st->name);
                continue;
            }
            suggestion g;
            sema_suggest_init(&g, st->name);
            for (int j = 0; j < 4; j++)
                sema_suggest_try(&g, train_settings[j]);
            sema_error(s, st->name_span, "unknown setting '%s' in train section%s", st->name, sema_suggest_text(&g));
            continue;
        }
        if (seen[k]) {
            sema_error(s, st->name_span, "setting '%s' is given twice", st->name);
            continue;
        }
        seen[k] = true;
        switch (k) {
        case 0: train_loss(s, st->value, &t); break;
        case 1: train_optimizer(s, st->value, &t); break;
        case 2: train_count(s, "batch", st->value, &t.batch); break;
        case 3: train_count(s, "epochs", st->value, &t.epochs); break;
        }
    }
    net->train = t;
}

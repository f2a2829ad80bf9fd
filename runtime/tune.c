/* Tuning of backend auto (cnn_options.tune, --tune): which backend runs each node, decided by
 * measurement instead of the fixed order (oneDNN, native, reference).
 *
 * When a session is created with backend auto and tuning on, before its own plan is made:
 *  1. the plan is built once per candidate backend (oneDNN and native; the reference too when
 *     fewer than two exist), each as a uniform plan ("onednn": oneDNN, the reference where it has
 *     no kernel), and run on private weights (the session's are never touched) with the real
 *     batch, threads, passes and mode, the candidates in turn (in blocks of MEASURE_BLOCK runs)
 *     so that the machine's load falls on all alike; after warm-up runs every step is timed
 *     over several runs (runtime/profile.c) and each step's lower quartile kept (other work on
 *     a shared machine only adds time);
 *  2. a node's cost on a candidate is its step's time plus the times of the reorders the
 *     layout pass put in for it (a reorder counts towards the first node that reads its output,
 *     or, for a graph output, towards the node that made it); nodes are matched across plans by
 *     name and op (fusion does not depend on the backend, so every plan has the same nodes);
 *  3. each node takes the candidate where it costs least (the backend it ran on there), when at
 *     least 5% less than on the fastest uniform plan's backend, which it keeps otherwise;
 *  4. when that mix differs from the fastest uniform plan, both are built and timed end to end
 *     in pairs of runs (at least 9), and the mix is kept when the median ratio of a pair's times says it is at
 *     least 1% faster, twice (two races of fresh sessions), so the reorders a mix implies and whatever the
 *     per-node times miss are paid for; exhaustive then tries, one at a time, moving each
 *     contested node (its second-best cost within 50% of its best) to its second choice, kept
 *     when the whole plan gets faster;
 *  4b. when the network has 3x3 stride-1 convolutions, their algorithm is left to measurement
 *     (cnn_options.conv_algo auto, the default under tuning), each backend with Winograd
 *     convolutions wherever it has them is one more candidate ("onednn+winograd",
 *     "native+winograd"), and a node's choice is a backend and an algorithm.  After the races
 *     above, each convolution of the plan kept takes the algorithm its own costs on its backend
 *     favour (Winograd when 5% cheaper than direct), and that plan races the one kept, twice (a
 *     mix of backends can lose to its reorders while the convolutions alone would still gain);
 *     a plan keeping any Winograd
 *     node then races the same plan with those nodes direct, twice, and keeps Winograd only
 *     when faster in both (at small batches on several threads its per-node lower quartiles can
 *     be fast while its runs are slow);
 *  5. the choices go to the cache (a JSON file): one entry per node, keyed by cnnc's version and
 *     build (cnn_build_id, the commit built: its kernels; writing drops other builds' entries of
 *     the same version), the CPU's model, its ISA, the thread count and the node's signature (op, attributes, phase, batch, passes,
 *     the convolution algorithm asked for, the shapes and dtypes it reads and writes), holding the backend and algorithm kept and the costs
 *     measured.  A session whose every node is in the cache measures nothing.  A cache that
 *     cannot be read or parsed is a warning (cnn_tune_info.note) and is rebuilt; it is written
 *     atomically (runtime/fileio.h).
 * The plan is then made with these choices as picks (compiler/pass_backend.c), and the layout
 * pass puts in the reorders they imply.
 *
 * Tuning applies to fp32 under auto; with bf16 or int8, or data-parallel training (a collective
 * step cannot be run by one replica alone), the fixed order is used and the note says why.
 *
 * For tests, CNN_TUNE_FAKE=BACKEND replaces the clock: a node costs 1 where it runs on BACKEND,
 * 2 elsewhere, reorders nothing, and a plan the sum of its nodes (BACKEND is then a candidate
 * even when it is the reference). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "compiler/passes.h"
#include "ops/mem.h"
#include "ops/registry.h"
#include "runtime/dist.h"
#include "runtime/fileio.h"
#include "runtime/rt.h"

enum { MAX_CAND = 5, MAX_FLIPS = 8 };
#define CACHE_VERSION 2
/* A change of plan is kept only when at least 1% faster end to end: within the noise, the
 * plan with fewer backends (and reorders) stays. */
#define MIX_MARGIN 0.99
#define NODE_MARGIN 0.95
/* Runs of one candidate in a row while measuring.  A plan runs alone in use, so its steps are
 * timed warm: taken run by run in turn, each plan's run found the caches full of another's
 * data, which cost oneDNN's Winograd convolutions (whose transformed weights are four times
 * the direct ones) up to a quarter more than alone (vgg_small, batch 1, 2 threads: 191 against
 * 156 us for conv2d_2), and tuning kept direct convolutions whose runs took 0.83 ms, not 0.73.  A
 * block's first run, still cold, falls among the slower quarter of a step's times. */
#define MEASURE_BLOCK 4

/* The picks of the next plan made on this thread (a plan being timed end to end), or none. */
static _Thread_local const plan_pick *forced;
static _Thread_local int nforced;
static _Thread_local bool forcing;

typedef struct tnode {
    plan_pick pick;            /* name, op and the backend chosen */
    char key[1024];            /* the cache key */
    double cost[MAX_CAND];     /* per candidate, seconds per run (INFINITY: not in that plan) */
    op_backend ran[MAX_CAND];  /* the backend it ran on in the candidate's plan */
    plan_algo_pick algo[MAX_CAND]; /* and its convolution algorithm there (ANY: not a convolution) */
} tnode;

typedef struct tuner {
    cnn_model *m;
    cnn_options opt;           /* the session's, tuning off */
    int64_t batch;
    bool training;
    cnn_train_config tc;       /* the session's, with a tiny learning rate */
    int nthreads;
    cnn_tune level;
    op_backend fake;           /* CNN_TUNE_FAKE, or OP_BACKEND_COUNT */
    cnn_weights *w;            /* private */
    float *labels;
    op_backend cand[MAX_CAND];
    plan_algo_pick cand_algo[MAX_CAND]; /* WINOGRAD: the backend with Winograd wherever it has it */
    int ncand;
    bool has_3x3;              /* the network has a 3x3 stride-1 2-D convolution */
    double total[MAX_CAND];    /* each uniform plan's run (lower quartile) */
    tnode *nodes;
    int nnodes;
    rt_tune_state *ts;
    char *err;
    size_t errlen;
} tuner;

/* The lower quartile of n times: other work on the machine only ever adds time, so the low
 * end of the runs says more of the plan than the middle (sorts v). */
static double quartile(double *v, int n)
{
    if (n <= 0)
        return 0;
    qsort(v, (size_t)n, sizeof *v, rt_cmp_double);
    return v[(n - 1) / 4];
}

static void note(rt_tune_state *ts, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(rt_tune_state *ts, const char *fmt, ...)
{
    size_t len = strlen(ts->note);
    if (len + 3 >= sizeof ts->note)
        return;
    if (len)
        len += (size_t)snprintf(ts->note + len, sizeof ts->note - len, "; ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ts->note + len, sizeof ts->note - len, fmt, ap);
    va_end(ap);
}

static cnn_backend public_backend(op_backend b)
{
    return b == OP_BACKEND_ONEDNN ? CNN_BACKEND_ONEDNN : b == OP_BACKEND_NATIVE ? CNN_BACKEND_NATIVE : CNN_BACKEND_REF;
}

/* "onednn", "onednn+winograd", "native", "native+winograd", "ref" */
static const char *cand_name(const tuner *t, int c)
{
    if (t->cand_algo[c] == PLAN_ALGO_WINOGRAD)
        return t->cand[c] == OP_BACKEND_NATIVE ? "native+winograd" : "onednn+winograd";
    return op_backend_name(t->cand[c]);
}

static op_backend backend_named(const char *name)
{
    for (int b = 0; b < OP_BACKEND_COUNT && name; b++)
        if (strcmp(name, op_backend_name((op_backend)b)) == 0)
            return (op_backend)b;
    return OP_BACKEND_COUNT;
}

/* ---- the cache ---- */

/* The cache file the options name, or "" for none. */
static void cache_path(const cnn_options *o, char *buf, size_t n)
{
    buf[0] = '\0';
    if (o->tune_cache) {
        if (strcmp(o->tune_cache, "none") != 0)
            snprintf(buf, n, "%s", o->tune_cache);
        return;
    }
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && xdg[0] == '/')
        snprintf(buf, n, "%s/cnnc/tune.json", xdg);
    else if (home && home[0])
        snprintf(buf, n, "%s/.cache/cnnc/tune.json", home);
}

/* The cache's entries object (a fresh one when the file is absent; a warning when unreadable). */
static cJSON *cache_load(const char *path, rt_tune_state *ts)
{
    cJSON *root = NULL;
    struct stat sb;
    if (path[0] && stat(path, &sb) != 0) {
        if (errno != ENOENT) /* absent: the first tuning */
            note(ts, "the tuning cache %s was ignored: %s", path, strerror(errno));
    } else if (path[0] && !S_ISREG(sb.st_mode)) { /* never opened: a FIFO would block */
        note(ts, "the tuning cache %s was ignored: not a regular file", path);
    } else if (path[0]) {
        uint64_t size = 0;
        char msg[256];
        FILE *f = rt_open_regular(path, &size, msg, sizeof msg);
        if (!f) {
            note(ts, "the tuning cache %s was ignored: %s", path, msg);
        } else {
            char *text = size < (64u << 20) ? malloc((size_t)size + 1) : NULL;
            if (text && fread(text, 1, (size_t)size, f) == (size_t)size) {
                text[size] = '\0';
                root = cJSON_Parse(text);
                cJSON *ver = root ? cJSON_GetObjectItemCaseSensitive(root, "version") : NULL;
                if (!root || !cJSON_IsObject(root) || !cJSON_IsNumber(ver) || ver->valueint != CACHE_VERSION ||
                    !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "entries"))) {
                    note(ts, "the tuning cache %s was ignored: not a cnnc tuning cache (version %d)", path,
                         CACHE_VERSION);
                    cJSON_Delete(root);
                    root = NULL;
                }
            } else {
                note(ts, "the tuning cache %s was ignored: cannot read it", path);
            }
            free(text);
            fclose(f);
        }
    }
    if (!root) {
        root = cJSON_CreateObject();
        if (root && (!cJSON_AddNumberToObject(root, "version", CACHE_VERSION) ||
                     !cJSON_AddObjectToObject(root, "entries"))) {
            cJSON_Delete(root);
            root = NULL;
        }
    }
    return root;
}

static void cache_save(const char *path, cJSON *root, rt_tune_state *ts)
{
    if (!path[0] || !root)
        return;
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) { /* a FIFO would block, a device take it */
        note(ts, "the tuning cache %s was not written: not a regular file", path);
        return;
    }
    char *text = cJSON_Print(root);
    if (!text) {
        note(ts, "the tuning cache %s was not written: out of memory", path);
        return;
    }
    char dir[1024], failed[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        rt_mkdir_p(dir, failed, sizeof failed); /* on failure the open below says why */
    }
    rt_outfile o;
    char msg[512];
    if (rt_out_open(&o, path) != 0) {
        note(ts, "the tuning cache %s was not written: %s", path, strerror(errno));
    } else if (fputs(text, o.fp) == EOF || fputc('\n', o.fp) == EOF) {
        rt_out_abort(&o);
        note(ts, "the tuning cache %s was not written: write error", path);
    } else if (rt_out_commit(&o, msg, sizeof msg) != 0) {
        note(ts, "the tuning cache %s was not written: %s", path, msg);
    }
    cJSON_free(text);
}

/* ---- nodes and their signatures ---- */

static void append(char *buf, size_t n, size_t *o, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t n, size_t *o, const char *fmt, ...)
{
    if (*o >= n)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *o, n - *o, fmt, ap);
    va_end(ap);
    *o = k < 0 ? n : *o + (size_t)k;
}

static void value_sig(const ir_graph *g, int v, char *buf, size_t n, size_t *o)
{
    static const char *const dt[] = {"f32", "u8", "s8", "bf16"};
    const ir_value *val = &g->vals[v];
    char sh[96];
    op_shape_format(&val->shape, "x", sh, sizeof sh);
    unsigned d = (unsigned)val->dtype;
    append(buf, n, o, "%s%s%s,", val->batched ? "Nx" : "", sh, d < 4 ? dt[d] : "?");
}

/* The build a cache entry's key names (its first field): "cnnc VERSION+BUILD", or "cnnc VERSION"
 * outside a git checkout. */
static void build_name(char *buf, size_t n)
{
    const char *id = cnn_build_id();
    snprintf(buf, n, "cnnc %s%s%s", cnn_version(), id[0] ? "+" : "", id);
}

/* cnnc version and build | CPU model | ISA | threads | op | attributes | phase | batch | passes |
 * convolution algorithm asked for | inputs | outputs */
static void node_key(const tuner *t, const ir_graph *g, const ir_node *nd, char *buf, size_t n)
{
    const char *phase = rt_node_phase(g, nd);
    char attrs[160] = "";
    const op_def *d = op_def_get(nd->op);
    if (d && d->describe && strcmp(phase, "update") != 0) /* an update's attributes hold the learning rate */
        d->describe(&nd->attrs, attrs, sizeof attrs);
    size_t o = 0;
    static const char *const algos[] = {"default", "direct", "winograd", "auto"};
    unsigned ca = (unsigned)t->opt.conv_algo;
    char build[128];
    build_name(build, sizeof build);
    append(buf, n, &o, "%s|%s|%s|threads=%d|%s|%s|%s|batch=%" PRId64 "|passes=%u|conv=%s|in=", build,
           cnn_cpu_model(), cnn_cpu_isa(), t->nthreads, op_name(nd->op), attrs, phase, t->batch, rt_pass_bits(&t->opt),
           ca < 4 ? algos[ca] : "?");
    for (int k = 0; k < nd->nin; k++)
        value_sig(g, nd->in[k], buf, n, &o);
    append(buf, n, &o, "|out=");
    for (int k = 0; k < nd->nout; k++)
        value_sig(g, nd->out[k], buf, n, &o);
}

static int find_node(const tuner *t, const ir_node *nd)
{
    for (int i = 0; i < t->nnodes; i++)
        if (t->nodes[i].pick.op == nd->op && strcmp(t->nodes[i].pick.name, nd->name) == 0)
            return i;
    return -1;
}

/* The nodes to choose for: the live nodes of the fixed-order plan but its reorders. */
static cnn_status list_nodes(tuner *t)
{
    cnn_status st;
    cnn_options o = t->opt; /* direct: a node's key (its attributes) does not depend on the algorithm */
    o.conv_algo = CNN_CONV_ALGO_DIRECT;
    ir_plan *p = rt_model_plan(t->m, &o, t->batch, t->training, t->training ? &t->tc : NULL, &st, t->err,
                               t->errlen);
    if (!p)
        return st;
    t->nodes = cnn_mem_calloc((size_t)p->nsteps + 1, sizeof *t->nodes);
    if (!t->nodes) {
        plan_destroy(p);
        return rt_fail(t->err, CNN_ERR_NOMEM, "out of memory");
    }
    const ir_graph *g = p->graph;
    for (int s = 0; s < p->nsteps; s++) {
        const ir_node *nd = &g->nodes[p->steps[s].node];
        if (nd->op == OP_REORDER || find_node(t, nd) >= 0)
            continue;
        tnode *tn = &t->nodes[t->nnodes++];
        memcpy(tn->pick.name, nd->name, sizeof tn->pick.name);
        tn->pick.op = nd->op;
        tn->pick.backend = p->steps[s].backend;
        node_key(t, g, nd, tn->key, sizeof tn->key);
        const op_conv_attrs *ca = &nd->attrs.conv;
        if (nd->op == OP_CONV2D && ca->kernel[0] == 3 && ca->kernel[1] == 3 && ca->stride[0] == 1 && ca->stride[1] == 1)
            t->has_3x3 = true;
        for (int c = 0; c < MAX_CAND; c++)
            tn->cost[c] = INFINITY;
    }
    plan_destroy(p);
    return CNN_OK;
}

/* ---- measuring ---- */

static void fill_inputs(const tuner *t, cnn_session *s)
{
    for (int i = 0; i < cnn_model_input_count(t->m); i++) {
        float *x = cnn_session_input(s, i);
        int64_t dims[4];
        int rank = cnn_model_input_shape(t->m, i, dims);
        int64_t n = t->batch;
        for (int k = 0; k < rank; k++)
            n *= dims[k];
        for (int64_t j = 0; x && j < n; j++)
            x[j] = (float)((j * 7919) % 1000) / 1000.0f;
    }
}

static cnn_status run_once(const tuner *t, cnn_session *s, double *secs)
{
    double t0 = rt_seconds();
    cnn_status st = t->training ? cnn_session_train_step(s, t->labels, true, NULL, NULL) : cnn_session_run(s);
    *secs = rt_seconds() - t0;
    return st;
}

/* A session of candidate c (a uniform plan), or of the picks under auto when picks is not NULL. */
static cnn_status make(tuner *t, int c, const plan_pick *picks, cnn_session **s)
{
    cnn_options o = t->opt;
    o.backend = picks ? CNN_BACKEND_AUTO : public_backend(t->cand[c]);
    if (!picks && t->opt.conv_algo == CNN_CONV_ALGO_AUTO) /* a uniform plan: one algorithm */
        o.conv_algo = t->cand_algo[c] == PLAN_ALGO_WINOGRAD ? CNN_CONV_ALGO_WINOGRAD : CNN_CONV_ALGO_DIRECT;
    forced = picks;
    nforced = picks ? t->nnodes : 0;
    forcing = picks != NULL;
    cnn_status st = cnn_session_create(s, t->m, t->w, &o, t->batch, t->training ? CNN_MODE_TRAIN : CNN_MODE_INFER,
                                       t->training ? &t->tc : NULL);
    forcing = false;
    forced = NULL;
    if (st != CNN_OK) {
        rt_fail(t->err, st, "%s", cnn_session_errmsg(*s));
        cnn_session_destroy(*s);
        *s = NULL;
        return st;
    }
    /* the plans are compared as planned: a session's per-run choice of one thread (threads.c)
     * starts on one thread and tries the planned counts later, which two sessions raced in turn
     * would do at different runs */
    (*s)->thr.adaptive = false;
    fill_inputs(t, *s);
    return CNN_OK;
}

/* Runs the session twice; *fastest: the faster run's seconds. */
static cnn_status warm_up(const tuner *t, cnn_session *s, double *fastest)
{
    double secs;
    *fastest = INFINITY;
    for (int r = 0; r < 2; r++) {
        cnn_status st = run_once(t, s, &secs);
        if (st != CNN_OK)
            return st;
        if (secs < *fastest)
            *fastest = secs;
    }
    return CNN_OK;
}

/* How many rounds of runs lasting `round` seconds fit in the level's budget. */
static int rounds_for(const tuner *t, double round, int lo, int hi)
{
    double budget = t->level == CNN_TUNE_EXHAUSTIVE ? 1.0 : 0.25;
    double n = round > 0 ? budget / round : hi;
    return n < lo ? lo : n > hi ? hi : (int)n;
}

/* The step a reorder at step r serves: the first later non-reorder step reading its output, or
 * (a graph output's reorder) the step that made its input; -1 when neither. */
static int reorder_target(const ir_plan *p, int r)
{
    const ir_graph *g = p->graph;
    const ir_node *rn = &g->nodes[p->steps[r].node];
    for (int s = r + 1; s < p->nsteps; s++) {
        const ir_node *nd = &g->nodes[p->steps[s].node];
        for (int k = 0; k < nd->nin; k++)
            if (nd->in[k] == rn->out[0])
                return nd->op == OP_REORDER ? reorder_target(p, s) : s;
    }
    int prod = g->vals[rn->in[0]].producer;
    for (int s = r - 1; s >= 0 && prod >= 0; s--)
        if (p->steps[s].node == prod)
            return g->nodes[prod].op == OP_REORDER ? reorder_target(p, s) : s;
    return -1;
}

/* Records the costs of candidate c's nodes from its steps' times t_step (seconds). */
static cnn_status record(tuner *t, int c, const cnn_session *s, const double *t_step)
{
    const ir_plan *p = s->plan;
    int n = p->nsteps;
    int *at = cnn_mem_calloc((size_t)n + 1, sizeof(int));
    if (!at)
        return rt_fail(t->err, CNN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        const ir_node *nd = &p->graph->nodes[p->steps[i].node];
        at[i] = nd->op == OP_REORDER ? -1 : find_node(t, nd);
    }
    for (int i = 0; i < n; i++) {
        int who = at[i];
        if (who < 0) {
            int target = reorder_target(p, i);
            who = target >= 0 ? at[target] : -1;
        }
        if (who < 0)
            continue;
        tnode *tn = &t->nodes[who];
        if (!isfinite(tn->cost[c]))
            tn->cost[c] = 0;
        tn->cost[c] += t_step[i];
        if (at[i] >= 0) {
            const ir_node *nd = &p->graph->nodes[p->steps[i].node];
            tn->ran[c] = p->steps[i].backend;
            tn->algo[c] = pass_conv_algo_pick(nd);
        }
    }
    cnn_mem_free(at);
    return CNN_OK;
}

/* Builds every candidate's uniform plan, runs them in turn (interleaved, so that the machine's
 * load falls on all alike) with every step timed, and records every node's cost on each. */
static cnn_status measure(tuner *t)
{
    cnn_session *s[MAX_CAND] = {NULL};
    double *runs_s[MAX_CAND] = {NULL}, *tmp = NULL, *t_step = NULL;
    cnn_status st = CNN_OK;
    int maxsteps = 0;
    for (int c = 0; c < t->ncand && st == CNN_OK; c++)
        if ((st = make(t, c, NULL, &s[c])) == CNN_OK && s[c]->plan->nsteps > maxsteps)
            maxsteps = s[c]->plan->nsteps;
    if (st == CNN_OK && !(t_step = cnn_mem_calloc((size_t)maxsteps + 1, sizeof(double))))
        st = rt_fail(t->err, CNN_ERR_NOMEM, "out of memory");
    if (st == CNN_OK && t->fake != OP_BACKEND_COUNT) {
        for (int c = 0; c < t->ncand && st == CNN_OK; c++) {
            const ir_plan *p = s[c]->plan;
            t->total[c] = 0;
            for (int i = 0; i < p->nsteps; i++) {
                bool reorder = p->graph->nodes[p->steps[i].node].op == OP_REORDER;
                t_step[i] = reorder ? 0.0 : p->steps[i].backend == t->fake ? 1.0 : 2.0;
                t->total[c] += t_step[i];
            }
            st = record(t, c, s[c], t_step);
        }
        goto done;
    }
    double round = 0;
    for (int c = 0; c < t->ncand && st == CNN_OK; c++) {
        double fastest;
        if ((st = warm_up(t, s[c], &fastest)) == CNN_OK)
            round += fastest;
    }
    int runs = rounds_for(t, round / (t->level == CNN_TUNE_EXHAUSTIVE ? 1 : t->ncand),
                          t->level == CNN_TUNE_EXHAUSTIVE ? 7 : 3, 101);
    for (int c = 0; c < t->ncand && st == CNN_OK; c++) {
        st = cnn_session_profile_start(s[c], runs);
        if (st == CNN_OK && !(runs_s[c] = cnn_mem_calloc((size_t)runs, sizeof(double))))
            st = rt_fail(t->err, CNN_ERR_NOMEM, "out of memory");
    }
    if (st == CNN_OK && !(tmp = cnn_mem_calloc((size_t)runs, sizeof(double))))
        st = rt_fail(t->err, CNN_ERR_NOMEM, "out of memory");
    /* in blocks of MEASURE_BLOCK runs, the candidates in turn (each first in turn) */
    for (int r0 = 0; r0 < runs && st == CNN_OK; r0 += MEASURE_BLOCK)
        for (int k = 0; k < t->ncand && st == CNN_OK; k++) {
            int c = (r0 / MEASURE_BLOCK + k) % t->ncand;
            for (int r = r0; r < r0 + MEASURE_BLOCK && r < runs && st == CNN_OK; r++)
                st = run_once(t, s[c], &runs_s[c][r]);
        }
    for (int c = 0; c < t->ncand && st == CNN_OK; c++) {
        t->total[c] = quartile(runs_s[c], runs);
        int n = s[c]->plan->nsteps;
        for (int i = 0; i < n; i++) {
            for (int r = 0; r < s[c]->prof_runs; r++)
                tmp[r] = s[c]->prof[(size_t)r * (size_t)n + (size_t)i];
            t_step[i] = quartile(tmp, s[c]->prof_runs);
        }
        st = record(t, c, s[c], t_step);
    }
done:
    for (int c = 0; c < t->ncand; c++) {
        cnn_session_destroy(s[c]);
        cnn_mem_free(runs_s[c]);
    }
    cnn_mem_free(tmp);
    cnn_mem_free(t_step);
    return st;
}

/* The fake clock's time of a plan of these picks: 1 per node on the fake backend, 2 elsewhere. */
static double fake_total(const tuner *t, const plan_pick *picks)
{
    double sum = 0;
    for (int i = 0; i < t->nnodes; i++)
        sum += picks[i].backend == t->fake ? 1.0 : 2.0;
    return sum;
}

/* Times the plans of picks a and b end to end in pairs of runs (a then b, then b then a, ...):
 * *ratio is the median over the pairs of a's time over b's, which a change of the machine's
 * load between pairs does not move. */
static cnn_status race(tuner *t, const plan_pick *a, const plan_pick *b, double *ratio)
{
    if (t->fake != OP_BACKEND_COUNT) {
        *ratio = fake_total(t, a) / fake_total(t, b);
        return CNN_OK;
    }
    cnn_session *sa = NULL, *sb = NULL;
    double *ratios = NULL, fa = 0, fb = 0;
    cnn_status st = make(t, -1, a, &sa);
    if (st == CNN_OK)
        st = make(t, -1, b, &sb);
    if (st == CNN_OK)
        st = warm_up(t, sa, &fa);
    if (st == CNN_OK)
        st = warm_up(t, sb, &fb);
    int rounds = rounds_for(t, fa + fb, 9, 201);
    if (st == CNN_OK && !(ratios = cnn_mem_calloc((size_t)rounds, sizeof(double))))
        st = rt_fail(t->err, CNN_ERR_NOMEM, "out of memory");
    for (int r = 0; r < rounds && st == CNN_OK; r++) {
        double ta = 0, tb = 0;
        if (r % 2 == 0 && (st = run_once(t, sa, &ta)) == CNN_OK)
            st = run_once(t, sb, &tb);
        else if (r % 2 == 1 && (st = run_once(t, sb, &tb)) == CNN_OK)
            st = run_once(t, sa, &ta);
        ratios[r] = tb > 0 ? ta / tb : 1.0;
    }
    if (st == CNN_OK) {
        qsort(ratios, (size_t)rounds, sizeof(double), rt_cmp_double);
        *ratio = rounds % 2 ? ratios[rounds / 2] : 0.5 * (ratios[rounds / 2 - 1] + ratios[rounds / 2]);
    }
    cnn_mem_free(ratios);
    cnn_session_destroy(sa);
    cnn_session_destroy(sb);
    return st;
}

/* Whether the plan of picks a is at least 1% faster than b's in two races of fresh sessions
 * (one with the fake clock, which always says the same); a failure is left in *st. */
static bool faster_twice(tuner *t, const plan_pick *a, const plan_pick *b, cnn_status *st)
{
    double ratio = 1;
    for (int k = 0; k < (t->fake != OP_BACKEND_COUNT ? 1 : 2); k++)
        if ((*st = race(t, a, b, &ratio)) != CNN_OK || !(ratio < MIX_MARGIN))
            return false;
    return true;
}

static int best_candidate(const tnode *tn, int ncand, int skip)
{
    int best = -1;
    for (int c = 0; c < ncand; c++)
        if (c != skip && isfinite(tn->cost[c]) && (best < 0 || tn->cost[c] < tn->cost[best]))
            best = c;
    return best;
}

/* Sets pick p to what node tn ran as on candidate c (its measured choice there); c < 0 leaves
 * the node's present pick. */
static void take(plan_pick *p, const tnode *tn, int c)
{
    if (c < 0)
        return;
    p->backend = tn->ran[c];
    p->algo = tn->algo[c];
}

/* Measures every candidate, picks per node, races the mix against the fastest uniform plan
 * (and, exhaustive, single-node flips); the choice is left in t->nodes[].pick. */
static cnn_status choose(tuner *t)
{
    cnn_status st = measure(t);
    if (st != CNN_OK)
        return st;
    int u = 0;
    for (int c = 1; c < t->ncand; c++)
        if (t->total[c] < t->total[u])
            u = c;
    plan_pick *uni = cnn_mem_calloc((size_t)t->nnodes + 1, sizeof *uni);
    plan_pick *mix = cnn_mem_calloc((size_t)t->nnodes + 1, sizeof *mix);
    if (!uni || !mix) {
        cnn_mem_free(uni);
        cnn_mem_free(mix);
        return rt_fail(t->err, CNN_ERR_NOMEM, "out of memory");
    }
    bool same = true;
    for (int i = 0; i < t->nnodes; i++) {
        tnode *tn = &t->nodes[i];
        uni[i] = mix[i] = tn->pick;
        int b = best_candidate(tn, t->ncand, -1);
        take(&uni[i], tn, isfinite(tn->cost[u]) ? u : -1);
        /* a node leaves the fastest uniform plan's choice only for a clear gain (5%) */
        if (b >= 0 && isfinite(tn->cost[u]) && tn->cost[b] >= NODE_MARGIN * tn->cost[u])
            b = u;
        take(&mix[i], tn, b);
        same &= uni[i].backend == mix[i].backend && uni[i].algo == mix[i].algo;
    }
    const plan_pick *keep = uni;
    snprintf(t->ts->plan, sizeof t->ts->plan, "%s", cand_name(t, u));
    double ratio = 1;
    if (!same && faster_twice(t, mix, uni, &st)) {
        keep = mix;
        snprintf(t->ts->plan, sizeof t->ts->plan, "mixed");
    }
    if (st == CNN_OK && t->level == CNN_TUNE_EXHAUSTIVE) {
        /* single-node flips of the contested nodes, largest first, each kept when faster */
        plan_pick *cur = keep == mix ? mix : uni, *alt = keep == mix ? uni : mix;
        bool *tried = cnn_mem_calloc((size_t)t->nnodes + 1, sizeof(bool));
        for (int f = 0; f < MAX_FLIPS && tried && st == CNN_OK; f++) {
            int pick = -1, second = -1;
            for (int i = 0; i < t->nnodes; i++) {
                const tnode *tn = &t->nodes[i];
                int b = best_candidate(tn, t->ncand, -1);
                int b2 = b >= 0 ? best_candidate(tn, t->ncand, b) : -1;
                if (tried[i] || b2 < 0 || (tn->ran[b2] == tn->ran[b] && tn->algo[b2] == tn->algo[b]) ||
                    tn->cost[b2] > 1.5 * tn->cost[b])
                    continue;
                if (pick < 0 || tn->cost[b] > t->nodes[pick].cost[best_candidate(&t->nodes[pick], t->ncand, -1)])
                    pick = i, second = b2;
            }
            if (pick < 0)
                break;
            tried[pick] = true;
            const tnode *tn = &t->nodes[pick];
            bool at_second = cur[pick].backend == tn->ran[second] && cur[pick].algo == tn->algo[second];
            memcpy(alt, cur, sizeof *cur * (size_t)t->nnodes);
            take(&alt[pick], tn, at_second ? best_candidate(tn, t->ncand, -1) : second);
            if ((st = race(t, alt, cur, &ratio)) == CNN_OK && ratio < MIX_MARGIN) {
                plan_pick *sw = cur;
                cur = alt, alt = sw;
                snprintf(t->ts->plan, sizeof t->ts->plan, "mixed");
            }
        }
        cnn_mem_free(tried);
        keep = cur;
    }
    /* The algorithm of each convolution kept, by its own costs on its backend direct and by
     * Winograd, raced against the plan kept: the mix of backends above may lose (a node cheaper
     * on another backend's uniform plan can cost reorders among the other nodes) while the
     * nodes would still gain from Winograd where it is faster */
    int dc[OP_BACKEND_COUNT], wc[OP_BACKEND_COUNT];
    bool any = false;
    for (int b = 0; b < OP_BACKEND_COUNT; b++)
        dc[b] = wc[b] = -1;
    for (int c = 0; c < t->ncand; c++) {
        if (t->cand_algo[c] == PLAN_ALGO_WINOGRAD)
            wc[t->cand[c]] = c;
        else
            dc[t->cand[c]] = c;
    }
    for (int b = 0; b < OP_BACKEND_COUNT; b++)
        any |= wc[b] >= 0 && dc[b] >= 0;
    plan_pick *alg = st == CNN_OK && any ? cnn_mem_calloc((size_t)t->nnodes + 1, sizeof *alg) : NULL;
    if (alg) {
        bool differs = false;
        for (int i = 0; i < t->nnodes; i++) {
            const tnode *tn = &t->nodes[i];
            int kb = keep[i].backend, w = kb < OP_BACKEND_COUNT ? wc[kb] : -1, d = kb < OP_BACKEND_COUNT ? dc[kb] : -1;
            alg[i] = keep[i];
            if (keep[i].algo != PLAN_ALGO_ANY && w >= 0 && d >= 0 && isfinite(tn->cost[w]) && isfinite(tn->cost[d]) &&
                tn->algo[w] != PLAN_ALGO_ANY)
                alg[i].algo = tn->cost[w] < NODE_MARGIN * tn->cost[d] ? tn->algo[w] : PLAN_ALGO_DIRECT;
            differs |= alg[i].algo != keep[i].algo;
        }
        if (differs && faster_twice(t, alg, keep, &st)) {
            keep = alg;
            if (strcmp(t->ts->plan, "onednn") == 0)
                snprintf(t->ts->plan, sizeof t->ts->plan, "onednn+winograd");
            else if (strcmp(t->ts->plan, "native") == 0)
                snprintf(t->ts->plan, sizeof t->ts->plan, "native+winograd");
        }
    } else if (st == CNN_OK && any) {
        st = rt_fail(t->err, CNN_ERR_NOMEM, "out of memory");
    }
    /* Winograd is kept only when it wins end to end as well: its kernels' times can be bimodal
     * on several threads at small batches (a fast lower quartile per node, a slow median run) */
    bool wino = false;
    for (int i = 0; i < t->nnodes; i++)
        wino |= keep[i].algo == PLAN_ALGO_WINOGRAD;
    plan_pick *direct = wino && st == CNN_OK ? cnn_mem_calloc((size_t)t->nnodes + 1, sizeof *direct) : NULL;
    if (direct) {
        for (int i = 0; i < t->nnodes; i++) {
            direct[i] = keep[i];
            if (direct[i].algo == PLAN_ALGO_WINOGRAD)
                direct[i].algo = PLAN_ALGO_DIRECT;
        }
        if (!faster_twice(t, keep, direct, &st) && st == CNN_OK) {
            keep = direct;
            char *plus = strstr(t->ts->plan, "+winograd");
            if (plus)
                *plus = '\0';
        }
    } else if (wino && st == CNN_OK) {
        st = rt_fail(t->err, CNN_ERR_NOMEM, "out of memory");
    }
    if (st == CNN_OK)
        for (int i = 0; i < t->nnodes; i++)
            t->nodes[i].pick = keep[i];
    cnn_mem_free(direct);
    cnn_mem_free(alg);
    cnn_mem_free(uni);
    cnn_mem_free(mix);
    return st;
}

/* Takes every node's choice from the cache when all are there; false otherwise. */
static bool from_cache(tuner *t, cJSON *entries, const op_caps *caps)
{
    if (!entries || t->nnodes == 0)
        return false;
    for (int i = 0; i < t->nnodes; i++) {
        cJSON *e = cJSON_GetObjectItemCaseSensitive(entries, t->nodes[i].key);
        cJSON *b = e ? cJSON_GetObjectItemCaseSensitive(e, "backend") : NULL;
        op_backend ob = cJSON_IsString(b) ? backend_named(b->valuestring) : OP_BACKEND_COUNT;
        if (ob == OP_BACKEND_COUNT || !caps->has[t->nodes[i].pick.op][ob])
            return false;
    }
    for (int i = 0; i < t->nnodes; i++) {
        cJSON *e = cJSON_GetObjectItemCaseSensitive(entries, t->nodes[i].key);
        t->nodes[i].pick.backend = backend_named(cJSON_GetObjectItemCaseSensitive(e, "backend")->valuestring);
        cJSON *algo = cJSON_GetObjectItemCaseSensitive(e, "algorithm");
        const char *an = cJSON_IsString(algo) ? algo->valuestring : "";
        t->nodes[i].pick.algo = strcmp(an, "winograd") == 0 ? PLAN_ALGO_WINOGRAD
                                : strcmp(an, "direct") == 0 ? PLAN_ALGO_DIRECT : PLAN_ALGO_ANY;
        cJSON *plan = cJSON_GetObjectItemCaseSensitive(e, "plan");
        if (i == 0 && cJSON_IsString(plan) && strlen(plan->valuestring) < sizeof t->ts->plan)
            snprintf(t->ts->plan, sizeof t->ts->plan, "%s", plan->valuestring);
    }
    return true;
}

/* Drops the entries of other builds of this version (a rebuild's choices supersede them; the
 * file would otherwise grow by a network's nodes at every commit); other versions' stay. */
static void prune_other_builds(cJSON *entries)
{
    char build[128], mine[160], version[64];
    build_name(build, sizeof build);
    snprintf(mine, sizeof mine, "%s|", build); /* (a key's first field, whole) */
    snprintf(version, sizeof version, "cnnc %s", cnn_version());
    size_t vl = strlen(version), ml = strlen(mine);
    cJSON *e = entries ? entries->child : NULL;
    while (e) {
        cJSON *next = e->next;
        const char *k = e->string;
        if (k && strncmp(k, version, vl) == 0 && (k[vl] == '|' || k[vl] == '+') && strncmp(k, mine, ml) != 0)
            cJSON_Delete(cJSON_DetachItemViaPointer(entries, e));
        e = next;
    }
}

static void to_cache(const tuner *t, cJSON *entries)
{
    prune_other_builds(entries);
    for (int i = 0; i < t->nnodes && entries; i++) {
        const tnode *tn = &t->nodes[i];
        cJSON *e = cJSON_CreateObject();
        cJSON *times = e ? cJSON_AddObjectToObject(e, "seconds") : NULL;
        const char *algo = tn->pick.algo == PLAN_ALGO_WINOGRAD ? "winograd"
                           : tn->pick.algo == PLAN_ALGO_DIRECT ? "direct" : NULL;
        if (!times || !cJSON_AddStringToObject(e, "backend", op_backend_name(tn->pick.backend)) ||
            (algo && !cJSON_AddStringToObject(e, "algorithm", algo)) ||
            !cJSON_AddStringToObject(e, "plan", t->ts->plan)) {
            cJSON_Delete(e);
            return;
        }
        for (int c = 0; c < t->ncand; c++)
            if (isfinite(tn->cost[c]))
                cJSON_AddNumberToObject(times, cand_name(t, c), tn->cost[c]);
        cJSON_DeleteItemFromObjectCaseSensitive(entries, tn->key);
        cJSON_AddItemToObject(entries, tn->key, e);
    }
}

/* The choices for a session of m with options opt: *picks (malloc'd; NULL when tuning does not
 * apply, with the reason in ts->note). */
static cnn_status tune_core(cnn_model *m, const cnn_options *opt, int64_t batch, const cnn_train_config *tc,
                            int nthreads, plan_pick **picks, int *npicks, rt_tune_state *ts, char *err, size_t errlen)
{
    *picks = NULL;
    *npicks = 0;
    memset(ts, 0, sizeof *ts);
    if ((unsigned)opt->tune > CNN_TUNE_EXHAUSTIVE)
        return rt_fail(err, CNN_ERR_USAGE, "tune must be off, on or exhaustive, got %d", (int)opt->tune);
    if (opt->tune == CNN_TUNE_OFF || opt->backend != CNN_BACKEND_AUTO)
        return CNN_OK;
    if (opt->precision != CNN_PRECISION_FP32) {
        note(ts, "tuning applies to fp32 only: the fixed order was used");
        return CNN_OK;
    }
    if (tc && rt_dist_active()) {
        note(ts, "tuning does not run in data-parallel training: the fixed order was used");
        return CNN_OK;
    }
    double t0 = rt_seconds();
    tuner t = {.m = m, .opt = *opt, .batch = batch, .training = tc != NULL, .nthreads = nthreads,
               .level = opt->tune, .fake = OP_BACKEND_COUNT, .ts = ts, .err = err, .errlen = errlen};
    if (opt->conv_algo == CNN_CONV_ALGO_DEFAULT) /* auto under tuning (rt_conv_algo) */
        t.opt.conv_algo = CNN_CONV_ALGO_AUTO;
    t.opt.tune = CNN_TUNE_OFF;
    if (tc) {
        t.tc = *tc;
        t.tc.lr = 1e-9; /* the private weights barely move */
    }
    const char *fake = getenv("CNN_TUNE_FAKE");
    if (fake && fake[0])
        t.fake = backend_named(fake);
    op_caps caps;
    op_kernel_caps(&caps);
    static const op_backend order[] = {OP_BACKEND_ONEDNN, OP_BACKEND_NATIVE};
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++)
        for (int op = 0; op < OP_COUNT; op++)
            if (caps.has[op][order[k]]) {
                t.cand[t.ncand++] = order[k];
                break;
            }
    if (t.ncand < 2 || t.fake == OP_BACKEND_REF)
        t.cand[t.ncand++] = OP_BACKEND_REF;
    cnn_status st = list_nodes(&t);
    /* each backend with Winograd convolutions, when the algorithm is left to measurement and
     * the network has a convolution Winograd could run */
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++)
        if (st == CNN_OK && t.has_3x3 && t.ncand < MAX_CAND && caps.winograd[OP_CONV2D][order[k]] &&
            t.opt.conv_algo == CNN_CONV_ALGO_AUTO && t.fake == OP_BACKEND_COUNT) {
            t.cand_algo[t.ncand] = PLAN_ALGO_WINOGRAD;
            t.cand[t.ncand++] = order[k];
        }
    char path[1024];
    cache_path(opt, path, sizeof path);
    snprintf(ts->cache, sizeof ts->cache, "%s", path);
    cJSON *root = st == CNN_OK ? cache_load(path, ts) : NULL;
    cJSON *entries = root ? cJSON_GetObjectItemCaseSensitive(root, "entries") : NULL;
    if (st == CNN_OK && from_cache(&t, entries, &caps)) {
        ts->cached = t.nnodes;
    } else if (st == CNN_OK) {
        if (cnn_weights_create(&t.w, m, opt->seed) != CNN_OK) {
            st = rt_fail(err, CNN_ERR_NOMEM, "out of memory for the tuning weights");
        } else if (!(t.labels = cnn_mem_calloc((size_t)batch + 1, sizeof(float)))) {
            st = rt_fail(err, CNN_ERR_NOMEM, "out of memory");
        } else if ((st = choose(&t)) == CNN_OK) {
            ts->measured = t.nnodes;
            to_cache(&t, entries);
            cache_save(path, root, ts);
        }
    }
    if (st == CNN_OK) {
        *picks = cnn_mem_calloc((size_t)t.nnodes + 1, sizeof **picks);
        if (!*picks)
            st = rt_fail(err, CNN_ERR_NOMEM, "out of memory");
        for (int i = 0; i < t.nnodes && *picks; i++)
            (*picks)[i] = t.nodes[i].pick;
        *npicks = *picks ? t.nnodes : 0;
        ts->tuned = *picks != NULL;
        ts->nodes = *npicks;
    }
    ts->seconds = rt_seconds() - t0;
    cJSON_Delete(root);
    cnn_mem_free(t.nodes);
    cnn_mem_free(t.labels);
    cnn_weights_destroy(t.w);
    return st;
}

static int threads_of(const cnn_options *opt) { return opt->threads > 0 ? opt->threads : omp_get_num_procs(); }

ir_plan *rt_tune_plan(cnn_session *s, cnn_status *st)
{
    bool training = s->mode == CNN_MODE_TRAIN;
    if (forcing) /* a plan being timed by the tuner on this thread */
        return rt_model_plan_picks(s->model, &s->opt, s->batch, training, &s->train, forced, nforced, st, s->err,
                                   sizeof s->err);
    plan_pick *picks = NULL;
    int npicks = 0;
    char err[RT_ERR_MAX];
    cnn_status ts = tune_core(s->model, &s->opt, s->batch, training ? &s->train : NULL, s->nthreads, &picks, &npicks,
                              &s->tune, err, sizeof err);
    if (ts == CNN_ERR_USAGE) {
        *st = rt_fail(s->err, ts, "%s", err);
        return NULL;
    }
    if (ts != CNN_OK) { /* a candidate plan could not run: the fixed order, with a note */
        memset(&s->tune, 0, sizeof s->tune);
        note(&s->tune, "tuning failed (%.300s): the fixed order was used", err);
    }
    ir_plan *p = rt_model_plan_picks(s->model, &s->opt, s->batch, training, &s->train, picks, npicks, st, s->err,
                                     sizeof s->err);
    cnn_mem_free(picks);
    return p;
}

cnn_status rt_tune_picks(cnn_model *m, const cnn_options *opt, int64_t batch, const cnn_train_config *tc,
                         plan_pick **picks, int *npicks, rt_tune_state *ts, char *err, size_t errlen)
{
    return tune_core(m, opt, batch, tc, threads_of(opt), picks, npicks, ts, err, errlen);
}

void cnn_session_tune_info(const cnn_session *s, cnn_tune_info *info)
{
    memset(info, 0, sizeof *info);
    info->plan = info->cache = info->note = "";
    if (!s)
        return;
    info->tuned = s->tune.tuned;
    info->nodes = s->tune.nodes;
    info->measured = s->tune.measured;
    info->cached = s->tune.cached;
    info->seconds = s->tune.seconds;
    info->plan = s->tune.plan;
    info->cache = s->tune.cache;
    info->note = s->tune.note;
}

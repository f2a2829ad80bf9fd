/* The runtime's private structures, shared by its files (model.c, weights.c, session.c,
 * data.c).  Nothing outside runtime/ includes this. */
#ifndef CNN_RT_H
#define CNN_RT_H

#include <stdarg.h>
#include <stdatomic.h>

#include "compiler/ir.h"
#include "compiler/plan.h"
#include "lang/lang.h"
#include "ops/kernels.h"
#include "runtime/cnn.h"

#define RT_ERR_MAX 4096
/* A kernel's reason for a failed run, and a step's failure message: "name (op): reason". */
#define RT_KERNEL_ERR_MAX 1024
#define RT_STEP_ERR_MAX (OP_NAME_MAX + 32 + RT_KERNEL_ERR_MAX)

typedef struct rt_import_tensor {
    char name[OP_NAME_MAX];
    op_shape shape;
    float *data;
} rt_import_tensor;

struct cnn_model {
    char *filename;
    char *source;
    size_t source_len;
    lang_program *program;
    const lang_network *net;  /* the chosen network, inside program */
    ir_graph *graph;          /* the checked inference graph ("parsed" stage) */
    char *errmsg;             /* all diagnostics, rendered; "" when fine */
    /* An imported model (ONNX): its weights, which cnn_weights_create starts from, and where
     * `source` (the printed .cnn) came from. */
    int nimported;
    rt_import_tensor *imported;
};

typedef struct rt_tensor {
    char name[OP_NAME_MAX];
    op_shape shape;           /* parameter shapes have no batch axis */
    bool trainable;
    bool present;             /* scale tensors (runtime/quantize.c): in force */
    float *data;
} rt_tensor;

struct cnn_weights {
    const cnn_model *model;
    int count;
    rt_tensor *t;             /* count tensors of the network, then naux int8 scale tensors */
    int naux;
    char source[256];         /* the file last loaded, for messages ("" before any) */
    /* Shared by the sessions on these weights, which may run on other threads: */
    _Atomic uint64_t version; /* bumped whenever the tensors may have changed */
    _Atomic unsigned claims;  /* RT_CLAIM_WRITE, or the number of readers running now */
    char err[RT_ERR_MAX];     /* written only by calls on the weights handle itself */
    char *long_err;           /* a message longer than err (a load's full mismatch report), or NULL */
};

/* The claim a writer (a training step, cnn_weights_load) holds on the weights; readers
 * (inference runs, cnn_weights_save) count in the bits below it. */
#define RT_CLAIM_WRITE 0x80000000u

/* What tuning did for a session (runtime/tune.c; cnn_session_tune_info). */
typedef struct rt_tune_state {
    bool tuned;
    int nodes, measured, cached;
    double seconds;
    char plan[16];
    char cache[512];
    char note[512];
} rt_tune_state;
/* Weights (bytes) beyond which a session makes no second set of kernel calls (threads.c's
 * one-thread calls, replicas.c's inference chunks): each holds its own copy of oneDNN's
 * reordered weights. */
#define RT_WEIGHT_COPIES_MAX (128.0 * 1024 * 1024)
/* threads.c: whether w's weights are within RT_WEIGHT_COPIES_MAX. */
bool rt_weight_copies_fit(const cnn_weights *w);

/* How a session's runs use its threads (runtime/threads.c): a choice between two ways by
 * timing (rt_choice_*), here the planned counts and one thread; replicas.c makes the same
 * choice between a training step as planned and one of replicas. */
enum { RT_RUN_PLANNED = 0, RT_RUN_SINGLE = 1 };
typedef struct rt_threads {
    bool adaptive;            /* runs choose between the two ways (some step has several threads) */
    int variant;              /* the way runs take now: RT_RUN_PLANNED (per-step counts) or RT_RUN_SINGLE */
    op_call *single;          /* per step of several threads: its call on one thread (prepared when first used) */
    int64_t runs[2];          /* runs of each way */
    double est[2];            /* seconds per run of each way (0: not timed yet) */
    double next_probe, gap;   /* when a run next tries the other way; the gap after that */
    int probe;                /* runs of the current try of the other way done (0: none) */
    double probe_best;        /* the faster timed run of the try so far */
    double last_try;          /* when the last try ended */
    double try_start;         /* when the current try began */
    int switches;             /* changes of way so far */
    int patient;              /* the way whose use makes tries of the other rarer (threads.c), or -1 */
    int split;                /* the most threads a step of the planned counts uses */
    double *done;             /* per step: the share of the planned work before it (rt_threads_cut) */
    int planned_threads;      /* the threads of the way of several: split, or all in chunks */
} rt_threads;

/* runtime/fpenv.c: denormals flushed during a run.  enter sets the bits on the calling thread
 * and, when nthreads > 1, on OpenMP's other threads of a team of nthreads; leave puts back
 * what each had.  A run whose work is all in one region of its own (the replicas') enters on
 * the calling thread alone, and each other thread of the region calls thread_set at its start
 * and thread_restore with what that returned at its end (two regions less a run). */
typedef struct rt_fpenv {
    bool flush;
    int nthreads;
    unsigned caller;
} rt_fpenv;
void rt_fpenv_enter(rt_fpenv *e, bool flush, int nthreads);
void rt_fpenv_leave(const rt_fpenv *e);
unsigned rt_fpenv_thread_set(const rt_fpenv *e);
void rt_fpenv_thread_restore(const rt_fpenv *e, unsigned saved);

struct cnn_session {
    cnn_model *model;
    cnn_weights *weights;
    cnn_options opt;
    cnn_mode mode;
    cnn_train_config train;
    int64_t batch;
    int nthreads;
    ir_plan *plan;
    float *arena;
    float **data;             /* per graph value: where its data is (NULL: nowhere) */
    op_call *calls;           /* per step, prepared at creation */
    const op_kernel **kernels;/* per step */
    op_node *nodes;           /* per step: what its kernel sees of the node */
    rt_tensor *optstate;      /* training: optimiser state, zeroed at creation */
    int noptstate;
    float **consts;           /* buffers of weights-only steps' outputs (PLAN_LOC_CONST) */
    int nconsts;
    uint64_t weights_seen;    /* the weights' version the constant steps last ran on */
    bool consts_valid;
    int64_t step;             /* optimiser steps taken (and runs, for dropout seeds) */
    double *prof;             /* profiling (runtime/profile.c): prof_cap runs x nsteps seconds */
    int prof_cap, prof_runs;
    struct rt_dist_session *dist; /* data-parallel training: the replica's state (runtime/dist.c), or NULL */
    rt_tune_state tune;       /* runtime/tune.c */
    rt_threads thr;           /* runtime/threads.c */
    struct rt_replicas *rep;  /* training: the step's replicas (runtime/replicas.c), or NULL */
    char err[RT_ERR_MAX];
};

/* runtime/profile.c: records step st's time of the current run (profiling on). */
void rt_profile_record(cnn_session *s, int st, double seconds);
void rt_profile_end_run(cnn_session *s);
double rt_seconds(void);
/* qsort comparator for doubles, ascending (runtime/profile.c). */
int rt_cmp_double(const void *x, const void *y);
/* profile.c: a node's phase: "forward", "backward" (it makes a gradient) or "update". */
const char *rt_node_phase(const ir_graph *g, const ir_node *nd);

/* Formats an error into buf (RT_ERR_MAX) and returns status. */
cnn_status rt_fail(char *buf, cnn_status status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Claims the weights for reading (any number of readers at once) or for writing (alone).
 * Never waits: false when the claim conflicts with one held on another thread.  Each
 * successful claim is released with the matching release. */
bool rt_weights_claim_read(cnn_weights *w);
void rt_weights_release_read(cnn_weights *w);
bool rt_weights_claim_write(cnn_weights *w);
void rt_weights_release_write(cnn_weights *w);

/* The weight index of the tensor called name, or -1. */
int rt_weights_find(const cnn_weights *w, const char *name);

struct rt_st_file;
/* weights_rename.c: matches the keys of safetensors file f (read from path) to w's tensors as
 * cnn_weights_load_opts describes (renames, then the nn.Sequential mapping) and checks their
 * shapes.  On success idx[i] is the file tensor for weight i.  Otherwise the message lists every
 * problem, in w->err or, when longer, w->long_err (malloc'd; the caller frees any previous one
 * first), and the result is CNN_ERR_INPUT (CNN_ERR_USAGE for a bad rename). */
cnn_status rt_weights_match(cnn_weights *w, const char *path, const struct rt_st_file *f,
                            const cnn_load_options *opt, int *idx);

/* Clones the model's graph, makes it a training graph when `training`, runs the passes the
 * options ask for and plans it for `batch`.  NULL with err on failure, and in *st (may be NULL)
 * CNN_ERR_INPUT when the network is too large for the limits, else CNN_ERR_INTERNAL. */
ir_plan *rt_model_plan(cnn_model *m, const cnn_options *opt, int64_t batch, bool training,
                       const cnn_train_config *tc, cnn_status *st, char *err, size_t errlen);

/* rt_model_plan with per-node backends fixed under auto (tune.c's measured choices). */
ir_plan *rt_model_plan_picks(cnn_model *m, const cnn_options *opt, int64_t batch, bool training,
                             const cnn_train_config *tc, const plan_pick *picks, int npicks, cnn_status *st,
                             char *err, size_t errlen);

/* runtime/tune.c: the session's plan (cnn_session_create).  Off, or not under auto: exactly
 * rt_model_plan.  Otherwise the backends tuning chooses (measured, or from the cache), with
 * what it did in s->tune. */
ir_plan *rt_tune_plan(cnn_session *s, cnn_status *st);
/* The per-node choices tuning makes for m (as a session of opt at batch would; training when
 * tc is not NULL), for the summary: *picks malloc'd (NULL, 0 when tuning does not apply), what
 * was done in *ts.  CNN_OK, or a failure with err. */
cnn_status rt_tune_picks(cnn_model *m, const cnn_options *opt, int64_t batch, const cnn_train_config *tc,
                         plan_pick **picks, int *npicks, rt_tune_state *ts, char *err, size_t errlen);

/* runtime/onnx_import.c: the largest ONNX model cnn_model_load reads, and freeing an import's
 * weights (both also without ONNX support). */
size_t rt_onnx_max_bytes(void);
/* model.c: a model without a network holding only msg (taken; NULL: "out of memory"), or NULL
 * when out of memory. */
cnn_model *rt_model_failed(const char *filename, char *msg);
void rt_model_free_imported(cnn_model *m);

/* runtime/threads.c: a step's work (FLOPs, or 4 per tensor element when more) and its thread
 * count (1 when the work is too small to split); the choice between the planned counts and
 * one thread per run, by timing (rt_threads_pick before a run, rt_threads_record after). */
double rt_step_work(const cnn_session *s, int st);
int rt_step_threads(const cnn_session *s, int st);
cnn_status rt_threads_init(cnn_session *s);
int rt_threads_pick(cnn_session *s, double now);
/* `cut`: the run went on on one thread (rt_cut.hit) */
void rt_threads_record(cnn_session *s, int used, double seconds, double now, bool cut);
/* When a run of the planned counts goes on with its remaining steps on one thread: before a
 * step st of several threads, once rt_seconds() > start + slack + per * done[st] (done NULL:
 * 1 for every step); `hit` is set when it does. */
typedef struct rt_cut {
    double start, slack, per;
    const double *done;
    bool hit;
} rt_cut;
/* Fills *cut for a run of `way` started at `start`: false when it is never cut. */
bool rt_threads_cut(const cnn_session *s, int way, double start, rt_cut *cut);
/* The choice itself, between ways 0 and 1: starts with `first`; while `patient` (a way, or -1)
 * is in use, tries of the other are rarer; pick before a run, record its time after
 * (runtime/threads.c describes the policy). */
void rt_choice_init(rt_threads *t, int first, int patient);
int rt_choice_pick(rt_threads *t, double now);
void rt_choice_record(rt_threads *t, int used, double seconds, double now, bool cut);

/* runtime/replicas.c: a training step on threads as R replicas of the step, each on its share
 * of the batch on one thread, their gradients summed (weighted by their shares) before the
 * optimiser's steps, which run once.  init at the session's creation (decides whether the
 * network may: CNN_ERR_USAGE for a bad CNN_REPLICAS), pick before a step (RT_STEP_REPLICAS
 * makes the replicas when first chosen), run in place of the step's run, record its time. */
enum { RT_STEP_PLANNED = 0, RT_STEP_REPLICAS = 1 };
cnn_status rt_replicas_init(cnn_session *s);
void rt_replicas_free(cnn_session *s);
int rt_replicas_pick(cnn_session *s, double now);
cnn_status rt_replicas_run(cnn_session *s, const rt_fpenv *fp);
void rt_replicas_record(cnn_session *s, int used, double seconds, double now);
/* Inference runs may take chunks of the batch on replicas (replicas.c), as the way of several
 * threads of threads.c's choice: whether the session's may (at its creation); whether they may
 * now (making the replicas at the first, or keeping the steps as planned when they cannot be
 * made; not while profiling); whether the last such run made their weights-only values (not
 * timed).  rt_replicas_run runs them.  rt_replicas_off keeps a session's runs as planned (int8
 * calibration reads its values). */
bool rt_replicas_chunks_may(const cnn_session *s);
bool rt_replicas_chunks_ready(cnn_session *s);
bool rt_replicas_cold(const cnn_session *s);
void rt_replicas_off(cnn_session *s, const char *why);
/* CNN_REPLICAS=on, where the network may: always replicas (or chunks). */
bool rt_replicas_forced(const cnn_session *s);
/* Why a session's steps never use replicas ("" when they may); the steps (runs) that did. */
const char *rt_replicas_why_not(const cnn_session *s);
int64_t rt_replicas_steps(const cnn_session *s);
/* Replica i's session once made (tests), else NULL. */
cnn_session *rt_replicas_session(const cnn_session *s, int i);

/* session.c: a session as cnn_session_create makes it, on the plan with the backends `picks`
 * fixes (no tuning), for the replicas. */
cnn_status rt_session_create_picks(cnn_session **out, cnn_model *m, cnn_weights *w, const cnn_options *opt,
                                   int64_t batch, cnn_mode mode, const cnn_train_config *train,
                                   const plan_pick *picks, int npicks);
/* session.c: runs steps [0, end) of a replica's plan on the weights at `version` (one run of
 * the replica: its seeds, its weights-only steps when the weights changed). */
cnn_status rt_execute_head(cnn_session *s, int end, uint64_t version);
/* session.c: runs steps [first, nsteps) of s's plan as the step's end (the optimiser's steps
 * after the replicas), counting the step; those marked in `done` (NULL: none) have run
 * already (rt_execute_update_part). */
cnn_status rt_execute_tail(cnn_session *s, int first, uint64_t version, const unsigned char *done);
/* session.c: elements [lo, hi) of optimiser update step st of the coming rt_execute_tail, ahead
 * of it (an update works element by element): its tensors of its parameter's size seen as
 * those elements, on the calling thread alone (inside the replicas' region).  0, or a failure
 * status with the message in msg. */
int rt_execute_update_part(cnn_session *s, int st, uint64_t version, int64_t lo, int64_t hi, char *msg, size_t len);

/* Runs every step of the session's plan. */
cnn_status rt_execute(cnn_session *s);

/* The compiler's pass bits from the public options. */
unsigned rt_pass_bits(const cnn_options *opt);

/* The convolution algorithm the options ask for (CNN_CONV_ALGO_DEFAULT: auto when tuning, else
 * direct). */
plan_conv_algo rt_conv_algo(const cnn_options *opt);

#endif

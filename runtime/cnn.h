/* cnn.h — the public C API of cnnc's runtime: compile a .cnn network, hold its weights, run
 * inference and training on a planned arena with OpenMP threads.  The `cnnc` command is built
 * on this header alone.
 *
 * Conventions (as SQLite's): every call returns a cnn_status; objects are opaque handles
 * returned through out-parameters; each handle keeps the message of its last error
 * (cnn_*_errmsg); _destroy(NULL) is a no-op.  The library never prints and never exits.
 * Thread-safety: a handle may be used by one thread at a time; distinct handles are
 * independent, except for what sessions share:
 *  - a cnn_model is only read by the sessions planned on it (cnn_session_create,
 *    cnn_session_run...), so any number of threads may create and run sessions on one model
 *    at the same time; the model's own calls (summary, emit: they may set its message) are
 *    not to run beside each other.
 *  - a cnn_weights object may be shared by sessions on several threads.  Inference runs only
 *    read it, so any number of inference sessions on one weights object may run at the same
 *    time.  Writers need it to themselves: a training step (cnn_session_train_step, cnn_train)
 *    and cnn_weights_load.  Nothing waits: a run or load that would overlap a conflicting one
 *    on another thread fails with CNN_ERR_USAGE and says so in its handle's message, so a
 *    training session never silently races with inference sessions.  (A training session and
 *    inference sessions may all live on one weights object, as cnn_train's evaluation does;
 *    only their runs must not overlap.)  Pointers from cnn_weights_tensor are not guarded:
 *    write through them only while no session on the weights is running.
 * OpenMP: a call may change the thread count (omp_set_num_threads) while it runs, and puts
 * the caller's setting back before it returns.
 *
 * Tensors are float32, dense, row-major, batch first ([N, C, H, W], [N, C, L], [N, F]). */
#ifndef CNN_H
#define CNN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CNN_API __attribute__((visibility("default")))
#else
#define CNN_API
#endif

/* Result codes.  The numeric values of the first four are the `cnnc` exit statuses. */
typedef enum cnn_status {
    CNN_OK = 0,
    CNN_ERR_INPUT = 1,    /* bad source, weights, tensors or data */
    CNN_ERR_USAGE = 2,    /* a call or option that makes no sense (wrong index, bad batch) */
    CNN_ERR_INTERNAL = 3, /* a bug */
    CNN_ERR_DIVERGED = 4, /* training stopped: the loss became NaN or infinite (cnnc exits 1) */
    CNN_ERR_NOMEM = 5,    /* out of memory: an allocation failed (cnnc exits 3) */
} cnn_status;

typedef enum cnn_backend {
    CNN_BACKEND_AUTO = 0, /* per op: oneDNN, native, reference, the first with a kernel; by measurement with tune */
    CNN_BACKEND_REF,      /* reference kernels only (the ground truth) */
    CNN_BACKEND_NATIVE,   /* native SIMD kernels, reference where none */
    CNN_BACKEND_ONEDNN,   /* oneDNN kernels, reference where none */
} cnn_backend;

/* Graph passes, for cnn_options.passes (a bit set).  -O0 is 0, -O1 CNN_PASSES_O1, -O2 all. */
enum {
    CNN_PASS_DCE = 1u << 0,       /* dead-node elimination */
    CNN_PASS_FOLD_BN = 1u << 1,   /* batchnorm folded into the preceding conv/dense (inference) */
    CNN_PASS_FUSE = 1u << 2,      /* conv/dense + bias + activation, + residual, + maxpool, + softmax */
    CNN_PASS_PLAN = 1u << 3,      /* memory planning (off: every tensor its own buffer) */
    CNN_PASS_INPLACE = 1u << 4,   /* in-place reuse of an input for elementwise ops */
    CNN_PASS_LAYOUT = 1u << 5,    /* channels-last tensors between oneDNN kernels, reorders at the edges */
};
#define CNN_PASSES_O1 (CNN_PASS_DCE | CNN_PASS_FOLD_BN)
#define CNN_PASSES_O2 \
    (CNN_PASS_DCE | CNN_PASS_FOLD_BN | CNN_PASS_FUSE | CNN_PASS_PLAN | CNN_PASS_INPLACE | CNN_PASS_LAYOUT)

/* The arithmetic of inference (spec section 8, --precision). */
typedef enum cnn_precision {
    CNN_PRECISION_FP32 = 0,
    CNN_PRECISION_BF16,   /* conv and dense in bf16 through oneDNN; CNN_ERR_USAGE on a CPU without avx512_bf16 */
    CNN_PRECISION_INT8,   /* conv and dense in int8: the weights need the scales of `cnnc quantize` */
} cnn_precision;

/* How CNN_BACKEND_AUTO picks each node's backend (--tune; docs/commands.md "Tuning"). */
typedef enum cnn_tune {
    CNN_TUNE_OFF = 0,     /* the fixed order: oneDNN, then native, then reference */
    CNN_TUNE_ON,          /* by measurement on the node's shapes, cached (see cnn_session_tune_info) */
    CNN_TUNE_EXHAUSTIVE,  /* as on, with more runs, then single-node flips tried end to end */
} cnn_tune;

/* How fp32 3x3 stride-1 convolutions are computed (--conv-algo; docs/choices.md "Winograd"). */
typedef enum cnn_conv_algo {
    CNN_CONV_ALGO_DEFAULT = 0, /* direct; auto when tune is on */
    CNN_CONV_ALGO_DIRECT,      /* directly, everywhere */
    CNN_CONV_ALGO_WINOGRAD,    /* by Winograd's algorithm wherever the backend has it (oneDNN on AVX-512) */
    CNN_CONV_ALGO_AUTO,        /* by Winograd's algorithm where it pays: 32+ channels in and out, 8+ MFLOP */
} cnn_conv_algo;

typedef struct cnn_options {
    unsigned passes;      /* CNN_PASS_* bits (default CNN_PASSES_O2) */
    cnn_backend backend;  /* default CNN_BACKEND_AUTO */
    int threads;          /* 0: all cores; at most cnn_max_threads() (more: CNN_ERR_USAGE).  The most a
                           * step uses: small steps, and whole runs when one thread proved faster
                           * (a busy machine), use one (docs/choices.md, Threads) */
    uint64_t seed;        /* dropout masks, shuffling */
    cnn_precision precision; /* default CNN_PRECISION_FP32.  A training session takes fp32 or bf16 (conv
                              * and dense forward and backward read bf16, master weights, optimiser state
                              * and gradients stay f32), refuses int8 (CNN_ERR_USAGE) and drops the
                              * weights' int8 scales, which its steps make stale; batchnorm folding and
                              * fusion are always on in int8 (the scales are those of the folded layers) */
    cnn_tune tune;        /* default CNN_TUNE_OFF; only with CNN_BACKEND_AUTO and fp32 */
    const char *tune_cache; /* the tuning cache file (NULL: $XDG_CACHE_HOME/cnnc/tune.json, else
                             * ~/.cache/cnnc/tune.json; "" or "none": no cache) */
    cnn_conv_algo conv_algo; /* default CNN_CONV_ALGO_DEFAULT.  Winograd's results differ from direct
                              * convolution's by rounding (relative 1e-6 to 1e-5 per layer) */
    bool keep_denormals;  /* default false: runs flush denormal floats (below 1.2e-38) to zero, on
                           * x86 (docs/choices.md, Denormals); true keeps them, at their cost */
} cnn_options;

/* Fills *o with the defaults. */
CNN_API void cnn_options_default(cnn_options *o);

/* ---- models: a checked, compiled network ---- */

typedef struct cnn_model cnn_model;

/* Compiles `source` (len bytes) named `filename` in messages; `network` picks one of several
 * networks (NULL: the only one).  *out is set even on failure (unless out of memory), so that
 * cnn_model_errmsg can tell what went wrong: all diagnostics, rendered as a compiler does.
 * CNN_ERR_INPUT for an error in the source; CNN_ERR_USAGE when the source is sound but has no
 * network named `network`. */
CNN_API cnn_status cnn_model_compile(cnn_model **out, const char *filename, const char *source,
                                     size_t len, const char *network);
/* The largest source cnn_model_compile and cnn_model_load take: 16 MiB.  cnn_model_load reads
 * no further (a FIFO or /dev/zero ends there with an error). */
#define CNN_MAX_SOURCE_BYTES (16u << 20)
/* Reads the file at path and compiles it, as cnn_model_compile.  A path ending in .onnx is
 * an ONNX model (spec section 10), imported as cnn_model_load_onnx_memory does. */
CNN_API cnn_status cnn_model_load(cnn_model **out, const char *path, const char *network);

/* ---- ONNX (spec sections 8 and 10; docs/commands.md lists the operators) ---- */

/* True when the library was built with ONNX support (-Donnx); without it the calls below
 * fail with CNN_ERR_INPUT and say so. */
CNN_API bool cnn_onnx_available(void);
/* Imports the len bytes of an ONNX model, named `filename` in messages: its graph becomes a
 * network (printed as .cnn source: cnn_model_source) and its weights the ones
 * cnn_weights_create starts from.  Unsupported operators and attributes are all listed in the
 * message; a corrupt file, external data (never opened), a dtype other than float32, a cycle,
 * a dangling name or an unresolved dynamic shape are CNN_ERR_INPUT with a message. */
CNN_API cnn_status cnn_model_load_onnx_memory(cnn_model **out, const char *filename, const void *data,
                                              size_t len, const char *network);
/* The model's .cnn source: the text compiled, or for an imported model the printed network
 * (len may be NULL). */
CNN_API const char *cnn_model_source(const cnn_model *m, size_t *len);
/* Writes the model's .cnn source (cnn_model_source) to path. */
CNN_API cnn_status cnn_model_save_source(cnn_model *m, const char *path);
CNN_API void cnn_model_destroy(cnn_model *m);
CNN_API const char *cnn_model_errmsg(const cnn_model *m);
CNN_API const char *cnn_model_name(const cnn_model *m);

CNN_API int cnn_model_input_count(const cnn_model *m);
CNN_API int cnn_model_output_count(const cnn_model *m);
/* Shape of one example (no batch axis): writes up to 4 dims, returns the rank (-1: bad index). */
CNN_API int cnn_model_input_shape(const cnn_model *m, int i, int64_t dims[4]);
CNN_API int cnn_model_output_shape(const cnn_model *m, int i, int64_t dims[4]);
CNN_API const char *cnn_model_input_name(const cnn_model *m, int i);
CNN_API const char *cnn_model_output_name(const cnn_model *m, int i);

/* The train section's settings (spec section 7 defaults where the file has none). */
typedef enum cnn_schedule_kind {
    CNN_SCHEDULE_CONSTANT = 0,
    CNN_SCHEDULE_STEP = 1,    /* lr * gamma^floor(epoch / every) */
    CNN_SCHEDULE_COSINE = 2,  /* linear warmup, then half a cosine to 0 */
} cnn_schedule_kind;
typedef enum cnn_augment_kind {
    CNN_AUGMENT_RANDOM_CROP = 1, /* zero-pad `pad` on each side, crop back at a random offset */
    CNN_AUGMENT_RANDOM_FLIP = 2, /* horizontal, p = 0.5 */
} cnn_augment_kind;
#define CNN_MAX_AUGMENT 8
#define CNN_MAX_NORMALIZE 16
typedef struct cnn_augment_step {
    int kind;                 /* cnn_augment_kind */
    int64_t pad;              /* random_crop */
} cnn_augment_step;
typedef struct cnn_train_config {
    int loss;             /* 0 cross_entropy, 1 mse */
    int optimizer;        /* 0 sgd, 1 adam, 2 adamw (decoupled weight decay) */
    double lr, momentum, weight_decay, beta1, beta2, eps;
    bool nesterov;
    int64_t batch, epochs;
    double label_smoothing;   /* cross_entropy(label_smoothing=...), 0 none */
    int schedule;             /* cnn_schedule_kind */
    int64_t schedule_every;   /* step: epochs between decays */
    double schedule_gamma;    /* step: the factor */
    double warmup_epochs;     /* cosine: warmup length in epochs */
    double clip_grad_norm;    /* gradients scaled to this global L2 norm at most; 0 none */
    int naugment;             /* training-only augmentation pipeline, in order */
    cnn_augment_step augment[CNN_MAX_AUGMENT];
    int nnormalize;           /* 0 none; 1: one mean/std for every channel; else one per channel */
    double mean[CNN_MAX_NORMALIZE], std[CNN_MAX_NORMALIZE];
} cnn_train_config;
/* Fills cfg with the model's train section (or the spec's defaults). */
CNN_API void cnn_model_train_config(const cnn_model *m, cnn_train_config *cfg);
/* The learning rate of optimiser step t (from 0) of a run of total_steps steps with
 * steps_per_epoch steps per epoch, by cfg's schedule exactly as spec section 7 writes it. */
CNN_API double cnn_train_lr(const cnn_train_config *cfg, int64_t t, int64_t steps_per_epoch, int64_t total_steps);

/* A text report of the model compiled with `opt` at `batch`: the layer table (name, kind,
 * output shape, parameters, FLOPs, backend), totals, the fusions made and the memory figures
 * (naive, planned, lower bound) for inference, and for training when `training`.  *text is
 * malloc'd; free it with cnn_free. */
CNN_API cnn_status cnn_model_summary(cnn_model *m, const cnn_options *opt, int64_t batch,
                                     bool training, char **text);
/* The graph at a stage ("parsed", "optimized", "training") as "text" or "dot". */
CNN_API cnn_status cnn_model_emit(cnn_model *m, const cnn_options *opt, const char *stage,
                                  const char *format, char **text);
CNN_API void cnn_free(void *p);

/* ---- weights ---- */

typedef struct cnn_weights cnn_weights;

/* Weights for model m, initialised as PyTorch does (Kaiming-uniform a=sqrt(5), bias uniform
 * in +-1/sqrt(fan_in), batchnorm 1, 0, 0, 1) from `seed`.  The model must outlive them.
 * CNN_ERR_NOMEM, before anything is allocated, when they need more than the machine's
 * available memory (as cnn_session_create says). */
CNN_API cnn_status cnn_weights_create(cnn_weights **out, const cnn_model *m, uint64_t seed);
CNN_API void cnn_weights_destroy(cnn_weights *w);
CNN_API const char *cnn_weights_errmsg(const cnn_weights *w);
/* Loads a safetensors file: every tensor the network needs must be there with its shape;
 * unknown keys are an error unless allow_extra. On error the weights are unchanged.  The same as
 * cnn_weights_load_opts with no renames (so an nn.Sequential file still maps by position).
 * A writer: CNN_ERR_USAGE while a session on w runs on another thread (see the top). */
CNN_API cnn_status cnn_weights_load(cnn_weights *w, const char *path, bool allow_extra);

/* A renaming of the keys of a weights file, for files written by other tools: a key that
 * starts with `from` (not empty) gets `to` in place of that prefix ("" removes it).  E.g.
 * {"model.", ""} turns "model.0.weight" into "0.weight"; {"fc1.", "dense_1."} turns
 * "fc1.bias" into "dense_1.bias". */
typedef struct cnn_rename {
    const char *from;
    const char *to;
} cnn_rename;

/* How cnn_weights_load_opts matches a file's keys to the network's tensor names:
 *  1. the renames, in order, each applied to every key as the ones before left it;
 *  2. then, when no key is one of the network's names and every key has the form
 *     "<integer>.<suffix>" (a PyTorch nn.Sequential state_dict: "0.weight", "3.bias",
 *     "7.running_mean"), the keys map by position: the k-th smallest integer becomes the k-th
 *     layer with weights in expansion order (spec section 6), keeping the suffix
 *     ("3.bias" -> "conv2d_2.bias" when 0 and 3 are the first two such integers).  Integers
 *     beyond the network's layers keep their key (and are then unknown).
 * Every mismatch is reported at once: cnn_weights_errmsg lists every missing tensor, every
 * tensor of the wrong shape and every unknown key (with the closest name the file lacks: of
 * its shape, then its suffix, then spelling), one a line after a summary line; a single
 * problem is reported on one line as cnn_weights_load does. */
typedef struct cnn_load_options {
    bool allow_extra;          /* ignore keys that name no tensor of the network */
    const cnn_rename *renames; /* nrenames rules (may be NULL when nrenames is 0) */
    int nrenames;
    bool allow_nonfinite;      /* accept NaN and Inf values (otherwise an error naming tensor and index) */
} cnn_load_options;
/* Fills *o with the defaults: no extra keys allowed, no renames, finite values only. */
CNN_API void cnn_load_options_default(cnn_load_options *o);
/* cnn_weights_load with renaming (opt NULL: the defaults).  On error the weights are unchanged;
 * CNN_ERR_USAGE for a rename whose `from` is NULL or empty.  A writer, as cnn_weights_load. */
CNN_API cnn_status cnn_weights_load_opts(cnn_weights *w, const char *path, const cnn_load_options *opt);
/* As cnn_weights_load, from the len bytes of a safetensors file at data (not kept after the
 * call); the same checks and messages, naming "<memory>" instead of a path.  CNN_ERR_USAGE
 * when data is NULL and len is not 0. */
CNN_API cnn_status cnn_weights_load_memory(cnn_weights *w, const void *data, size_t len, bool allow_extra);
/* Writes the weights as a safetensors file.  A reader: it may run while inference sessions on
 * w run on other threads; CNN_ERR_USAGE while a training step on w runs. */
CNN_API cnn_status cnn_weights_save(cnn_weights *w, const char *path);
CNN_API int cnn_weights_count(const cnn_weights *w);
/* The most dims a weight tensor has: conv3d's [filters, C/groups, kd, kh, kw]. */
#define CNN_WEIGHT_MAX_RANK 5
/* Tensor i: its name, rank and dims (up to CNN_WEIGHT_MAX_RANK), and its data (read-write;
 * sessions on w see writes through it at their next run; not while one runs, see the top). */
CNN_API float *cnn_weights_tensor(cnn_weights *w, int i, const char **name, int *rank,
                                  int64_t dims[CNN_WEIGHT_MAX_RANK]);

/* Writes the model with weights w as an ONNX model (opset 13, a dynamic batch axis, the
 * weights as initializers with their spec names).  Batchnorm stays BatchNormalization unless
 * fold_bn, which folds each batchnorm that directly follows a conv or dense layer (and is its
 * only reader) into that layer's weight and bias. */
CNN_API cnn_status cnn_model_export_onnx(cnn_model *m, cnn_weights *w, const char *path, bool fold_bn);

/* ---- sessions: a plan, an arena and the buffers for one batch size ---- */

typedef struct cnn_session cnn_session;

typedef enum cnn_mode { CNN_MODE_INFER = 0, CNN_MODE_TRAIN = 1 } cnn_mode;

/* Plans model m for `batch` examples in `mode` with options `opt` (NULL: defaults), on
 * weights w (not owned; must outlive the session).  A training session uses `train` (NULL:
 * the model's train section) and keeps the optimiser state.  *out is set even on failure,
 * for cnn_session_errmsg.
 * Sharing (see the top): sessions on one model and one weights object may be created and
 * used on different threads, each session by one thread at a time.  Inference sessions run
 * together; a training session's steps update w in place and need it alone: a step that
 * would overlap another session's run on w fails (CNN_ERR_USAGE), and so does an inference
 * run that would overlap a training step.  Each session keeps its own kernel state (oneDNN
 * primitives, reordered weights, constant folding), so nothing it caches is shared.
 * Too large: CNN_ERR_INPUT when the plan passes the size limits, or when its arena needs more
 * than the machine's available memory ("the training arena at batch 64 needs 12.0 GiB, the
 * machine has 7.9 GiB available"; MemAvailable and the memory cgroup's limit, or the
 * environment variable CNN_MEMORY_LIMIT in bytes when set), before anything is allocated. */
CNN_API cnn_status cnn_session_create(cnn_session **out, cnn_model *m, cnn_weights *w,
                                      const cnn_options *opt, int64_t batch, cnn_mode mode,
                                      const cnn_train_config *train);
CNN_API void cnn_session_destroy(cnn_session *s);
CNN_API const char *cnn_session_errmsg(const cnn_session *s);
CNN_API int64_t cnn_session_batch(const cnn_session *s);

/* The buffer of input i ([batch, ...input shape]); write the examples there, then run. */
CNN_API float *cnn_session_input(cnn_session *s, int i);
/* The buffer of output i after a run ([batch, ...output shape]). */
CNN_API const float *cnn_session_output(const cnn_session *s, int i);
/* Inference session: computes the outputs from the inputs.  Training session: the same with
 * training-mode layers (batch statistics, dropout) and no update.
 * Thread-safety: the session is this thread's for the call; the model and the weights are
 * only read, beside any other inference run on them (CNN_ERR_USAGE during a training step on
 * the same weights). */
CNN_API cnn_status cnn_session_run(cnn_session *s);
/* Training session: one optimiser step on the batch in the input buffer with `labels` (one
 * class index per example for cross_entropy; for mse, targets of the output's shape, or class
 * indices turned into one-hot targets when `labels_are_classes`).  Writes the mean loss and the
 * number of correct top-1 predictions (cross_entropy; 0 for mse targets) when not NULL.
 * The step writes the session's weights, alone: CNN_ERR_USAGE, with nothing changed, when
 * another session on them is running on another thread. */
CNN_API cnn_status cnn_session_train_step(cnn_session *s, const float *labels,
                                          bool labels_are_classes, float *loss, int64_t *correct);
/* Training session: the learning rate the following steps use (a schedule calls it before every
 * step).  CNN_ERR_USAGE on an inference session or a rate that is not a positive finite number. */
CNN_API cnn_status cnn_session_set_lr(cnn_session *s, double lr);

/* The CPU's model name (from /proc/cpuinfo, or "unknown") and the instruction set the native
 * kernels use ("avx512", "avx2" or "scalar", with "+vnni" / "+bf16" where the CPU has them). */
CNN_API const char *cnn_cpu_model(void);
CNN_API const char *cnn_cpu_isa(void);

/* Per-node profiling (cnnc bench --profile).  cnn_session_profile_start clears the record and
 * times every step of the next `runs` runs (or training steps); later runs are not recorded.
 * 0 turns it off.  cnn_session_profile_steps is the number of plan steps; entry i describes step
 * i with its times over the recorded runs (strings live as long as the session). */
typedef struct cnn_profile_entry {
    const char *name;        /* the node: a layer's name, or what autodiff made for it */
    const char *op;          /* its op kind */
    const char *backend;     /* ref, native, onednn */
    const char *layout;      /* its first input's memory order: nchw or nhwc (channels last) */
    const char *phase;       /* forward, backward or update */
    double flops;            /* per run, at the session's batch; 0 when the op has no count */
    int runs;                /* runs recorded */
    double min_s, median_s, max_s;
} cnn_profile_entry;
CNN_API cnn_status cnn_session_profile_start(cnn_session *s, int runs);
CNN_API int cnn_session_profile_steps(const cnn_session *s);
CNN_API cnn_status cnn_session_profile_entry(const cnn_session *s, int i, cnn_profile_entry *e);

/* What tuning (cnn_options.tune) did when the session was created.  With tuning on and backend
 * auto, cnn_session_create builds the plan once per backend (oneDNN, native; the reference too
 * when fewer than two exist) on private weights, times every node on its real shapes, layouts
 * and pass (the reorders a backend implies count towards the node they serve), picks per node
 * the fastest, then times that mixed plan against the fastest uniform one, interleaved, and
 * keeps the faster.  The choices are cached by CPU model, ISA, threads and node signature; a
 * session whose every node is in the cache measures nothing.  Each step's backend is in
 * cnn_session_profile_entry. */
typedef struct cnn_tune_info {
    bool tuned;            /* the backends were chosen by tuning (measured now or cached) */
    int nodes;             /* nodes given a backend by tuning */
    int measured;          /* of them, measured by this session */
    int cached;            /* of them, read from the cache */
    double seconds;        /* the time tuning took */
    const char *plan;      /* "mixed", or the uniform backend kept ("onednn", "native", "ref"); "" untuned */
    const char *cache;     /* the cache file used, or "" */
    const char *note;      /* why tuning did not run, or a warning (an unreadable cache); "" */
} cnn_tune_info;
CNN_API void cnn_session_tune_info(const cnn_session *s, cnn_tune_info *info);

/* Memory figures of the session's plan, in bytes of activations (and gradients). */
typedef struct cnn_memory_info {
    size_t naive;        /* every tensor its own buffer */
    size_t planned;      /* the arena */
    size_t lower_bound;  /* the largest set of tensors live at one time */
} cnn_memory_info;
CNN_API void cnn_session_memory(const cnn_session *s, cnn_memory_info *info);

/* ---- data (spec section 10) ---- */

typedef struct cnn_dataset cnn_dataset;
/* Loads `split` ("train" or "test") of the data folder dir, whose format is detected:
 *  - MNIST IDX: train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
 *    t10k-labels-idx1-ubyte, each plain or .gz (one channel);
 *  - CIFAR-10 binary: data_batch_1.bin ... data_batch_5.bin (training: data_batch_1.bin and the
 *    files after it without a gap) and test_batch.bin, records of 1 label byte and 3x32x32
 *    pixel bytes, channel-major (three channels);
 *  - an image folder: train/CLASS/NAME.png|jpg|jpeg and test/CLASS/..., classes numbered in sorted
 *    order of the class folder names under train/ and test/ together, files read in sorted
 *    order; every image of a split the same size; one channel when every image is grayscale,
 *    else three (alpha dropped, palettes expanded, 16-bit samples cut to 8).
 * Images are kept as bytes (a batch is made from them when it is needed: cnn_loader).
 * CNN_ERR_INPUT with a message naming the file when it is missing or broken (a corrupt PNG or
 * JPEG, a CIFAR file that is not a whole number of records, mixed image sizes...); *absent is
 * set when the split's files are simply not there (so a missing test set can be skipped). */
CNN_API cnn_status cnn_dataset_load(cnn_dataset **out, const char *dir, const char *split,
                                    bool *absent, char *err, size_t errlen);
CNN_API void cnn_dataset_destroy(cnn_dataset *d);
/* A new dataset holding examples [first, first + count) of d (copied: d may be destroyed
 * first); `--val N` holds out the last N training examples with it.  CNN_ERR_USAGE when the
 * range is not inside d or empty. */
CNN_API cnn_status cnn_dataset_subset(const cnn_dataset *d, int64_t first, int64_t count, cnn_dataset **out,
                                      char *err, size_t errlen);
CNN_API int64_t cnn_dataset_count(const cnn_dataset *d);
/* Checks that the dataset fits input 0 of the model: [C, H, W] with the images' height and
 * width and C 1 or 3 (grayscale and colour are converted: RGB to gray as ITU-R 601 luma, gray
 * to RGB replicated), or a vector of the images' C*H*W values; and that every label is a class
 * of the output.  CNN_ERR_INPUT with a message. */
CNN_API cnn_status cnn_dataset_check(const cnn_dataset *d, const cnn_model *m, char *err, size_t errlen);
/* Copies examples order[first .. first+n) (order NULL: first .. first+n) into x (n images of
 * the dataset's own channels, scaled to [0,1], neither converted, normalised nor augmented) and
 * their labels into labels (as floats). */
CNN_API void cnn_dataset_batch(const cnn_dataset *d, const int64_t *order, int64_t first, int64_t n,
                               float *x, float *labels);

/* A loader makes batches of a dataset as a network takes them: augmented (training), converted
 * to the input's channel count, scaled to [0, 1] and normalised ((x - mean[c]) / std[c], as
 * torchvision's ToTensor and Normalize), by default on a background thread that prepares the
 * next two batches while the caller trains on the current one, in CPU time the training
 * leaves idle.  The batches do not depend on the mode: a background loader gives the same
 * batches, bit for bit, as a synchronous one.
 * Augmentation (cnn_train_config.augment, when cnn_loader_options.augment): random_crop(pad)
 * zero-pads (black, 0 before normalisation) each side and crops back at an offset uniform in
 * [0, 2 pad] on each axis; random_flip mirrors left to right with p = 0.5.  The choices for the
 * example at position p of an epoch's order are a function of (seed, epoch, p) only, so a run
 * resumed at any batch makes the same batches as one that was not interrupted.
 * Thread-safety: a loader is used by one thread at a time; its own thread only reads the
 * dataset, so other loaders and calls may read the dataset at the same time. */
typedef struct cnn_loader cnn_loader;
typedef struct cnn_loader_options {
    int64_t batch;        /* examples per batch (default 1) */
    int64_t channels;     /* the batches' channels (the network input's); 0: the dataset's own */
    bool augment;         /* apply the config's augmentation (training); false: none (evaluation) */
    uint64_t seed;        /* the augmentation's seed */
    bool background;      /* prepare batches on a background thread (default true) */
    bool drop_last;       /* an epoch's last partial batch is dropped (default false) */
    bool wait_for_thread; /* background: the caller waits for the thread's batches, and the thread
                             runs at normal priority (a plain double-buffered loader, for tests and
                             measurements); default false: idle priority, never waited for */
} cnn_loader_options;
/* Fills *o with the defaults. */
CNN_API void cnn_loader_options_default(cnn_loader_options *o);
/* A loader over d (not owned: it must outlive the loader and not change) with tc's
 * normalisation and augmentation (tc NULL: none; copied).  opt NULL: the defaults.
 * CNN_ERR_INPUT for a normalisation that gives neither one nor `channels` means and deviations,
 * a deviation that is not positive, a bad crop pad, or channels other than 1, 3 or the
 * dataset's; CNN_ERR_USAGE for a batch below 1.  When a thread cannot be started the loader works
 * synchronously (cnn_loader_background tells). */
CNN_API cnn_status cnn_loader_create(cnn_loader **out, const cnn_dataset *d, const cnn_train_config *tc,
                                     const cnn_loader_options *opt, char *err, size_t errlen);
CNN_API void cnn_loader_destroy(cnn_loader *l);
/* Whether a background thread makes the batches. */
CNN_API bool cnn_loader_background(const cnn_loader *l);
/* The batches made on the caller's thread so far: all of them in synchronous mode; in
 * background mode, those the thread had not made when they were asked for (the thread takes
 * only CPU time nothing else wants, and the caller never waits for it). */
CNN_API int64_t cnn_loader_caller_made(const cnn_loader *l);
/* Starts an epoch (numbered `epoch`, for the augmentation) over the `count` examples order[0 ..
 * count) (copied; order NULL: examples 0 .. count-1), from batch first_batch on (0: the start;
 * more to resume).  Batch k holds positions [k * batch, (k + 1) * batch).  Any batches of an
 * earlier epoch not taken are dropped.  CNN_ERR_USAGE for an index outside the dataset or a
 * first_batch past the epoch's batches (the loader then has no batches until the next start). */
CNN_API cnn_status cnn_loader_start(cnn_loader *l, const int64_t *order, int64_t count, int64_t epoch,
                                    int64_t first_batch);
/* Copies the epoch's next batch into x (*n examples of channels x H x W floats) and labels
 * (*n floats); *n is the batch, less for a last partial batch, and 0 when the epoch's batches
 * are all taken.  Never waits for the background thread (unless wait_for_thread): a batch it
 * has not made yet is made here. */
CNN_API cnn_status cnn_loader_next(cnn_loader *l, float *x, float *labels, int64_t *n);

/* Mean loss and top-1 accuracy of an inference session over a whole dataset. */
typedef struct cnn_eval_result {
    double loss;          /* cross_entropy on the output's logits, or mse against one-hot targets */
    double accuracy;      /* fraction of examples whose top class is the label */
    int64_t count;
} cnn_eval_result;
/* Runs inference session s over every example of d in order (the last partial batch padded
 * and its padding ignored); loss_kind 0 is cross_entropy, 1 mse (as cnn_train_config.loss).
 * The batches are made as training makes them without augmentation: converted to the input's
 * channels and normalised by the session's train config (the one given to cnn_session_create,
 * or the model's train section), so give it the config training used.
 * A label that is no index of the output (cnn_dataset_check not called) is CNN_ERR_INPUT with a
 * message, before anything runs; another loss_kind is CNN_ERR_USAGE. */
CNN_API cnn_status cnn_evaluate(cnn_session *s, const cnn_dataset *d, int loss_kind, cnn_eval_result *r);

/* What cnn_evaluate_report measures. */
typedef struct cnn_eval_report {
    double loss;          /* as cnn_eval_result */
    double accuracy;      /* top-1 */
    double top5;          /* fraction whose label is among the 5 highest outputs (has_top5) */
    bool has_top5;        /* the output has 5 classes or more */
    int64_t count;
    int64_t classes;      /* the output's length */
} cnn_eval_report;
/* cnn_evaluate with top-5 accuracy and, when confusion is not NULL, the confusion matrix:
 * confusion[label * classes + predicted] counts the examples of each label by their top class
 * (the caller's array of classes x classes, classes being the output's length: the diagonal over
 * a row's sum is that class's accuracy).  Another `classes` is CNN_ERR_USAGE; the rest as
 * cnn_evaluate (a label that is no class: CNN_ERR_INPUT, found before its batch runs). */
CNN_API cnn_status cnn_evaluate_report(cnn_session *s, const cnn_dataset *d, int loss_kind, cnn_eval_report *r,
                                       int64_t *confusion, int64_t classes);

/* ---- int8 post-training quantisation (cnnc quantize) ---- */

typedef struct cnn_quantize_report {
    int64_t examples;          /* calibration examples used */
    int layers;                /* conv and dense layers given scales */
    int percentile_chosen;     /* activation tensors whose 99.99th percentile beat their maximum */
} cnn_quantize_report;
/* Calibrates the int8 scales of model m on the first `examples` examples of d (fewer when d
 * has fewer) by fp32 inference with options opt (NULL: defaults; batchnorm folding and fusion
 * always on) and stores them in w: NAME.weight_scale per output channel (max |w| / 127 of the
 * folded weights), NAME.input_scale and NAME.output_scale per tensor (of the maximum and the
 * 99.99th percentile of |x|, the one with the smaller estimated squared error, / 255 for a
 * tensor that is never negative, / 127 otherwise).  cnn_weights_save then writes them with the
 * weights (spec section 10).  rep may be NULL.  CNN_ERR_INPUT when the data do not fit m. */
CNN_API cnn_status cnn_weights_quantize(cnn_weights *w, cnn_model *m, const cnn_dataset *d, const cnn_options *opt,
                                        int64_t examples, cnn_quantize_report *rep, char *err, size_t errlen);

/* ---- the training loop ---- */

/* What the step callback is told after every optimiser step. */
typedef struct cnn_train_step_info {
    int64_t step;            /* optimiser steps of the run, from 1 (a resumed run goes on counting) */
    int64_t epoch, epochs;   /* the current epoch (from 1) and the number asked for */
    int64_t epoch_step;      /* the step within the epoch, from 1 */
    int64_t steps_per_epoch; /* training examples / batch (a last partial batch is dropped) */
    int64_t run_steps;       /* the steps the run will take: epochs x steps_per_epoch, or max_steps */
    int64_t call_steps;      /* steps taken in this cnn_train call (a resumed run: since the resume) */
    int64_t batch;
    double lr;               /* the learning rate this step used (the schedule's) */
    double loss;             /* this batch's mean loss */
    double accuracy;         /* this batch's top-1 accuracy */
    double epoch_loss;       /* mean loss over the epoch's steps so far */
    double epoch_accuracy;   /* accuracy over the epoch's examples so far */
    double images_per_s;     /* over the epoch so far (in this call) */
    double seconds;          /* since the epoch started (in this call) */
    double call_seconds;     /* since this cnn_train call started */
    double wall_seconds;     /* of the whole run, a resumed run's earlier part included */
} cnn_train_step_info;

/* What the epoch callback is told at the end of every epoch (after the evaluations and the
 * checkpoints). */
typedef struct cnn_train_epoch_info {
    int64_t epoch, epochs;
    int64_t steps;           /* the epoch's steps (fewer than steps_per_epoch when max_steps ends it) */
    int64_t total_steps;     /* optimiser steps of the run so far */
    double lr;               /* the rate of the epoch's last step */
    double train_loss, train_accuracy; /* means over the epoch's training batches */
    double images_per_s;
    double seconds;          /* the epoch's training time, without the evaluation */
    double wall_seconds;     /* of the whole run so far */
    bool has_val;            /* opt->val examples held out: the two fields below are set */
    double val_loss, val_accuracy;
    bool has_test;           /* a test set was given: the two fields below are set */
    double test_loss, test_accuracy;
    bool improved;           /* the validation (else test) accuracy is the best so far */
    int64_t best_epoch;      /* the epoch of the best validation (else test) accuracy; 0: none */
    double best_accuracy;
    int64_t epochs_without_improvement;
    bool early_stop;         /* opt->patience epochs without improvement: training ends here */
    bool checkpointed;       /* opt->checkpoint_dir: last.safetensors (and best when improved) written */
    /* Not NULL when training looks broken after this epoch (the accuracy at chance level with
     * the loss above the first step's, or the loss far above it): a sentence saying so (valid
     * during the callback).  Training goes on; the caller decides. */
    const char *warning;
} cnn_train_epoch_info;

/* Callbacks return 0 to go on, nonzero to stop training cleanly (cnn_train returns CNN_OK
 * with cnn_train_result.stopped set, after writing opt->checkpoint_dir's last.safetensors at
 * that step when there is one).  They run on the calling thread, between steps; they may read
 * or save the session's weights but must not destroy the session or the datasets. */
typedef int (*cnn_train_step_fn)(const cnn_train_step_info *info, void *user);
typedef int (*cnn_train_epoch_fn)(const cnn_train_epoch_info *info, void *user);

typedef struct cnn_train_options {
    int64_t epochs;          /* 0: the session's train config (the train section, or 1) */
    int64_t max_steps;       /* stop when the run has taken this many optimiser steps (a resumed
                              * run's earlier steps count); 0: no limit */
    bool shuffle;            /* reshuffle the examples every epoch (default true) */
    uint64_t seed;           /* the shuffle's seed (default 0; cnnc passes --seed) */
    int64_t eval_batch;      /* batch of the evaluations; 0: 256 */
    int64_t val;             /* hold out the last `val` training examples and evaluate them after
                              * every epoch; 0: none */
    int64_t patience;        /* stop after this many epochs without a better validation (else
                              * test) accuracy, and end with the best epoch's weights; 0: never */
    const char *checkpoint_dir; /* write DIR/last.safetensors after every epoch and when a
                              * callback stops training, DIR/best.safetensors whenever the
                              * validation (else test) accuracy improves; created when missing;
                              * NULL: no checkpoints */
    const char *resume;      /* a checkpoint to continue from exactly (with patience, its folder's
                              * best.safetensors too); NULL: a new run */
    cnn_train_step_fn on_step;   /* may be NULL */
    cnn_train_epoch_fn on_epoch; /* may be NULL */
    void *user;              /* passed to both callbacks */
} cnn_train_options;

typedef struct cnn_train_result {
    int64_t steps;           /* optimiser steps of the run (a resumed run's earlier ones included) */
    int64_t epochs;          /* epochs begun */
    int64_t resumed_step;    /* opt->resume: the step the checkpoint was at (0: a new run) */
    bool stopped;            /* a callback asked to stop */
    bool early_stopped;      /* opt->patience ended it */
    bool restored_best;      /* opt->patience: the weights were set back to best_epoch's */
    double train_loss, train_accuracy; /* of the last epoch */
    bool has_val;
    double val_loss, val_accuracy;     /* of the last evaluation */
    bool has_test;
    double test_loss, test_accuracy;   /* of the last evaluation */
    int64_t best_epoch;      /* of the best validation (else test) accuracy; 0: none */
    double best_accuracy;
    double seconds;          /* the whole call */
} cnn_train_result;

/* Fills *o with the defaults (epochs from the session, no step limit, shuffled, seed 0, no
 * validation, patience, checkpoints or resume, no callbacks). */
CNN_API void cnn_train_options_default(cnn_train_options *o);

/* Trains session s (CNN_MODE_TRAIN; its weights are updated in place) on `train` for
 * opt->epochs epochs of cnn_session_batch(s) examples per step, in an order reshuffled every
 * epoch (Fisher-Yates driven by a xorshift64 seeded with seed ^ 0x5eed, carried across epochs)
 * unless !opt->shuffle.  Before every step the learning rate is set by the session's schedule
 * (cnn_train_lr with the rate the session had when the call began; the session has that rate
 * again when the call returns).  After each epoch the held-out validation examples (opt->val)
 * and `test` (when not NULL) are evaluated with cnn_evaluate on an inference session of its own
 * (same model, weights and options); then the checkpoints are written and the epoch callback
 * runs.
 * Checkpoints (opt->checkpoint_dir) hold the weights, the optimiser state and the run's
 * position; opt->resume continues from one so that the run ends with the same weights, bit for
 * bit, as one that was never stopped (same threads and backend), whether it stopped at an epoch
 * boundary or mid-epoch.  A checkpoint of another network (tensors or shapes), batch,
 * optimiser, seed, shuffling, validation or training-set size is refused (CNN_ERR_INPUT, the
 * message naming the file and both values) before anything changes.  The checkpoint folder is
 * created and checked (a writable folder) before the first step.
 * opt NULL: the defaults; res may be NULL.
 * Returns CNN_OK when the epochs or max_steps are done, patience ended it or a callback stopped
 * it; CNN_ERR_DIVERGED when a step's loss is NaN or infinite (the message names the epoch and
 * the step; the weights are then those of that step); CNN_ERR_USAGE for a session that is not a
 * training session, a batch larger than the training examples (after the validation hold-out)
 * or patience without a validation or test set; CNN_ERR_INPUT for a checkpoint that cannot be
 * read, written or resumed; any error of the steps or the evaluation.  The message is in
 * cnn_session_errmsg(s).
 * Thread-safety: as the session; the datasets are only read, so other calls may read them at
 * the same time.  The caller's OpenMP settings are the same after the call as before. */
CNN_API cnn_status cnn_train(cnn_session *s, const cnn_dataset *train, const cnn_dataset *test,
                             const cnn_train_options *opt, cnn_train_result *res);

/* ---- many machines: data-parallel training on MPI (spec section 8; docs/distributed.md) ----
 *
 * Built in with the `mpi` Meson option (Open MPI).  While a communicator of P > 1 processes is
 * set (cnn_dist_init under mpirun, or cnn_dist_set_comm), the library trains data-parallel:
 *  - a training session is a replica: its first step after creation and after cnn_train starts
 *    checks that every process has the same plan, weights and optimiser state (refused with
 *    CNN_ERR_INPUT otherwise) and then copies rank 0's;
 *  - cnn_session_train_step is collective: the gradients are averaged over the processes
 *    (MPI_Iallreduce in buckets of a few MB, started while the backward pass still runs)
 *    before the update, and the loss it reports is the mean over the processes' batches; the
 *    batch is per process (the global batch is P x batch) and the learning rate is not scaled
 *    (see docs/distributed.md for the linear-scaling rule);
 *  - cnn_train gives each process every P-th example of the epoch's order (its rank first;
 *    steps per epoch: examples / (P x batch)), reports metrics over all processes, runs the
 *    callbacks on every process and stops all of them when one asks to stop;
 *  - cnn_evaluate is collective: each process evaluates its share and the results are summed;
 *    batchnorm running statistics are rank 0's (copied to every process before an evaluation
 *    and when cnn_train returns);
 *  - an error on one process stops every process at the next collective call with a non-zero
 *    status; the process that saw it has the message, the others have
 *    cnn_dist_failed_elsewhere() true.
 * MPI is called only from the thread that calls the library (MPI_THREAD_FUNNELED). */

/* True when the library was built with MPI. */
CNN_API bool cnn_dist_available(void);
/* Under mpirun (OMPI_COMM_WORLD_SIZE in the environment): initialises MPI (MPI_Init_thread
 * with MPI_THREAD_FUNNELED) unless the program already did, and works data-parallel on a
 * duplicate of MPI_COMM_WORLD.  Before initialising MPI it sets OMPI_MCA_mpi_yield_when_idle=1
 * in the environment unless it is set (waiting processes yield their core; see
 * docs/distributed.md).  Not under mpirun: does nothing (one process, as always).
 * CNN_ERR_USAGE with a message in err when started by mpirun with P > 1 but built without
 * MPI (P copies would each train alone and write the same files). */
CNN_API cnn_status cnn_dist_init(char *err, size_t errlen);
/* For a program that uses MPI itself: mpi_comm points to an MPI_Comm (kept by the caller; the
 * library duplicates it); MPI must be initialised with at least MPI_THREAD_FUNNELED.  NULL
 * leaves data-parallel mode.  Call it while no training session exists.  CNN_ERR_USAGE when
 * built without MPI. */
CNN_API cnn_status cnn_dist_set_comm(const void *mpi_comm, char *err, size_t errlen);
/* This process's rank (0 outside data-parallel mode) and the number of processes (1). */
CNN_API int cnn_dist_rank(void);
CNN_API int cnn_dist_size(void);
/* Collective: every process passes its own status; returns CNN_OK when all are CNN_OK, else
 * the largest failing status, on every process (cnn_dist_failed_elsewhere() then tells the
 * processes whose own status was CNN_OK).  For the points where processes can diverge
 * before training: loading the network, the weights, the data. */
CNN_API cnn_status cnn_dist_check(cnn_status local);
/* True when the last failing collective call failed because another process did (that process
 * reports the error): print nothing, exit with the status. */
CNN_API bool cnn_dist_failed_elsewhere(void);
/* Leaves data-parallel mode and, when cnn_dist_init initialised MPI, finalises it. */
CNN_API void cnn_dist_finalize(void);

/* ---- tensors: .npy files ---- */

/* Reads a float32 C-order .npy file; *data malloc'd (free with cnn_free). */
CNN_API cnn_status cnn_npy_read(const char *path, float **data, int *rank, int64_t dims[8],
                                char *err, size_t errlen);
CNN_API cnn_status cnn_npy_write(const char *path, const float *data, int rank, const int64_t *dims,
                                 char *err, size_t errlen);

/* ---- memory ---- */

/* An embedder's allocator: malloc(n) for n >= 1 returns memory aligned for any type (or NULL),
 * realloc and free as the C library's; ud is passed to each. */
typedef struct cnn_allocator {
    void *(*malloc)(size_t n, void *ud);
    void *(*realloc)(void *p, size_t n, void *ud);
    void (*free)(void *p, void *ud);
    void *ud;
} cnn_allocator;
/* Makes every allocation of the library go through a (copied); NULL (or a NULL function)
 * restores the C library's.  Process-wide and not thread-safe: call it once at the start,
 * before any other call, or at least while no object of the library exists (an object must be
 * freed by the allocator that made it).  When an allocation fails the call returns
 * CNN_ERR_NOMEM and frees what it had made.  Outside it: oneDNN's and OpenMP's (libgomp's)
 * internal allocations, cJSON's (safetensors headers), zlib's and libjpeg's (JPEG images; libpng's
 * go through it). */
CNN_API void cnn_set_allocator(const cnn_allocator *a);

CNN_API const char *cnn_version(void);
/* The checkout the library was built from (`git describe --always --dirty`: a commit, with the
 * tag before it when there is one, and "-dirty" for uncommitted changes), or "" when it was
 * built outside a git checkout. */
CNN_API const char *cnn_build_id(void);
/* The number of threads "all cores" means here. */
CNN_API int cnn_default_threads(void);
/* The most threads a session takes: 4 per core, 256 at most.  cnn_session_create refuses more
 * (CNN_ERR_USAGE), so that the OpenMP runtime is never asked for a team it cannot start (libgomp
 * ends the process then). */
CNN_API int cnn_max_threads(void);

#ifdef __cplusplus
}
#endif
#endif

/* The front end's public face: parse and check a .cnn source, and hand the compiler a flat,
 * fully expanded network (blocks inlined, repetitions unrolled, arguments checked against
 * the op registry's schemas, weight names given).  Knows nothing of memory or kernels. */
#ifndef CNN_LANG_H
#define CNN_LANG_H

#include <stdbool.h>
#include <stdint.h>

#include "ops/registry.h"
#include "lang/diag.h"
#include "lang/span.h"

/* One layer application in the expanded network.  Tensor ids: 0 .. ninputs-1 are the
 * network's inputs, ninputs + k is the output of layer k.  A layer only reads tensors made
 * before it. */
typedef struct lang_layer {
    const op_def *op;
    char name[OP_NAME_MAX];         /* "conv2d_1", a name= argument, "relu_3", "add_1" ... */
    int ninputs;
    int inputs[OP_MAX_IN];          /* tensor ids */
    op_argval args[OP_MAX_ARGS];    /* one per op->args slot, defaults filled in */
    lang_span arg_spans[OP_MAX_ARGS]; /* where each was written; the call's span for defaults */
    lang_span span;                 /* the call (or the '+' for add) */
} lang_layer;

typedef struct lang_input {
    char name[OP_NAME_MAX];
    op_shape shape;
    lang_span span;
} lang_input;

typedef struct lang_output {
    char name[OP_NAME_MAX];
    int tensor;
    lang_span span;
} lang_output;

typedef enum lang_loss { LANG_LOSS_CROSS_ENTROPY, LANG_LOSS_MSE } lang_loss;
typedef enum lang_optim { LANG_OPTIM_SGD, LANG_OPTIM_ADAM, LANG_OPTIM_ADAMW } lang_optim;
typedef enum lang_schedule { LANG_SCHEDULE_CONSTANT, LANG_SCHEDULE_STEP, LANG_SCHEDULE_COSINE } lang_schedule;
typedef enum lang_augment { LANG_AUGMENT_RANDOM_CROP = 1, LANG_AUGMENT_RANDOM_FLIP = 2 } lang_augment;
#define LANG_MAX_AUGMENT 8
#define LANG_MAX_NORMALIZE 16

/* The train section, with spec section 7's defaults where a setting is absent. */
typedef struct lang_train {
    bool present;
    lang_loss loss;
    lang_optim optimizer;
    double lr, momentum, weight_decay, beta1, beta2, eps;
    bool nesterov;
    int64_t batch, epochs;
    double label_smoothing;         /* cross_entropy(label_smoothing=...) */
    lang_schedule schedule;
    int64_t schedule_every;         /* step(every, gamma) */
    double schedule_gamma;
    double warmup_epochs;           /* cosine(warmup) */
    double clip_grad_norm;          /* 0: none */
    int naugment;
    struct { lang_augment kind; int64_t pad; } augment[LANG_MAX_AUGMENT];
    int nnormalize;                 /* 0 none, 1 for all channels, else per channel */
    double mean[LANG_MAX_NORMALIZE], std[LANG_MAX_NORMALIZE];
} lang_train;

typedef struct lang_network {
    char name[OP_NAME_MAX];
    lang_span span;
    int ninputs;
    lang_input inputs[16];
    int nlayers;
    lang_layer *layers;
    int noutputs;
    lang_output outputs[16];
    lang_train train;
} lang_network;

typedef struct lang_program {
    int nnetworks;
    lang_network *networks;
} lang_program;

/* Parses and checks `source` (len bytes, need not be NUL-terminated), reporting into diags
 * (initialised by the caller with the file name and source).  Returns a program (possibly
 * with fewer networks than the file names) or NULL on out-of-memory; the caller checks
 * diags->errors.  Never aborts on bad input. */
lang_program *lang_compile(const char *source, size_t len, diag_list *diags);
void lang_program_free(lang_program *p);
/* The network called name, or the only one when name is NULL; NULL otherwise. */
const lang_network *lang_program_network(const lang_program *p, const char *name);

#endif

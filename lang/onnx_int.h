/* ONNX import, internal: what lang/onnx.c (the protobuf, tensors, names, graph order) and
 * lang/onnx_ops.c (one translation per operator) share.  Not for use outside lang/onnx*.c. */
#ifndef CNN_LANG_ONNX_INT_H
#define CNN_LANG_ONNX_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "lang/onnx.h"
#include "onnx.pb-c.h"

/* The batch size inside an integer constant (Shape of an activation, then Gather...). */
#define ONNX_BATCH INT64_MIN
#define ONNX_MAX_CRANK 8

typedef enum ov_kind {
    OV_UNSET = 0,  /* not made yet */
    OV_FAILED,     /* its node failed (reported): readers skip quietly */
    OV_ACT,        /* an activation: a tensor of the network */
    OV_FLOAT,      /* a float constant (initializer, Constant) */
    OV_INT,        /* an integer constant (shapes, indices, axes), ONNX_BATCH for the batch size */
} ov_kind;

typedef struct ov {
    const char *name;       /* the ONNX name (inside the model) */
    ov_kind kind;
    /* OV_ACT */
    int tensor;             /* tensor id in the network */
    int rank;               /* ONNX rank without the batch axis */
    int64_t dims[OP_MAX_RANK];
    op_shape shape;         /* the network's shape ([C] where ONNX has [C, 1, 1] after GlobalAveragePool) */
    bool padded;            /* a zero Pad waiting for a Conv or an AveragePool */
    int64_t padb[3], pade[3];
    /* OV_FLOAT, OV_INT */
    int crank;
    int64_t cdims[ONNX_MAX_CRANK];
    int64_t numel;
    float *f;
    int64_t *i;
    const char *init_name;  /* the initializer's name, for layer names */
} ov;

typedef struct onnx_imp {
    diag_list *d;
    const Onnx__ModelProto *m;
    const Onnx__GraphProto *g;
    lang_onnx *x;
    int64_t opset;
    int64_t static_batch;   /* the inputs' fixed batch size, or -1 */
    ov *vals;
    int nvals, capvals;
    int *hash;              /* open addressing: value index + 1, 0 empty */
    size_t hashcap;
    int *uses;              /* per value: how many node inputs and graph outputs read it */
    int caplayers, captensors;
    int counters[OP_COUNT];
    void **blocks;          /* constant data to free */
    int nblocks, capblocks;
    const Onnx__NodeProto *node; /* being translated */
    bool oom;
    bool unsupported_op;    /* an operator outside the set was seen */
} onnx_imp;

/* lang/onnx.c */
void onnx_node_error(onnx_imp *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void onnx_error(onnx_imp *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void *onnx_alloc(onnx_imp *im, size_t count, size_t size); /* freed with the import */
int onnx_find(onnx_imp *im, const char *name);               /* value index, or -1 */
ov *onnx_define(onnx_imp *im, const char *name);             /* a new value (NULL: oom or made twice, reported) */
/* Parses a TensorProto into v (OV_FLOAT or OV_INT); false with the error reported. */
bool onnx_tensor(onnx_imp *im, const Onnx__TensorProto *t, ov *v, const char *what);
/* Appends a layer reading tensors in[0..nin); its name is `name` (made valid and unique) or,
 * when NULL, "<op>_<k>".  Returns the layer, or NULL when out of memory. */
lang_layer *onnx_add_layer(onnx_imp *im, op_kind op, const char *name, int nin, const int *in);
void onnx_set_int(lang_layer *L, const char *arg, int64_t v);
void onnx_set_ints(lang_layer *L, const char *arg, int n, const int64_t *v);
void onnx_set_float(lang_layer *L, const char *arg, double v);
void onnx_set_bool(lang_layer *L, const char *arg, bool v);
/* A weight tensor "<layer>.<suffix>" of the given shape; its data (numel floats) or NULL. */
float *onnx_add_tensor(onnx_imp *im, const char *layer, const char *suffix, int rank, const int64_t *dims);
lang_tensor *onnx_find_tensor(onnx_imp *im, const char *name);

/* lang/onnx_ops.c: translates im->node (its inputs are all made).  Reports its own errors. */
void onnx_translate(onnx_imp *im);
/* "an int", "a float"... when attribute a is not of the kind its name takes, else NULL. */
const char *onnx_attr_kind_error(const Onnx__AttributeProto *a);
/* Reports the attribute values of im->node that no translation takes. */
void onnx_check_attrs(onnx_imp *im);
/* True when op_type is one the importer knows; *attrs its attribute names (NULL-terminated). */
bool onnx_known_op(const char *op_type, const char *const **attrs);

#endif

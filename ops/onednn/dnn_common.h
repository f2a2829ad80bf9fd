/* Internal to the oneDNN backend: the shared CPU engine and stream, status messages, and a
 * small "program" that every kernel builds in prepare() and runs in run().
 *
 * A program is a list of memory objects and a list of steps (primitive executions).  A
 * memory object is either bound to one of the call's tensors (in[i] / out[i], its data
 * handle set at each run) or owned by the program (a buffer allocated at build time, for
 * oneDNN's blocked layouts and intermediate results).  All steps share one scratchpad
 * buffer (oneDNN's user scratchpad mode), sized to the largest step's need. */
#ifndef CNN_OPS_ONEDNN_COMMON_H
#define CNN_OPS_ONEDNN_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <oneapi/dnnl/dnnl.h>

#include "ops/kernels.h"

#define OP_DNN_MAX_MEMS 40
#define OP_DNN_MAX_STEPS 24
#define OP_DNN_MAX_ARGS (OP_MAX_IN + 4)

typedef enum op_dnn_bind { OP_DNN_OWN, OP_DNN_IN, OP_DNN_OUT } op_dnn_bind;

typedef struct op_dnn_step {
    dnnl_primitive_t prim;
    int nargs;
    int arg[OP_DNN_MAX_ARGS];   /* DNNL_ARG_* */
    int mem[OP_DNN_MAX_ARGS];   /* memory ids in the program */
    dnnl_memory_t scratch;      /* the step's view of the shared scratchpad, or NULL */
    bool skip_if_alias;         /* a copy: skipped when source and destination coincide */
    /* a weights reorder: skipped while the weights' version (op_call.weights_version) and the
     * source buffer are those of its last run: what a weights slot holds depends on the
     * weights alone, and every writer of the weights bumps their version */
    bool weights_reorder;
    bool reordered;
    uint64_t reordered_version;
    const void *reordered_src;
} op_dnn_step;

typedef struct op_dnn_prog {
    int nmem;
    dnnl_memory_t mem[OP_DNN_MAX_MEMS];
    op_dnn_bind bind[OP_DNN_MAX_MEMS];
    int bind_idx[OP_DNN_MAX_MEMS];
    void *own[OP_DNN_MAX_MEMS];          /* owned buffers, or NULL */
    int nsteps;
    op_dnn_step step[OP_DNN_MAX_STEPS];
    void *scratchpad;
    size_t scratchpad_size;
    int main_step;                       /* the step whose implementation is reported */
    dnnl_stream_t stream;                /* the program's own: sessions on other threads run
                                            their programs at the same time */
    /* kernel-specific marks: step boundaries and memory ids for work between steps */
    int mark[4];
    int memid[4];
    /* what the program was built for: rebuilt when a call differs */
    int nthreads, nin, nout;
    int rank[OP_MAX_IN + OP_MAX_OUT];
    int layout[OP_MAX_IN + OP_MAX_OUT];
    int64_t dims[OP_MAX_IN + OP_MAX_OUT][OP_MAX_DIMS];
} op_dnn_prog;

/* Builds the program for the call (data pointers may be NULL).  0, or -1 with err. */
typedef int (*op_dnn_build_fn)(op_dnn_prog *p, const op_call *c, char *err, size_t errlen);

/* The engine, created once (thread-safe) and shared (oneDNN engines are); NULL when oneDNN
 * failed to start.  Streams are per program (op_dnn_prog.stream), never shared. */
dnnl_engine_t op_dnn_engine(void);
const char *op_dnn_status_str(dnnl_status_t s);

/* Writes "oneDNN: what: <status>" into err and returns -1. */
int op_dnn_fail(dnnl_status_t s, const char *what, char *err, size_t errlen);
/* Writes a formatted message into err and returns -1. */
int op_dnn_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define OP_DNN_TRY(call, what)                                                 \
    do {                                                                       \
        dnnl_status_t st_ = (call);                                            \
        if (st_ != dnnl_success) return op_dnn_fail(st_, (what), err, errlen); \
    } while (0)

/* Plain dense row-major f32 descriptor of ndims (1..6) dims. */
dnnl_memory_desc_t op_dnn_md(int ndims, const int64_t *dims);
/* A descriptor with format "any", for a primitive to choose. */
dnnl_memory_desc_t op_dnn_md_any(int ndims, const int64_t *dims);
/* Dense f32 descriptor of ndims (1..6) dims [N, C, spatial...] in layout l: plain, or when
 * ndims is 3 to 5 channels-last (N, spatial..., C: nwc, nhwc, ndhwc) or channels blocked by 16
 * (aBc16b, aBcd16b, aBcde16b). */
dnnl_memory_desc_t op_dnn_md_layout(int ndims, const int64_t *dims, op_layout l);

/* ---- layouts (op_tensor.layout; compiler/pass_layout.c decides them)
 * A call runs in a layout other than plain when one of its tensors is.  A tensor whose orders
 * coincide (rank <= 2, one channel, or one spatial position) is then described in that layout
 * too, so that every activation descriptor of the primitive has one format.  (A blocked call
 * has no one-channel tensors, and its channel counts are multiples of 16: the layout pass sees
 * to it, so a one-position tensor is the same bytes blocked as plain.) */
bool op_dnn_layout_free(const op_tensor *t);
op_layout op_dnn_call_layout(const op_call *c);
/* The layout to describe tensor t of call c in. */
op_layout op_dnn_tensor_layout(const op_call *c, const op_tensor *t);
/* Checks that the call's tensors agree on one layout (those whose orders coincide aside), as
 * kernels that view their tensors flat need.  0, or -1 with err. */
int op_dnn_one_layout(const op_call *c, const char *what, char *err, size_t errlen);
/* Checks that tensor t is plain (kernels that read C,H,W order).  0, or -1 with err. */
int op_dnn_plain_only(const op_tensor *t, const char *what, char *err, size_t errlen);

/* A primitive attribute in user scratchpad mode (free with dnnl_primitive_attr_destroy). */
int op_dnn_attr(dnnl_primitive_attr_t *attr, char *err, size_t errlen);
/* Appends a fused activation (eltwise post-op); OP_ACT_NONE appends nothing. */
int op_dnn_attr_act(dnnl_primitive_attr_t attr, op_act act, float alpha, bool with_sum,
                    char *err, size_t errlen);
/* The same with the sum post-op's scale and the type it reads the destination as (undef: the
 * destination's own; int8: u8 or s8 bytes into a u8 or s8 destination). */
int op_dnn_attr_act_sum(dnnl_primitive_attr_t attr, op_act act, float alpha, bool with_sum, float sum_scale,
                        dnnl_data_type_t sum_type, char *err, size_t errlen);
/* The oneDNN eltwise algorithm and alpha for one of our activations. */
dnnl_alg_kind_t op_dnn_act_alg(op_act act, float alpha, float *dnn_alpha);
/* Appends a step applying act to memory src into dst (may be src), both described by md;
 * returns the step's index, or -1 with err (dnn_eltwise.c). */
int op_dnn_act_step(op_dnn_prog *p, const dnnl_memory_desc_t *md, op_act act, float alpha, int src, int dst,
                    char *err, size_t errlen);
/* Appends a step summing the n memories srcs (each described by md) into dst. */
int op_dnn_sum_step(op_dnn_prog *p, const dnnl_memory_desc_t *md, int n, const int *srcs, int dst, char *err,
                    size_t errlen);
/* Appends a step writing to dx the gradient at act's input from dy at its output y. */
int op_dnn_act_bwd_step(op_dnn_prog *p, const dnnl_memory_desc_t *md, op_act act, float alpha, int dy, int y,
                        int dx, char *err, size_t errlen);

/* Memory ids.  A memory bound to a tensor of the call, described by md. */
int op_dnn_mem_bound(op_dnn_prog *p, const dnnl_memory_desc_t *md, op_dnn_bind bind, int idx,
                     char *err, size_t errlen);
/* A memory with its own buffer (zeroed). */
int op_dnn_mem_own(op_dnn_prog *p, const dnnl_memory_desc_t *md, char *err, size_t errlen);
const dnnl_memory_desc_t *op_dnn_mem_md(const op_dnn_prog *p, int id);
float *op_dnn_mem_data(const op_dnn_prog *p, int id);

/* A step executing a primitive made from pd (pd stays the caller's) with nargs pairs of
 * (DNNL_ARG_*, memory id).  Returns the step index, or -1 with err. */
int op_dnn_prim(op_dnn_prog *p, const_dnnl_primitive_desc_t pd, char *err, size_t errlen,
                int nargs, ...);
/* A reorder step from memory src to memory dst.  Returns the step index or -1. */
int op_dnn_reorder(op_dnn_prog *p, int src, int dst, bool skip_if_alias, char *err, size_t errlen);
/* The same with dst = scale * src (int8: rounded to nearest even and saturated). */
int op_dnn_reorder_scaled(op_dnn_prog *p, int src, int dst, float scale, bool skip_if_alias, char *err,
                          size_t errlen);
/* Memory id's buffer seen as elements of type dt (of the same size): id itself when it has that
 * type, else a new memory on the same buffer (bound to the same tensor, or the same owned one). */
int op_dnn_mem_view(op_dnn_prog *p, int id, dnnl_data_type_t dt, char *err, size_t errlen);

/* A primitive's input: the call's tensor (bind, idx) in its plain layout `plain`, as the
 * primitive wants it (`want`, queried from its pd): the bound memory itself when the layouts
 * agree, else an owned memory filled by a reorder step added now.  Returns the memory id. */
int op_dnn_input(op_dnn_prog *p, const dnnl_memory_desc_t *plain, const dnnl_memory_desc_t *want,
                 op_dnn_bind bind, int idx, char *err, size_t errlen);
/* op_dnn_input for weights: the reorder (when one is needed) is skipped on the runs where
 * the weights are bitwise what they were at the last reorder (inference; a memcmp costs
 * less than a reorder); when they changed (training) it runs and the copy is refreshed. */
int op_dnn_weights(op_dnn_prog *p, const dnnl_memory_desc_t *plain, const dnnl_memory_desc_t *want, int idx,
                   char *err, size_t errlen);
/* A primitive's output: returns the memory id the primitive writes; when the layouts differ
 * that is an owned memory and *user gets the bound memory to reorder into (with
 * op_dnn_reorder after the primitive's step), else *user = -1. */
int op_dnn_output(op_dnn_prog *p, const dnnl_memory_desc_t *plain, const dnnl_memory_desc_t *want,
                  op_dnn_bind bind, int idx, int *user, char *err, size_t errlen);

/* Kernel plumbing: build (prepare), rebuild when needed, run steps [from, to), release. */
int op_dnn_prepare(op_call *c, op_dnn_build_fn build, char *err, size_t errlen);
op_dnn_prog *op_dnn_ready(op_call *c, op_dnn_build_fn build, char *err, size_t errlen);
int op_dnn_exec(op_dnn_prog *p, const op_call *c, int from, int to, char *err, size_t errlen);
void op_dnn_release(void *state);

/* Defines the run/prepare functions and the op_kernel `name` for a kernel whose run is
 * "execute every step"; layouts is its op_layout_support. */
#define OP_DNN_SIMPLE_KERNEL(name, build, layouts, blocked)                          \
    static int name##_prepare(op_call *c, char *err, size_t errlen)                  \
    {                                                                                \
        return op_dnn_prepare(c, build, err, errlen);                                \
    }                                                                                \
    static int name##_run(op_call *c, char *err, size_t errlen)                      \
    {                                                                                \
        op_dnn_prog *p = op_dnn_ready(c, build, err, errlen);                        \
        return p ? op_dnn_exec(p, c, 0, p->nsteps, err, errlen) : -1;                \
    }                                                                                \
    const op_kernel name = {name##_run, name##_prepare, op_dnn_release, NULL, layouts, blocked}

/* Spatial geometry of an op as 2-D (1-D signals get height 1): batch, channels, H, W. */
typedef struct op_dnn_nchw {
    int64_t n, c, h, w;
} op_dnn_nchw;
/* Reads t as [N, C, H, W]: rank 4 as is, rank 3 [N,C,L] as H=1, rank 2 [N,C] as H=W=1. */
int op_dnn_as_nchw(const op_tensor *t, op_dnn_nchw *g, char *err, size_t errlen);
/* Elements of t after the batch axis. */
int64_t op_dnn_inner(const op_tensor *t);

/* The kernels, one op_kernel per op (defined in the family files). */
extern const op_kernel op_dnn_conv_kernel, op_dnn_conv_bwd_data_kernel, op_dnn_conv_bwd_weights_kernel;
extern const op_kernel op_dnn_dense_kernel, op_dnn_dense_bwd_data_kernel, op_dnn_dense_bwd_weights_kernel;
extern const op_kernel op_dnn_maxpool_kernel, op_dnn_avgpool_kernel, op_dnn_global_avgpool_kernel;
extern const op_kernel op_dnn_maxpool_bwd_kernel, op_dnn_avgpool_bwd_kernel, op_dnn_global_avgpool_bwd_kernel;
extern const op_kernel op_dnn_act_kernel, op_dnn_act_bwd_kernel, op_dnn_softmax_kernel, op_dnn_softmax_bwd_kernel;
extern const op_kernel op_dnn_add_kernel, op_dnn_concat_kernel, op_dnn_concat_bwd_kernel;
extern const op_kernel op_dnn_batchnorm_kernel, op_dnn_batchnorm_bwd_kernel;
extern const op_kernel op_dnn_reorder_kernel;
extern const op_kernel op_dnn_conv_q_kernel, op_dnn_dense_q_kernel; /* dnn_lowp.c: int8 and bf16 */

#endif

/* The native int8 convolution's job at the scalar level (native_conv_q.h). */
#define NQ_JOB op_native_convq_job_scalar
#define NQ_TILE nq_tile_c
#define NQ_NV(fb) NQ_MAX_NV
#include "ops/native/conv_q_common.h"

/* The native int8 convolution's job at the AVX2 level (native_conv_q.h): the exact integer tile
 * in C, vectorised by the compiler (no VNNI: vpmaddubsw would saturate). */
#define NQ_JOB op_native_convq_job_avx2
#define NQ_TILE nq_tile_c
#define NQ_NV(fb) NQ_MAX_NV
#include "ops/native/conv_q_common.h"

/* The loops of batchnorm, pooling, element-wise ops and optimiser updates for the avx512 level,
 * compiled with -mavx512f -mavx512vl -mfma: simd_common.h vectorised for this ISA. */
#define SIMD_SFX avx512
#include "ops/native/simd_common.h"

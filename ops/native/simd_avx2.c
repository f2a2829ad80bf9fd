/* The loops of batchnorm, pooling, element-wise ops and optimiser updates for the avx2 level,
 * compiled with -mavx2 -mfma: simd_common.h vectorised for this ISA. */
#define SIMD_SFX avx2
#include "ops/native/simd_common.h"

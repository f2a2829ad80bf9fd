/* The loops of batchnorm, pooling, element-wise ops and optimiser updates for the scalar level,
 * compiled with no ISA flags (the baseline every x86-64 has; also the non-x86 build): simd_common.h vectorised for this ISA. */
#define SIMD_SFX scalar
#include "ops/native/simd_common.h"

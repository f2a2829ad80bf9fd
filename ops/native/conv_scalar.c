/* Convolution packers and the direct-plane convolution for the scalar level, compiled with
 * no ISA flags (the baseline every x86-64 has; also the non-x86 build): the loops of conv_common.h vectorised for this ISA. */
#define CONV_SFX scalar
#include "ops/native/conv_common.h"

/* The scale tensors of a weights store (runtime/quantize.c), for weights.c and session.c. */
#ifndef CNN_RUNTIME_QUANTIZE_H
#define CNN_RUNTIME_QUANTIZE_H

#include "runtime/rt.h"
#include "runtime/safetensors.h"

/* The number of values of scale tensor `name` (NAME.weight_scale: the layer's output channels;
 * NAME.input_scale, NAME.output_scale: 1) when NAME is a conv or dense layer of w, else -1. */
int64_t rt_scale_numel(const cnn_weights *w, const char *name);
/* Checks the scale tensors of file f (shape, positive, finite: CNN_ERR_INPUT naming path) and
 * makes view the file without them (its array in *kept, to free). */
cnn_status rt_scales_split(cnn_weights *w, const rt_st_file *f, const char *path, rt_st_file *view,
                           rt_st_tensor **kept);
/* Copies f's scale tensors into w (after rt_scales_split accepted them); scales not in f are no
 * longer in force. */
cnn_status rt_scales_store(cnn_weights *w, const rt_st_file *f);
/* Sets (adds) scale tensor name of numel values. */
cnn_status rt_scale_set(cnn_weights *w, const char *name, int64_t numel, const float *data);
/* A new session's precision against its weights and the CPU: int8 needs every scale the plan
 * reads (CNN_ERR_INPUT), bf16 a CPU with avx512_bf16 and oneDNN (CNN_ERR_USAGE), training fp32
 * (CNN_ERR_USAGE); a training session drops the weights' int8 scales, which its steps make stale. */
cnn_status rt_precision_check(cnn_session *s);

#endif

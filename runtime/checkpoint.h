/* Training checkpoints (spec section 8): a safetensors file holding the weights, the training
 * session's optimiser state (NAME.momentum_buffer, NAME.exp_avg, NAME.exp_avg_sq) and, in
 * "__metadata__", where the run is (epochs done, step in the epoch, the schedule's step, the
 * shuffle's state, the session's step counter), how it was set up (network, batch, optimiser,
 * seeds, examples) and its metrics.  Private to runtime/ (cnn_train writes and reads them). */
#ifndef CNN_RT_CHECKPOINT_H
#define CNN_RT_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/rt.h"

#define RT_CKPT_FORMAT "cnnc-checkpoint"
#define RT_CKPT_VERSION 1

/* Where a run is and how it was set up: everything besides the tensors. */
typedef struct rt_ckpt_state {
    /* position */
    int64_t epochs_done;      /* epochs finished (their evaluation and checkpoint included) */
    int64_t epoch_step;       /* steps taken in epoch epochs_done + 1 (0: it has not begun) */
    int64_t steps_per_epoch;
    int64_t total_steps;      /* T of the schedule: epochs x steps per epoch */
    int64_t step;             /* optimiser steps of the run (the schedule's t of the next step) */
    int64_t session_step;     /* the session's step counter (Adam's bias correction, dropout seeds) */
    double lr;                /* the rate of the last step */
    bool shuffle;
    uint64_t shuffle_state;   /* the xorshift state after the last shuffle */
    /* set-up (a resume must match) */
    uint64_t shuffle_seed, seed;
    int64_t batch, examples, val;
    /* the epoch in progress: sums over its steps so far */
    double epoch_loss_sum;
    int64_t epoch_correct, epoch_seen;
    /* early stopping, the divergence check and the clock */
    double first_loss;        /* the run's first step's loss */
    double best_accuracy;     /* validation (else test) accuracy of best_epoch */
    int64_t best_epoch;       /* 0: none yet */
    int64_t bad_epochs;       /* epochs since best_epoch */
    double elapsed;           /* wall seconds of the run so far */
    /* the last epoch's metrics (NaN: not measured) */
    double train_loss, train_accuracy, val_loss, val_accuracy, test_loss, test_accuracy;
} rt_ckpt_state;

/* Writes the session's weights, optimiser state and cs to path, atomically (a temporary file
 * synced and renamed over it).  CNN_ERR_INPUT with "path: ..." in err when it cannot be written. */
cnn_status rt_ckpt_write(cnn_session *s, const char *path, const rt_ckpt_state *cs, char *err, size_t errlen);

/* Reads checkpoint path for session s: checks that it is a checkpoint of s's network with the
 * same tensors and shapes (weights and optimiser state), batch, optimiser, seeds and example
 * count as `want` says (want->batch, seed, shuffle_seed, examples, val), then loads the tensors
 * into the session's weights and optimiser state and fills *cs.  On any error nothing is
 * changed and err names the file and both values (CNN_ERR_INPUT; CNN_ERR_NOMEM). */
cnn_status rt_ckpt_read(cnn_session *s, const char *path, const rt_ckpt_state *want, rt_ckpt_state *cs, char *err,
                        size_t errlen);

/* Copies the weights (not the optimiser state) of checkpoint or weights file path into bufs[i]
 * (one buffer per tensor of w, of its size), checking names and shapes; its "epochs_done"
 * metadata (0 when none) in *epochs_done. */
cnn_status rt_ckpt_read_weights(const cnn_weights *w, const char *path, float **bufs, int64_t *epochs_done,
                                char *err, size_t errlen);

/* Whether the keys of a file with this metadata (rt_st_meta of the file) may name optimiser
 * state: the file is a checkpoint.  And whether key is such a key: NAME.momentum_buffer,
 * NAME.exp_avg or NAME.exp_avg_sq with NAME one of w's tensors. */
bool rt_ckpt_is_optstate_key(const cnn_weights *w, const char *key);

#endif

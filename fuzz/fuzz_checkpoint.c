/* Fuzz target: a training checkpoint (spec section 8: a safetensors file with the weights, the
 * optimiser state NAME.momentum_buffer / NAME.exp_avg / NAME.exp_avg_sq and, in __metadata__,
 * the run's position, random state, settings and metrics), read both ways a user reads one:
 * as weights (`-w CKPT`: the weights loader skips the optimiser state of a checkpoint) and as
 * `--resume CKPT` (rt_ckpt_read on a training session of the same network: every metadata
 * field parsed and checked against the session, then the tensors loaded).  Seeds: checkpoints
 * of fuzz_net (fuzz/make_seeds.py: the keys runtime/checkpoint.c writes). */
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "fuzz/fuzz_model.h"
#include "runtime/checkpoint.h"
#include "runtime/rt.h"

/* The session --resume reads into: sgd with momentum (its momentum_buffer state), batch 2. */
static cnn_session *resume_session(void)
{
    static cnn_session *s;
    static cnn_weights *w;
    if (!s) {
        cnn_train_config tc;
        cnn_model_train_config(fuzz_model(), &tc);
        tc.momentum = 0.9;
        tc.batch = 2;
        cnn_options o;
        cnn_options_default(&o);
        o.threads = 1;
        o.backend = CNN_BACKEND_REF;
        w = fuzz_weights();
        if (cnn_session_create(&s, fuzz_model(), w, &o, 2, CNN_MODE_TRAIN, &tc) != CNN_OK)
            abort();
    }
    return s;
}

FUZZ_ENTRY(checkpoint)
{
    cnn_weights *w = fuzz_weights();
    if (cnn_weights_load_memory(w, data, size, false) != CNN_OK && !cnn_weights_errmsg(w)[0])
        abort();
    cnn_weights_destroy(w);

    const char *path = fuzz_write_file(0, "ck.safetensors", data, size);
    /* the set-up the seeds were written with (fuzz/make_seeds.py) */
    rt_ckpt_state want = {.batch = 4, .seed = 0, .shuffle_seed = 0, .shuffle = true, .examples = 80, .val = 0}, got;
    char err[1024] = "";
    cnn_status st = rt_ckpt_read(resume_session(), path, &want, &got, err, sizeof err);
    if (st != CNN_OK && !err[0])
        abort(); /* a refusal must say why */
    fuzz_remove_file("ck.safetensors");
    return 0;
}

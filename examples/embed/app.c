/* app.c — embeds libcnn: compiles a network, makes or loads its weights, classifies a batch
 * from a .npy file (written here first if it does not exist), then trains a few steps on a
 * data folder, saving the weights.  Usage: app NET.cnn IN.npy [W.safetensors [DATA_DIR]]
 * Build: cc app.c $(pkg-config --cflags --libs cnn) -o app */
#include <cnn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FAIL(what, msg) do { fprintf(stderr, "app: %s: %s\n", what, msg); goto out; } while (0)

static int on_step(const cnn_train_step_info *i, void *user)
{
    (void)user;
    if (i->step % 5 == 0)
        printf("step %lld: loss %.4f, accuracy %.3f\n", (long long)i->step, i->loss, i->accuracy);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) { fprintf(stderr, "usage: %s NET.cnn IN.npy [W.safetensors [DATA_DIR]]\n", argv[0]); return 2; }
    cnn_model *m = NULL; cnn_weights *w = NULL; cnn_session *s = NULL, *t = NULL;
    cnn_dataset *train = NULL; float *x = NULL; int rc = 1, rank; int64_t d[8], per = 1;
    char err[1024];
    if (cnn_model_load(&m, argv[1], NULL) != CNN_OK) { fputs(cnn_model_errmsg(m), stderr); goto out; }
    if (cnn_weights_create(&w, m, 0) != CNN_OK) FAIL("weights", cnn_weights_errmsg(w));
    if (argc > 3 && access(argv[3], R_OK) == 0 && cnn_weights_load(w, argv[3], false) != CNN_OK)
        FAIL(argv[3], cnn_weights_errmsg(w));
    int irank = cnn_model_input_shape(m, 0, d + 1);
    for (int k = 1; k <= irank; k++) per *= d[k];
    if (access(argv[2], R_OK) != 0) { /* no input yet: write 4 pseudo-random examples */
        d[0] = 4;
        float *r = malloc(sizeof(float) * 4 * per);
        for (int64_t i = 0; r && i < 4 * per; i++) r[i] = (float)((i * 7919) % 1000) / 1000.0f;
        cnn_status st = r ? cnn_npy_write(argv[2], r, irank + 1, d, err, sizeof err) : CNN_ERR_INTERNAL;
        free(r);
        if (st != CNN_OK) FAIL(argv[2], err);
    }
    if (cnn_npy_read(argv[2], &x, &rank, d, err, sizeof err) != CNN_OK) FAIL(argv[2], err);
    if (rank != irank + 1) FAIL(argv[2], "the array's rank does not fit the network's input");
    if (cnn_session_create(&s, m, w, NULL, d[0], CNN_MODE_INFER, NULL) != CNN_OK) FAIL("session", cnn_session_errmsg(s));
    memcpy(cnn_session_input(s, 0), x, sizeof(float) * d[0] * per);
    if (cnn_session_run(s) != CNN_OK) FAIL("run", cnn_session_errmsg(s));
    int64_t od[4], classes = 1;
    for (int k = 0, r = cnn_model_output_shape(m, 0, od); k < r; k++) classes *= od[k];
    const float *y = cnn_session_output(s, 0);
    for (int64_t b = 0; b < d[0]; b++) {
        int64_t best = 0;
        for (int64_t k = 1; k < classes; k++) if (y[b * classes + k] > y[b * classes + best]) best = k;
        printf("%s[%lld]: class %lld (%g)\n", cnn_model_output_name(m, 0), (long long)b, (long long)best,
               (double)y[b * classes + best]);
    }
    if (argc > 4) { /* a few training steps through the library's loop */
        if (cnn_dataset_load(&train, argv[4], "train", NULL, err, sizeof err) != CNN_OK) FAIL(argv[4], err);
        if (cnn_dataset_check(train, m, err, sizeof err) != CNN_OK) FAIL(argv[4], err);
        cnn_train_config cfg;
        cnn_model_train_config(m, &cfg);
        if (cnn_session_create(&t, m, w, NULL, cfg.batch, CNN_MODE_TRAIN, &cfg) != CNN_OK)
            FAIL("training session", cnn_session_errmsg(t));
        cnn_train_options o;
        cnn_train_options_default(&o);
        o.epochs = 1, o.max_steps = 20, o.on_step = on_step;
        cnn_train_result res;
        if (cnn_train(t, train, NULL, &o, &res) != CNN_OK) FAIL("train", cnn_session_errmsg(t));
        printf("trained %lld steps: loss %.4f\n", (long long)res.steps, res.train_loss);
        if (cnn_weights_save(w, argv[3]) != CNN_OK) FAIL(argv[3], cnn_weights_errmsg(w));
    }
    rc = 0;
out:
    cnn_free(x); cnn_dataset_destroy(train); cnn_session_destroy(t); cnn_session_destroy(s);
    cnn_weights_destroy(w); cnn_model_destroy(m);
    return rc;
}

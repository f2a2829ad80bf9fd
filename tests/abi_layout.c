/* The memory layout of the public structs that the Python module (python/cnnc/__init__.py)
 * mirrors with ctypes, as the compiler lays them out from cnn.h, printed as JSON on stdout:
 *   {"cnn_options": {"size": 48, "fields": [{"name": "passes", "offset": 0, "size": 4}, ...]}, ...}
 * with the fields in declaration order.  python/tests/test_abi.py compares it with the ctypes
 * Structures, so a field added to, moved in or retyped in cnn.h but not in Python fails there
 * instead of letting Python read and write the wrong bytes.  The field lists are written by
 * hand on purpose: the sizes and offsets come from the compiler, the names from this list, and
 * the test holds Python's hand-written list to both.  Not a meson test: pytest runs it. */
#include <stddef.h>
#include <stdio.h>

#include "runtime/cnn.h"

typedef struct {
    const char *name;
    size_t offset, size;
} field;

typedef struct {
    const char *name;
    size_t size;
    const field *fields;
    size_t nfields;
} layout;

/* offsetof and sizeof of one member; sizeof does not evaluate the null pointer */
#define FIELD(type, member) {#member, offsetof(type, member), sizeof(((type *)0)->member)}
#define LAYOUT(type, list) {#type, sizeof(type), list, sizeof list / sizeof list[0]}

static const field options[] = {
    FIELD(cnn_options, passes),     FIELD(cnn_options, backend),   FIELD(cnn_options, threads),
    FIELD(cnn_options, seed),       FIELD(cnn_options, precision), FIELD(cnn_options, tune),
    FIELD(cnn_options, tune_cache), FIELD(cnn_options, conv_algo), FIELD(cnn_options, keep_denormals),
};

static const field augment_step[] = {
    FIELD(cnn_augment_step, kind),
    FIELD(cnn_augment_step, pad),
};

static const field train_config[] = {
    FIELD(cnn_train_config, loss),           FIELD(cnn_train_config, optimizer),
    FIELD(cnn_train_config, lr),             FIELD(cnn_train_config, momentum),
    FIELD(cnn_train_config, weight_decay),   FIELD(cnn_train_config, beta1),
    FIELD(cnn_train_config, beta2),          FIELD(cnn_train_config, eps),
    FIELD(cnn_train_config, nesterov),       FIELD(cnn_train_config, batch),
    FIELD(cnn_train_config, epochs),         FIELD(cnn_train_config, label_smoothing),
    FIELD(cnn_train_config, schedule),       FIELD(cnn_train_config, schedule_every),
    FIELD(cnn_train_config, schedule_gamma), FIELD(cnn_train_config, warmup_epochs),
    FIELD(cnn_train_config, clip_grad_norm), FIELD(cnn_train_config, naugment),
    FIELD(cnn_train_config, augment),        FIELD(cnn_train_config, nnormalize),
    FIELD(cnn_train_config, mean),           FIELD(cnn_train_config, std),
};

static const field step_info[] = {
    FIELD(cnn_train_step_info, step),           FIELD(cnn_train_step_info, epoch),
    FIELD(cnn_train_step_info, epochs),         FIELD(cnn_train_step_info, epoch_step),
    FIELD(cnn_train_step_info, steps_per_epoch), FIELD(cnn_train_step_info, run_steps),
    FIELD(cnn_train_step_info, call_steps),     FIELD(cnn_train_step_info, batch),
    FIELD(cnn_train_step_info, lr),             FIELD(cnn_train_step_info, loss),
    FIELD(cnn_train_step_info, accuracy),       FIELD(cnn_train_step_info, epoch_loss),
    FIELD(cnn_train_step_info, epoch_accuracy), FIELD(cnn_train_step_info, images_per_s),
    FIELD(cnn_train_step_info, seconds),        FIELD(cnn_train_step_info, call_seconds),
    FIELD(cnn_train_step_info, wall_seconds),
};

static const field epoch_info[] = {
    FIELD(cnn_train_epoch_info, epoch),          FIELD(cnn_train_epoch_info, epochs),
    FIELD(cnn_train_epoch_info, steps),          FIELD(cnn_train_epoch_info, total_steps),
    FIELD(cnn_train_epoch_info, lr),             FIELD(cnn_train_epoch_info, train_loss),
    FIELD(cnn_train_epoch_info, train_accuracy), FIELD(cnn_train_epoch_info, images_per_s),
    FIELD(cnn_train_epoch_info, seconds),        FIELD(cnn_train_epoch_info, wall_seconds),
    FIELD(cnn_train_epoch_info, has_val),        FIELD(cnn_train_epoch_info, val_loss),
    FIELD(cnn_train_epoch_info, val_accuracy),   FIELD(cnn_train_epoch_info, has_test),
    FIELD(cnn_train_epoch_info, test_loss),      FIELD(cnn_train_epoch_info, test_accuracy),
    FIELD(cnn_train_epoch_info, improved),       FIELD(cnn_train_epoch_info, best_epoch),
    FIELD(cnn_train_epoch_info, best_accuracy),  FIELD(cnn_train_epoch_info, epochs_without_improvement),
    FIELD(cnn_train_epoch_info, early_stop),     FIELD(cnn_train_epoch_info, checkpointed),
    FIELD(cnn_train_epoch_info, warning),
};

static const field train_options[] = {
    FIELD(cnn_train_options, epochs),         FIELD(cnn_train_options, max_steps),
    FIELD(cnn_train_options, shuffle),        FIELD(cnn_train_options, seed),
    FIELD(cnn_train_options, eval_batch),     FIELD(cnn_train_options, val),
    FIELD(cnn_train_options, patience),       FIELD(cnn_train_options, checkpoint_dir),
    FIELD(cnn_train_options, resume),         FIELD(cnn_train_options, on_step),
    FIELD(cnn_train_options, on_epoch),       FIELD(cnn_train_options, user),
};

static const field train_result[] = {
    FIELD(cnn_train_result, steps),          FIELD(cnn_train_result, epochs),
    FIELD(cnn_train_result, resumed_step),   FIELD(cnn_train_result, stopped),
    FIELD(cnn_train_result, early_stopped),  FIELD(cnn_train_result, restored_best),
    FIELD(cnn_train_result, train_loss),     FIELD(cnn_train_result, train_accuracy),
    FIELD(cnn_train_result, has_val),        FIELD(cnn_train_result, val_loss),
    FIELD(cnn_train_result, val_accuracy),   FIELD(cnn_train_result, has_test),
    FIELD(cnn_train_result, test_loss),      FIELD(cnn_train_result, test_accuracy),
    FIELD(cnn_train_result, best_epoch),     FIELD(cnn_train_result, best_accuracy),
    FIELD(cnn_train_result, seconds),
};

static const field eval_result[] = {
    FIELD(cnn_eval_result, loss),
    FIELD(cnn_eval_result, accuracy),
    FIELD(cnn_eval_result, count),
};

/* Every struct python/cnnc mirrors, no more: the test also fails when the two sets differ. */
static const layout layouts[] = {
    LAYOUT(cnn_options, options),
    LAYOUT(cnn_augment_step, augment_step),
    LAYOUT(cnn_train_config, train_config),
    LAYOUT(cnn_train_step_info, step_info),
    LAYOUT(cnn_train_epoch_info, epoch_info),
    LAYOUT(cnn_train_options, train_options),
    LAYOUT(cnn_train_result, train_result),
    LAYOUT(cnn_eval_result, eval_result),
};

int main(void)
{
    size_t n = sizeof layouts / sizeof layouts[0];
    printf("{\n");
    for (size_t i = 0; i < n; i++) {
        const layout *l = &layouts[i];
        printf("  \"%s\": {\"size\": %zu, \"fields\": [\n", l->name, l->size);
        for (size_t j = 0; j < l->nfields; j++) {
            const field *f = &l->fields[j];
            printf("    {\"name\": \"%s\", \"offset\": %zu, \"size\": %zu}%s\n", f->name, f->offset, f->size,
                   j + 1 < l->nfields ? "," : "");
        }
        printf("  ]}%s\n", i + 1 < n ? "," : "");
    }
    printf("}\n");
    return ferror(stdout) ? 1 : 0;
}

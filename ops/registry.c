/* The op registry: the table of op descriptions, one per op kind of ops/ops.def, indexed by
 * kind.  The descriptions themselves live by op family in ops/desc_*.c, each entry named
 * op_def_<name> after its ops.def name; the layer-name list is derived from the table. */
#include "ops/registry.h"

#include <pthread.h>
#include <string.h>

#define X(e, s) extern const op_def op_def_##s;
#include "ops/ops.def"
#undef X

static const op_def *const op_table[OP_COUNT] = {
#define X(e, s) [OP_##e] = &op_def_##s,
#include "ops/ops.def"
#undef X
};

const op_def *op_def_get(op_kind op)
{
    if ((int)op < 0 || op >= OP_COUNT)
        return NULL;
    return op_table[op];
}

const op_def *op_def_find_layer(const char *name)
{
    if (!name)
        return NULL;
    for (int k = 0; k < OP_COUNT; k++)
        if (op_table[k]->is_layer && op_table[k]->callable && strcmp(op_table[k]->name, name) == 0)
            return op_table[k];
    return NULL;
}

const char *op_name(op_kind op)
{
    if ((int)op < 0 || op >= OP_COUNT)
        return "?";
    return op_table[op]->name;
}

/* The callable layers' names in ops.def order, NULL-terminated: filled once from the table. */
static const char *layer_names[OP_COUNT + 1];
static pthread_once_t layer_names_once = PTHREAD_ONCE_INIT;

static void layer_names_init(void)
{
    int n = 0;
    for (int k = 0; k < OP_COUNT; k++)
        if (op_table[k]->is_layer && op_table[k]->callable)
            layer_names[n++] = op_table[k]->name;
    layer_names[n] = NULL;
}

const char *const *op_layer_names(void)
{
    pthread_once(&layer_names_once, layer_names_init);
    return layer_names;
}

/* Shapes and activation names (ops/op.h). */
#include "ops/op.h"

#include <inttypes.h>
#include <stdio.h>

#include "ops/checked.h"

bool op_shape_numel_checked(const op_shape *s, int64_t *n)
{
    int64_t p = 1;
    if (s->rank < 0 || s->rank > OP_MAX_RANK)
        return false;
    for (int k = 0; k < s->rank; k++)
        if (s->d[k] < 0 || !ck_mul_i64(p, s->d[k], &p))
            return false;
    *n = p;
    return true;
}

int64_t op_shape_numel(const op_shape *s)
{
    int64_t n;
    return op_shape_numel_checked(s, &n) ? n : INT64_MAX;
}

char *op_shape_dims_str(const op_shape *s, char *buf, size_t n)
{
    if (!buf || n == 0)
        return buf;
    size_t len = 0;
    buf[0] = '\0';
    for (int k = 0; k < s->rank && len < n; k++) {
        int w = snprintf(buf + len, n - len, "%s%" PRId64, k ? " x " : "", s->d[k]);
        if (w < 0)
            break;
        len += (size_t)w;
    }
    return buf;
}

bool op_shape_equal(const op_shape *a, const op_shape *b)
{
    if (a->rank != b->rank)
        return false;
    for (int k = 0; k < a->rank; k++)
        if (a->d[k] != b->d[k])
            return false;
    return true;
}

char *op_shape_str(const op_shape *s, char *buf, size_t n)
{
    return op_shape_format(s, ", ", buf, n);
}

char *op_shape_format(const op_shape *s, const char *sep, char *buf, size_t n)
{
    if (!buf || n == 0)
        return buf;
    size_t len = 0;
    buf[0] = '\0';
    int w = snprintf(buf, n, "[");
    len = w > 0 ? (size_t)w : 0;
    for (int k = 0; k < s->rank && len < n; k++) {
        w = snprintf(buf + len, n - len, "%s%" PRId64, k ? sep : "", s->d[k]);
        if (w < 0)
            break;
        len += (size_t)w;
    }
    if (len < n)
        snprintf(buf + len, n - len, "]");
    return buf;
}

const char *op_act_name(op_act a)
{
    switch (a) {
    case OP_ACT_NONE: return "none";
#define X(e, s)
#define ACT(e, s) case OP_ACT_##e: return #s;
#include "ops/ops.def"
#undef ACT
#undef X
    }
    return "?";
}

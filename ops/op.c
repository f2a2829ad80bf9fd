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

bool op_shape_equal(const op_shape *a, const op_shape *b)
{
    if (a->rank != b->rank)
        return false;
    for (int k = 0; k < a->rank; k++)
        if (a->d[k] != b->d[k])
            return false;
    return true;
}

/* The sizes of s between open and close, separated by sep, into buf (cut to n bytes). */
static char *format_dims(const op_shape *s, const char *open, const char *sep, const char *close, char *buf,
                         size_t n)
{
    if (!buf || n == 0)
        return buf;
    buf[0] = '\0';
    int w = snprintf(buf, n, "%s", open);
    size_t len = w > 0 ? (size_t)w : 0;
    for (int k = 0; k < s->rank && len < n; k++) {
        w = snprintf(buf + len, n - len, "%s%" PRId64, k ? sep : "", s->d[k]);
        if (w < 0)
            break;
        len += (size_t)w;
    }
    if (len < n)
        snprintf(buf + len, n - len, "%s", close);
    return buf;
}

char *op_shape_str(const op_shape *s, char *buf, size_t n)
{
    return format_dims(s, "[", ", ", "]", buf, n);
}

char *op_shape_format(const op_shape *s, const char *sep, char *buf, size_t n)
{
    return format_dims(s, "[", sep, "]", buf, n);
}

char *op_shape_dims_str(const op_shape *s, char *buf, size_t n)
{
    return format_dims(s, "", " x ", "", buf, n);
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

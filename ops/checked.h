/* Checked size arithmetic, for every stage that derives a size: element counts (int64_t) and
 * byte counts (size_t).  Each ck_* returns true when the exact result fits and stores it; on
 * overflow it returns false and stores nothing useful.  The ck_sat_* forms saturate instead
 * (FLOP counts, figures).  Header only: ops/ is the bottom stage, so lang/, compiler/ and
 * runtime/ all include it.
 *
 * Limits (enforced before anything is allocated; docs/commands.md, "Limits"):
 * - OP_MAX_NUMEL: elements of one tensor of one example (an input, an activation, a weight),
 *   2^40.  The compiler (compiler/build.c) rejects larger ones with a located diagnostic.
 * - OP_MAX_BYTES: bytes of one store the runtime allocates: the activation arena of a plan
 *   (batch included), the weights, one buffer, 2^40 (1 TiB).  The planner and the runtime
 *   refuse larger ones, naming the size needed.
 * Under both, any count times the largest batch (2^24) times 4 bytes still fits in 64 bits
 * only when checked, so the planner computes bytes with these helpers. */
#ifndef CNN_OPS_CHECKED_H
#define CNN_OPS_CHECKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OP_MAX_NUMEL ((int64_t)1 << 40)
#define OP_MAX_BYTES ((size_t)1 << 40)

static inline bool ck_add_i64(int64_t a, int64_t b, int64_t *r) { return !__builtin_add_overflow(a, b, r); }
static inline bool ck_sub_i64(int64_t a, int64_t b, int64_t *r) { return !__builtin_sub_overflow(a, b, r); }
static inline bool ck_mul_i64(int64_t a, int64_t b, int64_t *r) { return !__builtin_mul_overflow(a, b, r); }
static inline bool ck_add_size(size_t a, size_t b, size_t *r) { return !__builtin_add_overflow(a, b, r); }
static inline bool ck_mul_size(size_t a, size_t b, size_t *r) { return !__builtin_mul_overflow(a, b, r); }

/* a * b, or INT64_MAX when it overflows or either is INT64_MAX already (saturated); negative
 * results stay exact when they fit. */
static inline int64_t ck_sat_mul_i64(int64_t a, int64_t b)
{
    int64_t r;
    if (a == INT64_MAX || b == INT64_MAX || __builtin_mul_overflow(a, b, &r))
        return (a < 0) != (b < 0) ? INT64_MIN : INT64_MAX;
    return r;
}

static inline int64_t ck_sat_add_i64(int64_t a, int64_t b)
{
    int64_t r;
    if (a == INT64_MAX || b == INT64_MAX || __builtin_add_overflow(a, b, &r))
        return b < 0 && a < 0 ? INT64_MIN : INT64_MAX;
    return r;
}

/* n elements of elem bytes each, times batch (>= 1): the bytes, or false on overflow or a
 * negative count. */
static inline bool ck_bytes(int64_t n, int64_t batch, size_t elem, size_t *bytes)
{
    int64_t nb;
    if (n < 0 || batch < 0 || !ck_mul_i64(n, batch, &nb))
        return false;
    return (uint64_t)nb <= SIZE_MAX && ck_mul_size((size_t)nb, elem, bytes);
}

/* Rounds n up to a multiple of align (a power of two); false on overflow. */
static inline bool ck_align_up(size_t n, size_t align, size_t *r)
{
    size_t t;
    if (!ck_add_size(n, align - 1, &t))
        return false;
    *r = t & ~(align - 1);
    return true;
}

#endif

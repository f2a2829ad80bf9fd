/* The deterministic mutator the mutation suites share (tests/test_mutate.c for the .cnn,
 * safetensors, .npy and IDX readers; tests/test_mutate_data.c for CIFAR-10, PNG and JPEG): a
 * xorshift stream, a growable byte buffer, and byte-level mutations of it. */
#ifndef CNN_TESTS_MUTATE_UTIL_H
#define CNN_TESTS_MUTATE_UTIL_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The same count in every build: the sanitizer build runs all four readers in about 16 s.
 * CNN_MUTANTS asks for more (a longer hunt by hand) and CNN_MUTATE_SEED for other mutants. */
static inline int mutants_per_reader(void)
{
    const char *n = getenv("CNN_MUTANTS");
    return n && atoi(n) > 10000 ? atoi(n) : 10000;
}

static inline uint64_t seeded(uint64_t s)
{
    const char *e = getenv("CNN_MUTATE_SEED");
    uint64_t x = e ? strtoull(e, NULL, 0) * 0x9e3779b97f4a7c15ULL : 0;
    return s ^ x ? s ^ x : s;
}

static inline double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static inline size_t below(uint64_t *s, size_t n) { return n ? (size_t)(rnd(s) % n) : 0; }

typedef struct buf {
    unsigned char *p;
    size_t len, cap;
} buf;

static inline void reserve(buf *b, size_t n)
{
    if (n <= b->cap)
        return;
    b->cap = n * 2 + 64;
    b->p = realloc(b->p, b->cap);
    cr_assert_not_null(b->p);
}

static inline void set_to(buf *b, const void *data, size_t len)
{
    if (len > (1u << 30)) /* never: tells the compiler the copy is bounded */
        abort();
    reserve(b, len + 1);
    memmove(b->p, data, len);
    b->len = len;
}

/* Replaces the n bytes at pos with the m bytes at with. */
static inline void splice(buf *b, size_t pos, size_t n, const void *with, size_t m)
{
    reserve(b, b->len - n + m + 1);
    memmove(b->p + pos + m, b->p + pos + n, b->len - pos - n);
    memcpy(b->p + pos, with, m);
    b->len = b->len - n + m;
}

/* One generic mutation of b. */
static inline void byte_mutation(buf *b, uint64_t *s)
{
    size_t len = b->len;
    unsigned char tmp[256];
    switch (below(s, 9)) {
    case 0: /* bit flips */
        for (size_t k = 1 + below(s, 4); k > 0 && len; k--)
            b->p[below(s, len)] ^= (unsigned char)(1u << below(s, 8));
        break;
    case 1:
        if (len)
            b->p[below(s, len)] = 0;
        break;
    case 2:
        if (len)
            b->p[below(s, len)] = 0xff;
        break;
    case 3:
        for (size_t k = 1 + below(s, 8); k > 0 && len; k--)
            b->p[below(s, len)] = (unsigned char)rnd(s);
        break;
    case 4: { /* insertion of random bytes */
        size_t m = 1 + below(s, 16);
        for (size_t i = 0; i < m; i++)
            tmp[i] = (unsigned char)rnd(s);
        splice(b, below(s, len + 1), 0, tmp, m);
        break;
    }
    case 5: { /* deletion */
        if (!len)
            break;
        size_t at = below(s, len), m = 1 + below(s, 16);
        splice(b, at, m < len - at ? m : len - at, "", 0);
        break;
    }
    case 6: /* truncation */
        b->len = below(s, len + 1);
        break;
    case 7: { /* block duplication: a copy of a block inserted elsewhere */
        if (!len)
            break;
        size_t at = below(s, len), m = 1 + below(s, sizeof tmp);
        if (m > len - at)
            m = len - at;
        memcpy(tmp, b->p + at, m);
        splice(b, below(s, len + 1), 0, tmp, m);
        break;
    }
    default: /* a run overwritten with one byte */
        if (len) {
            size_t at = below(s, len), m = 1 + below(s, 64);
            memset(b->p + at, (int)(rnd(s) & 0xff), m < len - at ? m : len - at);
        }
        break;
    }
}

#endif

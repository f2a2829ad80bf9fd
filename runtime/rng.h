/* A small seeded generator (xoshiro256** seeded through splitmix64): weight initialisation
 * and data shuffling.  Deterministic for a seed on every machine. */
#ifndef CNN_RNG_H
#define CNN_RNG_H

#include <stdint.h>

typedef struct rt_rng {
    uint64_t s[4];
} rt_rng;

static inline uint64_t rt_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline void rt_rng_seed(rt_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = rt_splitmix64(&seed);
}

static inline uint64_t rt_rng_next(rt_rng *r)
{
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5;
    uint64_t result = ((x << 7) | (x >> 57)) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double rt_rng_uniform(rt_rng *r) { return (double)(rt_rng_next(r) >> 11) * 0x1.0p-53; }

/* Uniform integer in [0, n). */
static inline uint64_t rt_rng_below(rt_rng *r, uint64_t n) { return n ? (uint64_t)(rt_rng_uniform(r) * (double)n) % n : 0; }

#endif

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The seeded generator of the randomised suites (oracle_test, fuzz_test):
 * xorshift64*, so a printed seed replays a run exactly.
 */
#ifndef KVMAS_TEST_RNG_H
#define KVMAS_TEST_RNG_H

#include <stdint.h>

static uint64_t rng_state = 1;

static inline void rng_seed(uint64_t seed)
{
	rng_state = seed | 1; /* never 0: xorshift would stay there */
}

static inline uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static inline uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static inline int chance(unsigned int pct)
{
	return below(100) < pct;
}

#endif /* KVMAS_TEST_RNG_H */

/*
 * fuzz_check — what every fuzz target shares: CHECK(cond), which aborts on
 * a breach of the contract under test naming the target (FUZZ_NAME, a
 * string the target defines), the file and the line; and fuzz_verbose().
 *
 * Header-only, like fuzz_tmp.h, so that each target stays one translation
 * unit for both builds (libFuzzer and tests/fuzz/replay.c).
 */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, FUZZ_NAME ": %s:%d: check failed: %s\n",	\
			__FILE__, __LINE__, #cond);			\
		abort();						\
	}								\
} while (0)

/* FUZZ_VERBOSE=1 in the environment: targets say what each input did. */
static inline bool fuzz_verbose(void)
{
	static int v = -1;

	if (v < 0)
		v = getenv("FUZZ_VERBOSE") != NULL;
	return v;
}

#endif

/*
 * it_spool_put SPOOL_DIR < lines — append each input line to the spool as
 * raw bytes, exactly as another (possibly broken) producer would: no
 * validation, no stamping.  Used to put malformed records in the queue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool.h"

int main(int argc, char **argv)
{
	struct ing_spool *sp;
	char err[256], *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (argc != 2) {
		fprintf(stderr, "usage: it_spool_put SPOOL_DIR < lines\n");
		return 2;
	}
	if (ing_spool_open(argv[1], 1 << 30, &sp, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	while ((n = getline(&line, &cap, stdin)) > 0) {
		struct iovec iov = { line, (size_t)(line[n - 1] == '\n' ? n - 1 : n) };

		if (ing_spool_append(sp, &iov, 1, NULL, 0, NULL) != 0) {
			fprintf(stderr, "append failed\n");
			return 1;
		}
	}
	free(line);
	ing_spool_close(sp);
	return 0;
}

/*
 * replay — run a fuzz target's LLVMFuzzerTestOneInput() on saved inputs,
 * without libFuzzer: the regression half of the fuzzing (docs/FUZZING.md).
 *
 *     replay_<target> PATH...
 *
 * Each PATH is a file or a directory whose regular files (not recursive,
 * names starting with '.' skipped) are inputs, run in name order so a
 * failure is reproducible.  Built with the project's normal compiler and
 * flags (ASan + UBSan under SANITIZE=1), linked with one fuzz_<target>.c;
 * the targets abort() on a broken contract, so a non-zero exit or a
 * signal is a failure.  Prints "replay: N inputs" on success; with
 * FUZZ_VERBOSE=1 in the environment, each input's name and what the
 * target made of it.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	uint8_t *buf;
	size_t len;

	if (!f || fstat(fileno(f), &st) != 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		if (f)
			fclose(f);
		return -1;
	}
	len = (size_t)st.st_size;
	/* Exactly sized, as libFuzzer passes it: ASan sees any over-read. */
	buf = malloc(len ? len : 1);
	if (!buf || fread(buf, 1, len, f) != len) {
		fprintf(stderr, "replay: %s: %s\n", path, buf ? "short read" : "out of memory");
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	if (getenv("FUZZ_VERBOSE"))
		fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every input in dir; returns how many, or -1. */
static long run_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL, path[4096];
	size_t n = 0, cap = 0;
	long done = 0;

	if (!d) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **nn;

			cap = cap ? cap * 2 : 64;
			nn = realloc(names, cap * sizeof(*names));
			if (!nn)
				goto nomem;
			names = nn;
		}
		names[n] = strdup(de->d_name);
		if (!names[n])
			goto nomem;
		n++;
	}
	closedir(d);
	d = NULL;
	qsort(names, n, sizeof(*names), by_name);
	for (size_t i = 0; i < n; i++) {
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (run_file(path) != 0) {
			done = -1;
			break;
		}
		done++;
	}
	goto out;
nomem:
	fprintf(stderr, "replay: %s: out of memory\n", dir);
	done = -1;
out:
	if (d)
		closedir(d);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return done;
}

int main(int argc, char **argv)
{
	long total = 0, r;
	struct stat st;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		if (S_ISDIR(st.st_mode)) {
			r = run_dir(argv[i]);
		} else {
			r = run_file(argv[i]);
			r = r == 0 ? 1 : -1;
		}
		if (r < 0)
			return 1;
		total += r;
	}
	printf("replay: %ld inputs\n", total);
	return 0;
}

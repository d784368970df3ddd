/*
 * fuzz_tmp — what the file-reading fuzz targets share: one private
 * directory per process under /tmp (mkdtemp, removed at exit), and writing
 * an input into a fresh file there (mkstemps; the caller unlinks it).
 *
 * Header-only (static functions) so that each target stays one
 * translation unit for both builds: clang + libFuzzer in `make fuzz`, and
 * gcc + tests/fuzz/replay.c in `make check`.
 */
#ifndef FUZZ_TMP_H
#define FUZZ_TMP_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "fuzz_check.h"

#define FUZZ_PATH_MAX 512

static char fuzz_dir[64];    /* "/tmp/cvfuzz.XXXXXX" */
/* Fixed files the target placed in fuzz_dir (relative), removed at exit
 * in reverse order (a directory after what it holds). */
static struct {
	const char *rel;
	bool is_dir;
} fuzz_fixed[8];
static size_t fuzz_nfixed;

static inline void fuzz_tmp_cleanup(void)
{
	char p[FUZZ_PATH_MAX * 2];

	for (size_t i = fuzz_nfixed; i-- > 0;) {
		snprintf(p, sizeof(p), "%s/%s", fuzz_dir, fuzz_fixed[i].rel);
		if (fuzz_fixed[i].is_dir)
			rmdir(p);
		else
			unlink(p);
	}
	rmdir(fuzz_dir);
}

/* The private directory, created on first use; aborts if it cannot be. */
static inline const char *fuzz_tmpdir(void)
{
	if (fuzz_dir[0])
		return fuzz_dir;
	snprintf(fuzz_dir, sizeof(fuzz_dir), "/tmp/cvfuzz.XXXXXX");
	if (!mkdtemp(fuzz_dir)) {
		perror("fuzz: mkdtemp");
		abort();
	}
	atexit(fuzz_tmp_cleanup);
	return fuzz_dir;
}

static inline int fuzz_write_all(int fd, const void *data, size_t size)
{
	const char *p = data;

	while (size > 0) {
		ssize_t w = write(fd, p, size);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		size -= (size_t)w;
	}
	return 0;
}

/*
 * Put a fixed file (or, with data NULL, a directory) at rel inside the
 * private directory; rel must stay valid (a literal).  Parents first.
 */
static inline void fuzz_tmp_fixed(const char *rel, const char *data)
{
	char p[FUZZ_PATH_MAX * 2];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", fuzz_tmpdir(), rel);
	if (!data) {
		if (mkdir(p, 0700) != 0 && errno != EEXIST)
			abort();
	} else {
		f = fopen(p, "w");
		if (!f || fputs(data, f) < 0 || fclose(f) != 0)
			abort();
	}
	if (fuzz_nfixed == sizeof(fuzz_fixed) / sizeof(fuzz_fixed[0]))
		abort();
	fuzz_fixed[fuzz_nfixed].rel = rel;
	fuzz_fixed[fuzz_nfixed++].is_dir = !data;
}

/*
 * Write data[0..size) to a new file "<dir>/in-XXXXXX<suffix>"; path gets
 * its name (FUZZ_PATH_MAX bytes).  Aborts on failure: the target cannot
 * test anything without its input on disk.
 */
static inline void fuzz_tmp_write(const uint8_t *data, size_t size, const char *suffix,
				  char *path)
{
	int fd;

	snprintf(path, FUZZ_PATH_MAX, "%s/in-XXXXXX%s", fuzz_tmpdir(), suffix);
	fd = mkstemps(path, (int)strlen(suffix));
	if (fd < 0) {
		perror("fuzz: mkstemps");
		abort();
	}
	if (fuzz_write_all(fd, data, size) != 0 || close(fd) != 0) {
		perror("fuzz: write");
		abort();
	}
}

/*
 * Write a tar + zstd input (bundle, export package) to "<dir>/in-XXXXXX.tar.zst".
 * Input that starts with "tar\n" is an uncompressed tar which is compressed
 * here first (zstd level 1): mutated compressed bytes rarely get past the
 * decoder, so the tar and what is inside it are fuzzed through this form.
 * Anything else is written as it is.
 */
static inline void fuzz_tmp_write_tar_zst(const uint8_t *data, size_t size, char *path)
{
	size_t cap, n;
	void *z;

	if (size < 4 || memcmp(data, "tar\n", 4) != 0) {
		fuzz_tmp_write(data, size, ".tar.zst", path);
		return;
	}
	cap = ZSTD_compressBound(size - 4);
	z = malloc(cap);
	if (!z)
		abort();
	n = ZSTD_compress(z, cap, data + 4, size - 4, 1);
	if (ZSTD_isError(n))
		abort();
	fuzz_tmp_write(z, n, ".tar.zst", path);
	free(z);
}

#endif

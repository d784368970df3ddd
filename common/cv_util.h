/*
 * cv_util — small helpers shared by every folder: SHA-256 (OpenSSL's
 * libcrypto EVP), hex, durable file writes, a growable byte buffer, and
 * secret masking for anything that might be logged.
 */
#ifndef CV_UTIL_H
#define CV_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CV_SHA256_HEX 65 /* 64 hex digits + NUL */

/* One-shot SHA-256 of buf as lower-case hex. */
void cv_sha256_hex(const void *buf, size_t len, char out[CV_SHA256_HEX]);

/* Streaming SHA-256 (opaque; NULL-safe free). */
struct cv_sha256;
struct cv_sha256 *cv_sha256_new(void);
void cv_sha256_update(struct cv_sha256 *h, const void *buf, size_t len);
void cv_sha256_final_hex(struct cv_sha256 *h, char out[CV_SHA256_HEX]);
void cv_sha256_free(struct cv_sha256 *h);
/* SHA-256 of a whole file; 0 or negative errno. */
int cv_sha256_file(const char *path, char out[CV_SHA256_HEX], uint64_t *size)
	__attribute__((warn_unused_result));
/* Is s a SHA-256 as we write it: exactly 64 lower-case hex digits?  NULL: no. */
bool cv_is_sha256_hex(const char *s);

/* Growable buffer. */
struct cv_buf {
	char *data;
	size_t len;
	size_t cap;
};
int cv_buf_append(struct cv_buf *b, const void *data, size_t len)
	__attribute__((warn_unused_result));
int cv_buf_printf(struct cv_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), warn_unused_result));
void cv_buf_reset(struct cv_buf *b);
void cv_buf_free(struct cv_buf *b);

/* mkdir -p with the given mode for the directories it creates. */
int cv_mkdir_p(const char *path, mode_t mode) __attribute__((warn_unused_result));
/* fsync a directory by path. */
int cv_fsync_dir(const char *path) __attribute__((warn_unused_result));
/* Write all of buf to fd, retrying on EINTR and short writes. */
int cv_write_all(int fd, const void *buf, size_t len) __attribute__((warn_unused_result));
/*
 * Durable atomic file publish: write buf to "<path>.tmp.<pid>" (mode),
 * fsync, rename onto path, fsync the directory.  No partial file is ever
 * visible under path.  0 or negative errno (ENOSPC, EACCES, …).
 */
int cv_write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode)
	__attribute__((warn_unused_result));

/* Copy conninfo into out with any password=… value replaced by "****"
 * (keyword/value form and postgres:// URIs). */
void cv_mask_conninfo(const char *conninfo, char *out, size_t outlen);

/* Parse a non-negative decimal integer that must fit in int64; -EINVAL. */
int cv_parse_i64(const char *s, int64_t *out) __attribute__((warn_unused_result));

#endif

/*
 * cv_util — see cv_util.h.  SHA-256 comes from OpenSSL's libcrypto (EVP):
 * a well-kept, hardware-accelerated implementation we would be foolish to
 * rewrite.
 */
#include "cv_util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

static void to_hex(const unsigned char *md, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[md[i] >> 4];
		out[2 * i + 1] = digits[md[i] & 15];
	}
	out[2 * n] = '\0';
}

void cv_sha256_hex(const void *buf, size_t len, char out[CV_SHA256_HEX])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL);
	to_hex(md, mdlen, out);
}

struct cv_sha256 {
	EVP_MD_CTX *ctx;
};

struct cv_sha256 *cv_sha256_new(void)
{
	struct cv_sha256 *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
		cv_sha256_free(h);
		return NULL;
	}
	return h;
}

void cv_sha256_update(struct cv_sha256 *h, const void *buf, size_t len)
{
	EVP_DigestUpdate(h->ctx, buf, len);
}

void cv_sha256_final_hex(struct cv_sha256 *h, char out[CV_SHA256_HEX])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	EVP_DigestFinal_ex(h->ctx, md, &mdlen);
	to_hex(md, mdlen, out);
	/* Ready for reuse. */
	EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL);
}

void cv_sha256_free(struct cv_sha256 *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

int cv_sha256_file(const char *path, char out[CV_SHA256_HEX], uint64_t *size)
{
	struct cv_sha256 *h = NULL;
	char buf[1 << 16];
	uint64_t total = 0;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	h = cv_sha256_new();
	if (!h) {
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		cv_sha256_update(h, buf, (size_t)n);
		total += (uint64_t)n;
	}
	cv_sha256_final_hex(h, out);
	if (size)
		*size = total;
out:
	cv_sha256_free(h);
	close(fd);
	return rc;
}

static int buf_reserve(struct cv_buf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (extra > SIZE_MAX - b->len - 1)
		return -ENOMEM;
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int cv_buf_append(struct cv_buf *b, const void *data, size_t len)
{
	int rc = buf_reserve(b, len);

	if (rc)
		return rc;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int cv_buf_printf(struct cv_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	rc = buf_reserve(b, (size_t)n);
	if (rc)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void cv_buf_reset(struct cv_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void cv_buf_free(struct cv_buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

int cv_mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) != 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int cv_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

int cv_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int cv_write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	char *slash;
	int fd, rc;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	rc = cv_write_all(fd, buf, len);
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0) {
		unlink(tmp);
		return rc;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == dir)
		dir[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	return cv_fsync_dir(dir);
}

void cv_mask_conninfo(const char *conninfo, char *out, size_t outlen)
{
	const char *p = conninfo;
	size_t o = 0;

	if (outlen == 0)
		return;
#define PUT(c) do { if (o + 1 < outlen) out[o++] = (c); } while (0)
	/* URI form: postgres[ql]://user:secret@host → user:****@host */
	if (strncmp(p, "postgres://", 11) == 0 || strncmp(p, "postgresql://", 13) == 0) {
		const char *scheme_end = strstr(p, "://") + 3;
		const char *at = strchr(scheme_end, '@');
		const char *colon = strchr(scheme_end, ':');

		if (at && colon && colon < at) {
			for (; p <= colon; p++)
				PUT(*p);
			for (const char *m = "****"; *m; m++)
				PUT(*m);
			p = at;
		}
		/* password=… may also appear as a query parameter. */
	}
	while (*p) {
		if (strncmp(p, "password", 8) == 0 && (p == conninfo || p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\n' ||
		    p[-1] == '?' || p[-1] == '&')) {
			const char *q = p + 8;

			while (*q == ' ')
				q++;
			if (*q == '=') {
				for (const char *m = "password=****"; *m; m++)
					PUT(*m);
				q++;
				while (*q == ' ')
					q++;
				if (*q == '\'') {
					for (q++; *q && *q != '\''; q++)
						if (*q == '\\' && q[1])
							q++;
					if (*q)
						q++;
				} else {
					while (*q && *q != ' ' && *q != '\t' && *q != '\n' && *q != '&')
						q++;
				}
				p = q;
				continue;
			}
		}
		PUT(*p);
		p++;
	}
#undef PUT
	out[o] = '\0';
}

bool cv_is_sha256_hex(const char *s)
{
	if (!s)
		return false;
	for (size_t i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[64] == '\0';
}

int cv_parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

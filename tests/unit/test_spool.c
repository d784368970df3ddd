/*
 * test_spool — ingest/spool.c against the contract in ingest/spool.h.
 *
 * These tests use real directories (mkdtemp) and real processes: the point
 * of the spool is what survives another process, kill -9 and reopen, which
 * no mock can show.  Every record payload encodes its own position, so a
 * record that is lost, doubled, reordered or torn is caught by content.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <lmdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "spool.h"

#define MIB (1024 * 1024)

/* ---- fixtures ------------------------------------------------------------ */

struct fx {
	char tmp[64];   /* mkdtemp root, removed afterwards */
	char dir[128];  /* tmp/spool: not created yet, the spool creates it */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/cv_spool_XXXXXX");
	if (!mkdtemp(f->tmp)) {
		free(f);
		return -1;
	}
	snprintf(f->dir, sizeof(f->dir), "%s/spool", f->tmp);
	*state = f;
	return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	nftw(f->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static struct ing_spool *open_ok(const char *dir, int64_t max_bytes)
{
	struct ing_spool *sp = NULL;
	char err[256];
	int rc = ing_spool_open(dir, max_bytes, &sp, err, sizeof(err));

	if (rc != 0)
		fail_msg("open %s: %d %s", dir, rc, err);
	return sp;
}

/* ---- payloads that encode their position --------------------------------- */

static size_t payload_len(uint64_t pos)
{
	return 16 + (size_t)(pos % 577); /* 16..592 bytes, avg ~300 */
}

static void payload_fill(uint64_t pos, unsigned char *buf, size_t len)
{
	memcpy(buf, &pos, sizeof(pos));
	for (size_t j = sizeof(pos); j < len; j++)
		buf[j] = (unsigned char)(pos * 131u + j * 7u);
}

static int payload_ok(uint64_t pos, const void *data, size_t len)
{
	const unsigned char *b = data;
	uint64_t got;

	if (len < sizeof(got))
		return 0;
	memcpy(&got, b, sizeof(got));
	if (got != pos)
		return 0;
	for (size_t j = sizeof(got); j < len; j++)
		if (b[j] != (unsigned char)(pos * 131u + j * 7u))
			return 0;
	return 1;
}

/* Consumer state for read callbacks. */
struct col {
	uint64_t next;      /* expected next position (0: take the first) */
	uint64_t got;
	size_t bytes;
	int bad;            /* out-of-order or bad content seen */
	int stop_at;        /* return 1 at this record (1-based), 0: never */
	int abort_at;       /* return -ECANCELED at this record, 0: never */
	int check_payload;
	char last[64];      /* small records copied for inspection */
};

static int col_cb(void *arg, uint64_t pos, const void *data, size_t len)
{
	struct col *c = arg;

	if (c->abort_at && (int)c->got + 1 == c->abort_at)
		return -ECANCELED;
	if (c->next && pos != c->next)
		c->bad = 1;
	if (c->check_payload && !payload_ok(pos, data, len))
		c->bad = 1;
	c->next = pos + 1;
	c->got++;
	c->bytes += len;
	if (len < sizeof(c->last)) {
		memcpy(c->last, data, len);
		c->last[len] = '\0';
	}
	if (c->stop_at && (int)c->got == c->stop_at)
		return 1;
	return 0;
}

/* Append n position-encoded records; returns the spool's rc. */
static int append_encoded(struct ing_spool *sp, uint64_t first, size_t n,
			  const char *server, int64_t seq, uint64_t *first_pos)
{
	struct iovec *iov = calloc(n ? n : 1, sizeof(*iov));
	int rc;

	if (!iov)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		size_t len = payload_len(first + i);

		iov[i].iov_base = malloc(len);
		iov[i].iov_len = len;
		if (!iov[i].iov_base)
			abort();
		payload_fill(first + i, iov[i].iov_base, len);
	}
	rc = ing_spool_append(sp, iov, n, server, seq, first_pos);
	for (size_t i = 0; i < n; i++)
		free(iov[i].iov_base);
	free(iov);
	return rc;
}

/* ---- basics ---------------------------------------------------------------- */

static void test_basics(void **state)
{
	struct fx *f = *state;
	struct ing_spool *sp = open_ok(f->dir, 1 * MIB);
	struct ing_spool_stats st;
	struct col c = { 0 };
	struct iovec r[3] = { { "a", 1 }, { "bb", 2 }, { "ccc", 3 } };
	uint64_t first = 0;
	int64_t seq = 0;
	char id[40];
	struct stat sb;

	/* Layout: 0700 dir, 0600 files. */
	assert_int_equal(stat(f->dir, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);

	const char *sid = ing_spool_id(sp);
	assert_int_equal(strlen(sid), 36);
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			assert_int_equal(sid[i], '-');
		else
			assert_non_null(strchr("0123456789abcdef", sid[i]));
	}
	assert_int_equal(sid[14], '4'); /* UUID version 4 */
	snprintf(id, sizeof(id), "%s", sid);

	assert_int_equal(ing_spool_stats(sp, &st), 0);
	assert_int_equal(st.count, 0);
	assert_int_equal(st.first_pos, 0);
	assert_int_equal(st.last_pos, 0);
	assert_int_equal(st.max_bytes, 1 * MIB);
	assert_int_equal(ing_spool_read(sp, 0, 100, MIB, col_cb, &c), 0);

	assert_int_equal(ing_spool_get_seq(sp, "chat01", &seq), 0);
	assert_int_equal(seq, 1);
	assert_int_equal(ing_spool_append(sp, r, 3, "chat01", 4, &first), 0);
	assert_int_equal(first, 1);
	assert_int_equal(ing_spool_get_seq(sp, "chat01", &seq), 0);
	assert_int_equal(seq, 4);

	assert_int_equal(ing_spool_read(sp, 0, 100, MIB, col_cb, &c), 3);
	assert_int_equal(c.bad, 0);
	assert_int_equal(c.next, 4);
	assert_int_equal(c.bytes, 6);
	assert_string_equal(c.last, "ccc");

	assert_int_equal(ing_spool_append(sp, r, 2, NULL, 0, &first), 0);
	assert_int_equal(first, 4);
	assert_int_equal(ing_spool_stats(sp, &st), 0);
	assert_int_equal(st.count, 5);
	assert_int_equal(st.bytes, 9);
	assert_int_equal(st.first_pos, 1);
	assert_int_equal(st.last_pos, 5);

	/* Trim is a prefix delete and idempotent. */
	assert_int_equal(ing_spool_trim(sp, 2), 0);
	assert_int_equal(ing_spool_trim(sp, 2), 0);
	assert_int_equal(ing_spool_trim(sp, 0), 0);
	assert_int_equal(ing_spool_stats(sp, &st), 0);
	assert_int_equal(st.count, 3);
	assert_int_equal(st.bytes, 3 + 1 + 2);
	assert_int_equal(st.first_pos, 3);
	assert_int_equal(st.last_pos, 5);
	memset(&c, 0, sizeof(c));
	assert_int_equal(ing_spool_read(sp, 0, 100, MIB, col_cb, &c), 3);
	assert_int_equal(c.bad, 0);
	assert_int_equal(c.next, 6);

	/* Trim everything, then positions must continue, even across reopen. */
	assert_int_equal(ing_spool_trim(sp, 5), 0);
	assert_int_equal(ing_spool_stats(sp, &st), 0);
	assert_int_equal(st.count, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.first_pos, 0);
	assert_int_equal(st.last_pos, 5);
	ing_spool_close(sp);

	sp = open_ok(f->dir, 1 * MIB);
	assert_string_equal(ing_spool_id(sp), id);
	assert_int_equal(ing_spool_get_seq(sp, "chat01", &seq), 0);
	assert_int_equal(seq, 4);
	assert_int_equal(ing_spool_get_seq(sp, "chat02", &seq), 0);
	assert_int_equal(seq, 1);
	assert_int_equal(ing_spool_append(sp, r, 1, "chat02", 77, &first), 0);
	assert_int_equal(first, 6);
	assert_int_equal(ing_spool_trim(sp, 1000), 0);
	assert_int_equal(ing_spool_trim(sp, 1000), 0);
	ing_spool_close(sp);

	sp = open_ok(f->dir, 1 * MIB);
	assert_string_equal(ing_spool_id(sp), id);
	assert_int_equal(ing_spool_get_seq(sp, "chat02", &seq), 0);
	assert_int_equal(seq, 77);
	assert_int_equal(ing_spool_append(sp, r, 1, NULL, 0, &first), 0);
	assert_int_equal(first, 7);
	/* Bad arguments are refused, nothing written. */
	assert_int_equal(ing_spool_append(sp, r, 1, "", 1, &first), -EINVAL);
	assert_int_equal(ing_spool_append(sp, r, 1, "chat01", 0, &first), -EINVAL);
	assert_int_equal(ing_spool_append(sp, NULL, 1, NULL, 0, &first), -EINVAL);
	assert_int_equal(ing_spool_stats(sp, &st), 0);
	assert_int_equal(st.last_pos, 7);

	assert_int_equal(stat(f->dir, &sb), 0);
	char path[256];

	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0077, 0);
	ing_spool_close(sp);
}

/* ---- bound ------------------------------------------------------------------ */

static void test_bound(void **state)
{
	struct fx *f = *state;
	struct ing_spool *sp = open_ok(f->dir, 4096);
	struct ing_spool_stats st;
	static char big[8192];
	struct iovec one = { big, 4000 }, two[2] = { { big, 50 }, { big, 50 } };
	uint64_t first;
	int64_t seq;
	struct col c = { 0 };

	assert_int_equal(ing_spool_append(sp, &one, 1, "s", 2, &first), 0);
	assert_int_equal(first, 1);
	/* 4000 + 50 + 50 > 4096: nothing of the batch, nor its seq, is written. */
	assert_int_equal(ing_spool_append(sp, two, 2, "s", 9, &first), -EBUSY);
	assert_int_equal(ing_spool_stats(sp, &st), 0);
	assert_int_equal(st.count, 1);
	assert_int_equal(st.bytes, 4000);
	assert_int_equal(st.last_pos, 1);
	assert_int_equal(ing_spool_get_seq(sp, "s", &seq), 0);
	assert_int_equal(seq, 2);
	/* Exactly at the bound is fine, one byte past is not. */
	one.iov_len = 96;
	assert_int_equal(ing_spool_append(sp, &one, 1, NULL, 0, &first), 0);
	assert_int_equal(first, 2);
	one.iov_len = 1;
	assert_int_equal(ing_spool_append(sp, &one, 1, NULL, 0, &first), -EBUSY);
	/* A batch bigger than the whole bound can never fit. */
	one.iov_len = 5000;
	assert_int_equal(ing_spool_trim(sp, 2), 0);
	assert_int_equal(ing_spool_append(sp, &one, 1, NULL, 0, &first), -EBUSY);

	/* After trim the room is back; positions continue without a gap. */
	assert_int_equal(ing_spool_append(sp, two, 2, "s", 3, &first), 0);
	assert_int_equal(first, 3);
	ing_spool_close(sp);

	/* A new bound applies at reopen: larger ... */
	sp = open_ok(f->dir, 4 * MIB);
	one.iov_len = sizeof(big);
	for (int i = 0; i < 100; i++)
		assert_int_equal(ing_spool_append(sp, &one, 1, NULL, 0, NULL), 0);
	assert_int_equal(ing_spool_stats(sp, &st), 0);
	assert_int_equal(st.bytes, 100 + 100 * sizeof(big));
	ing_spool_close(sp);

	/* ... and smaller than what is held: reads work, appends wait. */
	sp = open_ok(f->dir, 8192);
	one.iov_len = 1;
	assert_int_equal(ing_spool_append(sp, &one, 1, NULL, 0, NULL), -EBUSY);
	assert_int_equal(ing_spool_read(sp, 0, 1000, SIZE_MAX, col_cb, &c), 102);
	assert_int_equal(c.bad, 0);
	assert_int_equal(ing_spool_trim(sp, c.next - 1), 0);
	assert_int_equal(ing_spool_append(sp, &one, 1, NULL, 0, &first), 0);
	assert_int_equal(first, c.next);
	ing_spool_close(sp);
}

/* ---- read semantics ---------------------------------------------------------- */

static void test_read_callback(void **state)
{
	struct fx *f = *state;
	struct ing_spool *sp = open_ok(f->dir, MIB);
	struct col c;
	uint64_t first;

	assert_int_equal(append_encoded(sp, 1, 10, NULL, 0, &first), 0);
	assert_int_equal(first, 1);

	/* Early stop: the stopping record counts as consumed. */
	c = (struct col){ .stop_at = 3, .check_payload = 1 };
	assert_int_equal(ing_spool_read(sp, 0, 100, MIB, col_cb, &c), 3);
	assert_int_equal(c.next, 4);
	assert_int_equal(c.bad, 0);

	/* Abort: the callback's value comes back, whatever was delivered. */
	c = (struct col){ .abort_at = 2 };
	assert_int_equal(ing_spool_read(sp, 0, 100, MIB, col_cb, &c), -ECANCELED);
	assert_int_equal(c.got, 1);

	/* after is exclusive; max_records bounds. */
	c = (struct col){ .next = 5, .check_payload = 1 };
	assert_int_equal(ing_spool_read(sp, 4, 2, MIB, col_cb, &c), 2);
	assert_int_equal(c.next, 7);
	assert_int_equal(c.bad, 0);

	/* Soft byte bound: stop before passing it, but always one record. */
	size_t l1 = payload_len(1), l2 = payload_len(2), l3 = payload_len(3);

	c = (struct col){ 0 };
	assert_int_equal(ing_spool_read(sp, 0, 100, l1 + l2 + l3 - 1, col_cb, &c), 2);
	c = (struct col){ 0 };
	assert_int_equal(ing_spool_read(sp, 0, 100, l1 + l2 + l3, col_cb, &c), 3);
	c = (struct col){ 0 };
	assert_int_equal(ing_spool_read(sp, 0, 100, 1, col_cb, &c), 1);
	c = (struct col){ 0 };
	assert_int_equal(ing_spool_read(sp, 0, 100, 0, col_cb, &c), 1);

	/* Past the end, nothing; max_records 0, nothing. */
	c = (struct col){ 0 };
	assert_int_equal(ing_spool_read(sp, 10, 100, MIB, col_cb, &c), 0);
	assert_int_equal(ing_spool_read(sp, UINT64_MAX, 100, MIB, col_cb, &c), 0);
	assert_int_equal(ing_spool_read(sp, 0, 0, MIB, col_cb, &c), 0);
	assert_int_equal(c.got, 0);

	/* After a trim, reading from 0 starts at the first held record. */
	assert_int_equal(ing_spool_trim(sp, 6), 0);
	c = (struct col){ .next = 7, .check_payload = 1 };
	assert_int_equal(ing_spool_read(sp, 0, 100, MIB, col_cb, &c), 4);
	assert_int_equal(c.bad, 0);
	ing_spool_close(sp);
}

/* ---- large records ------------------------------------------------------------ */

struct bigcheck {
	uint64_t next;
	int bad;
};

static int big_cb(void *arg, uint64_t pos, const void *data, size_t len)
{
	struct bigcheck *b = arg;
	const unsigned char *p = data;

	if (pos != b->next || len != MIB)
		b->bad = 1;
	for (size_t j = 0; j < len && !b->bad; j += 4093)
		if (p[j] != (unsigned char)(pos + j))
			b->bad = 1;
	if (len && p[len - 1] != (unsigned char)(pos + len - 1))
		b->bad = 1;
	b->next = pos + 1;
	return 0;
}

static void test_large(void **state)
{
	struct fx *f = *state;
	struct ing_spool *sp = open_ok(f->dir, 8 * MIB);
	struct iovec iov[5];
	struct ing_spool_stats st;
	struct bigcheck b = { .next = 1 };
	uint64_t first;

	for (int i = 0; i < 5; i++) {
		unsigned char *p = malloc(MIB);

		assert_non_null(p);
		for (size_t j = 0; j < MIB; j++)
			p[j] = (unsigned char)((uint64_t)(i + 1) + j);
		iov[i] = (struct iovec){ p, MIB };
	}
	assert_int_equal(ing_spool_append(sp, iov, 5, NULL, 0, &first), 0);
	assert_int_equal(first, 1);
	/* Soft bound: 1 MiB per read returns exactly one 1 MiB record. */
	assert_int_equal(ing_spool_read(sp, 0, 100, MIB, big_cb, &b), 1);
	assert_int_equal(ing_spool_read(sp, 1, 100, 64 * MIB, big_cb, &b), 4);
	assert_int_equal(b.bad, 0);
	assert_int_equal(b.next, 6);
	/* 8 MiB bound: three more fit only after a trim. */
	assert_int_equal(ing_spool_append(sp, iov, 4, NULL, 0, &first), -EBUSY);
	assert_int_equal(ing_spool_trim(sp, 3), 0);
	assert_int_equal(ing_spool_append(sp, iov, 4, NULL, 0, &first), 0);
	assert_int_equal(first, 6);
	assert_int_equal(ing_spool_stats(sp, &st), 0);
	assert_int_equal(st.bytes, 6 * (uint64_t)MIB);
	assert_int_equal(st.count, 6);
	for (int i = 0; i < 5; i++)
		free(iov[i].iov_base);
	ing_spool_close(sp);
}

/* ---- several handles in one process ------------------------------------------- */

struct thr {
	const char *dir;
	int idx;
	int failed;
};

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	struct ing_spool *sp = NULL;
	char err[256], server[16];
	unsigned char rec[64];
	struct iovec iov[10];

	/* One handle per thread, as spool.h prescribes. */
	if (ing_spool_open(t->dir, 4 * MIB, &sp, err, sizeof(err)) != 0) {
		t->failed = 1;
		return NULL;
	}
	snprintf(server, sizeof(server), "thr%d", t->idx);
	memset(rec, 'a' + t->idx, sizeof(rec));
	for (int i = 0; i < 10; i++)
		iov[i] = (struct iovec){ rec, sizeof(rec) };
	for (int i = 0; i < 50; i++)
		if (ing_spool_append(sp, iov, 10, server, (i + 1) * 10 + 1, NULL) != 0)
			t->failed = 1;
	ing_spool_close(sp);
	return NULL;
}

static void test_shared_handles(void **state)
{
	struct fx *f = *state;
	struct ing_spool *a = open_ok(f->dir, MIB);
	char alias[256];
	struct ing_spool *b;
	struct col c = { 0 };
	struct ing_spool_stats st;
	struct iovec r = { "x", 1 };
	pthread_t th[4];
	struct thr t[4];
	int64_t seq;

	/* The same directory by another name is the same environment. */
	snprintf(alias, sizeof(alias), "%s/../spool/.", f->dir);
	b = open_ok(alias, 2 * MIB);
	assert_string_equal(ing_spool_id(a), ing_spool_id(b));
	assert_int_equal(ing_spool_append(a, &r, 1, NULL, 0, NULL), 0);
	assert_int_equal(ing_spool_read(b, 0, 10, MIB, col_cb, &c), 1);
	ing_spool_close(a);
	assert_int_equal(ing_spool_append(b, &r, 1, NULL, 0, NULL), 0);
	assert_int_equal(ing_spool_stats(b, &st), 0);
	assert_int_equal(st.last_pos, 2);
	assert_int_equal(st.max_bytes, 2 * MIB);

	for (int i = 0; i < 4; i++) {
		t[i] = (struct thr){ .dir = f->dir, .idx = i };
		assert_int_equal(pthread_create(&th[i], NULL, thr_main, &t[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(t[i].failed, 0);
	}
	assert_int_equal(ing_spool_stats(b, &st), 0);
	assert_int_equal(st.last_pos, 2 + 4 * 500);
	assert_int_equal(st.count, 2 + 4 * 500);
	c = (struct col){ 0 };
	assert_int_equal(ing_spool_read(b, 0, 10000, SIZE_MAX, col_cb, &c), 2002);
	assert_int_equal(c.bad, 0);
	assert_int_equal(ing_spool_get_seq(b, "thr3", &seq), 0);
	assert_int_equal(seq, 501);
	ing_spool_close(b);
}

/* ---- multi-process producer / consumer ------------------------------------------ */

/*
 * Child producer: appends `total` position-encoded records in batches,
 * retrying on -EBUSY, and reports each acknowledged last position on ackfd.
 * Returns an exit code (0 ok).  Runs in a forked child: it opens its own
 * handle and never touches the parent's.
 */
static int producer(const char *dir, int64_t max_bytes, uint64_t total, size_t batch,
		    int ackfd)
{
	struct ing_spool *sp = NULL;
	struct ing_spool_stats st;
	char err[256];
	uint64_t next, sent = 0, first;
	int64_t seq;
	int rc;

	if (ing_spool_open(dir, max_bytes, &sp, err, sizeof(err)) != 0) {
		fprintf(stderr, "producer: %s\n", err);
		return 10;
	}
	if (ing_spool_stats(sp, &st) != 0 || ing_spool_get_seq(sp, "prod", &seq) != 0)
		return 11;
	next = st.last_pos + 1;
	/* The stored seq is committed with the records, so it tracks them. */
	if ((uint64_t)seq != next)
		return 12;
	while (sent < total) {
		size_t n = total - sent < batch ? (size_t)(total - sent) : batch;

		rc = append_encoded(sp, next, n, "prod", (int64_t)(next + n), &first);
		if (rc == -EBUSY) {
			usleep(200);
			continue;
		}
		if (rc != 0)
			return 13;
		if (first != next)
			return 14;
		next += n;
		sent += n;
		if (ackfd >= 0) {
			uint64_t ack = next - 1;

			if (write(ackfd, &ack, sizeof(ack)) != (ssize_t)sizeof(ack))
				return 15;
		}
	}
	ing_spool_close(sp);
	return 0;
}

static void test_multiprocess(void **state)
{
	struct fx *f = *state;
	const uint64_t total = 50000;
	/* ~1 MiB holds ~3500 records: the producer meets backpressure. */
	struct ing_spool *sp = open_ok(f->dir, MIB);
	struct ing_spool_stats st;
	struct col c = { .next = 1, .check_payload = 1 };
	time_t deadline = time(NULL) + 60;
	int status = 0, reaped = 0;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* The parent's handle: closing it in a child only frees it (and
		 * keeps valgrind's leak check of this child clean). */
		ing_spool_close(sp);
		_exit(producer(f->dir, MIB, total, 100, -1));
	}

	while (c.got < total && time(NULL) < deadline) {
		uint64_t before = c.got;
		int n = ing_spool_read(sp, c.next - 1, 1000, 256 * 1024, col_cb, &c);

		assert_true(n >= 0);
		assert_int_equal(c.bad, 0);
		assert_int_equal(c.got - before, (uint64_t)n);
		if (n > 0) {
			assert_int_equal(ing_spool_trim(sp, c.next - 1), 0);
			continue;
		}
		if (!reaped && waitpid(pid, &status, WNOHANG) == pid) {
			reaped = 1;
			/* Drained below only if the producer succeeded. */
			assert_true(WIFEXITED(status));
			assert_int_equal(WEXITSTATUS(status), 0);
		}
		usleep(500);
	}
	if (!reaped) {
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(c.got, total);
	assert_int_equal(c.next, total + 1);
	assert_int_equal(c.bad, 0);
	assert_int_equal(ing_spool_stats(sp, &st), 0);
	assert_int_equal(st.count, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.last_pos, total);
	ing_spool_close(sp);
}

/* ---- kill -9 durability -------------------------------------------------------------- */

static void test_crash_durability(void **state)
{
	struct fx *f = *state;
	const int64_t max_bytes = 16 * MIB;
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	uint64_t max_ack = 0, trimmed = 0;
	struct ing_spool *held = NULL;

	srand(seed);
	print_message("crash test seed %u\n", seed);
	for (int cycle = 0; cycle < 10; cycle++) {
		int fds[2], status;
		size_t batch = 1 + (size_t)(rand() % 64);
		long delay_ms = 20 + rand() % 130;
		struct timespec t0, now;
		struct ing_spool_stats st;
		struct col c;
		pid_t pid;

		/* Odd cycles keep a handle open across the kill (the consumer's
		 * view: robust-mutex and stale-reader recovery while in use);
		 * even cycles reopen cold (LMDB re-initialises the lock file). */
		if (cycle % 2)
			held = open_ok(f->dir, max_bytes);
		assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
		fflush(NULL);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(fds[0]);
			_exit(producer(f->dir, max_bytes, UINT64_MAX / 2, batch, fds[1]));
		}
		close(fds[1]);

		/* Drain acknowledgements until a random moment, then kill -9. */
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (;;) {
			struct pollfd pfd = { fds[0], POLLIN, 0 };
			long el;
			uint64_t ack;

			clock_gettime(CLOCK_MONOTONIC, &now);
			el = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
			if (el >= delay_ms)
				break;
			if (poll(&pfd, 1, (int)(delay_ms - el)) > 0) {
				ssize_t r = read(fds[0], &ack, sizeof(ack));

				if (r == 0)
					break; /* child died on its own: caught below */
				assert_int_equal(r, sizeof(ack));
				if (ack > max_ack)
					max_ack = ack;
			}
		}
		assert_int_equal(kill(pid, SIGKILL), 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGKILL);
		/* Acks written before the kill are still in the pipe. */
		for (;;) {
			uint64_t ack;
			ssize_t r = read(fds[0], &ack, sizeof(ack));

			if (r <= 0)
				break;
			assert_int_equal(r, sizeof(ack));
			if (ack > max_ack)
				max_ack = ack;
		}
		close(fds[0]);

		/* Every acknowledged record is there, intact, in order, once. */
		struct ing_spool *sp = held ? held : open_ok(f->dir, max_bytes);

		assert_int_equal(ing_spool_stats(sp, &st), 0);
		assert_true(st.last_pos >= max_ack);
		assert_int_equal(st.count, st.last_pos - trimmed);
		c = (struct col){ .next = trimmed + 1, .check_payload = 1 };
		while (c.next <= st.last_pos) {
			int n = ing_spool_read(sp, c.next - 1, 5000, SIZE_MAX, col_cb, &c);

			assert_true(n > 0);
		}
		assert_int_equal(c.bad, 0);
		assert_int_equal(c.next, st.last_pos + 1);
		assert_int_equal(c.got, st.last_pos - trimmed);
		/* Keep the spool small for the next cycle; positions go on. */
		assert_int_equal(ing_spool_trim(sp, st.last_pos), 0);
		trimmed = st.last_pos;
		ing_spool_close(sp);
		held = NULL;
	}
	print_message("crash test: %" PRIu64 " records acknowledged over 10 kills\n", max_ack);
	assert_true(max_ack > 0);
}

/* ---- map grown by another process ------------------------------------------------------ */

/*
 * The parent maps the spool small (bound 4096: map ~64 MiB); a child with a
 * larger bound writes ~100 MiB, past the parent's map.  The parent's next
 * transactions meet MDB_MAP_RESIZED and must adopt the new size.
 */
static void test_map_resized(void **state)
{
	struct fx *f = *state;
	struct ing_spool *sp = open_ok(f->dir, 4096);
	struct ing_spool_stats st;
	struct bigcheck b = { .next = 1 };
	struct iovec r = { "x", 1 };
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct ing_spool *c = NULL;
		char err[256];
		unsigned char *p = malloc(MIB);
		int rc = 0;

		ing_spool_close(sp);   /* the parent's: in a child this only frees it */
		if (!p || ing_spool_open(f->dir, 256 * MIB, &c, err, sizeof(err)) != 0)
			_exit(20);
		for (uint64_t pos = 1; pos <= 100 && rc == 0; pos++) {
			struct iovec iov = { p, MIB };

			for (size_t j = 0; j < MIB; j++)
				p[j] = (unsigned char)(pos + j);
			rc = ing_spool_append(c, &iov, 1, NULL, 0, NULL);
		}
		ing_spool_close(c);
		free(p);
		_exit(rc == 0 ? 0 : 21);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	assert_int_equal(ing_spool_stats(sp, &st), 0);
	assert_int_equal(st.count, 100);
	assert_int_equal(ing_spool_read(sp, 0, 1000, SIZE_MAX, big_cb, &b), 100);
	assert_int_equal(b.bad, 0);
	/* This handle's own bound still rules its appends. */
	assert_int_equal(ing_spool_append(sp, &r, 1, NULL, 0, NULL), -EBUSY);
	assert_int_equal(ing_spool_trim(sp, 100), 0);
	assert_int_equal(ing_spool_append(sp, &r, 1, NULL, 0, NULL), 0);
	ing_spool_close(sp);
}

/* ---- bad input ------------------------------------------------------------------------ */

static void test_bad_files(void **state)
{
	struct fx *f = *state;
	struct ing_spool *sp = NULL;
	char err[256], path[256];
	int fd;

	/* Arguments. */
	assert_int_equal(ing_spool_open(f->dir, 100, &sp, err, sizeof(err)), -EINVAL);
	assert_null(sp);
	assert_true(strstr(err, f->dir) != NULL);

	/* A regular file where the directory should be. */
	snprintf(path, sizeof(path), "%s/file", f->tmp);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(ing_spool_open(path, MIB, &sp, err, sizeof(err)), -ENOTDIR);
	assert_true(err[0] != '\0');

	/* Garbage in data.mdb: an error, never a crash. */
	assert_int_equal(mkdir(f->dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	for (int i = 0; i < 64; i++)
		assert_int_equal(write(fd, "this is not an lmdb file.....\n", 31), 31);
	close(fd);
	assert_true(ing_spool_open(f->dir, MIB, &sp, err, sizeof(err)) < 0);
	assert_null(sp);
	print_message("garbage data.mdb: %s\n", err);
	assert_true(strstr(err, f->dir) != NULL);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/lock.mdb", f->dir);
	unlink(path);

	/* Someone else's LMDB environment: refused, left untouched. */
	{
		MDB_env *env;
		MDB_txn *txn;
		MDB_dbi dbi;
		MDB_val k = { 5, "hello" }, v = { 5, "world" };

		assert_int_equal(mdb_env_create(&env), 0);
		assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
		assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
		assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
		assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
		assert_int_equal(mdb_txn_commit(txn), 0);
		mdb_env_close(env);
	}
	assert_int_equal(ing_spool_open(f->dir, MIB, &sp, err, sizeof(err)), -EUCLEAN);
	assert_null(sp);
	print_message("foreign lmdb: %s\n", err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_basics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shared_handles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multiprocess, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_durability, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_resized, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

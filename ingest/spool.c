/*
 * spool — the embedded durable queue on LMDB (contract: spool.h).
 *
 * One LMDB environment per spool directory *per process*.  LMDB forbids
 * opening the same environment twice in one process: its lock-file
 * protocol uses POSIX fcntl() locks, which belong to the process, so a
 * second mdb_env_open() of the same directory believes it is the only user,
 * re-initialises the reader table and the writer mutex under the first one
 * and corrupts the spool.  spool.h promises one struct ing_spool per thread,
 * so ing_spool_open() shares the environment of a directory already open in
 * this process (a small registry keyed by the directory's device and inode,
 * and by pid so that a forked child never touches its parent's mapping).
 * That registry is the one piece of mutable process-wide state in this
 * file, for the same reason cv_log's threshold is: the constraint it
 * enforces is itself process-wide.
 *
 * Remapping (mdb_env_set_mapsize after MDB_MAP_RESIZED, or when a handle
 * asks for a bigger bound) must not run while any transaction of this
 * process uses the map.  Every transaction therefore holds the read side of
 * a per-environment rwlock and a remap takes the write side.  The write side
 * is only ever *tried* (bounded), never waited for, because a read callback
 * may legitimately append or trim from the same thread while holding the
 * read side; waiting would deadlock.
 *
 * Durability: default LMDB flags (no MDB_NOSYNC, MDB_NOMETASYNC, or
 * MDB_WRITEMAP), so mdb_txn_commit() returns only after fdatasync of the
 * data pages and of the meta page.
 *
 * Errors (all with nothing written): -EBUSY bound reached or LMDB map full
 * (backpressure: retry once the consumer trims); -ENOSPC and other I/O
 * errno from the disk (retryable, logged); -EUCLEAN corrupt or foreign
 * files (a non-LMDB file, someone else's LMDB data, wrong DB flags, bad
 * value sizes, meta that disagrees with the records, a malformed key are
 * all reported, not trusted; LMDB has no page checksums, so bytes damaged
 * inside a valid B-tree page stay LMDB's to notice); -EPROTO LMDB format;
 * -EAGAIN a remap could not run (retry).  LMDB failures are logged with
 * the spool directory and mdb_strerror(); ing_spool_open() reports in err
 * instead, so the caller prints one line.
 *
 * Fork: a forked child must not use a handle it inherited (LMDB's rule);
 * ing_spool_close() there only frees the handle.  The child opens afresh.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "spool.h"

#include "cv_log.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* MDB_INTEGERKEY keys are native size_t; positions are uint64_t. */
_Static_assert(sizeof(size_t) == sizeof(uint64_t), "spool needs a 64-bit size_t");

#define SPOOL_COMP "spool"
#define SPOOL_MIN_BYTES 4096
/* 2 * limit + slack must stay well inside a 47-bit user address space. */
#define SPOOL_MAX_BYTES_LIMIT ((int64_t)1 << 44)
#define SPOOL_MAP_SLACK ((size_t)64 << 20)
#define SPOOL_ID_LEN 36
/* How often a begin is retried after MDB_MAP_RESIZED / MDB_MAP_FULL fixes. */
#define SPOOL_RETRIES 4
/* Bounded wait for the remap (write) side of map_lock: 2000 x 1 ms. */
#define SPOOL_REMAP_TRIES 2000

/* One LMDB environment, shared by every handle of this process on a dir. */
struct spool_env {
	struct spool_env *next; /* registry link (registry_lock) */
	dev_t dev;
	ino_t ino;
	pid_t pid;              /* process that opened env */
	unsigned refs;          /* handles using it (registry_lock) */
	MDB_env *env;
	MDB_dbi dbi_rec;
	MDB_dbi dbi_meta;
	MDB_dbi dbi_seq;
	pthread_rwlock_t map_lock; /* read: any txn; write: remap */
	size_t map_want;        /* largest mapsize a handle asked for (map_lock) */
	char id[SPOOL_ID_LEN + 1];
	char dir[];             /* as given to the first open, for messages */
};

struct ing_spool {
	struct spool_env *se;
	MDB_txn *rtxn;          /* reset read txn kept for mdb_txn_renew */
	uint64_t max_bytes;     /* this handle's bound */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct spool_env *registry;

/* ---- errors ------------------------------------------------------------ */

/* LMDB and system codes → negative errno (spool.h speaks errno only). */
static int mdb_errno(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_MAP_FULL:
		return -EBUSY;
	case MDB_MAP_RESIZED:
	case MDB_READERS_FULL:
	case MDB_TLS_FULL:
		return -EAGAIN;
	case MDB_TXN_FULL:
	case MDB_CURSOR_FULL:
		return -E2BIG;
	case MDB_BAD_VALSIZE:
		return -EMSGSIZE;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_KEYEXIST:
		return -EEXIST;
	case MDB_DBS_FULL:
		return -EMFILE;
	case MDB_VERSION_MISMATCH:
		return -EPROTO;
	case MDB_PANIC:
		return -EIO;
	case MDB_BAD_RSLOT:
	case MDB_BAD_TXN:
	case MDB_BAD_DBI:
		return -EINVAL;
	case MDB_INVALID:
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INCOMPATIBLE:
	case MDB_PAGE_FULL:
		return -EUCLEAN;
	default:
		return rc > 0 ? -rc : -EIO;
	}
}

/* Log an LMDB failure with the spool dir and return the errno. */
static int spool_fail(const struct spool_env *se, const char *what, int rc)
{
	cv_err(SPOOL_COMP, "%s: %s: %s", se->dir, what, mdb_strerror(rc));
	return mdb_errno(rc);
}

/* Log a structural problem (bad sizes, broken invariants): -EUCLEAN. */
static int spool_corrupt(const struct spool_env *se, const char *what)
{
	cv_err(SPOOL_COMP, "%s: corrupt spool: %s", se->dir, what);
	return -EUCLEAN;
}

/* Open-time error: goes to err for the caller's one-line report. */
static int open_fail(char *err, size_t errlen, const char *dir, const char *what,
		     int mdbrc)
{
	if (err && errlen)
		snprintf(err, errlen, "spool %s: %s%s%s", dir, what, mdbrc ? ": " : "",
			 mdbrc ? mdb_strerror(mdbrc) : "");
	return mdbrc ? mdb_errno(mdbrc) : -EINVAL;
}

/* ---- small helpers ------------------------------------------------------ */

static int make_uuid(char out[SPOOL_ID_LEN + 1])
{
	unsigned char b[16];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t r = getrandom(b + got, sizeof(b) - got, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)r;
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(out, SPOOL_ID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
		 b[12], b[13], b[14], b[15]);
	return 0;
}

static bool uuid_valid(const char *s, size_t len)
{
	if (len != SPOOL_ID_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
			return false;
		}
	}
	return true;
}

/* mkdir -p with mode 0700 for what it creates. */
static int mkdir_p(const char *dir)
{
	size_t len = strlen(dir);
	char *p = malloc(len + 1);
	int ret = 0;

	if (!p)
		return -ENOMEM;
	memcpy(p, dir, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		if (p[i - 1] == '/')
			continue;
		char saved = p[i];

		p[i] = '\0';
		if (mkdir(p, 0700) != 0 && errno != EEXIST) {
			ret = -errno;
			goto out;
		}
		p[i] = saved;
	}
out:
	free(p);
	return ret;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- map management ----------------------------------------------------- */

/*
 * Adopt the map size another process grew the file to (set_mapsize(0)) and
 * never go below what this process's handles need.  Caller holds no side
 * of map_lock.  want: a new minimum (0: keep).
 */
static int env_remap(struct spool_env *se, size_t want)
{
	MDB_envinfo info;
	int rc;

	for (int i = 0;; i++) {
		rc = pthread_rwlock_trywrlock(&se->map_lock);
		if (rc == 0)
			break;
		if (rc != EBUSY || i >= SPOOL_REMAP_TRIES) {
			cv_err(SPOOL_COMP, "%s: cannot remap: transactions of this process "
			       "stay active (a read callback using the spool?)", se->dir);
			return -EAGAIN;
		}
		sleep_ms(1);
	}
	if (want > se->map_want)
		se->map_want = want;
	rc = mdb_env_set_mapsize(se->env, 0);
	if (rc == 0)
		rc = mdb_env_info(se->env, &info);
	if (rc == 0 && info.me_mapsize < se->map_want)
		rc = mdb_env_set_mapsize(se->env, se->map_want);
	pthread_rwlock_unlock(&se->map_lock);
	if (rc)
		return spool_fail(se, "mdb_env_set_mapsize", rc);
	return 0;
}

/* Read side of map_lock; failure only on resource limits. */
static int map_rdlock(struct spool_env *se)
{
	int rc = pthread_rwlock_rdlock(&se->map_lock);

	if (rc) {
		cv_err(SPOOL_COMP, "%s: map lock: %s", se->dir, strerror(rc));
		return -rc;
	}
	return 0;
}

/*
 * Begin a write txn (read side of map_lock held on success until
 * write_end).  MDB_MAP_RESIZED: another process grew the map; remap, retry.
 */
static int write_begin(struct spool_env *se, MDB_txn **out)
{
	int rc;

	for (int attempt = 0; attempt < SPOOL_RETRIES; attempt++) {
		rc = map_rdlock(se);
		if (rc)
			return rc;
		rc = mdb_txn_begin(se->env, NULL, 0, out);
		if (rc == 0)
			return 0;
		pthread_rwlock_unlock(&se->map_lock);
		if (rc != MDB_MAP_RESIZED)
			return spool_fail(se, "begin write transaction", rc);
		rc = env_remap(se, 0);
		if (rc)
			return rc;
	}
	return spool_fail(se, "begin write transaction", MDB_MAP_RESIZED);
}

/* Abort (txn may be NULL) and release the map lock taken by write_begin. */
static void write_abort(struct spool_env *se, MDB_txn *txn)
{
	if (txn)
		mdb_txn_abort(txn);
	pthread_rwlock_unlock(&se->map_lock);
}

/* Commit (the txn is gone either way) and release the map lock. */
static int write_commit(struct spool_env *se, MDB_txn *txn)
{
	int rc = mdb_txn_commit(txn);

	pthread_rwlock_unlock(&se->map_lock);
	return rc;
}

/* Begin a read txn, renewing the handle's cached one when there is one. */
static int read_begin(struct ing_spool *sp, MDB_txn **out)
{
	struct spool_env *se = sp->se;
	MDB_txn *txn;
	int rc;

	for (int attempt = 0; attempt < SPOOL_RETRIES; attempt++) {
		rc = map_rdlock(se);
		if (rc)
			return rc;
		/* Taken out of the handle so a nested read gets its own. */
		txn = sp->rtxn;
		sp->rtxn = NULL;
		if (txn) {
			rc = mdb_txn_renew(txn);
			if (rc)
				mdb_txn_abort(txn);
		} else {
			rc = mdb_txn_begin(se->env, NULL, MDB_RDONLY, &txn);
		}
		if (rc == 0) {
			*out = txn;
			return 0;
		}
		pthread_rwlock_unlock(&se->map_lock);
		if (rc != MDB_MAP_RESIZED)
			return spool_fail(se, "begin read transaction", rc);
		rc = env_remap(se, 0);
		if (rc)
			return rc;
	}
	return spool_fail(se, "begin read transaction", MDB_MAP_RESIZED);
}

/* End a read txn: keep it reset for renew (saves a reader-slot lookup). */
static void read_end(struct ing_spool *sp, MDB_txn *txn)
{
	if (!sp->rtxn) {
		mdb_txn_reset(txn);
		sp->rtxn = txn;
	} else {
		mdb_txn_abort(txn);
	}
	pthread_rwlock_unlock(&sp->se->map_lock);
}

/* ---- meta values --------------------------------------------------------- */

/* Meta u64 by name; *found = false when absent; -EUCLEAN on a bad size. */
static int meta_get_u64(const struct spool_env *se, MDB_txn *txn, const char *name,
			uint64_t *out, bool *found)
{
	MDB_val k = { strlen(name), (void *)name }, v;
	int rc = mdb_get(txn, se->dbi_meta, &k, &v);

	*found = false;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return spool_fail(se, name, rc);
	if (v.mv_size != sizeof(*out)) {
		cv_err(SPOOL_COMP, "%s: corrupt spool: meta %s has %zu bytes", se->dir,
		       name, v.mv_size);
		return -EUCLEAN;
	}
	memcpy(out, v.mv_data, sizeof(*out)); /* page data is unaligned */
	*found = true;
	return 0;
}

/* Meta u64 that must exist. */
static int meta_need_u64(const struct spool_env *se, MDB_txn *txn, const char *name,
			 uint64_t *out)
{
	bool found;
	int rc = meta_get_u64(se, txn, name, out, &found);

	if (rc)
		return rc;
	if (!found) {
		cv_err(SPOOL_COMP, "%s: corrupt spool: meta %s missing", se->dir, name);
		return -EUCLEAN;
	}
	return 0;
}

static int meta_put_u64(const struct spool_env *se, MDB_txn *txn, const char *name,
			uint64_t val)
{
	MDB_val k = { strlen(name), (void *)name }, v = { sizeof(val), &val };
	int rc = mdb_put(txn, se->dbi_meta, &k, &v, 0);

	if (rc == MDB_MAP_FULL)
		return MDB_MAP_FULL; /* raw: the caller decides (retry, -EBUSY) */
	return rc ? spool_fail(se, name, rc) : 0;
}

/* ---- open / close -------------------------------------------------------- */

/* Create the DBs and meta of a fresh environment (main DB must be empty). */
static int env_create_layout(struct spool_env *se, MDB_txn *txn, char *err,
			     size_t errlen)
{
	MDB_val k, v;
	uint64_t one = 1, zero = 0;
	int rc;

	rc = mdb_dbi_open(txn, "records", MDB_CREATE | MDB_INTEGERKEY, &se->dbi_rec);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &se->dbi_meta);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "seq", MDB_CREATE, &se->dbi_seq);
	if (rc)
		return open_fail(err, errlen, se->dir, "create databases", rc);
	rc = make_uuid(se->id);
	if (rc) {
		if (err && errlen)
			snprintf(err, errlen, "spool %s: getrandom: %s", se->dir,
				 strerror(-rc));
		return rc;
	}
	k = (MDB_val){ 2, "id" };
	v = (MDB_val){ SPOOL_ID_LEN, se->id };
	rc = mdb_put(txn, se->dbi_meta, &k, &v, MDB_NOOVERWRITE);
	k = (MDB_val){ 4, "next" };
	v = (MDB_val){ sizeof(one), &one };
	if (rc == 0)
		rc = mdb_put(txn, se->dbi_meta, &k, &v, 0);
	k = (MDB_val){ 5, "bytes" };
	v = (MDB_val){ sizeof(zero), &zero };
	if (rc == 0)
		rc = mdb_put(txn, se->dbi_meta, &k, &v, 0);
	k = (MDB_val){ 5, "count" };
	if (rc == 0)
		rc = mdb_put(txn, se->dbi_meta, &k, &v, 0);
	if (rc)
		return open_fail(err, errlen, se->dir, "initialise meta", rc);
	return 0;
}

/* Open the DBs of an existing spool and check its invariants. */
static int env_check_layout(struct spool_env *se, MDB_txn *txn, char *err,
			    size_t errlen)
{
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	MDB_stat st;
	unsigned int fl;
	uint64_t next, bytes, count;
	int rc, ret;

	rc = mdb_dbi_open(txn, "records", 0, &se->dbi_rec);
	if (rc == 0)
		rc = mdb_dbi_flags(txn, se->dbi_rec, &fl);
	if (rc == 0 && fl != MDB_INTEGERKEY)
		rc = MDB_INCOMPATIBLE;
	if (rc == 0)
		rc = mdb_dbi_open(txn, "seq", 0, &se->dbi_seq);
	if (rc == 0)
		rc = mdb_dbi_flags(txn, se->dbi_seq, &fl);
	if (rc == 0 && fl != 0)
		rc = MDB_INCOMPATIBLE;
	if (rc)
		return open_fail(err, errlen, se->dir, "not a chatvault spool (databases)", rc);

	k = (MDB_val){ 2, "id" };
	rc = mdb_get(txn, se->dbi_meta, &k, &v);
	if (rc)
		return open_fail(err, errlen, se->dir, "not a chatvault spool (meta id)", rc);
	if (!uuid_valid(v.mv_data, v.mv_size)) {
		if (err && errlen)
			snprintf(err, errlen, "spool %s: corrupt spool: bad id", se->dir);
		return -EUCLEAN;
	}
	memcpy(se->id, v.mv_data, SPOOL_ID_LEN);
	se->id[SPOOL_ID_LEN] = '\0';

	if ((ret = meta_need_u64(se, txn, "next", &next)) ||
	    (ret = meta_need_u64(se, txn, "bytes", &bytes)) ||
	    (ret = meta_need_u64(se, txn, "count", &count)))
		goto bad;
	rc = mdb_stat(txn, se->dbi_rec, &st);
	if (rc)
		return open_fail(err, errlen, se->dir, "stat records", rc);
	/* Cheap invariants that catch a meta out of step with the records. */
	ret = -EUCLEAN;
	if (next == 0 || st.ms_entries != count || (count == 0 && bytes != 0))
		goto bad;
	rc = mdb_cursor_open(txn, se->dbi_rec, &cur);
	if (rc)
		return open_fail(err, errlen, se->dir, "open cursor", rc);
	rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	mdb_cursor_close(cur);
	if (rc == 0) {
		size_t last;

		if (k.mv_size != sizeof(last))
			goto bad;
		memcpy(&last, k.mv_data, sizeof(last));
		if (last >= next)
			goto bad;
	} else if (rc != MDB_NOTFOUND) {
		return open_fail(err, errlen, se->dir, "read last record", rc);
	}
	return 0;
bad:
	if (err && errlen)
		snprintf(err, errlen, "spool %s: corrupt spool: meta (next/bytes/count) "
			 "disagrees with the records", se->dir);
	return ret;
}

/*
 * First open of dir in this process: create the environment, clear stale
 * reader slots, create or verify the layout.
 */
static int env_open(const char *dir, const struct stat *dst, size_t mapsize,
		    struct spool_env **out, char *err, size_t errlen)
{
	size_t dirlen = strlen(dir);
	struct spool_env *se = calloc(1, sizeof(*se) + dirlen + 1);
	MDB_txn *txn = NULL;
	MDB_dbi main_dbi;
	MDB_stat st;
	bool lock_inited = false;
	int dead = 0, rc, ret;

	if (!se)
		return open_fail(err, errlen, dir, "out of memory", ENOMEM);
	memcpy(se->dir, dir, dirlen + 1);
	se->dev = dst->st_dev;
	se->ino = dst->st_ino;
	se->pid = getpid();
	se->map_want = mapsize;
	rc = pthread_rwlock_init(&se->map_lock, NULL);
	if (rc) {
		ret = open_fail(err, errlen, dir, "rwlock", rc);
		goto fail;
	}
	lock_inited = true;

	rc = mdb_env_create(&se->env);
	if (rc) {
		se->env = NULL;
		ret = open_fail(err, errlen, dir, "mdb_env_create", rc);
		goto fail;
	}
	if ((rc = mdb_env_set_maxdbs(se->env, 4)) ||
	    (rc = mdb_env_set_mapsize(se->env, mapsize))) {
		ret = open_fail(err, errlen, dir, "configure environment", rc);
		goto fail;
	}
	/*
	 * A smaller mapsize than the file's is raised by LMDB to the data
	 * actually used, so a lowered bound never cuts off records.
	 */
	rc = mdb_env_open(se->env, dir, MDB_NOTLS, 0600);
	if (rc) {
		ret = open_fail(err, errlen, dir,
				rc == MDB_INVALID ? "data.mdb is not an LMDB spool"
						  : "mdb_env_open", rc);
		goto fail;
	}
	/* A reader kill -9'd mid-transaction pins pages until cleared. */
	rc = mdb_reader_check(se->env, &dead);
	if (rc) {
		ret = open_fail(err, errlen, dir, "mdb_reader_check", rc);
		goto fail;
	}
	if (dead > 0)
		cv_info(SPOOL_COMP, "%s: cleared %d stale reader slot(s)", dir, dead);

	ret = write_begin(se, &txn);
	if (ret) {
		if (err && errlen)
			snprintf(err, errlen, "spool %s: begin transaction: %s", dir,
				 strerror(-ret));
		goto fail;
	}
	rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "meta", 0, &se->dbi_meta);
	if (rc == MDB_NOTFOUND) {
		/* Fresh, unless someone else's LMDB data lives here. */
		rc = mdb_stat(txn, main_dbi, &st);
		if (rc == 0 && st.ms_entries != 0) {
			open_fail(err, errlen, dir, "not a chatvault spool (foreign LMDB data)", 0);
			ret = -EUCLEAN;
			goto fail;
		}
		if (rc == 0) {
			ret = env_create_layout(se, txn, err, errlen);
			if (ret)
				goto fail;
		}
	} else if (rc == 0) {
		unsigned int fl;

		rc = mdb_dbi_flags(txn, se->dbi_meta, &fl);
		if (rc == 0 && fl != 0)
			rc = MDB_INCOMPATIBLE;
		if (rc == 0) {
			ret = env_check_layout(se, txn, err, errlen);
			if (ret)
				goto fail;
		}
	}
	if (rc) {
		ret = open_fail(err, errlen, dir,
				rc == MDB_INCOMPATIBLE ? "not a chatvault spool" : "open databases",
				rc);
		goto fail;
	}
	/* Commit even when nothing changed: it keeps the DBI handles open. */
	rc = write_commit(se, txn);
	txn = NULL;
	if (rc) {
		ret = open_fail(err, errlen, dir, "commit initialisation", rc);
		goto fail;
	}
	*out = se;
	return 0;

fail:
	if (txn)
		write_abort(se, txn);
	if (se->env)
		mdb_env_close(se->env);
	if (lock_inited)
		pthread_rwlock_destroy(&se->map_lock);
	free(se);
	return ret;
}

int ing_spool_open(const char *dir, int64_t max_bytes, struct ing_spool **out,
		   char *err, size_t errlen)
{
	struct ing_spool *sp = NULL;
	struct spool_env *se;
	struct stat dst;
	size_t mapsize;
	long pg;
	pid_t pid = getpid();
	int ret;

	if (err && errlen)
		err[0] = '\0';
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!dir || !*dir)
		return open_fail(err, errlen, "(null)", "no directory given", 0);
	if (max_bytes < SPOOL_MIN_BYTES || max_bytes > SPOOL_MAX_BYTES_LIMIT) {
		if (err && errlen)
			snprintf(err, errlen, "spool %s: max_bytes %" PRId64
				 " out of range [%d, %" PRId64 "]", dir, max_bytes,
				 SPOOL_MIN_BYTES, SPOOL_MAX_BYTES_LIMIT);
		return -EINVAL;
	}
	/* Room for LMDB's pages and free list around the logical bound. */
	pg = sysconf(_SC_PAGESIZE);
	if (pg <= 0)
		pg = 4096;
	mapsize = (size_t)max_bytes * 2 + SPOOL_MAP_SLACK;
	mapsize = (mapsize + (size_t)pg - 1) / (size_t)pg * (size_t)pg;

	ret = mkdir_p(dir);
	if (ret == 0 && stat(dir, &dst) != 0)
		ret = -errno;
	if (ret == 0 && !S_ISDIR(dst.st_mode))
		ret = -ENOTDIR;
	if (ret) {
		if (err && errlen)
			snprintf(err, errlen, "spool %s: %s", dir, strerror(-ret));
		return ret;
	}

	sp = calloc(1, sizeof(*sp));
	if (!sp)
		return open_fail(err, errlen, dir, "out of memory", ENOMEM);
	sp->max_bytes = (uint64_t)max_bytes;

	pthread_mutex_lock(&registry_lock);
	for (se = registry; se; se = se->next)
		if (se->dev == dst.st_dev && se->ino == dst.st_ino && se->pid == pid)
			break;
	if (se) {
		/* Already open here: share it (see top of file), grow if needed. */
		if (mapsize > se->map_want) {
			ret = env_remap(se, mapsize);
			if (ret) {
				pthread_mutex_unlock(&registry_lock);
				if (err && errlen)
					snprintf(err, errlen, "spool %s: grow map: %s", dir,
						 strerror(-ret));
				free(sp);
				return ret;
			}
		}
		se->refs++;
	} else {
		ret = env_open(dir, &dst, mapsize, &se, err, errlen);
		if (ret) {
			pthread_mutex_unlock(&registry_lock);
			free(sp);
			return ret;
		}
		se->refs = 1;
		se->next = registry;
		registry = se;
	}
	pthread_mutex_unlock(&registry_lock);
	sp->se = se;
	*out = sp;
	return 0;
}

void ing_spool_close(struct ing_spool *sp)
{
	struct spool_env *se, **pp;

	if (!sp)
		return;
	se = sp->se;
	/* A forked child must not touch its parent's LMDB state. */
	if (se->pid != getpid()) {
		free(sp);
		return;
	}
	if (sp->rtxn)
		mdb_txn_abort(sp->rtxn);
	pthread_mutex_lock(&registry_lock);
	if (--se->refs == 0) {
		for (pp = &registry; *pp; pp = &(*pp)->next) {
			if (*pp == se) {
				*pp = se->next;
				break;
			}
		}
	} else {
		se = NULL;
	}
	pthread_mutex_unlock(&registry_lock);
	if (se) {
		mdb_env_close(se->env);
		pthread_rwlock_destroy(&se->map_lock);
		free(se);
	}
	free(sp);
}

const char *ing_spool_id(const struct ing_spool *sp)
{
	return sp->se->id;
}

/* ---- append ------------------------------------------------------------- */

static int check_server(const struct spool_env *se, const char *server)
{
	size_t len = strlen(server);

	if (len == 0 || len > (size_t)mdb_env_get_maxkeysize(se->env)) {
		cv_err(SPOOL_COMP, "%s: producer server name of %zu bytes (must be 1..%d)",
		       se->dir, len, mdb_env_get_maxkeysize(se->env));
		return -EINVAL;
	}
	return 0;
}

/*
 * One attempt: returns 0, a negative errno, or MDB_MAP_FULL itself (an LMDB
 * code, far below any -errno) for the caller's retry decision.  Nothing is
 * written unless 0.
 */
static int append_once(struct ing_spool *sp, const struct iovec *recs, size_t n,
		       uint64_t total, const char *server, int64_t next_seq,
		       uint64_t *first_pos)
{
	struct spool_env *se = sp->se;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	uint64_t next, bytes, count;
	int rc, ret;

	ret = write_begin(se, &txn);
	if (ret)
		return ret;
	if ((ret = meta_need_u64(se, txn, "next", &next)) ||
	    (ret = meta_need_u64(se, txn, "bytes", &bytes)) ||
	    (ret = meta_need_u64(se, txn, "count", &count)))
		goto out;
	/* The logical bound: checked inside the txn, so exact across processes. */
	if (bytes > sp->max_bytes || total > sp->max_bytes - bytes) {
		cv_debug(SPOOL_COMP, "%s: full: %" PRIu64 " + %" PRIu64 " > %" PRIu64,
			 se->dir, bytes, total, sp->max_bytes);
		ret = -EBUSY;
		goto out;
	}
	if (next > UINT64_MAX - n) {
		ret = spool_corrupt(se, "position counter exhausted");
		goto out;
	}
	rc = mdb_cursor_open(txn, se->dbi_rec, &cur);
	if (rc) {
		ret = spool_fail(se, "open cursor", rc);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		size_t pos = next + i;
		MDB_val k = { sizeof(pos), &pos };
		MDB_val v = { recs[i].iov_len, recs[i].iov_base };

		/* Positions only grow: MDB_APPEND fills pages completely. */
		rc = mdb_cursor_put(cur, &k, &v, MDB_APPEND);
		if (rc == MDB_KEYEXIST) {
			ret = spool_corrupt(se, "meta next is behind the records");
			goto out;
		}
		if (rc == MDB_MAP_FULL) {
			ret = MDB_MAP_FULL;
			goto out;
		}
		if (rc) {
			ret = spool_fail(se, "append record", rc);
			goto out;
		}
	}
	mdb_cursor_close(cur);
	cur = NULL;
	if ((ret = meta_put_u64(se, txn, "next", next + n)) ||
	    (ret = meta_put_u64(se, txn, "bytes", bytes + total)) ||
	    (ret = meta_put_u64(se, txn, "count", count + n)))
		goto out;
	if (server) {
		MDB_val k = { strlen(server), (void *)server };
		MDB_val v = { sizeof(next_seq), &next_seq };

		rc = mdb_put(txn, se->dbi_seq, &k, &v, 0);
		if (rc == MDB_MAP_FULL) {
			ret = MDB_MAP_FULL;
			goto out;
		}
		if (rc) {
			ret = spool_fail(se, "store producer seq", rc);
			goto out;
		}
	}
	rc = write_commit(se, txn);
	txn = NULL;
	if (rc == MDB_MAP_FULL)
		return MDB_MAP_FULL;
	if (rc)
		return spool_fail(se, "commit append", rc);
	if (first_pos)
		*first_pos = next;
	return 0;
out:
	if (cur)
		mdb_cursor_close(cur);
	write_abort(se, txn);
	return ret;
}

int ing_spool_append(struct ing_spool *sp, const struct iovec *recs, size_t n,
		     const char *server, int64_t next_seq, uint64_t *first_pos)
{
	struct spool_env *se;
	uint64_t total = 0;
	int ret, dead;

	if (!sp || (n > 0 && !recs))
		return -EINVAL;
	se = sp->se;
	if (first_pos)
		*first_pos = 0;
	if (server) {
		ret = check_server(se, server);
		if (ret)
			return ret;
		if (next_seq < 1) {
			cv_err(SPOOL_COMP, "%s: next_seq %" PRId64 " for %s (must be >= 1)",
			       se->dir, next_seq, server);
			return -EINVAL;
		}
	}
	if (n == 0 && !server)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (!recs[i].iov_base && recs[i].iov_len)
			return -EINVAL;
		if (recs[i].iov_len > UINT64_MAX - total)
			return -EOVERFLOW;
		total += recs[i].iov_len;
	}
	if (total > sp->max_bytes) {
		/* Can never fit: still -EBUSY per spool.h, but say why. */
		cv_warn(SPOOL_COMP, "%s: batch of %" PRIu64 " bytes exceeds max_bytes %"
			PRIu64 " and can never be appended; split it", se->dir, total,
			sp->max_bytes);
		return -EBUSY;
	}

	for (int attempt = 0;; attempt++) {
		ret = append_once(sp, recs, n, total, server, next_seq, first_pos);
		if (ret != MDB_MAP_FULL)
			return ret;
		/*
		 * The map is full of pages, not of payload: a dead reader may
		 * pin freed pages.  Clear it and try once more; else backpressure.
		 */
		dead = 0;
		if (attempt == 0 && mdb_reader_check(se->env, &dead) == 0 && dead > 0) {
			cv_info(SPOOL_COMP, "%s: cleared %d stale reader slot(s)", se->dir, dead);
			continue;
		}
		cv_warn(SPOOL_COMP, "%s: append: %s (LMDB page overhead; trim to free room)",
			se->dir, mdb_strerror(MDB_MAP_FULL));
		return -EBUSY;
	}
}

int ing_spool_get_seq(struct ing_spool *sp, const char *server, int64_t *next_seq)
{
	struct spool_env *se;
	MDB_txn *txn;
	MDB_val k, v;
	int rc, ret;

	if (!sp || !server || !next_seq)
		return -EINVAL;
	se = sp->se;
	ret = check_server(se, server);
	if (ret)
		return ret;
	ret = read_begin(sp, &txn);
	if (ret)
		return ret;
	k = (MDB_val){ strlen(server), (void *)server };
	rc = mdb_get(txn, se->dbi_seq, &k, &v);
	if (rc == MDB_NOTFOUND) {
		*next_seq = 1;
		ret = 0;
	} else if (rc) {
		ret = spool_fail(se, "read producer seq", rc);
	} else if (v.mv_size != sizeof(*next_seq)) {
		ret = spool_corrupt(se, "producer seq has a bad size");
	} else {
		memcpy(next_seq, v.mv_data, sizeof(*next_seq));
		ret = 0;
	}
	read_end(sp, txn);
	return ret;
}

/* ---- read --------------------------------------------------------------- */

int ing_spool_read(struct ing_spool *sp, uint64_t after, size_t max_records,
		   size_t max_bytes, ing_spool_read_cb cb, void *arg)
{
	struct spool_env *se;
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	size_t start, taken = 0, bytes = 0;
	int rc, ret;

	if (!sp || !cb)
		return -EINVAL;
	se = sp->se;
	if (max_records == 0 || after == UINT64_MAX)
		return 0;
	if (max_records > INT_MAX)
		max_records = INT_MAX; /* the count is returned as int */
	ret = read_begin(sp, &txn);
	if (ret)
		return ret;
	rc = mdb_cursor_open(txn, se->dbi_rec, &cur);
	if (rc) {
		ret = spool_fail(se, "open cursor", rc);
		goto out;
	}
	start = after + 1;
	k = (MDB_val){ sizeof(start), &start };
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0) {
		uint64_t pos;
		int r;

		if (k.mv_size != sizeof(pos)) {
			ret = spool_corrupt(se, "record key is not a position");
			goto out;
		}
		memcpy(&pos, k.mv_data, sizeof(pos));
		/* Soft byte bound: stop before a record that would pass it. */
		if (taken > 0 && (bytes >= max_bytes || v.mv_size > max_bytes - bytes))
			break;
		r = cb(arg, pos, v.mv_data, v.mv_size);
		if (r < 0) {
			ret = r;
			goto out;
		}
		taken++;
		bytes += v.mv_size;
		if (r > 0 || taken >= max_records)
			break;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		ret = spool_fail(se, "read records", rc);
		goto out;
	}
	ret = (int)taken;
out:
	if (cur)
		mdb_cursor_close(cur);
	read_end(sp, txn);
	return ret;
}

/* ---- trim --------------------------------------------------------------- */

/* One attempt; MDB_MAP_FULL (raw) lets the caller grow the map. */
static int trim_once(struct ing_spool *sp, uint64_t upto)
{
	struct spool_env *se = sp->se;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	uint64_t bytes, count, removed = 0;
	int rc, ret;

	ret = write_begin(se, &txn);
	if (ret)
		return ret;
	if ((ret = meta_need_u64(se, txn, "bytes", &bytes)) ||
	    (ret = meta_need_u64(se, txn, "count", &count)))
		goto out;
	rc = mdb_cursor_open(txn, se->dbi_rec, &cur);
	if (rc) {
		ret = spool_fail(se, "open cursor", rc);
		goto out;
	}
	/* Always delete the first record: trim only ever removes a prefix. */
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
		uint64_t pos;

		if (k.mv_size != sizeof(pos)) {
			ret = spool_corrupt(se, "record key is not a position");
			goto out;
		}
		memcpy(&pos, k.mv_data, sizeof(pos));
		if (pos > upto)
			break;
		if (count == 0 || v.mv_size > bytes) {
			ret = spool_corrupt(se, "meta bytes/count below the records held");
			goto out;
		}
		bytes -= v.mv_size;
		count--;
		rc = mdb_cursor_del(cur, 0);
		if (rc)
			break;
		removed++;
	}
	if (rc == MDB_MAP_FULL) {
		ret = MDB_MAP_FULL;
		goto out;
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		ret = spool_fail(se, "trim records", rc);
		goto out;
	}
	mdb_cursor_close(cur);
	cur = NULL;
	if (removed == 0) {
		ret = 0; /* idempotent: nothing to do, no commit, no fsync */
		goto out;
	}
	if ((ret = meta_put_u64(se, txn, "bytes", bytes)) ||
	    (ret = meta_put_u64(se, txn, "count", count)))
		goto out;
	rc = write_commit(se, txn);
	if (rc == MDB_MAP_FULL)
		return MDB_MAP_FULL;
	return rc ? spool_fail(se, "commit trim", rc) : 0;
out:
	if (cur)
		mdb_cursor_close(cur);
	write_abort(se, txn);
	return ret;
}

int ing_spool_trim(struct ing_spool *sp, uint64_t upto)
{
	struct spool_env *se;
	MDB_envinfo info;
	int ret, dead;

	if (!sp)
		return -EINVAL;
	se = sp->se;
	if (upto == 0)
		return 0;
	for (int attempt = 0; attempt < SPOOL_RETRIES; attempt++) {
		ret = trim_once(sp, upto);
		if (ret != MDB_MAP_FULL)
			return ret;
		/*
		 * Deleting is copy-on-write too, so a map that is full of pages
		 * could refuse the very trim that would free it.  Never let the
		 * consumer wedge: clear dead readers, then grow the map.
		 */
		dead = 0;
		if (mdb_reader_check(se->env, &dead) == 0 && dead > 0)
			continue;
		if (mdb_env_info(se->env, &info) != 0)
			break;
		cv_warn(SPOOL_COMP, "%s: trim: map full, growing it by %zu MiB", se->dir,
			SPOOL_MAP_SLACK >> 20);
		ret = env_remap(se, info.me_mapsize + SPOOL_MAP_SLACK);
		if (ret)
			return ret;
	}
	return spool_fail(se, "trim", MDB_MAP_FULL);
}

/* ---- stats -------------------------------------------------------------- */

int ing_spool_stats(struct ing_spool *sp, struct ing_spool_stats *st)
{
	struct spool_env *se;
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	uint64_t next;
	int rc, ret;

	if (!sp || !st)
		return -EINVAL;
	se = sp->se;
	memset(st, 0, sizeof(*st));
	st->max_bytes = sp->max_bytes;
	ret = read_begin(sp, &txn);
	if (ret)
		return ret;
	if ((ret = meta_need_u64(se, txn, "next", &next)) ||
	    (ret = meta_need_u64(se, txn, "bytes", &st->bytes)) ||
	    (ret = meta_need_u64(se, txn, "count", &st->count)))
		goto out;
	st->last_pos = next - 1;
	rc = mdb_cursor_open(txn, se->dbi_rec, &cur);
	if (rc) {
		ret = spool_fail(se, "open cursor", rc);
		goto out;
	}
	rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	if (rc == 0 && k.mv_size == sizeof(st->first_pos))
		memcpy(&st->first_pos, k.mv_data, sizeof(st->first_pos));
	else if (rc == 0)
		ret = spool_corrupt(se, "record key is not a position");
	else if (rc != MDB_NOTFOUND)
		ret = spool_fail(se, "read first record", rc);
out:
	if (cur)
		mdb_cursor_close(cur);
	read_end(sp, txn);
	return ret;
}

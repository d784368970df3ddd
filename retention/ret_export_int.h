/*
 * ret_export_int — what the three parts of the export engine share; not an
 * API (see ret_export.h for the contract):
 *   ret_export.c      catalog, erasures, set up, the audited publish
 *   ret_export_read.c reading, verifying and filtering one source bundle
 *   ret_export_out.c  event output (jsonl, csv, and xml/eml through the
 *                     built-in adapters), escaping helpers
 *   ret_export_pkg.c  README.txt, manifest.json and the tar + zstd package
 *
 * Temporary layout under job->tmpdir (mkdtemp, 0700, removed at the end):
 *   pending       matching lines of the bundle being read, "<line> <json>"
 *                 (staging ids are known only from the bundle's manifest,
 *                 which comes last)
 *   events.jsonl | events.csv   the events member (jsonl, csv)
 *   spool         "<staging id> <json>" lines for the xml/eml adapters
 *   files/<sha256>              attachments taken from the source bundles
 *   out/…         what the xml/eml adapter wrote
 */
#ifndef RET_EXPORT_INT_H
#define RET_EXPORT_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "bundle.h"
#include "cv_time.h"
#include "cv_util.h"
#include "event.h"
#include "ret_export.h"

/* A set of strings (open addressing, copies its keys). */
struct ret_export_set {
	char **slots;
	size_t cap;        /* power of two, or 0 */
	size_t n;
};

int ret_export_set_add(struct ret_export_set *s, const char *key)
	__attribute__((warn_unused_result));
bool ret_export_set_has(const struct ret_export_set *s, const char *key);
void ret_export_set_clear(struct ret_export_set *s);   /* empty, keep capacity */
void ret_export_set_free(struct ret_export_set *s);

/* One honoured erasure (a user), sorted by user for bsearch. */
struct ret_export_erased {
	char *user;
	int64_t requested_ms;
	int64_t omitted;
};

struct ret_export_job {
	const struct cfg *cfg;
	struct sto_db *db;
	const struct ret_export_query *q;
	const struct ret_export_opts *o;
	char *err;
	size_t errlen;

	const char *adapter;                 /* archive instance read */
	const char *format_name;
	char from_s[CV_TIME_BUFSZ], to_s[CV_TIME_BUFSZ];
	char exported_at[CV_TIME_BUFSZ];
	int64_t now_ms;
	char exported_by[512];
	size_t max_line;                     /* ingest.max_event_size */

	const char **rooms, **users;         /* the query's, sorted, unique */
	size_t nrooms, nusers;
	struct ret_export_erased *erased;
	size_t nerased;

	char out_dir[PATH_MAX];              /* directory of the output */
	char out_tmp[PATH_MAX];              /* "<output>.tmp" */
	char out_abs[PATH_MAX];              /* absolute output path */
	char tmpdir[PATH_MAX];               /* "" until created */
	char files_dir[PATH_MAX];
	char adapter_dir[PATH_MAX];          /* xml/eml output */
	char events_path[PATH_MAX];          /* events.jsonl/csv, or the spool */
	char pending_path[PATH_MAX];
	FILE *events;                        /* open while bundles are read */
	FILE *pending;

	struct cv_sha256 *sha;               /* reused; final_hex resets it */
	struct cv_buf row;                   /* csv row / spool line being built */
	struct ret_export_set seen_rooms, seen_users;
	struct ret_export_set wanted;        /* attachments of the bundle */

	struct ret_export_result *res;
	json_t *source_bundles;
	json_t *purged;

	size_t bundle_i, nbundles;           /* progress */
	int64_t last_draw_ms;
	bool drawn;
};

/* err helpers (ret_export.c). */
void ret_export_fail(struct ret_export_job *j, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
bool ret_export_stopped(struct ret_export_job *j);
void ret_export_progress(struct ret_export_job *j, const char *phase, bool force);

/* One catalog row of a bundle to read. */
struct ret_export_row {
	int64_t batch_no, first_sid, last_sid, event_count;
	const char *path;
	const char *chain;               /* catalog's manifest hash */
};

/* ret_export_read.c: verify and read one bundle; matching events go to
 * j->events (jsonl) or through j->pending to ret_export_write_event. */
int ret_export_bundle(struct ret_export_job *j, const struct ret_export_row *row)
	__attribute__((warn_unused_result));

/* ret_export_out.c: write one matching event with its staging id to the
 * events file (csv row, or spool line for xml/eml).  line is the
 * canonical json, already parsed into ev. */
int ret_export_write_event(struct ret_export_job *j, int64_t sid, const char *line, size_t len,
			   const struct ing_event *ev) __attribute__((warn_unused_result));
/* Write the events.csv header. */
int ret_export_csv_header(struct ret_export_job *j) __attribute__((warn_unused_result));
/* xml/eml: feed the spool to the adapter in chunks; output in adapter_dir. */
int ret_export_run_adapter(struct ret_export_job *j) __attribute__((warn_unused_result));
/* Remove a directory tree (no symlinks followed); 0 or negative errno. */
int ret_export_rmtree(const char *path);

/* ret_export_pkg.c: write the package to j->out_tmp, durable (fsynced,
 * 0640), res->sha256 and res->size set.  Removes the temporary on
 * failure. */
int ret_export_package(struct ret_export_job *j) __attribute__((warn_unused_result));
/* The query object of the manifest (also the audit details). */
json_t *ret_export_query_json(const struct ret_export_job *j);
json_t *ret_export_counts_json(const struct ret_export_job *j);

#endif

/*
 * ret_export — `chatvault export`: the auditor export package
 * (docs/FORMATS.md §3, format chatvault-export/1), built from the archive.
 *
 * Contract:
 *   - Source: the bundle catalog (chatvault.batches) of one archive-type
 *     adapter instance: rows in state 'done' whose [min_ts, max_ts]
 *     overlaps [from, to) and, when rooms/users are given, whose room/user
 *     sets intersect them, in batch_no order.  Purged rows overlapping the
 *     query are listed in the manifest ("purged_in_range"), never read.
 *   - Every source bundle is verified (adp_bundle_verify_info) and its
 *     manifest hash compared with the catalog's chain before anything is
 *     taken from it; while it is read, events.jsonl, each attachment and
 *     manifest.json are hashed again, and the file must not change under
 *     us.  A damaged or tampered bundle fails the export naming it: an
 *     auditor export never silently includes altered data.
 *   - An event matches when from <= ts < to, (no rooms, or its room is one
 *     of them) and (no users, or its user or to is one of them).  Matching
 *     events whose user or to has an honoured erasure (chatvault.erasures)
 *     are left out and counted per erased user.
 *   - Output: one tar (pax restricted) + zstd file; members README.txt,
 *     the events (events.jsonl | events.csv | xml/<name>.xml |
 *     eml/<name>.eml), files/<sha256> ascending, manifest.json last.  xml
 *     and eml come from the built-in adapters (adapters/registry.h) fed in
 *     chunks of at most RET_EXPORT_CHUNK events.
 *   - Durability and audit: written to "<output>.tmp" (0600, O_EXCL),
 *     fsynced, made 0640; then, in one database transaction, a row in
 *     chatvault.audit_log (action 'export') is inserted, the temporary is
 *     renamed over the output and the directory fsynced, and the
 *     transaction commits.  If any of that fails the output is removed: an
 *     unaudited export does not remain.
 *   - Memory is bounded by the largest bundle's attachments and manifest,
 *     one chunk of RET_EXPORT_CHUNK events, and the distinct rooms/users
 *     of the export, never by the number of exported events: events go
 *     through temporary files in a private directory (mkdtemp, 0700) next
 *     to the output, removed afterwards.
 *
 * Thread-safe: no shared state; one call per struct sto_db.
 */
#ifndef RET_EXPORT_H
#define RET_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "cv_util.h"

#define RET_EXPORT_FORMAT "chatvault-export/1"
#define RET_EXPORT_CHUNK 10000     /* events per xml/eml adapter batch */
#define RET_EXPORT_ERRLEN 1024

/* The project has no release number yet; a build may set one with
 * -DCV_VERSION='"1.2.3"'.  Recorded as manifest "tool". */
#ifndef CV_VERSION
#define CV_VERSION "0.1.0-dev"
#endif

enum ret_export_format {
	RET_EXPORT_JSONL = 0,
	RET_EXPORT_CSV = 1,
	RET_EXPORT_XML = 2,
	RET_EXPORT_EML = 3,
};

struct ret_export_query {
	int64_t from_ms;                 /* inclusive, UTC ms */
	int64_t to_ms;                   /* exclusive */
	const char *const *rooms;        /* none: every room */
	size_t nrooms;
	const char *const *users;        /* none: every user (matches user or to) */
	size_t nusers;
	enum ret_export_format format;
};

struct ret_export_opts {
	const char *adapter;             /* archive instance; NULL: the first */
	const char *output;              /* the package file to write */
	bool progress;                   /* redraw a progress line on stderr */
	bool (*should_stop)(void *arg);  /* polled between steps; may be NULL */
	void *stop_arg;
};

struct ret_export_result {
	int64_t events;
	int64_t rooms;
	int64_t users;
	int64_t attachments;
	int64_t omitted_erased;
	int64_t bundles;                 /* source bundles read */
	int64_t purged;                  /* purged bundles in range */
	uint64_t size;                   /* bytes of the package */
	char sha256[CV_SHA256_HEX];      /* of the package */
	char path[4096];                 /* absolute path of the package */
};

struct sto_db;

/*
 * Write the package.  Returns 0; -EINVAL for a configuration problem (no
 * archive adapter, or NAME is not one: exit 2); -EINTR when should_stop
 * said so; any other negative errno for a runtime failure (database,
 * damaged bundle, I/O).  err receives one line naming what failed.
 */
int ret_export_run(const struct cfg *cfg, struct sto_db *db, const struct ret_export_query *q,
		   const struct ret_export_opts *o, struct ret_export_result *res, char *err,
		   size_t errlen) __attribute__((warn_unused_result));

/* The archive adapter export reads by default (the first of type "archive"),
 * or NULL. */
const struct cfg_adapter *ret_export_default_adapter(const struct cfg *cfg);

/* "jsonl", "csv", "xml", "eml" → format; -EINVAL otherwise. */
int ret_export_format_parse(const char *s, enum ret_export_format *out)
	__attribute__((warn_unused_result));
const char *ret_export_format_name(enum ret_export_format f);

/* Append one RFC 4180 field: quoted (with "" for ") when it holds a comma,
 * a double quote, CR or LF; as is otherwise.  NULL appends nothing. */
int ret_export_csv_field(struct cv_buf *b, const char *s) __attribute__((warn_unused_result));

/* Append a PostgreSQL text[] literal ({"a","b\"c"}) for a parameter. */
int ret_export_pg_array(struct cv_buf *b, const char *const *v, size_t n)
	__attribute__((warn_unused_result));

#endif

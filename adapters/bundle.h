/*
 * bundle — reading and verifying archive bundles (design.md §2 "Archive
 * bundle"; written by adapters/archive.c), for `chatvault verify` and
 * `chatvault export`.
 *
 * A bundle is a zstd-compressed tar whose members are, in this order,
 * events.jsonl, files/<sha256> (ascending), manifest.json.  The reader
 * streams members in bounded chunks (never a whole member in memory, except
 * manifest.json inside verify), so bundles of any size can be checked.
 *
 * Errors: negative errno.  -EBADMSG means the bundle is damaged or tampered
 * with (verify's "found a problem", exit 3); anything else (-ENOENT,
 * -EACCES, -EIO, -ENOMEM) means it could not be read.  err receives one
 * line that names the bundle and, where there is one, the member:
 *     "bundle X: member events.jsonl: sha256 mismatch (manifest …, actual …)"
 * Thread-safe: no shared state.
 *
 * Also the few pieces of writing that the bundle writer (archive.c) and the
 * export package (retention/ret_export_pkg.c), which follows the same tar
 * and manifest conventions, share.
 */
#ifndef ADP_BUNDLE_H
#define ADP_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

struct archive;

#define ADP_BUNDLE_FORMAT "chatvault-bundle/1"
#define ADP_BUNDLE_CHUNK (64 * 1024)  /* largest data chunk handed to a callback */
/* Largest manifest.json a reader loads: the writer's is ~150 bytes per
 * attachment plus the rooms and users; anything past this is not ours. */
#define ADP_BUNDLE_MANIFEST_MAX (64 * 1024 * 1024)

/*
 * One call of the member callback.  Every member produces one or more data
 * calls (offset 0, then increasing; len <= ADP_BUNDLE_CHUNK) followed by
 * exactly one call with last = true and len 0, so an empty member is just
 * that final call.  name and data are valid only during the call.
 */
struct adp_bundle_chunk {
	const char *name;      /* member path inside the tar */
	int64_t size;          /* member size from its tar header */
	int64_t offset;        /* of data within the member */
	const void *data;
	size_t len;
	bool last;
};

/* Return 0 to go on; anything else stops the read and is returned by
 * adp_bundle_read() unchanged. */
typedef int (*adp_bundle_member_cb)(void *arg, const struct adp_bundle_chunk *chunk);

/*
 * Stream every member of the bundle at path through cb, in tar order.
 * Only regular-file members are valid; anything else is -EBADMSG.
 * Returns 0, the callback's non-zero value (err then says which member it
 * stopped at), or a negative errno with err set.
 */
int adp_bundle_read(const char *path, adp_bundle_member_cb cb, void *arg,
		    char *err, size_t errlen);

/* What verify learnt from a sound bundle: enough to walk the hash chain
 * (bundle N's prev_manifest_sha256 must equal bundle N-1's
 * manifest_sha256) and to check staging ids for gaps across bundles. */
struct adp_bundle_info {
	char manifest_sha256[65];       /* SHA-256 of the manifest.json bytes */
	char prev_manifest_sha256[65];  /* "" for an instance's first bundle */
	char adapter[65];
	int64_t batch_no;
	int64_t first_staging_id;
	int64_t last_staging_id;
	int64_t event_count;
	char min_ts[32];
	char max_ts[32];
	size_t nfiles;                  /* files/ members */
	size_t nmissing;                /* missing_files entries */
};

/*
 * Verify one bundle: members in the contract's order with manifest.json
 * last; every member's SHA-256 and size equal the manifest's (and nothing
 * listed is absent, nothing present is unlisted); each files/<sha256>
 * hashes to its name; events.jsonl has event_count newline-terminated
 * lines; staging_ids ranges add up to event_count and span first..last;
 * the file name, when it is "*.tar.zst", is the one the manifest implies.
 * Returns 0 and fills info (may be NULL), or -EBADMSG / -errno with err.
 */
int adp_bundle_verify_info(const char *path, struct adp_bundle_info *info,
			   char *err, size_t errlen);

/*
 * Taps into the single pass of adp_bundle_verify_ex(), for a caller that
 * wants the content too (`chatvault verify` reads every event line) without
 * decompressing the bundle twice.  Either function may be NULL.  A hook's
 * non-zero return stops the pass and is returned by adp_bundle_verify_ex().
 */
struct adp_bundle_hooks {
	/* events.jsonl bytes in order, chunk by chunk (not line-aligned). */
	int (*events)(void *arg, const void *data, size_t len);
	/* manifest.json's bytes and SHA-256 as soon as the member is read,
	 * before its content is checked: the chain links of a bundle that
	 * then fails are still worth knowing. */
	int (*manifest)(void *arg, const char *data, size_t len, const char *sha256);
	void *arg;
};

/* adp_bundle_verify_info() with hooks (NULL: none). */
int adp_bundle_verify_ex(const char *path, const struct adp_bundle_hooks *hooks,
			 struct adp_bundle_info *info, char *err, size_t errlen);

/* adp_bundle_verify_info() returning just the manifest hash. */
int adp_bundle_verify(const char *path, char manifest_sha256_out[65],
		      char *err, size_t errlen);

/* --- writing ---------------------------------------------------------------- */

/* A regular-file member header: mode 0444, owner 0 with empty names, the
 * given mtime.  0, -ENOMEM, or -EIO (libarchive failed, or warned that it
 * altered something: not reproducible; archive_error_string() says why). */
int adp_bundle_tar_header(struct archive *a, const char *name, int64_t size, time_t mtime)
	__attribute__((warn_unused_result));
/* A JSON array of the strings, or NULL on out of memory. */
json_t *adp_bundle_str_array(const char **v, size_t n);
/* A manifest "members" entry {"sha256": hash, "size": size}, or NULL. */
json_t *adp_bundle_member_json(const char *hash, int64_t size);

#endif

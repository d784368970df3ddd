/*
 * ret_vint — what the parts of `chatvault verify` share (internal to
 * retention/ret_verify.c, ret_vexport.c): the finding reporter, the event
 * line splitter, and the export-package checker.
 */
#ifndef RET_VINT_H
#define RET_VINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "cv_util.h"
#include "ret_lines.h"
#include "ret_verify.h"
#include "ret_vseq.h"

/* Largest manifest.json or tombstone loaded whole. */
#define RET_VJSON_MAX (64 * 1024 * 1024)

/* The finding reporter: counts, prints, remembers the first of each. */
struct ret_vrep {
	FILE *out;
	bool quiet;
	struct ret_verify_result *res;
};

/* "FAIL: <file>: member <member>: <what>"; file and member may be NULL. */
void ret_vrep_fail(struct ret_vrep *r, const char *file, const char *member,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* "ERROR: <file>: <what>": could not be read (not tampering). */
void ret_vrep_error(struct ret_vrep *r, const char *file, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* "note: <what>" and "known gap: <what>"; silent under quiet. */
void ret_vrep_note(struct ret_vrep *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void ret_vrep_gap(struct ret_vrep *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Report a reader error from adapters/bundle.c ("bundle PATH: rest"),
 * as FAIL for -EBADMSG and ERROR otherwise. */
void ret_vrep_reader(struct ret_vrep *r, const char *path, int rc, const char *err);

/* The part of path after its last '/'. */
const char *ret_vbase(const char *path);

/* "a..b", or "a" when a == b, into buf (RET_VRANGE_LEN); returns buf. */
#define RET_VRANGE_LEN 48
const char *ret_vrange(char *buf, int64_t a, int64_t b);


/* One source bundle named by an export package's manifest. */
struct ret_vsrc_bundle {
	char name[256];
	char adapter[65];
	int64_t batch_no;
	char sha256[65];
	char manifest_sha256[65];
};

struct ret_vexport {
	struct ret_vsrc_bundle *src;
	size_t nsrc;
	int64_t events;          /* counted event lines (jsonl, csv) */
};

/*
 * Verify one export package (docs/FORMATS.md §3), reporting through r.
 * Fills x with the source bundles for the cross-check against bundles
 * given on the same command line (free with ret_vexport_free).  Returns 0
 * (findings reported) or -ENOMEM.
 */
int ret_vexport_check(struct ret_vrep *r, const char *path, struct ret_vexport *x);
void ret_vexport_free(struct ret_vexport *x);

/* --- the archive model: adapters, chain items (ret_verify.c builds it,
 *     ret_vchain.c judges it) ---------------------------------------------- */

/* One source.server's seq range in an item, from its manifest or tombstone. */
struct ret_vsrange {
	char *server;
	int64_t lo, hi;
};

enum ret_vkind {
	RET_VK_BUNDLE = 0,      /* sorts before a tombstone of the same batch */
	RET_VK_TOMB = 1,
};

/* A link of a hash chain: a bundle (its manifest) or a tombstone. */
struct ret_vitem {
	enum ret_vkind kind;
	bool damaged;            /* a bundle that failed its own checks (reported) */
	const char *path;
	char adapter[65];
	int64_t batch_no, first, last;
	char manifest_sha256[65];
	char prev[65];
	struct ret_vsrange *src; /* sorted by server */
	size_t nsrc;
	struct ret_verify_tomb *tomb;   /* RET_VK_TOMB */
};

/* A damaged bundle without a usable manifest: only its file name says
 * where it was, so the chain is not judged across it. */
struct ret_vplace {
	const char *path;
	int64_t first, last;
};

/* Per adapter and source.server: the seqs bundles hold and tombstones
 * account for. */
struct ret_vserver {
	struct ret_vseq seen;
	struct ret_vseq purged;
};

struct ret_vadapter {
	char name[65];
	struct ret_vids ids;               /* event ids, owner = file number */
	struct ret_vmap servers;           /* -> struct ret_vserver */
	struct ret_vitem **items;          /* not owned */
	size_t nitems, capitems;
	struct ret_vplace *places;
	size_t nplaces, capplaces;
	int64_t excluded;                  /* staging ids excluded at delivery */
	const struct ret_vitem *late_head; /* first link when it is not batch 1 */
};

/* A file found under the PATHs; its index + 1 is its owner number in
 * the id sets. */
struct ret_vfile {
	char *path;
	int kind;                          /* ret_verify.c's classification */
	dev_t dev;
	ino_t ino;
};

struct ret_vctx {
	struct ret_vrep rep;
	struct ret_vmap adapters;          /* -> struct ret_vadapter */
	struct ret_vitem **items;          /* owned */
	size_t nitems, capitems;
	struct ret_vfile *f;               /* sorted by base name */
	size_t nf, capf;
};

/* ret_verify.c: the adapter called name (created); NULL: out of memory. */
struct ret_vadapter *ret_vctx_adapter(struct ret_vctx *c, const char *name);
/* Take ownership of it: the run's list and its adapter's chain; 0 or
 * -ENOMEM (it is freed then). */
int ret_vctx_add_item(struct ret_vctx *c, struct ret_vitem *it);
int ret_vctx_add_place(struct ret_vadapter *ad, const char *path, int64_t first,
		       int64_t last);
void ret_vitem_free(struct ret_vitem *it);

/* ret_vbundle.c: is base "<adapter>-<first %016>-<last %016>.tar.zst"? */
bool ret_vbundle_name(const char *base, char adapter[65], int64_t *first, int64_t *last);
/* Verify the bundle c->f[idx] and add it to the model; 0 (findings
 * reported) or -ENOMEM. */
int ret_vbundle_check(struct ret_vctx *c, size_t idx);

/* Hash chain, staging ids, tombstones and source.seq holes of one adapter
 * (after every file was read).  0 or -ENOMEM. */
int ret_vchain_check(struct ret_vctx *c, struct ret_vadapter *ad);
/* Which item's manifest (or tombstone) seq range for server holds seq;
 * NULL if none.  Skips item skip. */
const struct ret_vitem *ret_vchain_seq_owner(const struct ret_vadapter *ad, const char *server,
					     int64_t seq, const struct ret_vitem *skip);
/* Compare an export's source bundles with the bundles and tombstones read. */
int ret_vchain_export_cross(struct ret_vctx *c, const char *path, const struct ret_vexport *x);

#endif

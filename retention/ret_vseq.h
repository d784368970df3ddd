/*
 * ret_vseq — the sets `chatvault verify` keeps while it streams an archive
 * (retention/ret_verify.c):
 *
 *   struct ret_vseq   a set of int64 as sorted, disjoint, non-adjacent
 *                     closed intervals: source.seq numbers per server and
 *                     staging ids.  Memory grows with the number of holes,
 *                     not the number of members, so the seqs of an archive
 *                     of billions of events cost a few intervals per gap.
 *   struct ret_vids   an open-addressing hash set of 16-byte event ids, each
 *                     remembering a small owner number (the bundle that
 *                     held it first): 20 bytes per event at most 75% load,
 *                     fine for tens of millions.
 *   struct ret_vmap   a string -> pointer map (adapters, servers).
 *
 * Contract: every function that allocates returns -ENOMEM (or NULL) and
 * leaves the set as it was.  All are zero-initialisable ("= { 0 }" is an
 * empty set) and freed with their _free function (NULL-safe).  Not
 * thread-safe; no shared state.
 */
#ifndef RET_VSEQ_H
#define RET_VSEQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ret_vseq_iv {
	int64_t a, b;          /* a <= b */
};

struct ret_vseq {
	struct ret_vseq_iv *iv;  /* ascending; iv[i].b + 1 < iv[i + 1].a */
	size_t n, cap;
};

/*
 * Add [a, b] (a <= b, else -EINVAL).  Returns 1 when some of it was in the
 * set already (the union is stored anyway), 0 when none was, -ENOMEM.
 * Appending at the top (the usual case: seqs arrive nearly in order) is
 * O(1); elsewhere O(log n) plus the intervals it swallows.
 */
int ret_vseq_add(struct ret_vseq *s, int64_t a, int64_t b);
bool ret_vseq_contains(const struct ret_vseq *s, int64_t x);
/* The lowest part of [a, b] inside the set, as [*oa, *ob]; false if none. */
bool ret_vseq_overlap(const struct ret_vseq *s, int64_t a, int64_t b, int64_t *oa,
		      int64_t *ob);
/* The lowest part of [a, b] outside the set, as [*ha, *hb]; false if none.
 * Iterate with a = *hb + 1 (mind *hb == INT64_MAX). */
bool ret_vseq_hole(const struct ret_vseq *s, int64_t a, int64_t b, int64_t *ha,
		   int64_t *hb);
/* Number of members, saturating at INT64_MAX. */
int64_t ret_vseq_count(const struct ret_vseq *s);
void ret_vseq_free(struct ret_vseq *s);

#define RET_VIDS_LEN 16

struct ret_vids_slot {
	uint8_t id[RET_VIDS_LEN];
	uint32_t owner;        /* 0: free slot */
};

struct ret_vids {
	struct ret_vids_slot *slots;
	size_t cap, n;          /* cap is 0 or a power of two */
};

/*
 * Add id with owner (> 0, else -EINVAL).  Returns 0 when added, 1 when the
 * id was present (*holder, if not NULL, receives the owner stored first),
 * -ENOMEM.
 */
int ret_vids_add(struct ret_vids *s, const uint8_t id[RET_VIDS_LEN], uint32_t owner,
		 uint32_t *holder);
void ret_vids_free(struct ret_vids *s);

/* Canonical UUID text (8-4-4-4-12 hex, either case) to 16 bytes; -EINVAL. */
int ret_vids_parse_uuid(const char *s, size_t len, uint8_t out[RET_VIDS_LEN]);

struct ret_vmap_ent {
	char *key;              /* NULL: free slot */
	void *val;
	uint64_t hash;
};

struct ret_vmap {
	struct ret_vmap_ent *e;
	size_t cap, n;
};

/*
 * The value slot for key: with create, a missing key is added (copied) with
 * a NULL value; without, NULL when absent.  NULL with create means out of
 * memory.  Slots move when the map grows: do not keep one across calls.
 */
void **ret_vmap_slot(struct ret_vmap *m, const char *key, bool create);
/* The occupied entries sorted by key (malloc'd array of m->n pointers, or
 * NULL on out of memory; a non-NULL array even when empty). */
struct ret_vmap_ent **ret_vmap_sorted(const struct ret_vmap *m);
/* Free keys, call free_val (may be NULL) on each value, free the map. */
void ret_vmap_free(struct ret_vmap *m, void (*free_val)(void *));

#endif

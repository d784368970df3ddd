/*
 * ret_vchain — the judgements `chatvault verify` makes once every file was
 * read (see ret_verify.h, docs/FORMATS.md "What verify checks"):
 *
 *   per adapter instance, its bundles and tombstones in batch_no order
 *   form one hash chain: each link's prev_manifest_sha256 is the previous
 *   link's manifest hash, batch 1's is "", staging ids continue exactly
 *   (next.first == prev.last + 1) and never go back; a batch twice is a
 *   failure; a tombstone next to its own bundle is ignored (a purge that
 *   did not finish); a tombstone is a known gap, reported with its reason;
 *
 *   per adapter and source.server, every seq between the lowest and the
 *   highest seen is in a bundle or in a tombstone's "sources", and none is
 *   in both;
 *
 *   an export's source bundles, when they were given too, are the very
 *   bundles (file and manifest hashes) the export names.
 *
 * The chain is not judged across a bundle too damaged to show its manifest
 * (that bundle is already a failure): one bad file, one finding.
 */
#include "ret_vint.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define REPORT_HOLES 20      /* seq holes listed per server before a summary */

static int cmp_item(const void *x, const void *y)
{
	const struct ret_vitem *a = *(const struct ret_vitem *const *)x;
	const struct ret_vitem *b = *(const struct ret_vitem *const *)y;

	if (a->batch_no != b->batch_no)
		return a->batch_no < b->batch_no ? -1 : 1;
	if (a->kind != b->kind)
		return a->kind < b->kind ? -1 : 1;
	return strcmp(a->path, b->path);
}

/* The seq range of server in item it, or NULL. */
static const struct ret_vsrange *src_of(const struct ret_vitem *it, const char *server)
{
	size_t lo = 0, hi = it->nsrc;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(it->src[mid].server, server);

		if (c == 0)
			return &it->src[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const struct ret_vitem *ret_vchain_seq_owner(const struct ret_vadapter *ad, const char *server,
					     int64_t seq, const struct ret_vitem *skip)
{
	for (size_t i = 0; i < ad->nitems; i++) {
		const struct ret_vsrange *s;

		if (ad->items[i] == skip)
			continue;
		s = src_of(ad->items[i], server);
		if (s && s->lo <= seq && seq <= s->hi)
			return ad->items[i];
	}
	return NULL;
}

/* A damaged bundle without links whose staging ids fall in (after, before). */
static const struct ret_vplace *damaged_between(const struct ret_vadapter *ad, int64_t after,
						int64_t before)
{
	for (size_t i = 0; i < ad->nplaces; i++)
		if (ad->places[i].last > after && ad->places[i].first < before)
			return &ad->places[i];
	return NULL;
}

static struct ret_vserver *server_of(struct ret_vadapter *ad, const char *name)
{
	void **slot = ret_vmap_slot(&ad->servers, name, true);

	if (!slot)
		return NULL;
	if (!*slot)
		*slot = calloc(1, sizeof(struct ret_vserver));
	return *slot;
}

/* Two links claim batch k->batch_no; k is kept in the walk. */
static void same_batch(struct ret_vctx *c, struct ret_vadapter *ad, const struct ret_vitem *k,
		       const struct ret_vitem *it)
{
	struct ret_vrep *rep = &c->rep;
	char hex[CV_SHA256_HEX];
	int rc;

	if (k->kind == RET_VK_BUNDLE && it->kind == RET_VK_TOMB && k->first == it->first &&
	    k->last == it->last) {
		/* The purge did not finish: the bundle is what counts. */
		if (!k->damaged && strcmp(k->manifest_sha256, it->manifest_sha256) != 0) {
			ret_vrep_fail(rep, it->path, NULL, "manifest_sha256 differs from that of "
				      "its bundle %s, which is still there", k->path);
			return;
		}
		if (!k->damaged) {
			rc = cv_sha256_file(k->path, hex, NULL);
			if (rc == 0 && strcmp(hex, it->tomb->bundle_sha256) != 0) {
				ret_vrep_fail(rep, it->path, NULL, "bundle_sha256 differs from the "
					      "file %s, which is still there", k->path);
				return;
			}
			if (rc)
				ret_vrep_error(rep, k->path, "%s", strerror(-rc));
		}
		ret_vrep_note(rep, "%s: ignored, its bundle %s is still there (a purge that "
			      "did not finish)", it->path, k->path);
		return;
	}
	ret_vrep_fail(rep, it->path, NULL, "%s batch %" PRId64 " (staging ids %" PRId64 "..%"
		      PRId64 ") is also %s (staging ids %" PRId64 "..%" PRId64 ")", ad->name,
		      it->batch_no, it->first, it->last, k->path, k->first, k->last);
}

static int tombstone_link(struct ret_vctx *c, struct ret_vadapter *ad,
			  const struct ret_vitem *it)
{
	const struct ret_verify_tomb *t = it->tomb;
	struct ret_vrep *rep = &c->rep;
	char r1[RET_VRANGE_LEN];

	rep->res->tombstones++;
	ret_vrep_gap(rep, "%s batch %" PRId64 ", staging ids %" PRId64 "..%" PRId64 ", purged "
		     "%s: %s (%s)", ad->name, it->batch_no, it->first, it->last, t->purged_at,
		     t->reason, it->path);
	ad->excluded += it->last - it->first + 1 - t->event_count;
	for (size_t i = 0; i < t->nsources; i++) {
		struct ret_vserver *g = server_of(ad, t->sources[i].server);

		if (!g)
			return -ENOMEM;
		for (size_t k = 0; k < t->sources[i].n; k++) {
			int rc = ret_vseq_add(&g->purged, t->sources[i].r[k].a, t->sources[i].r[k].b);

			if (rc < 0)
				return rc;
			if (rc == 1)
				ret_vrep_fail(rep, it->path, NULL, "sources.%s: seq %s overlaps "
					      "another tombstone", t->sources[i].server,
					      ret_vrange(r1, t->sources[i].r[k].a,
							 t->sources[i].r[k].b));
		}
	}
	return 0;
}

static void first_link(struct ret_vctx *c, struct ret_vadapter *ad, const struct ret_vitem *it)
{
	struct ret_vrep *rep = &c->rep;

	if (it->batch_no == 1) {
		if (it->prev[0])
			ret_vrep_fail(rep, it->path, it->kind == RET_VK_BUNDLE ? "manifest.json" :
				      NULL, "batch 1 has prev_manifest_sha256 %s (want \"\")",
				      it->prev);
		return;
	}
	ad->late_head = it;
	if (!it->prev[0])
		ret_vrep_note(rep, "chain of %s starts at batch %" PRId64 " (%s) with no "
			      "predecessor: earlier batches wrote no bundle", ad->name,
			      it->batch_no, it->path);
	else
		ret_vrep_note(rep, "chain starts at batch %" PRId64 ": earlier bundles not "
			      "given (%s, %s)", it->batch_no, ad->name, it->path);
}

static void next_link(struct ret_vctx *c, struct ret_vadapter *ad, const struct ret_vitem *p,
		      const struct ret_vitem *it)
{
	struct ret_vrep *rep = &c->rep;
	const struct ret_vplace *across = damaged_between(ad, p->last, it->first);
	bool linked = strcmp(it->prev, p->manifest_sha256) == 0;
	bool skipped = it->batch_no > p->batch_no + 1;
	char missing[96] = "", r1[RET_VRANGE_LEN];

	if (skipped && it->batch_no == p->batch_no + 2)
		snprintf(missing, sizeof(missing), "batch %" PRId64, p->batch_no + 1);
	else if (skipped)
		snprintf(missing, sizeof(missing), "batches %" PRId64 "..%" PRId64,
			 p->batch_no + 1, it->batch_no - 1);
	if (across && (!linked || it->first != p->last + 1)) {
		ret_vrep_note(rep, "chain of %s not checked across %s (damaged, reported above) "
			      "between %s and %s", ad->name, across->path, p->path, it->path);
		return;
	}
	if (it->first <= p->last)
		ret_vrep_fail(rep, it->path, NULL, "out of order: batch %" PRId64 " holds "
			      "staging ids %" PRId64 "..%" PRId64 ", but batch %" PRId64
			      " (%s) ends at %" PRId64, it->batch_no, it->first, it->last,
			      p->batch_no, p->path, p->last);
	else if (it->first != p->last + 1)
		ret_vrep_fail(rep, NULL, NULL, "gap: %s staging ids %s between %s and %s%s%s%s",
			      ad->name, ret_vrange(r1, p->last + 1, it->first - 1), p->path,
			      it->path, linked && skipped ? " (hash chain intact: " : "",
			      linked && skipped ? missing : "",
			      linked && skipped ? " wrote no bundle; were their events "
			      "quarantined at delivery?)" : "");
	if (!linked)
		ret_vrep_fail(rep, it->path, it->kind == RET_VK_BUNDLE ? "manifest.json" : NULL,
			      "chain broken: prev_manifest_sha256 %s is not the manifest of "
			      "batch %" PRId64 " (%s)%s%s%s", it->prev[0] ? it->prev : "\"\"",
			      p->batch_no, p->path, skipped ? "; " : "", missing,
			      skipped ? " not given" : "");
	else if (skipped && it->first == p->last + 1)
		ret_vrep_note(rep, "%s %s wrote no bundle (hash chain intact from %s to %s)",
			      ad->name, missing, p->path, it->path);
}

/* Where a missing seq range sits, for the finding. */
static void locate(const struct ret_vadapter *ad, const char *server, int64_t a, int64_t b,
		   char *out, size_t len)
{
	const struct ret_vitem *in = ret_vchain_seq_owner(ad, server, a, NULL);
	const struct ret_vitem *lo = a > INT64_MIN ? ret_vchain_seq_owner(ad, server, a - 1, NULL)
						   : NULL;
	const struct ret_vitem *hi = b < INT64_MAX ? ret_vchain_seq_owner(ad, server, b + 1, NULL)
						   : NULL;

	if (in)
		snprintf(out, len, "within the seq range of %s", in->path);
	else if (lo && hi)
		snprintf(out, len, "between %s and %s", lo->path, hi->path);
	else if (lo || hi)
		snprintf(out, len, "next to %s", lo ? lo->path : hi->path);
	else
		snprintf(out, len, "adapter %s", ad->name);
}

/* Seq holes of one server: the first REPORT_HOLES are listed. */
struct holes {
	int64_t shown, more_ranges, more_seqs;
	bool more_fail;          /* a failure among those not listed */
};

static void report_hole(struct ret_vctx *c, const struct ret_vadapter *ad, const char *server,
			int64_t a, int64_t b, struct holes *h)
{
	const struct ret_vsrange *head = ad->late_head ? src_of(ad->late_head, server) : NULL;
	/* Below the first link's seqs when the chain starts late: they may
	 * be in the bundles not given.  With a bundle too damaged to read,
	 * that bundle is the failure and may hold them. */
	bool early = head && b < head->hi;
	char where[1200], r1[RET_VRANGE_LEN];

	if (h->shown++ >= REPORT_HOLES) {
		h->more_ranges++;
		h->more_seqs = b - a + 1 > INT64_MAX - h->more_seqs ? INT64_MAX :
			       h->more_seqs + (b - a + 1);
		h->more_fail |= !early && !ad->nplaces;
		return;
	}
	if (early) {
		ret_vrep_note(&c->rep, "source %s: seq %s not in any bundle given (%s starts "
			      "the chain at batch %" PRId64 ": they may be in earlier bundles)",
			      server, ret_vrange(r1, a, b), ad->late_head->path,
			      ad->late_head->batch_no);
		return;
	}
	locate(ad, server, a, b, where, sizeof(where));
	if (ad->nplaces) {
		ret_vrep_note(&c->rep, "source %s: seq %s not in any readable bundle of %s "
			      "(%s): the damaged bundle %s%s may hold them",
			      server, ret_vrange(r1, a, b), ad->name, where, ad->places[0].path,
			      ad->nplaces > 1 ? " (and others)" : "");
		return;
	}
	ret_vrep_fail(&c->rep, NULL, NULL, "source %s: seq %s not in any bundle or tombstone "
		      "of %s (%s)%s", server, ret_vrange(r1, a, b), ad->name, where,
		      ad->excluded ? "; some events of this adapter were quarantined at "
		      "delivery (chatvault quarantine list)" : "");
}

static int seq_holes(struct ret_vctx *c, struct ret_vadapter *ad)
{
	struct ret_vmap_ent **servers = ret_vmap_sorted(&ad->servers);

	if (!servers)
		return -ENOMEM;
	for (size_t k = 0; k < ad->servers.n; k++) {
		const char *name = servers[k]->key;
		struct ret_vserver *g = servers[k]->val;
		struct holes h = { 0 };
		int64_t lo, hi, x, ha, hb, oa, ob;

		if (!g->seen.n && !g->purged.n)
			continue;
		lo = g->seen.n ? g->seen.iv[0].a : INT64_MAX;
		hi = g->seen.n ? g->seen.iv[g->seen.n - 1].b : INT64_MIN;
		if (g->purged.n && g->purged.iv[0].a < lo)
			lo = g->purged.iv[0].a;
		if (g->purged.n && g->purged.iv[g->purged.n - 1].b > hi)
			hi = g->purged.iv[g->purged.n - 1].b;
		/* Purged and present at once: an event twice. */
		for (size_t i = 0; i < g->purged.n; i++) {
			int64_t a = g->purged.iv[i].a, e = g->purged.iv[i].b;

			while (ret_vseq_overlap(&g->seen, a, e, &oa, &ob)) {
				char where[1200], r1[RET_VRANGE_LEN];

				locate(ad, name, oa, oa, where, sizeof(where));
				ret_vrep_fail(&c->rep, NULL, NULL, "source %s: seq %s both purged "
					      "(a tombstone of %s) and present (%s): doubled events",
					      name, ret_vrange(r1, oa, ob), ad->name, where);
				if (ob >= e)
					break;
				a = ob + 1;
			}
		}
		for (x = lo; ret_vseq_hole(&g->seen, x, hi, &ha, &hb);) {
			int64_t y = ha, qa, qb;

			while (ret_vseq_hole(&g->purged, y, hb, &qa, &qb)) {
				report_hole(c, ad, name, qa, qb, &h);
				if (qb >= hb)
					break;
				y = qb + 1;
			}
			if (hb >= hi)
				break;
			x = hb + 1;
		}
		if (h.more_fail)
			ret_vrep_fail(&c->rep, NULL, NULL, "source %s: %" PRId64 " more seq ranges "
				      "(%" PRId64 " seqs) not in any bundle or tombstone of %s", name,
				      h.more_ranges, h.more_seqs, ad->name);
		else if (h.more_ranges)
			ret_vrep_note(&c->rep, "source %s: %" PRId64 " more seq ranges (%" PRId64
				      " seqs) not in any bundle given of %s", name, h.more_ranges,
				      h.more_seqs, ad->name);
	}
	free(servers);
	return 0;
}

int ret_vchain_check(struct ret_vctx *c, struct ret_vadapter *ad)
{
	struct ret_vitem **kept;
	size_t nk = 0;
	int rc = 0;

	if (ad->nitems)
		qsort(ad->items, ad->nitems, sizeof(*ad->items), cmp_item);
	kept = malloc((ad->nitems ? ad->nitems : 1) * sizeof(*kept));
	if (!kept)
		return -ENOMEM;
	for (size_t i = 0; i < ad->nitems; i++) {
		if (nk && kept[nk - 1]->batch_no == ad->items[i]->batch_no)
			same_batch(c, ad, kept[nk - 1], ad->items[i]);
		else
			kept[nk++] = ad->items[i];
	}
	for (size_t i = 0; i < nk && !rc; i++) {
		if (kept[i]->kind == RET_VK_TOMB)
			rc = tombstone_link(c, ad, kept[i]);
		if (i == 0)
			first_link(c, ad, kept[i]);
		else
			next_link(c, ad, kept[i - 1], kept[i]);
	}
	free(kept);
	return rc ? rc : seq_holes(c, ad);
}

/* --- exports ------------------------------------------------------------------------ */

int ret_vchain_export_cross(struct ret_vctx *c, const char *path, const struct ret_vexport *x)
{
	struct ret_vrep *rep = &c->rep;
	int64_t absent = 0;

	for (size_t i = 0; i < x->nsrc; i++) {
		const struct ret_vsrc_bundle *s = &x->src[i];
		void **slot = ret_vmap_slot(&c->adapters, s->adapter, false);
		const struct ret_vadapter *ad = slot ? *slot : NULL;
		const struct ret_vitem *it = NULL;
		char hex[CV_SHA256_HEX];
		int rc;

		for (size_t k = 0; ad && k < ad->nitems; k++)
			if (ad->items[k]->batch_no == s->batch_no &&
			    (!it || (it->kind == RET_VK_TOMB && ad->items[k]->kind == RET_VK_BUNDLE)))
				it = ad->items[k];
		if (!it) {
			absent++;
			continue;
		}
		if (it->kind == RET_VK_TOMB) {
			if (strcmp(it->manifest_sha256, s->manifest_sha256) != 0 ||
			    strcmp(it->tomb->bundle_sha256, s->sha256) != 0 ||
			    strcmp(it->tomb->bundle, s->name) != 0)
				ret_vrep_fail(rep, path, "manifest.json", "source bundle %s (%s batch %"
					      PRId64 ") is not the bundle tombstone %s describes",
					      s->name, s->adapter, s->batch_no, it->path);
			continue;
		}
		if (strcmp(ret_vbase(it->path), s->name) != 0 ||
		    strcmp(it->manifest_sha256, s->manifest_sha256) != 0) {
			ret_vrep_fail(rep, path, "manifest.json", "source bundle %s (%s batch %" PRId64
				      "): name or manifest_sha256 differs from %s", s->name,
				      s->adapter, s->batch_no, it->path);
			continue;
		}
		rc = cv_sha256_file(it->path, hex, NULL);
		if (rc == -ENOMEM)
			return rc;
		if (rc)
			ret_vrep_error(rep, it->path, "%s", strerror(-rc));
		else if (strcmp(hex, s->sha256) != 0)
			ret_vrep_fail(rep, path, "manifest.json", "source bundle %s: sha256 differs "
				      "from the file %s", s->name, it->path);
	}
	if (absent)
		ret_vrep_note(rep, "%s: %" PRId64 " of %zu source bundles not among the paths "
			      "given, not compared", path, absent, x->nsrc);
	return 0;
}

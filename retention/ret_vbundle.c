/*
 * ret_vbundle — one archive bundle for `chatvault verify`: a single
 * streaming pass through adapters/bundle.c's verifier, whose hooks hand us
 * every events.jsonl line and the manifest; see ret_vint.h.
 *
 * Each line is parsed with ingest/event.c's strict parser (a line that is
 * not a valid event is a failure), its id kept (16 bytes) and its
 * source.seq added to a per-bundle interval set per server.  Once the
 * manifest says which adapter the bundle belongs to, the ids and seqs go
 * into that adapter's sets, where a second copy of an id or a seq is a
 * doubled event; what only the content can show is checked too: the
 * manifest's sources and min/max ts against the events, and the staging
 * ids the manifest leaves out (a note: quarantined at delivery).
 *
 * A bundle that fails its own checks still gives its chain link (when its
 * manifest could be read) and its events, so that one flipped byte is one
 * finding, not a cascade of gaps after it; one too damaged to show a
 * manifest becomes a placeholder the chain walk does not judge across.
 * Memory: 16 bytes per event of the bundle being read, nothing more.
 */
#include "ret_vint.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bundle.h"
#include "cv_time.h"
#include "event.h"

#define REPORT_RANGES 5      /* ranges listed in one finding before "... N more" */

/* One server's events within the bundle being read. */
struct vbsrc {
	char *name;
	struct ret_vseq seqs;
	int64_t count, lo, hi;
};

/* The bundle being read. */
struct vbundle {
	struct ret_vctx *c;
	const char *path;
	struct ret_lines lines;
	uint8_t (*ids)[RET_VIDS_LEN];
	size_t nids, capids;
	struct ret_vmap servers;         /* -> struct vbsrc */
	struct vbsrc *last_src;          /* cache: the previous line's server */
	int64_t min_ms, max_ms;          /* of the valid events */
	bool have_ts;
	int64_t bad_lines, first_bad_line;
	char first_bad[ING_EVENT_ERRLEN];
	int64_t dup_seqs, dup_line, dup_seq;
	char dup_server[64];
	json_t *man;
	char man_sha[CV_SHA256_HEX];
};

/* "<adapter>-<16 digits>-<16 digits>.tar.zst": what the archive writes. */
bool ret_vbundle_name(const char *base, char adapter[65], int64_t *first, int64_t *last)
{
	size_t n = strlen(base), tail = 1 + 16 + 1 + 16 + 8;
	const char *p;

	if (n <= tail || n - tail > 64 || strcmp(base + n - 8, ".tar.zst") != 0)
		return false;
	p = base + n - tail;
	if (p[0] != '-' || p[17] != '-')
		return false;
	for (int i = 0; i < 16; i++)
		if (p[1 + i] < '0' || p[1 + i] > '9' || p[18 + i] < '0' || p[18 + i] > '9')
			return false;
	*first = strtoll(p + 1, NULL, 10);
	*last = strtoll(p + 18, NULL, 10);
	memcpy(adapter, base, n - tail);
	adapter[n - tail] = '\0';
	return true;
}

static void uuid_text(const uint8_t id[RET_VIDS_LEN], char out[37])
{
	static const char hex[] = "0123456789abcdef";
	size_t k = 0;

	for (int i = 0; i < RET_VIDS_LEN; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[k++] = '-';
		out[k++] = hex[id[i] >> 4];
		out[k++] = hex[id[i] & 15];
	}
	out[k] = '\0';
}

static int cmp_src(const void *x, const void *y)
{
	return strcmp(((const struct ret_vsrange *)x)->server,
		      ((const struct ret_vsrange *)y)->server);
}

/* --- bundles --------------------------------------------------------------------- */

static int bundle_line(void *arg, const char *line, size_t len, int64_t lineno)
{
	struct vbundle *b = arg;
	struct ing_event ev;
	char why[ING_EVENT_ERRLEN];
	struct vbsrc *s;
	int rc;

	if (!line) {
		if (!b->bad_lines++) {
			b->first_bad_line = lineno;
			snprintf(b->first_bad, sizeof(b->first_bad), "longer than %d bytes",
				 RET_LINE_MAX);
		}
		return 0;
	}
	rc = ing_event_parse(line, len, RET_LINE_MAX, 0, &ev, why, sizeof(why));
	if (rc == -ENOMEM)
		return rc;
	if (rc) {
		if (!b->bad_lines++) {
			b->first_bad_line = lineno;
			snprintf(b->first_bad, sizeof(b->first_bad), "%s", why);
		}
		return 0;
	}
	if (b->nids == b->capids) {
		size_t cap = b->capids ? b->capids * 2 : 1024;
		void *v = cap > SIZE_MAX / RET_VIDS_LEN ? NULL :
			  realloc(b->ids, cap * RET_VIDS_LEN);

		if (!v)
			goto nomem;
		b->ids = v;
		b->capids = cap;
	}
	/* Parsed strictly, so the id is a canonical UUID. */
	if (ret_vids_parse_uuid(ev.id, strlen(ev.id), b->ids[b->nids]) == 0)
		b->nids++;
	if (!b->have_ts || ev.ts_ms < b->min_ms)
		b->min_ms = ev.ts_ms;
	if (!b->have_ts || ev.ts_ms > b->max_ms)
		b->max_ms = ev.ts_ms;
	b->have_ts = true;
	if (b->last_src && strcmp(b->last_src->name, ev.source_server) == 0) {
		s = b->last_src;
	} else {
		void **slot = ret_vmap_slot(&b->servers, ev.source_server, true);

		if (!slot)
			goto nomem;
		if (!*slot) {
			s = calloc(1, sizeof(*s));
			if (!s || !(s->name = strdup(ev.source_server))) {
				free(s);
				goto nomem;
			}
			*slot = s;
		}
		s = *slot;
		b->last_src = s;
	}
	rc = ret_vseq_add(&s->seqs, ev.source_seq, ev.source_seq);
	if (rc < 0)
		goto nomem;
	if (rc == 1 && !b->dup_seqs++) {
		b->dup_line = lineno;
		b->dup_seq = ev.source_seq;
		snprintf(b->dup_server, sizeof(b->dup_server), "%s", ev.source_server);
	}
	if (!s->count || ev.source_seq < s->lo)
		s->lo = ev.source_seq;
	if (!s->count || ev.source_seq > s->hi)
		s->hi = ev.source_seq;
	s->count++;
	ing_event_clear(&ev);
	return 0;
nomem:
	ing_event_clear(&ev);
	return -ENOMEM;
}

static int bundle_events(void *arg, const void *data, size_t len)
{
	struct vbundle *b = arg;

	return ret_lines_feed(&b->lines, data, len);
}

static int bundle_manifest(void *arg, const char *data, size_t len, const char *sha256)
{
	struct vbundle *b = arg;
	json_error_t jerr;

	/* Invalid JSON is bundle.c's finding; we just have no links then. */
	b->man = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	snprintf(b->man_sha, sizeof(b->man_sha), "%s", sha256);
	return 0;
}

/* The chain link a manifest describes; NULL (and *oom false) if unusable. */
static struct ret_vitem *item_from_manifest(json_t *m, const char *path, const char *sha,
					    bool damaged, bool *oom)
{
	json_t *jb = json_object_get(m, "batch_no"), *jf = json_object_get(m, "first_staging_id");
	json_t *jl = json_object_get(m, "last_staging_id"), *src = json_object_get(m, "sources");
	const char *fmt = json_string_value(json_object_get(m, "format"));
	const char *ad = json_string_value(json_object_get(m, "adapter"));
	const char *prev = json_string_value(json_object_get(m, "prev_manifest_sha256"));
	struct ret_vitem *it;
	const char *key;
	json_t *v;

	*oom = false;
	if (!fmt || strcmp(fmt, ADP_BUNDLE_FORMAT) != 0 || !ad || !*ad || strlen(ad) > 64 ||
	    strchr(ad, '/') || !json_is_integer(jb) || !json_is_integer(jf) ||
	    !json_is_integer(jl) || json_integer_value(jb) < 1 ||
	    json_integer_value(jf) > json_integer_value(jl) || !prev ||
	    (*prev && !cv_is_sha256_hex(prev)))
		return NULL;
	it = calloc(1, sizeof(*it));
	if (!it)
		goto nomem;
	it->kind = RET_VK_BUNDLE;
	it->damaged = damaged;
	it->path = path;
	snprintf(it->adapter, sizeof(it->adapter), "%s", ad);
	it->batch_no = (int64_t)json_integer_value(jb);
	it->first = (int64_t)json_integer_value(jf);
	it->last = (int64_t)json_integer_value(jl);
	snprintf(it->manifest_sha256, sizeof(it->manifest_sha256), "%s", sha);
	snprintf(it->prev, sizeof(it->prev), "%s", prev);
	if (json_is_object(src) && json_object_size(src)) {
		it->src = calloc(json_object_size(src), sizeof(*it->src));
		if (!it->src)
			goto nomem;
		json_object_foreach(src, key, v) {
			json_t *a = json_object_get(v, "first_seq");
			json_t *b = json_object_get(v, "last_seq");
			struct ret_vsrange *s = &it->src[it->nsrc];

			if (!json_is_integer(a) || !json_is_integer(b))
				continue;
			s->server = strdup(key);
			if (!s->server)
				goto nomem;
			s->lo = (int64_t)json_integer_value(a);
			s->hi = (int64_t)json_integer_value(b);
			it->nsrc++;
		}
		qsort(it->src, it->nsrc, sizeof(*it->src), cmp_src);
	}
	return it;
nomem:
	ret_vitem_free(it);
	*oom = true;
	return NULL;
}

/* What only a reader of the content can check; the bundle passed bundle.c. */
static int content_checks(struct vbundle *b, struct ret_vadapter *ad)
{
	struct ret_vrep *rep = &b->c->rep;
	json_t *src = json_object_get(b->man, "sources"), *ranges, *v;
	const char *key;
	char ts[CV_TIME_BUFSZ];
	int64_t excluded = 0, prev_b = 0, nlisted = 0;
	char listed[REPORT_RANGES * (RET_VRANGE_LEN + 2)] = "", r1[RET_VRANGE_LEN];
	size_t i;

	if (b->bad_lines) {
		ret_vrep_fail(rep, b->path, "events.jsonl", "line %" PRId64 ": not a valid event: "
			      "%s%s", b->first_bad_line, b->first_bad,
			      b->bad_lines > 1 ? " (and more lines)" : "");
		return 0;
	}
	if (b->dup_seqs)
		ret_vrep_fail(rep, b->path, "events.jsonl", "line %" PRId64 ": source %s seq %"
			      PRId64 " repeated in this bundle (%" PRId64 " repeats)",
			      b->dup_line, b->dup_server, b->dup_seq, b->dup_seqs);
	/* sources: exactly the servers of the events, with their ranges. */
	if (!json_is_object(src) || json_object_size(src) != b->servers.n) {
		ret_vrep_fail(rep, b->path, "manifest.json", "sources lists %zu servers, "
			      "events.jsonl has %zu", json_is_object(src) ?
			      json_object_size(src) : 0, b->servers.n);
	} else {
		json_object_foreach(src, key, v) {
			void **slot = ret_vmap_slot(&b->servers, key, false);
			const struct vbsrc *s = slot ? *slot : NULL;
			json_t *jf = json_object_get(v, "first_seq");
			json_t *jl = json_object_get(v, "last_seq");
			json_t *jc = json_object_get(v, "count");

			if (!s || !json_is_integer(jf) || !json_is_integer(jl) ||
			    !json_is_integer(jc) ||
			    json_integer_value(jf) != s->lo || json_integer_value(jl) != s->hi ||
			    json_integer_value(jc) != s->count) {
				ret_vrep_fail(rep, b->path, "manifest.json", "sources.%.64s does not "
					      "match the events (they hold %" PRId64 " seqs %" PRId64
					      "..%" PRId64 ")", key, s ? s->count : 0, s ? s->lo : 0,
					      s ? s->hi : 0);
				break;
			}
		}
	}
	if (b->have_ts) {
		const char *mn = json_string_value(json_object_get(b->man, "min_ts"));
		const char *mx = json_string_value(json_object_get(b->man, "max_ts"));

		if (cv_time_format_ms(b->min_ms, ts) != 0 || !mn || strcmp(mn, ts) != 0)
			ret_vrep_fail(rep, b->path, "manifest.json", "min_ts %s, but the earliest "
				      "event is at %s", mn ? mn : "missing", ts);
		if (cv_time_format_ms(b->max_ms, ts) != 0 || !mx || strcmp(mx, ts) != 0)
			ret_vrep_fail(rep, b->path, "manifest.json", "max_ts %s, but the latest "
				      "event is at %s", mx ? mx : "missing", ts);
	}
	/* Holes between staging_ids ranges: events quarantined for this
	 * adapter at delivery (bundle.c checked the ranges' order). */
	ranges = json_object_get(b->man, "staging_ids");
	json_array_foreach(ranges, i, v) {
		int64_t a = (int64_t)json_integer_value(json_array_get(v, 0));
		int64_t e = (int64_t)json_integer_value(json_array_get(v, 1));

		if (i > 0 && a > prev_b + 1) {
			size_t n = strlen(listed);

			if (nlisted++ < REPORT_RANGES)
				snprintf(listed + n, sizeof(listed) - n, "%s%s", n ? ", " : "",
					 ret_vrange(r1, prev_b + 1, a - 1));
			excluded += a - prev_b - 1;
		}
		prev_b = e;
	}
	if (excluded) {
		ad->excluded += excluded;
		ret_vrep_note(rep, "%s: staging ids %s%s excluded at delivery (quarantined for "
			      "this adapter: %" PRId64 " event%s)", b->path, listed,
			      nlisted > REPORT_RANGES ? ", ..." : "", excluded,
			      excluded == 1 ? "" : "s");
	}
	return 0;
}

/* Ids and seqs of the bundle into its adapter's sets. */
static int merge_sets(struct vbundle *b, struct ret_vadapter *ad, uint32_t owner,
		      const struct ret_vitem *it)
{
	struct ret_vctx *c = b->c;
	struct ret_vrep *rep = &c->rep;
	struct ret_vmap_ent **servers;
	int64_t self = 0, cross = 0;
	uint32_t first_holder = 0;
	uint8_t first_self[RET_VIDS_LEN], first_cross[RET_VIDS_LEN];
	char u[37];
	int rc = 0;

	for (size_t i = 0; i < b->nids; i++) {
		uint32_t holder = 0;

		rc = ret_vids_add(&ad->ids, b->ids[i], owner, &holder);
		if (rc < 0)
			return rc;
		if (rc == 1 && holder == owner && !self++)
			memcpy(first_self, b->ids[i], RET_VIDS_LEN);
		if (rc == 1 && holder != owner && !cross++) {
			memcpy(first_cross, b->ids[i], RET_VIDS_LEN);
			first_holder = holder;
		}
	}
	if (self) {
		uuid_text(first_self, u);
		ret_vrep_fail(rep, b->path, "events.jsonl", "%" PRId64 " event ids appear more "
			      "than once in this bundle (first %s)", self, u);
	}
	if (cross) {
		uuid_text(first_cross, u);
		ret_vrep_fail(rep, b->path, "events.jsonl", "%" PRId64 " event ids already "
			      "archived by %s (first %s): doubled events", cross,
			      c->f[first_holder - 1].path, u);
	}

	servers = ret_vmap_sorted(&b->servers);
	if (!servers)
		return -ENOMEM;
	for (size_t k = 0; k < b->servers.n; k++) {
		const struct vbsrc *s = servers[k]->val;
		void **slot = ret_vmap_slot(&ad->servers, servers[k]->key, true);
		struct ret_vserver *g;
		int64_t reported = 0;

		if (!slot || (!*slot && !(*slot = calloc(1, sizeof(struct ret_vserver))))) {
			rc = -ENOMEM;
			break;
		}
		g = *slot;
		for (size_t i = 0; i < s->seqs.n; i++) {
			int64_t a = s->seqs.iv[i].a, e = s->seqs.iv[i].b, oa, ob;

			while (ret_vseq_overlap(&g->seen, a, e, &oa, &ob)) {
				const struct ret_vitem *o = reported < REPORT_RANGES ?
					ret_vchain_seq_owner(ad, servers[k]->key, oa, it) : NULL;

				char r1[RET_VRANGE_LEN];

				if (reported++ < REPORT_RANGES)
					ret_vrep_fail(rep, b->path, "events.jsonl", "source %s: seq %s "
						      "already in %s: doubled events", servers[k]->key,
						      ret_vrange(r1, oa, ob),
						      o ? o->path : "another bundle");
				if (ob == INT64_MAX || ob >= e)
					break;
				a = ob + 1;
			}
			if ((rc = ret_vseq_add(&g->seen, s->seqs.iv[i].a, e)) < 0)
				break;
			rc = 0;
		}
		if (rc)
			break;
		if (reported > REPORT_RANGES)
			ret_vrep_fail(rep, b->path, "events.jsonl", "source %s: %" PRId64 " more "
				      "seq ranges already archived", servers[k]->key,
				      reported - REPORT_RANGES);
	}
	free(servers);
	return rc;
}

static void free_bsrc(void *p)
{
	struct vbsrc *s = p;

	if (!s)
		return;
	ret_vseq_free(&s->seqs);
	free(s->name);
	free(s);
}

int ret_vbundle_check(struct ret_vctx *c, size_t idx)
{
	struct ret_vrep *rep = &c->rep;
	const char *path = c->f[idx].path;
	struct vbundle b = { .c = c, .path = path };
	struct adp_bundle_hooks hooks = { bundle_events, bundle_manifest, &b };
	struct ret_vitem *it = NULL;
	struct ret_vadapter *ad = NULL;
	char err[1024], name_ad[65];
	int64_t name_first, name_last;
	bool named, oom = false;
	int rc;

	b.lines.fn = bundle_line;
	b.lines.arg = &b;
	rc = adp_bundle_verify_ex(path, &hooks, NULL, err, sizeof(err));
	if (rc == -ENOMEM)
		goto out;
	c->rep.res->bundles++;
	c->rep.res->events += b.lines.lineno;
	if (rc)
		ret_vrep_reader(rep, path, rc, err);
	if (b.man)
		it = item_from_manifest(b.man, path, b.man_sha, rc != 0, &oom);
	if (oom) {
		rc = -ENOMEM;
		goto out;
	}
	if (rc == 0 && !it)
		ret_vrep_fail(rep, path, "manifest.json", "not a chain link: batch_no must be "
			      ">= 1 and adapter a plain name");
	named = ret_vbundle_name(ret_vbase(path), name_ad, &name_first, &name_last);
	if (it || named)
		ad = ret_vctx_adapter(c, it ? it->adapter : name_ad);
	if ((it || named) && !ad) {
		rc = -ENOMEM;
		goto out;
	}
	if (rc == 0 && it && (rc = content_checks(&b, ad)) != 0)
		goto out;
	rc = 0;
	if (ad && (rc = merge_sets(&b, ad, (uint32_t)idx + 1, it)) != 0)
		goto out;
	if (it) {
		rc = ret_vctx_add_item(c, it);
		it = NULL;
	} else if (named) {
		rc = ret_vctx_add_place(ad, path, name_first, name_last);
	}
out:
	ret_vitem_free(it);
	json_decref(b.man);
	ret_lines_free(&b.lines);
	ret_vmap_free(&b.servers, free_bsrc);
	free(b.ids);
	return rc == -ENOMEM ? rc : 0;
}

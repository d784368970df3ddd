/*
 * ret_verify — `chatvault verify`: find the files, read each one once, and
 * build the model that ret_vchain.c judges; see ret_verify.h.
 *
 * Order of work: collect every file under the PATHs (a directory is walked
 * without following symbolic links), sort them by base name so that each
 * adapter's bundles come in staging order (the same file reached twice is
 * read once), then read each:
 *   bundle     ret_vbundle.c (one streaming pass, every event line);
 *   tombstone  parsed strictly (ret_vtomb.c);
 *   other      a file not named like a bundle is an export package when
 *              its first telling member says so (README.txt, events.csv,
 *              xml/, eml/), checked by ret_vexport.c; else a bundle;
 * and finally, per adapter, the chain walk and the seq holes (ret_vchain.c),
 * and each export's source bundles against the bundles read.
 *
 * The model (struct ret_vctx in ret_vint.h) lives here: adapters, chain
 * items, files; everything is freed before ret_verify_run() returns.
 */
#include "ret_vint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"

#define WALK_DEPTH_MAX 64

enum vfkind {
	VF_BUNDLE,               /* named like a bundle */
	VF_TOMB,                 /* *.tombstone.json */
	VF_PEEK,                 /* anything else given: look at the content */
};

struct vexp {
	const char *path;
	struct ret_vexport x;
};

struct vrun {
	struct ret_vctx c;
	struct vexp *exp;
	size_t nexp, capexp;
};

/* --- helpers ------------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void free_server(void *p)
{
	struct ret_vserver *s = p;

	if (!s)
		return;
	ret_vseq_free(&s->seen);
	ret_vseq_free(&s->purged);
	free(s);
}

static void free_adapter(void *p)
{
	struct ret_vadapter *ad = p;

	if (!ad)
		return;
	ret_vids_free(&ad->ids);
	ret_vmap_free(&ad->servers, free_server);
	free(ad->items);
	free(ad->places);
	free(ad);
}

void ret_vitem_free(struct ret_vitem *it)
{
	if (!it)
		return;
	for (size_t i = 0; i < it->nsrc; i++)
		free(it->src[i].server);
	free(it->src);
	if (it->tomb) {
		ret_verify_tomb_free(it->tomb);
		free(it->tomb);
	}
	free(it);
}

struct ret_vadapter *ret_vctx_adapter(struct ret_vctx *c, const char *name)
{
	void **slot = ret_vmap_slot(&c->adapters, name, true);
	struct ret_vadapter *ad;

	if (!slot)
		return NULL;
	if (*slot)
		return *slot;
	ad = calloc(1, sizeof(*ad));
	if (!ad)
		return NULL;
	snprintf(ad->name, sizeof(ad->name), "%s", name);
	*slot = ad;
	return ad;
}

int ret_vctx_add_item(struct ret_vctx *c, struct ret_vitem *it)
{
	struct ret_vadapter *ad = ret_vctx_adapter(c, it->adapter);

	if (!ad || c->nitems == SIZE_MAX / sizeof(it) / 2)
		goto nomem;
	if (c->nitems == c->capitems) {
		size_t cap = c->capitems ? c->capitems * 2 : 64;
		struct ret_vitem **v = realloc(c->items, cap * sizeof(*v));

		if (!v)
			goto nomem;
		c->items = v;
		c->capitems = cap;
	}
	if (ad->nitems == ad->capitems) {
		size_t cap = ad->capitems ? ad->capitems * 2 : 64;
		struct ret_vitem **v = realloc(ad->items, cap * sizeof(*v));

		if (!v)
			goto nomem;
		ad->items = v;
		ad->capitems = cap;
	}
	c->items[c->nitems++] = it;
	ad->items[ad->nitems++] = it;
	return 0;
nomem:
	ret_vitem_free(it);
	return -ENOMEM;
}

int ret_vctx_add_place(struct ret_vadapter *ad, const char *path, int64_t first, int64_t last)
{
	if (ad->nplaces == ad->capplaces) {
		size_t cap = ad->capplaces ? ad->capplaces * 2 : 8;
		struct ret_vplace *v;

		if (cap > SIZE_MAX / sizeof(*v))
			return -ENOMEM;
		v = realloc(ad->places, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		ad->places = v;
		ad->capplaces = cap;
	}
	ad->places[ad->nplaces++] = (struct ret_vplace){ path, first, last };
	return 0;
}

/* --- collecting files ---------------------------------------------------------- */

static int add_file(struct vrun *r, const char *path, enum vfkind kind, const struct stat *st)
{
	struct ret_vfile *f;

	/* Owners in the id set are file numbers (uint32, 0 reserved). */
	if (r->c.nf >= UINT32_MAX - 1)
		return -ENOMEM;
	if (r->c.nf == r->c.capf) {
		size_t cap = r->c.capf ? r->c.capf * 2 : 256;

		if (cap > SIZE_MAX / sizeof(*f))
			return -ENOMEM;
		f = realloc(r->c.f, cap * sizeof(*f));
		if (!f)
			return -ENOMEM;
		r->c.f = f;
		r->c.capf = cap;
	}
	f = &r->c.f[r->c.nf];
	f->path = strdup(path);
	if (!f->path)
		return -ENOMEM;
	f->kind = kind;
	f->dev = st->st_dev;
	f->ino = st->st_ino;
	r->c.nf++;
	return 0;
}

static enum vfkind kind_of(const char *path)
{
	char adapter[65];
	int64_t a, b;

	if (ends_with(path, ".tombstone.json"))
		return VF_TOMB;
	if (ret_vbundle_name(ret_vbase(path), adapter, &a, &b))
		return VF_BUNDLE;
	return VF_PEEK;
}

static int walk(struct vrun *r, const char *dir, int depth)
{
	struct ret_vrep *rep = &r->c.rep;
	DIR *d;
	struct dirent *de;
	int rc = 0;

	if (depth > WALK_DEPTH_MAX) {
		ret_vrep_error(rep, dir, "directories nested deeper than %d", WALK_DEPTH_MAX);
		return 0;
	}
	d = opendir(dir);
	if (!d) {
		ret_vrep_error(rep, dir, "%s", strerror(errno));
		return 0;
	}
	for (;;) {
		char path[PATH_MAX];
		struct stat st;

		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				ret_vrep_error(rep, dir, "%s", strerror(errno));
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (snprintf(path, sizeof(path), "%s%s%s", dir, ends_with(dir, "/") ? "" : "/",
			     de->d_name) >= (int)sizeof(path)) {
			ret_vrep_error(rep, dir, "entry %.64s...: path too long", de->d_name);
			continue;
		}
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			ret_vrep_error(rep, path, "%s", strerror(errno));
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			rc = walk(r, path, depth + 1);
		} else if (S_ISLNK(st.st_mode)) {
			ret_vrep_note(rep, "%s: symbolic link, not followed", path);
		} else if (!S_ISREG(st.st_mode)) {
			ret_vrep_note(rep, "%s: not a regular file, ignored", path);
		} else if (ends_with(de->d_name, ".tar.zst") ||
			   ends_with(de->d_name, ".tombstone.json")) {
			rc = add_file(r, path, kind_of(path), &st);
		} else {
			ret_vrep_note(rep, "%s: not a bundle or tombstone, ignored%s", path,
				      ends_with(de->d_name, ".tmp") ?
				      " (left by an interrupted write)" : "");
		}
		if (rc)
			break;
	}
	closedir(d);
	return rc;
}

static int collect(struct vrun *r, const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		ret_vrep_error(&r->c.rep, path, "%s", strerror(errno));
		return 0;
	}
	if (S_ISDIR(st.st_mode))
		return walk(r, path, 0);
	if (!S_ISREG(st.st_mode)) {
		ret_vrep_error(&r->c.rep, path, "not a regular file or directory");
		return 0;
	}
	return add_file(r, path, kind_of(path), &st);
}

static int cmp_file(const void *x, const void *y)
{
	const struct ret_vfile *a = x, *b = y;
	int c = strcmp(ret_vbase(a->path), ret_vbase(b->path));

	return c ? c : strcmp(a->path, b->path);
}

static int cmp_inode(const void *x, const void *y)
{
	const struct ret_vfile *a = *(const struct ret_vfile *const *)x;
	const struct ret_vfile *b = *(const struct ret_vfile *const *)y;

	if (a->dev != b->dev)
		return a->dev < b->dev ? -1 : 1;
	if (a->ino != b->ino)
		return a->ino < b->ino ? -1 : 1;
	return a < b ? -1 : a > b;
}

/* The same file reached twice (a PATH inside another, a hard link) is
 * read once: drop every later copy, keeping the sorted order. */
static int drop_same_files(struct vrun *r)
{
	struct ret_vfile **by = malloc((r->c.nf ? r->c.nf : 1) * sizeof(*by));
	size_t k = 0;

	if (!by)
		return -ENOMEM;
	for (size_t i = 0; i < r->c.nf; i++)
		by[i] = &r->c.f[i];
	qsort(by, r->c.nf, sizeof(*by), cmp_inode);
	for (size_t i = 1, keep = 0; i < r->c.nf; i++) {
		if (by[i]->dev != by[keep]->dev || by[i]->ino != by[keep]->ino) {
			keep = i;
			continue;
		}
		ret_vrep_note(&r->c.rep, "%s: same file as %s, read once", by[i]->path,
			      by[keep]->path);
		free(by[i]->path);
		by[i]->path = NULL;
	}
	free(by);
	for (size_t i = 0; i < r->c.nf; i++)
		if (r->c.f[i].path)
			r->c.f[k++] = r->c.f[i];
	r->c.nf = k;
	return 0;
}

/* --- tombstones and exports ---------------------------------------------------- */

static int read_small(const char *path, struct cv_buf *out, struct ret_vrep *rep)
{
	char buf[64 * 1024];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		ret_vrep_error(rep, path, "%s", strerror(errno));
		return 1;
	}
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret_vrep_error(rep, path, "%s", strerror(errno));
			close(fd);
			return 1;
		}
		if (n == 0)
			break;
		if (out->len + (size_t)n > RET_VJSON_MAX) {
			ret_vrep_fail(rep, path, NULL, "larger than %d bytes: not a tombstone",
				      RET_VJSON_MAX);
			close(fd);
			return 1;
		}
		if (cv_buf_append(out, buf, (size_t)n) != 0) {
			close(fd);
			return -ENOMEM;
		}
	}
	close(fd);
	return 0;
}

static int check_tomb(struct vrun *r, size_t idx)
{
	struct ret_vrep *rep = &r->c.rep;
	const char *path = r->c.f[idx].path;
	struct cv_buf text = { 0 };
	struct ret_verify_tomb *t = NULL;
	struct ret_vitem *it = NULL;
	char err[512];
	int rc;

	rc = read_small(path, &text, rep);
	if (rc)
		goto out;
	t = calloc(1, sizeof(*t));
	if (!t) {
		rc = -ENOMEM;
		goto out;
	}
	rc = ret_verify_tomb_parse(text.data ? text.data : "", text.len, ret_vbase(path), t,
				   err, sizeof(err));
	if (rc == -EBADMSG) {
		ret_vrep_fail(rep, path, NULL, "malformed tombstone: %s", err);
		rc = 0;
		goto out;
	}
	if (rc)
		goto out;
	it = calloc(1, sizeof(*it));
	if (!it || (t->nsources && !(it->src = calloc(t->nsources, sizeof(*it->src))))) {
		rc = -ENOMEM;
		goto out;
	}
	it->kind = RET_VK_TOMB;
	it->path = path;
	snprintf(it->adapter, sizeof(it->adapter), "%s", t->adapter);
	it->batch_no = t->batch_no;
	it->first = t->first_staging_id;
	it->last = t->last_staging_id;
	snprintf(it->manifest_sha256, sizeof(it->manifest_sha256), "%s", t->manifest_sha256);
	snprintf(it->prev, sizeof(it->prev), "%s", t->prev_manifest_sha256);
	for (size_t i = 0; i < t->nsources; i++) {
		it->src[i].server = strdup(t->sources[i].server);
		if (!it->src[i].server) {
			rc = -ENOMEM;
			goto out;
		}
		it->src[i].lo = t->sources[i].r[0].a;
		it->src[i].hi = t->sources[i].r[t->sources[i].n - 1].b;
		it->nsrc++;
	}
	it->tomb = t;
	t = NULL;
	rc = ret_vctx_add_item(&r->c, it);
	it = NULL;
out:
	ret_vitem_free(it);
	if (t) {
		ret_verify_tomb_free(t);
		free(t);
	}
	cv_buf_free(&text);
	return rc == -ENOMEM ? rc : 0;
}

enum { PEEK_BUNDLE = 1, PEEK_EXPORT = 2 };

/* The first member only one of the two kinds has decides. */
static int peek_cb(void *arg, const struct adp_bundle_chunk *c)
{
	int *kind = arg;

	if (strcmp(c->name, "README.txt") == 0 || strcmp(c->name, "events.csv") == 0 ||
	    strncmp(c->name, "xml/", 4) == 0 || strncmp(c->name, "eml/", 4) == 0)
		*kind = PEEK_EXPORT;
	else if (strcmp(c->name, "events.jsonl") == 0)
		*kind = PEEK_BUNDLE;
	return *kind ? 1 : 0;
}

static int check_other(struct vrun *r, size_t idx)
{
	const char *path = r->c.f[idx].path;
	char err[512];
	struct vexp *e;
	int kind = 0, rc;

	/* Not named like a bundle: an export has README.txt (first), a
	 * bundle events.jsonl; anything undecided is judged as a bundle,
	 * which also reports what is wrong with a stranger. */
	if (adp_bundle_read(path, peek_cb, &kind, err, sizeof(err)) != 1 ||
	    kind != PEEK_EXPORT)
		return ret_vbundle_check(&r->c, idx);
	if (r->nexp == r->capexp) {
		size_t cap = r->capexp ? r->capexp * 2 : 4;

		e = cap > SIZE_MAX / sizeof(*e) ? NULL : realloc(r->exp, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		r->exp = e;
		r->capexp = cap;
	}
	e = &r->exp[r->nexp++];
	*e = (struct vexp){ .path = path };
	r->c.rep.res->exports++;
	rc = ret_vexport_check(&r->c.rep, path, &e->x);
	r->c.rep.res->events += e->x.events;
	return rc;
}

/* --- the run ------------------------------------------------------------------- */

int ret_verify_run(char *const *paths, size_t npaths, const struct ret_verify_opts *opts,
		   struct ret_verify_result *res)
{
	struct vrun r = { 0 };
	struct ret_vmap_ent **ads = NULL;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	r.c.rep = (struct ret_vrep){ .out = opts && opts->out ? opts->out : stdout,
				     .quiet = opts && opts->quiet, .res = res };
	for (size_t i = 0; i < npaths && !rc; i++) {
		size_t before = r.c.nf, errors = (size_t)res->unreadable;

		rc = collect(&r, paths[i]);
		/* An empty directory proves nothing: not "OK". */
		if (!rc && r.c.nf == before && (size_t)res->unreadable == errors)
			ret_vrep_error(&r.c.rep, paths[i], "no bundle, tombstone or export "
				       "package found");
	}
	if (rc)
		goto out;
	if (r.c.nf)
		qsort(r.c.f, r.c.nf, sizeof(*r.c.f), cmp_file);
	if ((rc = drop_same_files(&r)) != 0)
		goto out;
	for (size_t i = 0; i < r.c.nf && !rc; i++) {
		switch (r.c.f[i].kind) {
		case VF_BUNDLE: rc = ret_vbundle_check(&r.c, i); break;
		case VF_TOMB: rc = check_tomb(&r, i); break;
		case VF_PEEK: rc = check_other(&r, i); break;
		}
	}
	if (rc)
		goto out;
	ads = ret_vmap_sorted(&r.c.adapters);
	if (!ads) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < r.c.adapters.n && !rc; i++)
		rc = ret_vchain_check(&r.c, ads[i]->val);
	for (size_t i = 0; i < r.nexp && !rc; i++)
		rc = ret_vchain_export_cross(&r.c, r.exp[i].path, &r.exp[i].x);
out:
	fflush(r.c.rep.out);
	free(ads);
	for (size_t i = 0; i < r.nexp; i++)
		ret_vexport_free(&r.exp[i].x);
	free(r.exp);
	for (size_t i = 0; i < r.c.nitems; i++)
		ret_vitem_free(r.c.items[i]);
	free(r.c.items);
	ret_vmap_free(&r.c.adapters, free_adapter);
	for (size_t i = 0; i < r.c.nf; i++)
		free(r.c.f[i].path);
	free(r.c.f);
	return rc;
}

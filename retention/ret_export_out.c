/*
 * ret_export_out — the events member of an export (FORMATS.md §3):
 *   jsonl  the canonical lines as they are in the bundles (ret_export.c
 *          copies them straight through);
 *   csv    RFC 4180 with CRLF, header staging_id,id,type,ts,room,user,to,
 *          text,files,source_server,source_seq; "files" is the event's
 *          files array as compact JSON, empty when the event has none;
 *   xml, eml  the built-in adapters (adapters/registry.h), initialised on a
 *          private directory and fed the spooled events in batches of at
 *          most RET_EXPORT_CHUNK, numbered 1, 2, 3 …; the eml adapter's
 *          file store is the attachments taken from the source bundles.
 * Also the small helpers the engine shares: a string set, CSV and
 * PostgreSQL array escaping, removing a directory tree.
 */
#include "ret_export.h"
#include "ret_export_int.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapter.h"
#include "registry.h"

/* --- formats ---------------------------------------------------------------- */

static const char *const format_names[] = {
	[RET_EXPORT_JSONL] = "jsonl",
	[RET_EXPORT_CSV] = "csv",
	[RET_EXPORT_XML] = "xml",
	[RET_EXPORT_EML] = "eml",
};

int ret_export_format_parse(const char *s, enum ret_export_format *out)
{
	for (size_t i = 0; s && i < sizeof(format_names) / sizeof(format_names[0]); i++) {
		if (strcmp(s, format_names[i]) == 0) {
			*out = (enum ret_export_format)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *ret_export_format_name(enum ret_export_format f)
{
	if ((size_t)f >= sizeof(format_names) / sizeof(format_names[0]))
		return NULL;
	return format_names[f];
}

/* --- string set ----------------------------------------------------------- */

static size_t set_hash(const char *s)
{
	uint64_t h = UINT64_C(14695981039346656037);   /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		h = (h ^ *p) * UINT64_C(1099511628211);
	return (size_t)h;
}

static char **set_slot(char **slots, size_t cap, const char *key)
{
	for (size_t i = set_hash(key) & (cap - 1);; i = (i + 1) & (cap - 1))
		if (!slots[i] || strcmp(slots[i], key) == 0)
			return &slots[i];
}

int ret_export_set_add(struct ret_export_set *s, const char *key)
{
	char **sl;

	if (s->cap == 0 || (s->n + 1) * 2 > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		char **slots;

		if (cap > SIZE_MAX / sizeof(*slots))
			return -ENOMEM;
		slots = calloc(cap, sizeof(*slots));
		if (!slots)
			return -ENOMEM;
		for (size_t i = 0; i < s->cap; i++)
			if (s->slots[i])
				*set_slot(slots, cap, s->slots[i]) = s->slots[i];
		free(s->slots);
		s->slots = slots;
		s->cap = cap;
	}
	sl = set_slot(s->slots, s->cap, key);
	if (*sl)
		return 0;
	*sl = strdup(key);
	if (!*sl)
		return -ENOMEM;
	s->n++;
	return 0;
}

bool ret_export_set_has(const struct ret_export_set *s, const char *key)
{
	return s->cap && *set_slot(s->slots, s->cap, key) != NULL;
}

void ret_export_set_clear(struct ret_export_set *s)
{
	for (size_t i = 0; i < s->cap; i++) {
		free(s->slots[i]);
		s->slots[i] = NULL;
	}
	s->n = 0;
}

void ret_export_set_free(struct ret_export_set *s)
{
	ret_export_set_clear(s);
	free(s->slots);
	s->slots = NULL;
	s->cap = 0;
}

/* --- escaping ------------------------------------------------------------- */

int ret_export_csv_field(struct cv_buf *b, const char *s)
{
	const char *p;

	if (!s)
		return 0;
	if (!s[strcspn(s, ",\"\r\n")])
		return cv_buf_append(b, s, strlen(s));
	if (cv_buf_append(b, "\"", 1) != 0)
		return -ENOMEM;
	while ((p = strchr(s, '"')) != NULL) {
		if (cv_buf_append(b, s, (size_t)(p - s) + 1) != 0 || cv_buf_append(b, "\"", 1) != 0)
			return -ENOMEM;
		s = p + 1;
	}
	if (cv_buf_append(b, s, strlen(s)) != 0 || cv_buf_append(b, "\"", 1) != 0)
		return -ENOMEM;
	return 0;
}

int ret_export_pg_array(struct cv_buf *b, const char *const *v, size_t n)
{
	if (cv_buf_append(b, "{", 1) != 0)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (cv_buf_append(b, i ? ",\"" : "\"", i ? 2 : 1) != 0)
			return -ENOMEM;
		for (const char *p = v[i]; *p; p++) {
			if ((*p == '"' || *p == '\\') && cv_buf_append(b, "\\", 1) != 0)
				return -ENOMEM;
			if (cv_buf_append(b, p, 1) != 0)
				return -ENOMEM;
		}
		if (cv_buf_append(b, "\"", 1) != 0)
			return -ENOMEM;
	}
	/* cv_buf keeps a NUL after len. */
	return cv_buf_append(b, "}", 1);
}

/* --- csv / spool ------------------------------------------------------------ */

int ret_export_csv_header(struct ret_export_job *j)
{
	static const char hdr[] = "staging_id,id,type,ts,room,user,to,text,files,"
				  "source_server,source_seq\r\n";

	if (fwrite(hdr, 1, sizeof(hdr) - 1, j->events) != sizeof(hdr) - 1) {
		ret_export_fail(j, "write %s: %s", j->events_path, strerror(errno));
		return -EIO;
	}
	return 0;
}

/* The event's files as compact JSON (name, size, sha256), or NULL. */
static char *files_json(const struct ing_event *ev)
{
	json_t *a = json_array();
	char *s = NULL;

	if (!a)
		return NULL;
	for (size_t i = 0; i < ev->nfiles; i++)
		if (json_array_append_new(a, json_pack("{s:s, s:I, s:s}", "name", ev->files[i].name,
						       "size", (json_int_t)ev->files[i].size,
						       "sha256", ev->files[i].sha256)) != 0)
			goto out;
	s = json_dumps(a, JSON_COMPACT | JSON_PRESERVE_ORDER);
out:
	json_decref(a);
	return s;
}

static int csv_row(struct ret_export_job *j, int64_t sid, const struct ing_event *ev)
{
	struct cv_buf *b = &j->row;
	char ts[CV_TIME_BUFSZ], *files = NULL;
	int rc;

	b->len = 0;
	if (cv_time_format_ms(ev->ts_ms, ts) != 0)
		return -EINVAL;
	if (ev->has_files && !(files = files_json(ev)))
		return -ENOMEM;
	rc = cv_buf_printf(b, "%" PRId64 ",", sid);
	rc = rc ? rc : ret_export_csv_field(b, ev->id);
	rc = rc ? rc : cv_buf_printf(b, ",%s,%s,", ing_event_type_name(ev->type), ts);
	rc = rc ? rc : ret_export_csv_field(b, ev->room);
	rc = rc ? rc : cv_buf_append(b, ",", 1);
	rc = rc ? rc : ret_export_csv_field(b, ev->user);
	rc = rc ? rc : cv_buf_append(b, ",", 1);
	rc = rc ? rc : ret_export_csv_field(b, ev->to);
	rc = rc ? rc : cv_buf_append(b, ",", 1);
	rc = rc ? rc : ret_export_csv_field(b, ev->text);
	rc = rc ? rc : cv_buf_append(b, ",", 1);
	rc = rc ? rc : ret_export_csv_field(b, files);
	rc = rc ? rc : cv_buf_append(b, ",", 1);
	rc = rc ? rc : ret_export_csv_field(b, ev->source_server);
	rc = rc ? rc : cv_buf_printf(b, ",%" PRId64 "\r\n", ev->source_seq);
	free(files);
	return rc ? -ENOMEM : 0;
}

int ret_export_write_event(struct ret_export_job *j, int64_t sid, const char *line, size_t len,
			   const struct ing_event *ev)
{
	int rc;

	if (j->q->format == RET_EXPORT_CSV) {
		if ((rc = csv_row(j, sid, ev)) != 0) {
			ret_export_fail(j, "csv row for staging id %" PRId64 ": %s", sid, strerror(-rc));
			return rc;
		}
		if (fwrite(j->row.data, 1, j->row.len, j->events) != j->row.len)
			goto io;
		return 0;
	}
	if (fprintf(j->events, "%" PRId64 " ", sid) < 0 || fwrite(line, 1, len, j->events) != len ||
	    putc('\n', j->events) == EOF)
		goto io;
	return 0;
io:
	ret_export_fail(j, "write %s: %s", j->events_path, strerror(errno));
	return -EIO;
}

/* --- xml / eml through the built-in adapter ----------------------------------- */

struct rx_chunk {
	struct ing_event *ev;
	struct adp_event *aev;
	struct adp_file **files;
	char (*ts)[CV_TIME_BUFSZ];
	char **json;
	size_t n;
};

static void chunk_reset(struct rx_chunk *c)
{
	for (size_t i = 0; i < c->n; i++) {
		ing_event_clear(&c->ev[i]);
		free(c->files[i]);
		free(c->json[i]);
		c->files[i] = NULL;
		c->json[i] = NULL;
	}
	c->n = 0;
}

static int chunk_alloc(struct rx_chunk *c)
{
	c->ev = calloc(RET_EXPORT_CHUNK, sizeof(*c->ev));
	c->aev = calloc(RET_EXPORT_CHUNK, sizeof(*c->aev));
	c->files = calloc(RET_EXPORT_CHUNK, sizeof(*c->files));
	c->ts = calloc(RET_EXPORT_CHUNK, sizeof(*c->ts));
	c->json = calloc(RET_EXPORT_CHUNK, sizeof(*c->json));
	return (c->ev && c->aev && c->files && c->ts && c->json) ? 0 : -ENOMEM;
}

static void chunk_free(struct rx_chunk *c)
{
	if (c->ev)
		chunk_reset(c);
	free(c->ev);
	free(c->aev);
	free(c->files);
	free(c->ts);
	free(c->json);
}

/* Add one spool line ("<sid> <json>\n") to the chunk. */
static int chunk_add(struct ret_export_job *j, struct rx_chunk *c, char *line, size_t n)
{
	size_t i = c->n;
	struct ing_event *ev = &c->ev[i];
	char why[ING_EVENT_ERRLEN], *sp;
	long long sid;
	size_t len;

	errno = 0;
	sid = strtoll(line, &sp, 10);
	if (errno || *sp != ' ' || n < 2 || line[n - 1] != '\n') {
		ret_export_fail(j, "temporary file %s: corrupt", j->events_path);
		return -EIO;
	}
	sp++;
	len = (size_t)(line + n - 1 - sp);
	ing_event_init(ev);
	c->json[i] = strndup(sp, len);
	c->n++;   /* chunk_reset frees what this slot holds from here on */
	if (!c->json[i])
		goto nomem;
	if (ing_event_parse(c->json[i], len, j->max_line, 0, ev, why, sizeof(why)) != 0) {
		ret_export_fail(j, "temporary file %s: staging id %lld: %s", j->events_path, sid, why);
		return -EIO;
	}
	(void)cv_time_format_ms(ev->ts_ms, c->ts[i]);
	if (ev->nfiles) {
		c->files[i] = calloc(ev->nfiles, sizeof(**c->files));
		if (!c->files[i])
			goto nomem;
		for (size_t k = 0; k < ev->nfiles; k++)
			c->files[i][k] = (struct adp_file){ ev->files[k].name, ev->files[k].size,
							    ev->files[k].sha256 };
	}
	c->aev[i] = (struct adp_event){
		.staging_id = sid,
		.id = ev->id,
		.type = ing_event_type_name(ev->type),
		.ts_ms = ev->ts_ms,
		.ts = c->ts[i],
		.room = ev->room,
		.user = ev->user,
		.to = ev->to,
		.text = ev->text,
		.files = c->files[i],
		.nfiles = ev->nfiles,
		.source_server = ev->source_server,
		.source_seq = ev->source_seq,
		.json = c->json[i],
		.json_len = len,
	};
	return 0;
nomem:
	ret_export_fail(j, "out of memory");
	return -ENOMEM;
}

static int chunk_deliver(struct ret_export_job *j, const struct adp_ops *ops, void *state,
			 struct rx_chunk *c, int64_t batch_no)
{
	struct adp_batch *b = calloc(1, sizeof(*b));
	enum adp_result r;
	int rc = 0;

	if (!b) {
		ret_export_fail(j, "out of memory");
		return -ENOMEM;
	}
	b->adapter_name = "export";
	b->batch_no = batch_no;
	b->first_staging_id = c->aev[0].staging_id;
	b->last_staging_id = c->aev[c->n - 1].staging_id;
	b->events = c->aev;
	b->nevents = c->n;
	b->chain_prev = "";
	r = ops->deliver(state, b);
	if (r != ADP_OK) {
		ret_export_fail(j, "%s adapter: %s", ops->type, b->reason[0] ? b->reason :
				"failed without a reason");
		rc = -EIO;
	}
	free(b);
	chunk_reset(c);
	return rc;
}

/* The adapter's options: the first configured instance of its type, if
 * any, else the defaults; dir is ours, and xml writes one room per file. */
static int adapter_opts(struct ret_export_job *j, const struct adp_ops *ops,
			struct adp_option **out, size_t *nout)
{
	const struct cfg_adapter *ca = NULL;
	struct adp_option *v;
	size_t n = 0, k = 0;

	for (size_t i = 0; i < j->cfg->nadapters && !ca; i++)
		if (strcmp(j->cfg->adapters[i].type, ops->type) == 0)
			ca = &j->cfg->adapters[i];
	for (const struct adp_key *key = ops->keys; key && key->name; key++)
		n++;
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (const struct adp_key *key = ops->keys; key && key->name; key++) {
		const struct cfg_opt *o = ca ? cfg_adapter_opt(ca, key->name) : NULL;
		const char *val = key->dflt;

		if (strcmp(key->name, "dir") == 0)
			val = j->adapter_dir;
		else if (strcmp(key->name, "one_room_per_file") == 0)
			val = "true";
		else if (o)
			val = o->type == CFG_OPT_BOOL ? (o->i ? "true" : "false") : o->str;
		if (val)
			v[k++] = (struct adp_option){ key->name, val };
	}
	*out = v;
	*nout = k;
	return 0;
}

int ret_export_run_adapter(struct ret_export_job *j)
{
	const struct adp_ops *ops = adp_builtin(j->format_name);
	struct adp_option *opts = NULL;
	struct rx_chunk c = { 0 };
	struct adp_env env;
	void *state = NULL;
	char why[512] = "", *line = NULL, msg[128];
	size_t cap = 0, nopts = 0;
	int64_t batch_no = 0, done = 0;
	FILE *in = NULL;
	ssize_t n;
	int rc;

	if (!ops) {
		ret_export_fail(j, "no built-in %s adapter", j->format_name);
		return -EINVAL;
	}
	if ((rc = adapter_opts(j, ops, &opts, &nopts)) != 0 || (rc = chunk_alloc(&c)) != 0) {
		ret_export_fail(j, "out of memory");
		goto out;
	}
	if (mkdir(j->adapter_dir, 0700) != 0) {
		rc = -errno;
		ret_export_fail(j, "mkdir %s: %s", j->adapter_dir, strerror(-rc));
		goto out;
	}
	env = (struct adp_env){ .name = "export", .data_dir = j->tmpdir,
				.file_store = j->files_dir, .opts = opts, .nopts = nopts };
	if ((rc = ops->init(&env, &state, why, sizeof(why))) != 0) {
		ret_export_fail(j, "%s adapter: %s", ops->type, why);
		state = NULL;
		goto out;
	}
	in = fopen(j->events_path, "re");
	if (!in) {
		rc = -errno;
		ret_export_fail(j, "open %s: %s", j->events_path, strerror(-rc));
		goto out;
	}
	while ((n = getline(&line, &cap, in)) > 0) {
		if ((rc = chunk_add(j, &c, line, (size_t)n)) != 0)
			goto out;
		if (c.n == RET_EXPORT_CHUNK) {
			done += (int64_t)c.n;
			if ((rc = chunk_deliver(j, ops, state, &c, ++batch_no)) != 0)
				goto out;
			if (ret_export_stopped(j)) {
				rc = -EINTR;
				goto out;
			}
			snprintf(msg, sizeof(msg), "writing %s, %" PRId64 "/%" PRId64 " events",
				 j->format_name, done, j->res->events);
			ret_export_progress(j, msg, false);
		}
	}
	if (ferror(in)) {
		rc = -EIO;
		ret_export_fail(j, "read %s: %s", j->events_path, strerror(errno));
		goto out;
	}
	if (c.n && (rc = chunk_deliver(j, ops, state, &c, ++batch_no)) != 0)
		goto out;
	rc = 0;
out:
	if (state)
		ops->close(state);
	if (in)
		fclose(in);
	free(line);
	chunk_free(&c);
	free(opts);
	return rc;
}

/* --- temporary tree ------------------------------------------------------------ */

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_DNR)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

int ret_export_rmtree(const char *path)
{
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -errno;
}

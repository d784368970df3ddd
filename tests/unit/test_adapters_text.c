/*
 * test_adapters_text — the xml, jsonl and eml adapters against the ABI in
 * adapters/adapter.h: output shape, escaping, determinism (redelivery gives
 * the same names and bytes), the output chain, and RETRY without a partial
 * file when the target cannot be written.
 *
 * External judges are used on purpose: xmllint for well-formedness, libxml2's
 * parser (no network, no entity substitution) to read the XML back, and
 * python3's email package to prove a standard MIME parser opens the .eml.
 *
 * Each test gets a fresh temporary tree (data dir, file store) from setup().
 */
#include "adapter.h"
#include "builtin.h"
#include "cv_util.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#define NEV 15
#define MAX_FILES 8
#define T0_MS INT64_C(1795255200123) /* 2026-11-21T10:00:00.123Z */

#define ROOM1 "ma-chan://contoso.com/5c1d-aaaa"
#define ROOM2 "ma-chan://contoso.com/Desk & <Ops> \"q\" 'x'"
#define ALICE "sip:alice@contoso.com"
#define BOB "sip:bob@contoso.com"
#define JORG "sip:j\xC3\xB6rg@contoso.com"
#define CAROL "sip:carol@fabrikam.com"
#define IMKEY "im:alice@contoso.com;bob@contoso.com"
#define RESUME "r\xC3\xA9sum\xC3\xA9 \xC3\xBCn\xC3\xAF.txt"

struct fixture {
	char root[256];  /* short: every path built from it fits PATH_MAX */
	char data_dir[PATH_MAX];
	char store[PATH_MAX];
	struct adp_event ev[NEV];
	struct adp_file files[MAX_FILES];
	char sha[MAX_FILES][CV_SHA256_HEX];
	char ts[NEV][64];
	char id[NEV][40];
	char *json[NEV];
};

/* File indices into fixture.files. */
enum { F_Q3, F_RESUME, F_BIG, F_MISSING, F_CORRUPT, F_COUNT };

/* ---- helpers ------------------------------------------------------------ */

/* snprintf that fails the test instead of truncating. */
static void fmt(char *out, size_t len, const char *f, ...) __attribute__((format(printf, 3, 4)));

static void fmt(char *out, size_t len, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(out, len, f, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < len);
}

static void fmt_ts(int64_t ms, char out[64])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	fmt(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct cv_buf b = { 0 };
	char chunk[4096];
	size_t n;

	if (!f)
		return NULL;
	assert_int_equal(cv_buf_append(&b, "", 0), 0);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		assert_int_equal(cv_buf_append(&b, chunk, n), 0);
	fclose(f);
	if (len)
		*len = b.len;
	return b.data;
}

static bool exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Store a blob under its own SHA-256 (or, for corrupt, under another's). */
static void store_blob(struct fixture *fx, int idx, const char *name, const char *content,
		       size_t len, bool present, const char *stored_as)
{
	char path[PATH_MAX + 80];

	cv_sha256_hex(content, len, fx->sha[idx]);
	fx->files[idx].name = name;
	fx->files[idx].size = (int64_t)len;
	fx->files[idx].sha256 = fx->sha[idx];
	if (!present)
		return;
	fmt(path, sizeof(path), "%s/%s", fx->store, fx->sha[idx]);
	write_file(path, stored_as ? stored_as : content, stored_as ? strlen(stored_as) : len);
}

static void set_event(struct fixture *fx, size_t i, const char *type, const char *room,
		      const char *user, const char *to, const char *text,
		      const struct adp_file *files, size_t nfiles)
{
	struct adp_event *e = &fx->ev[i];
	json_t *o, *fa;

	e->staging_id = 101 + (int64_t)i;
	fmt(fx->id[i], sizeof(fx->id[i]), "0192f0c4-6c1e-7d3a-9b1e-2f6a5c0d9e%02zu", i);
	e->id = fx->id[i];
	e->type = type;
	e->ts_ms = T0_MS + (int64_t)i * 1000;
	fmt_ts(e->ts_ms, fx->ts[i]);
	e->ts = fx->ts[i];
	e->room = room;
	e->user = user;
	e->to = to;
	e->text = text;
	e->files = files;
	e->nfiles = nfiles;
	e->source_server = "chat01";
	e->source_seq = 18342 + (int64_t)i;
	o = json_pack("{s:i, s:s, s:s, s:s, s:s}", "v", 1, "id", e->id, "type", type, "ts",
		      e->ts, "user", user);
	assert_non_null(o);
	if (room)
		json_object_set_new(o, "room", json_string(room));
	if (to)
		json_object_set_new(o, "to", json_string(to));
	if (text)
		json_object_set_new(o, "text", json_string(text));
	if (nfiles) {
		fa = json_array();
		for (size_t f = 0; f < nfiles; f++)
			json_array_append_new(fa, json_pack("{s:s, s:I, s:s}", "name", files[f].name,
							    "size", (json_int_t)files[f].size,
							    "sha256", files[f].sha256));
		json_object_set_new(o, "files", fa);
	}
	json_object_set_new(o, "source", json_pack("{s:s, s:I}", "server", "chat01", "seq",
						   (json_int_t)e->source_seq));
	fx->json[i] = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	assert_non_null(fx->json[i]);
	e->json = fx->json[i];
	e->json_len = strlen(fx->json[i]);
	json_decref(o);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char big[500];

	assert_non_null(fx);
	fmt(fx->root, sizeof(fx->root), "/tmp/cv_adapters_XXXXXX");
	assert_non_null(mkdtemp(fx->root));
	fmt(fx->data_dir, sizeof(fx->data_dir), "%s/data", fx->root);
	fmt(fx->store, sizeof(fx->store), "%s/store", fx->root);
	assert_int_equal(mkdir(fx->data_dir, 0750), 0);
	assert_int_equal(mkdir(fx->store, 0750), 0);

	memset(big, 'B', sizeof(big));
	store_blob(fx, F_Q3, "q3.pdf", "%PDF-1.4 quarterly numbers", 26, true, NULL);
	store_blob(fx, F_RESUME, RESUME, "curriculum vitae\n", 17, true, NULL);
	store_blob(fx, F_BIG, "big.bin", big, sizeof(big), true, NULL);
	store_blob(fx, F_MISSING, "missing.doc", "never stored", 12, false, NULL);
	store_blob(fx, F_CORRUPT, "corrupt.bin", "original", 8, true, "tampered");

	set_event(fx, 0, "chat.join", ROOM1, ALICE, NULL, NULL, NULL, 0);
	set_event(fx, 1, "chat.post", ROOM1, ALICE, NULL,
		  "hello <b>&amp; \"quotes\" 'apos' ]]> --", NULL, 0);
	set_event(fx, 2, "chat.join", ROOM2, JORG, NULL, NULL, NULL, 0);
	set_event(fx, 3, "chat.post", ROOM2, JORG, NULL,
		  "Gr\xC3\xBC\xC3\x9F" "e \xE2\x80\x94 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x8E\x89\n"
		  "second line\ttab", NULL, 0);
	set_event(fx, 4, "im.session.start", NULL, ALICE, BOB, NULL, NULL, 0);
	set_event(fx, 5, "im.message", NULL, ALICE, BOB, "ping\x01pong\x0b!", NULL, 0);
	set_event(fx, 6, "im.message", NULL, BOB, ALICE, "pong", NULL, 0);
	set_event(fx, 7, "chat.file.upload", ROOM1, BOB, NULL, NULL, &fx->files[F_Q3], 1);
	set_event(fx, 8, "chat.file.upload", ROOM2, JORG, NULL, NULL, &fx->files[F_RESUME], 2);
	set_event(fx, 9, "chat.file.download", ROOM1, ALICE, NULL, NULL, &fx->files[F_MISSING], 1);
	set_event(fx, 10, "chat.backchat", ROOM1, CAROL, NULL, NULL, NULL, 0);
	set_event(fx, 11, "chat.delete", ROOM1, ALICE, NULL, "102", NULL, 0);
	set_event(fx, 12, "chat.part", ROOM1, ALICE, NULL, NULL, NULL, 0);
	set_event(fx, 13, "im.session.end", NULL, BOB, ALICE, NULL, NULL, 0);
	set_event(fx, 14, "chat.post", ROOM2, CAROL, NULL, "see attached", &fx->files[F_CORRUPT], 1);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	nftw(fx->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	for (size_t i = 0; i < NEV; i++)
		free(fx->json[i]);
	free(fx);
	return 0;
}

static void env_set(struct adp_env *env, const struct fixture *fx, const char *name,
		    const struct adp_option *opts, size_t nopts)
{
	memset(env, 0, sizeof(*env));
	env->name = name;
	env->data_dir = fx->data_dir;
	env->file_store = fx->store;
	env->opts = opts;
	env->nopts = nopts;
}

static void batch_set(struct adp_batch *b, const struct fixture *fx, const char *adapter,
		      const char *chain_prev)
{
	memset(b, 0, sizeof(*b));
	b->adapter_name = adapter;
	b->batch_no = 7;
	b->events = fx->ev;
	b->nevents = NEV;
	b->first_staging_id = fx->ev[0].staging_id;
	b->last_staging_id = fx->ev[NEV - 1].staging_id;
	b->chain_prev = chain_prev;
}

static enum adp_result run(const struct adp_ops *ops, const struct adp_env *env,
			   struct adp_batch *b)
{
	char err[256] = "";
	void *st = NULL;
	enum adp_result r;

	if (ops->init(env, &st, err, sizeof(err)) != 0)
		fail_msg("init: %s", err);
	r = ops->deliver(st, b);
	ops->close(st);
	return r;
}

static void day_path(const struct fixture *fx, const char *type, const char *file, char *out,
		     size_t len)
{
	fmt(out, len, "%s/%s/2026/11/21%s%s", fx->data_dir, type, file ? "/" : "",
		 file ? file : "");
}

static void room_file(const struct fixture *fx, const char *type, const char *stem,
		      const char *key, const char *ext, char *out, size_t len)
{
	char hex[CV_SHA256_HEX], name[256];

	cv_sha256_hex(key, strlen(key), hex);
	fmt(name, sizeof(name), "%s-0000000000000101-0000000000000115-%.12s%s", stem, hex,
		 ext);
	day_path(fx, type, name, out, len);
}

/* SHA-256(prev + hex SHA-256 of each file, in order). */
static void expect_chain(const char *prev, const char *const *paths, size_t n, char out[65])
{
	struct cv_buf cat = { 0 };

	assert_int_equal(cv_buf_append(&cat, prev, strlen(prev)), 0);
	for (size_t i = 0; i < n; i++) {
		char hex[CV_SHA256_HEX];

		assert_int_equal(cv_sha256_file(paths[i], hex, NULL), 0);
		assert_int_equal(cv_buf_append(&cat, hex, 64), 0);
	}
	cv_sha256_hex(cat.data, cat.len, out);
	cv_buf_free(&cat);
}

static int xmllint_ok(const char *path)
{
	char cmd[PATH_MAX + 64];

	fmt(cmd, sizeof(cmd), "xmllint --noout '%s'", path);
	return system(cmd);
}

/* Count files (not directories) anywhere under dir. */
static size_t count_files(const char *dir)
{
	char cmd[PATH_MAX + 64];
	FILE *p;
	size_t n = 0;

	fmt(cmd, sizeof(cmd), "find '%s' -type f 2>/dev/null | wc -l", dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%zu", &n), 1);
	pclose(p);
	return n;
}

/* ---- XML reading ----------------------------------------------------- */

static xmlDocPtr parse_xml(const char *path)
{
	/* No XML_PARSE_NOENT: entities are not substituted; no network. */
	xmlDocPtr doc = xmlReadFile(path, NULL, XML_PARSE_NONET);

	assert_non_null(doc);
	return doc;
}

static void collect(xmlNodePtr n, const char *name, xmlNodePtr *out, size_t *count, size_t max)
{
	for (; n; n = n->next) {
		if (n->type != XML_ELEMENT_NODE)
			continue;
		if (strcmp((const char *)n->name, name) == 0 && *count < max)
			out[(*count)++] = n;
		collect(n->children, name, out, count, max);
	}
}

static char *prop(xmlNodePtr n, const char *name)
{
	xmlChar *v = xmlGetProp(n, BAD_CAST name);
	char *s = v ? strdup((const char *)v) : NULL;

	xmlFree(v);
	return s;
}

static void assert_prop(xmlNodePtr n, const char *name, const char *want)
{
	char *v = prop(n, name);

	if (!v || strcmp(v, want) != 0)
		fail_msg("attribute %s: got \"%s\", want \"%s\"", name, v ? v : "(none)", want);
	free(v);
}

static int64_t prop_i64(xmlNodePtr n, const char *name)
{
	char *v = prop(n, name);
	int64_t x;

	assert_non_null(v);
	x = strtoll(v, NULL, 10);
	free(v);
	return x;
}

static xmlNodePtr child(xmlNodePtr n, const char *name)
{
	for (xmlNodePtr c = n->children; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
			return c;
	return NULL;
}

/* The Message element whose id is staging id sid (exactly one must exist). */
static xmlNodePtr message_by_id(xmlDocPtr doc, int64_t sid)
{
	xmlNodePtr msgs[64], found = NULL;
	size_t n = 0, hits = 0;

	collect(xmlDocGetRootElement(doc), "Message", msgs, &n, 64);
	for (size_t i = 0; i < n; i++)
		if (prop_i64(msgs[i], "id") == sid) {
			found = msgs[i];
			hits++;
		}
	assert_int_equal(hits, 1);
	return found;
}

static void xml_default_path(const struct fixture *fx, char *out, size_t len)
{
	day_path(fx, "xml", "xml-0000000000000101-0000000000000115.xml", out, len);
}

/* ---- xml ------------------------------------------------------------------- */

static void test_ops_tables(void **state)
{
	const struct adp_ops *ops[] = { &adp_xml_ops, &adp_jsonl_ops, &adp_eml_ops };
	const char *types[] = { "xml", "jsonl", "eml" };

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		bool has_dir = false;

		assert_int_equal(ops[i]->abi_version, ADP_ABI_VERSION);
		assert_int_equal(ops[i]->struct_size, sizeof(struct adp_ops));
		assert_string_equal(ops[i]->type, types[i]);
		assert_non_null(ops[i]->init);
		assert_non_null(ops[i]->deliver);
		assert_non_null(ops[i]->close);
		for (const struct adp_key *k = ops[i]->keys; k->name; k++) {
			if (strcmp(k->name, "dir") == 0)
				has_dir = k->type == ADP_KEY_STRING && !k->dflt;
			if (strcmp(k->name, "max_attachment_bytes") == 0)
				assert_string_equal(k->dflt, "26214400");
			if (k->type == ADP_KEY_BOOL)
				assert_string_equal(k->dflt, "false");
		}
		assert_true(has_dir);
	}
}

static void test_xml_wellformed_every_id_once(void **state)
{
	struct fixture *fx = *state;
	struct adp_env env;
	struct adp_batch b;
	char path[PATH_MAX];
	xmlDocPtr doc;
	xmlNodePtr root, convs[8], msgs[64];
	size_t nconv = 0, nmsg = 0;
	char chain[65];
	const char *paths[1] = { path };

	env_set(&env, fx, "xml", NULL, 0);
	batch_set(&b, fx, "xml", "");
	assert_int_equal(run(&adp_xml_ops, &env, &b), ADP_OK);
	xml_default_path(fx, path, sizeof(path));
	assert_string_equal(b.out_path, path);
	assert_int_equal(xmllint_ok(path), 0);
	expect_chain("", paths, 1, chain);
	assert_string_equal(b.out_chain, chain);

	doc = parse_xml(path);
	root = xmlDocGetRootElement(doc);
	assert_string_equal((const char *)root->name, "Conversations");
	assert_null(root->ns); /* no default namespace, as Lync's output */
	collect(root, "Conversation", convs, &nconv, 8);
	assert_int_equal(nconv, 3);
	collect(root, "Message", msgs, &nmsg, 64);
	assert_int_equal(nmsg, NEV);
	for (size_t i = 0; i < NEV; i++)
		message_by_id(doc, fx->ev[i].staging_id);

	/* Conversations in order of first appearance; Lync's element order. */
	assert_prop(child(convs[0], "Channel"), "uri", ROOM1);
	assert_prop(child(convs[0], "Channel"), "name", "5c1d-aaaa");
	assert_prop(child(convs[1], "Channel"), "uri", ROOM2);
	assert_prop(child(convs[1], "Channel"), "name", "Desk & <Ops> \"q\" 'x'");
	assert_prop(child(convs[2], "Channel"), "uri", IMKEY);
	{
		const char *order[] = { "Channel", "FirstMessage", "Messages", "StartTimeUTC",
					"EndTimeUTC" };
		size_t k = 0;

		for (xmlNodePtr c = convs[0]->children; c; c = c->next)
			if (c->type == XML_ELEMENT_NODE) {
				assert_true(k < 5);
				assert_string_equal((const char *)c->name, order[k++]);
			}
		assert_int_equal(k, 5);
	}
	/* FirstMessage repeats the conversation's first event. */
	assert_prop(child(convs[1], "FirstMessage"), "id", "103");
	assert_prop(child(convs[1], "FirstMessage"), "type", "JOIN");
	/* The IM pair is one conversation, whichever way a message went. */
	{
		xmlNodePtr im[8];
		size_t nim = 0;

		collect(convs[2]->children, "Message", im, &nim, 8);
		assert_int_equal(nim, 4);
	}
	xmlFreeDoc(doc);
}

static void test_xml_type_mapping(void **state)
{
	struct fixture *fx = *state;
	static const char *const want[NEV] = {
		"JOIN", "CHAT", "JOIN", "CHAT", "JOIN", "CHAT", "CHAT", "FILEUPLOAD",
		"FILEUPLOAD", "FILEDOWNLOAD", "BACKCHAT", "DELETE", "PART", "PART", "CHAT",
	};
	struct adp_env env;
	struct adp_batch b;
	char path[PATH_MAX];
	xmlDocPtr doc;
	xmlNodePtr m, att;

	env_set(&env, fx, "xml", NULL, 0);
	batch_set(&b, fx, "xml", "");
	assert_int_equal(run(&adp_xml_ops, &env, &b), ADP_OK);
	xml_default_path(fx, path, sizeof(path));
	doc = parse_xml(path);
	for (size_t i = 0; i < NEV; i++)
		assert_prop(message_by_id(doc, fx->ev[i].staging_id), "type", want[i]);
	/* File events: content is the file names; attachments listed. */
	m = message_by_id(doc, 109);
	assert_prop(m, "content", RESUME ", big.bin");
	att = child(m, "Attachments");
	assert_non_null(att);
	assert_prop(child(att, "File"), "name", RESUME);
	assert_prop(child(att, "File"), "sha256", fx->sha[F_RESUME]);
	assert_prop(child(att, "File"), "size", "17");
	/* JOIN/PART carry no content; DELETE carries the event's text. */
	assert_prop(message_by_id(doc, 101), "content", "");
	assert_prop(message_by_id(doc, 112), "content", "102");
	assert_prop(message_by_id(doc, 115), "content", "see attached");
	xmlFreeDoc(doc);
}

static void test_xml_time_and_ticks(void **state)
{
	struct fixture *fx = *state;
	struct adp_env env;
	struct adp_batch b;
	char path[PATH_MAX];
	xmlDocPtr doc;
	xmlNodePtr conv[4], dt;
	size_t nconv = 0;

	env_set(&env, fx, "xml", NULL, 0);
	batch_set(&b, fx, "xml", "");
	assert_int_equal(run(&adp_xml_ops, &env, &b), ADP_OK);
	xml_default_path(fx, path, sizeof(path));
	doc = parse_xml(path);
	for (size_t i = 0; i < NEV; i++) {
		dt = child(message_by_id(doc, fx->ev[i].staging_id), "DateTimeUTC");
		assert_non_null(dt);
		assert_int_equal(prop_i64(dt, "since1970"), fx->ev[i].ts_ms);
		assert_int_equal(prop_i64(dt, "long"),
				 fx->ev[i].ts_ms * 10000 + INT64_C(621355968000000000));
	}
	dt = child(message_by_id(doc, 101), "DateTimeUTC");
	assert_prop(dt, "string", "2026-11-21T10:00:00.1230000Z");
	/* The documented example: 1212610540953 ms. */
	assert_int_equal(INT64_C(1212610540953) * 10000 + INT64_C(621355968000000000),
			 INT64_C(633482073409530000));
	/* Start/End: the conversation's earliest and latest event. */
	collect(xmlDocGetRootElement(doc), "Conversation", conv, &nconv, 4);
	assert_int_equal(prop_i64(child(conv[0], "StartTimeUTC"), "since1970"), T0_MS);
	assert_int_equal(prop_i64(child(conv[0], "EndTimeUTC"), "since1970"), T0_MS + 12000);
	assert_prop(child(conv[2], "EndTimeUTC"), "string", "2026-11-21T10:00:13.1230000Z");
	xmlFreeDoc(doc);
}

static void test_xml_escaping_unicode_controls(void **state)
{
	struct fixture *fx = *state;
	struct adp_env env;
	struct adp_batch b;
	char path[PATH_MAX], *raw;
	xmlDocPtr doc;
	xmlNodePtr m;

	env_set(&env, fx, "xml", NULL, 0);
	batch_set(&b, fx, "xml", "");
	assert_int_equal(run(&adp_xml_ops, &env, &b), ADP_OK);
	xml_default_path(fx, path, sizeof(path));
	raw = read_all(path, NULL);
	assert_non_null(raw);
	assert_non_null(strstr(raw, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
	assert_non_null(strstr(raw, "&lt;b&gt;&amp;amp; &quot;quotes&quot;"));
	assert_null(strchr(raw, '\x01'));
	assert_null(strchr(raw, '\x0b'));
	free(raw);

	doc = parse_xml(path);
	/* Special characters round-trip exactly. */
	assert_prop(message_by_id(doc, 102), "content", "hello <b>&amp; \"quotes\" 'apos' ]]> --");
	/* UTF-8 and line breaks/tabs round-trip (written as character references). */
	assert_prop(message_by_id(doc, 104), "content", fx->ev[3].text);
	m = message_by_id(doc, 104);
	assert_prop(child(m, "Sender"), "UserName", "j\xC3\xB6rg");
	/* U+0001 and U+000B become U+FFFD, and the Message says so. */
	m = message_by_id(doc, 106);
	assert_prop(m, "content", "ping\xEF\xBF\xBDpong\xEF\xBF\xBD!");
	assert_prop(m, "invalidChars", "2");
	assert_null(xmlHasProp(message_by_id(doc, 107), BAD_CAST "invalidChars"));
	xmlFreeDoc(doc);
}

/* Malformed UTF-8 and the non-characters U+FFFE/U+FFFF never reach the file. */
static void test_xml_invalid_utf8(void **state)
{
	struct fixture *fx = *state;
	struct adp_env env;
	struct adp_batch b;
	char path[PATH_MAX];
	xmlDocPtr doc;
	xmlNodePtr m;

	fx->ev[6].text = "bad \xC3 utf8 \xEF\xBF\xBE \xED\xA0\x80 end\xF0\x9F";
	fx->ev[10].user = "sip:c\x02rol@fabrikam.com";
	env_set(&env, fx, "xml", NULL, 0);
	batch_set(&b, fx, "xml", "");
	assert_int_equal(run(&adp_xml_ops, &env, &b), ADP_OK);
	xml_default_path(fx, path, sizeof(path));
	assert_int_equal(xmllint_ok(path), 0);
	doc = parse_xml(path);
	m = message_by_id(doc, 107);
	/* One U+FFFD per malformed byte, per non-character, per bad sequence. */
	assert_prop(m, "content", "bad \xEF\xBF\xBD utf8 \xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD"
		    "\xEF\xBF\xBD end\xEF\xBF\xBD\xEF\xBF\xBD");
	assert_prop(m, "invalidChars", "7");
	m = message_by_id(doc, 111);
	assert_prop(child(m, "Sender"), "uri", "c\xEF\xBF\xBDrol@fabrikam.com");
	assert_prop(m, "invalidChars", "1");
	xmlFreeDoc(doc);
}

static void test_xml_sender(void **state)
{
	struct fixture *fx = *state;
	const struct adp_option opts[] = { { "internal_domain", "contoso.com" } };
	struct adp_env env;
	struct adp_batch b;
	char path[PATH_MAX];
	xmlDocPtr doc;
	xmlNodePtr a1, a2, bob, carol;

	env_set(&env, fx, "xml", opts, 1);
	batch_set(&b, fx, "xml", "");
	assert_int_equal(run(&adp_xml_ops, &env, &b), ADP_OK);
	xml_default_path(fx, path, sizeof(path));
	doc = parse_xml(path);
	a1 = child(message_by_id(doc, 101), "Sender");
	a2 = child(message_by_id(doc, 113), "Sender");
	bob = child(message_by_id(doc, 108), "Sender");
	carol = child(message_by_id(doc, 111), "Sender");
	assert_prop(a1, "UserName", "alice");
	assert_prop(a1, "email", "alice@contoso.com");
	assert_prop(a1, "uri", "alice@contoso.com");
	assert_prop(a1, "internal", "true");
	assert_prop(carol, "internal", "false");
	assert_prop(carol, "email", "carol@fabrikam.com");
	/* Small ids in order of first appearance, stable within the file. */
	assert_int_equal(prop_i64(a1, "id"), 1);
	assert_int_equal(prop_i64(a2, "id"), 1);
	assert_true(prop_i64(bob, "id") > 1);
	assert_true(prop_i64(carol, "id") != prop_i64(bob, "id"));
	xmlFreeDoc(doc);

	/* Without internal_domain every user is internal. */
	env_set(&env, fx, "xml", NULL, 0);
	batch_set(&b, fx, "xml", "");
	assert_int_equal(run(&adp_xml_ops, &env, &b), ADP_OK);
	doc = parse_xml(path);
	assert_prop(child(message_by_id(doc, 111), "Sender"), "internal", "true");
	xmlFreeDoc(doc);
}

static void test_xml_one_room_per_file_and_manifest(void **state)
{
	struct fixture *fx = *state;
	const struct adp_option opts[] = {
		{ "one_room_per_file", "true" },
		{ "attachments_manifest", "true" },
	};
	const char *keys[3] = { ROOM1, ROOM2, IMKEY };
	const size_t expect_msgs[3] = { 7, 4, 4 };
	char paths[6][PATH_MAX], day[PATH_MAX], chain[65];
	const char *order[6];
	struct adp_env env;
	struct adp_batch b;
	size_t total = 0;

	env_set(&env, fx, "xml", opts, 2);
	batch_set(&b, fx, "xml", "prev");
	assert_int_equal(run(&adp_xml_ops, &env, &b), ADP_OK);
	day_path(fx, "xml", NULL, day, sizeof(day));
	assert_string_equal(b.out_path, day); /* several files: the day directory */
	assert_int_equal(count_files(day), 6);
	for (size_t r = 0; r < 3; r++) {
		xmlNodePtr conv[4], msgs[16];
		size_t nconv = 0, nmsg = 0;
		xmlDocPtr doc;

		room_file(fx, "xml", "xml", keys[r], ".xml", paths[2 * r], PATH_MAX);
		room_file(fx, "xml", "xml", keys[r], ".attachments.xml", paths[2 * r + 1],
			  PATH_MAX);
		order[2 * r] = paths[2 * r];
		order[2 * r + 1] = paths[2 * r + 1];
		assert_int_equal(xmllint_ok(paths[2 * r]), 0);
		assert_int_equal(xmllint_ok(paths[2 * r + 1]), 0);
		doc = parse_xml(paths[2 * r]);
		collect(xmlDocGetRootElement(doc), "Conversation", conv, &nconv, 4);
		collect(xmlDocGetRootElement(doc), "Message", msgs, &nmsg, 16);
		assert_int_equal(nconv, 1);
		assert_int_equal(nmsg, expect_msgs[r]);
		assert_prop(child(conv[0], "Channel"), "uri", keys[r]);
		total += nmsg;
		xmlFreeDoc(doc);
	}
	assert_int_equal(total, NEV);
	/* Chain: documents and manifests in the order written. */
	expect_chain("prev", order, 6, chain);
	assert_string_equal(b.out_chain, chain);

	/* The ROOM2 manifest lists every file of the room with its message. */
	{
		xmlDocPtr doc = parse_xml(paths[3]);
		xmlNodePtr root = xmlDocGetRootElement(doc), files[8];
		size_t n = 0;

		assert_string_equal((const char *)root->name, "Attachments");
		assert_prop(root, "count", "3");
		collect(root, "File", files, &n, 8);
		assert_int_equal(n, 3);
		assert_prop(files[0], "name", RESUME);
		assert_prop(files[0], "sha256", fx->sha[F_RESUME]);
		assert_prop(files[0], "messageId", "109");
		assert_prop(files[1], "name", "big.bin");
		assert_prop(files[1], "size", "500");
		assert_prop(files[2], "messageId", "115");
		assert_prop(files[2], "channel", ROOM2);
		xmlFreeDoc(doc);
	}
}

static void test_xml_details(void **state)
{
	struct fixture *fx = *state;
	const struct adp_option opts[] = {
		{ "room_details", "true" },
		{ "user_details", "true" },
		{ "attachments_manifest", "true" },
	};
	char path[PATH_MAX], man[PATH_MAX];
	struct adp_env env;
	struct adp_batch b;
	xmlDocPtr doc;
	xmlNodePtr conv[4], d, users[8];
	size_t nconv = 0, nusers = 0;

	env_set(&env, fx, "xml", opts, 3);
	batch_set(&b, fx, "xml", "");
	assert_int_equal(run(&adp_xml_ops, &env, &b), ADP_OK);
	xml_default_path(fx, path, sizeof(path));
	assert_string_equal(b.out_path, path); /* one document (+ manifest) */
	day_path(fx, "xml", "xml-0000000000000101-0000000000000115.attachments.xml", man,
		 sizeof(man));
	assert_int_equal(xmllint_ok(path), 0);
	assert_int_equal(xmllint_ok(man), 0);
	doc = parse_xml(path);
	collect(xmlDocGetRootElement(doc), "Conversation", conv, &nconv, 4);
	d = child(child(conv[0], "Channel"), "Description");
	assert_non_null(d);
	assert_prop(d, "kind", "room");
	assert_prop(d, "scheme", "ma-chan");
	assert_prop(d, "domain", "contoso.com");
	assert_prop(d, "path", "5c1d-aaaa");
	assert_prop(d, "messages", "7");
	d = child(child(conv[2], "Channel"), "Description");
	assert_prop(d, "kind", "im");
	collect(child(conv[0], "Participants"), "User", users, &nusers, 8);
	assert_int_equal(nusers, 3); /* alice, bob, carol in ROOM1 */
	assert_prop(users[0], "uri", "alice@contoso.com");
	assert_prop(users[0], "messages", "5");
	nusers = 0;
	collect(child(conv[2], "Participants"), "User", users, &nusers, 8);
	assert_int_equal(nusers, 2);
	xmlFreeDoc(doc);
	doc = parse_xml(man);
	assert_prop(xmlDocGetRootElement(doc), "count", "5");
	xmlFreeDoc(doc);
}

static void test_xml_redelivery_idempotent(void **state)
{
	struct fixture *fx = *state;
	const struct adp_option opts[] = { { "one_room_per_file", "true" } };
	struct adp_env env;
	struct adp_batch b1, b2;
	char path[PATH_MAX], day[PATH_MAX], *first, *second;
	size_t l1, l2;

	env_set(&env, fx, "xml", opts, 1);
	batch_set(&b1, fx, "xml", "abc");
	assert_int_equal(run(&adp_xml_ops, &env, &b1), ADP_OK);
	room_file(fx, "xml", "xml", ROOM2, ".xml", path, sizeof(path));
	first = read_all(path, &l1);
	assert_non_null(first);
	batch_set(&b2, fx, "xml", "abc");
	assert_int_equal(run(&adp_xml_ops, &env, &b2), ADP_OK);
	second = read_all(path, &l2);
	assert_int_equal(l1, l2);
	assert_memory_equal(first, second, l1);
	assert_string_equal(b1.out_chain, b2.out_chain);
	assert_string_equal(b1.out_path, b2.out_path);
	day_path(fx, "xml", NULL, day, sizeof(day));
	assert_int_equal(count_files(day), 3); /* replaced, not duplicated */
	free(first);
	free(second);
}

static void test_xml_unwritable_retry(void **state)
{
	struct fixture *fx = *state;
	char blocker[PATH_MAX], dir[PATH_MAX + 16];
	struct adp_option opts[1];
	struct adp_env env;
	struct adp_batch b;

	/* A regular file where a directory must be: ENOTDIR, even for root. */
	fmt(blocker, sizeof(blocker), "%s/blocker", fx->root);
	write_file(blocker, "x", 1);
	fmt(dir, sizeof(dir), "%s/sub", blocker);
	opts[0].key = "dir";
	opts[0].value = dir;
	env_set(&env, fx, "xml", opts, 1);
	batch_set(&b, fx, "xml", "");
	assert_int_equal(run(&adp_xml_ops, &env, &b), ADP_RETRY);
	assert_non_null(strstr(b.reason, blocker));
	assert_non_null(strstr(b.reason, strerror(ENOTDIR)));
	assert_string_equal(b.out_path, "");
	assert_int_equal(count_files(fx->data_dir), 0);
}

static void test_xml_bad_event_fails_blaming_it(void **state)
{
	struct fixture *fx = *state;
	struct adp_env env;
	struct adp_batch b;

	fx->ev[4].type = "im.nonsense";
	env_set(&env, fx, "xml", NULL, 0);
	batch_set(&b, fx, "xml", "");
	assert_int_equal(run(&adp_xml_ops, &env, &b), ADP_FAIL);
	assert_int_equal(b.fail_staging_id, 105);
	assert_non_null(strstr(b.reason, "unknown event type"));
	batch_set(&b, fx, "eml", "");
	assert_int_equal(run(&adp_eml_ops, &env, &b), ADP_FAIL);
	assert_int_equal(b.fail_staging_id, 105);
	fx->ev[4].type = "im.session.start";
	fx->ev[9].room = NULL;
	batch_set(&b, fx, "xml", "");
	assert_int_equal(run(&adp_xml_ops, &env, &b), ADP_FAIL);
	assert_int_equal(b.fail_staging_id, 110);
	assert_int_equal(count_files(fx->data_dir), 0);
}

static void test_bad_option_refused(void **state)
{
	struct fixture *fx = *state;
	const struct adp_option xo[] = { { "one_room_per_file", "yes" } };
	const struct adp_option eo[] = { { "max_attachment_bytes", "-5" } };
	struct adp_env env;
	char err[256] = "";
	void *st = NULL;

	env_set(&env, fx, "xml", xo, 1);
	assert_true(adp_xml_ops.init(&env, &st, err, sizeof(err)) < 0);
	assert_null(st);
	assert_non_null(strstr(err, "one_room_per_file"));
	env_set(&env, fx, "eml", eo, 1);
	assert_true(adp_eml_ops.init(&env, &st, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "max_attachment_bytes"));
}

/* ---- jsonl ----------------------------------------------------------------- */

static void test_jsonl_exact(void **state)
{
	struct fixture *fx = *state;
	struct adp_env env;
	struct adp_batch b;
	struct cv_buf want = { 0 };
	char path[PATH_MAX], chain[65], *got;
	const char *paths[1] = { path };
	size_t len;

	env_set(&env, fx, "siem", NULL, 0);
	batch_set(&b, fx, "siem", "");
	assert_int_equal(run(&adp_jsonl_ops, &env, &b), ADP_OK);
	day_path(fx, "jsonl", "siem-0000000000000101-0000000000000115.jsonl", path, sizeof(path));
	assert_string_equal(b.out_path, path);
	for (size_t i = 0; i < NEV; i++) {
		assert_int_equal(cv_buf_append(&want, fx->ev[i].json, fx->ev[i].json_len), 0);
		assert_int_equal(cv_buf_append(&want, "\n", 1), 0);
	}
	got = read_all(path, &len);
	assert_non_null(got);
	assert_int_equal(len, want.len);
	assert_memory_equal(got, want.data, len);
	expect_chain("", paths, 1, chain);
	assert_string_equal(b.out_chain, chain);
	{
		struct stat sb;

		assert_int_equal(stat(path, &sb), 0);
		assert_int_equal(sb.st_mode & 0777, 0640);
	}
	free(got);
	cv_buf_free(&want);
}

static void test_jsonl_idempotent_and_retry(void **state)
{
	struct fixture *fx = *state;
	char blocker[PATH_MAX], dir[PATH_MAX + 16], path[PATH_MAX], *a, *c;
	struct adp_option opts[1];
	struct adp_env env;
	struct adp_batch b1, b2;
	size_t la, lc;

	env_set(&env, fx, "jsonl", NULL, 0);
	batch_set(&b1, fx, "jsonl", "x");
	assert_int_equal(run(&adp_jsonl_ops, &env, &b1), ADP_OK);
	a = read_all(b1.out_path, &la);
	batch_set(&b2, fx, "jsonl", "x");
	assert_int_equal(run(&adp_jsonl_ops, &env, &b2), ADP_OK);
	assert_string_equal(b1.out_path, b2.out_path);
	assert_string_equal(b1.out_chain, b2.out_chain);
	c = read_all(b2.out_path, &lc);
	assert_int_equal(la, lc);
	assert_memory_equal(a, c, la);
	day_path(fx, "jsonl", NULL, path, sizeof(path));
	assert_int_equal(count_files(path), 1);
	free(a);
	free(c);

	fmt(blocker, sizeof(blocker), "%s/blocker", fx->root);
	write_file(blocker, "x", 1);
	fmt(dir, sizeof(dir), "%s/jsonl", blocker);
	opts[0].key = "dir";
	opts[0].value = dir;
	env_set(&env, fx, "jsonl", opts, 1);
	batch_set(&b1, fx, "jsonl", "");
	assert_int_equal(run(&adp_jsonl_ops, &env, &b1), ADP_RETRY);
	assert_non_null(strstr(b1.reason, blocker));
	assert_non_null(strstr(b1.reason, strerror(ENOTDIR)));

	/* A line break inside an event's json would break the framing: blamed. */
	env_set(&env, fx, "jsonl", NULL, 0);
	fx->ev[2].json = "{\"v\":1,\n}";
	fx->ev[2].json_len = 9;
	batch_set(&b1, fx, "jsonl", "");
	assert_int_equal(run(&adp_jsonl_ops, &env, &b1), ADP_FAIL);
	assert_int_equal(b1.fail_staging_id, 103);
}

/* ---- eml ------------------------------------------------------------------- */

/* Judged by python3's email package (policy.default, strict about defects). */
static const char eml_checker[] =
	"import email, email.utils, hashlib, json, sys\n"
	"from email import policy\n"
	"raw = open(sys.argv[1], 'rb').read()\n"
	"exp = json.load(open(sys.argv[2], encoding='utf-8'))\n"
	"lines = raw.split(b'\\r\\n')\n"
	"assert lines[-1] == b'', 'must end with CRLF'\n"
	"for l in lines:\n"
	"    assert b'\\n' not in l and b'\\r' not in l, ('bare CR or LF', l)\n"
	"    assert len(l) <= 78, ('line longer than 78', l)\n"
	"msg = email.message_from_bytes(raw, policy=policy.default)\n"
	"assert not msg.defects, msg.defects\n"
	"assert msg['Subject'] == exp['subject'], (msg['Subject'], exp['subject'])\n"
	"for h in ('From', 'To', 'Subject', 'Date', 'Message-ID'):\n"
	"    assert not msg[h].defects, (h, msg[h].defects)\n"
	"assert raw.split(b'\\r\\n\\r\\n')[0].isascii(), 'headers must be 7-bit'\n"
	"# a non-ASCII address travels as an RFC 2047 display name (see eml.c)\n"
	"who = lambda a: a.display_name or a.addr_spec\n"
	"assert who(msg['From'].addresses[0]) == exp['from'], msg['From']\n"
	"to = [who(a) for a in msg['To'].addresses]\n"
	"assert to == exp['to'], to\n"
	"assert msg['Message-ID'] == exp['message_id'], msg['Message-ID']\n"
	"assert msg['MIME-Version'] == '1.0'\n"
	"assert email.utils.parsedate_to_datetime(msg['Date']).timestamp() == exp['date'], "
	"msg['Date']\n"
	"assert msg.get_content_type() == 'multipart/mixed'\n"
	"assert msg.get_boundary().startswith('=_chatvault_')\n"
	"parts = list(msg.iter_parts())\n"
	"for p in parts:\n"
	"    assert not p.defects, p.defects\n"
	"assert parts[0].get_content_type() == 'text/plain'\n"
	"assert parts[0]['Content-Transfer-Encoding'] == 'quoted-printable'\n"
	"text = parts[0].get_content().replace('\\r\\n', '\\n')\n"
	"for needle in exp['transcript']:\n"
	"    assert needle in text, (needle, text)\n"
	"assert parts[1].get_content_type() == 'application/json'\n"
	"events = json.loads(parts[1].get_payload(decode=True).decode('utf-8'))\n"
	"assert [e['id'] for e in events] == exp['ids'], events\n"
	"got = {p.get_filename(): hashlib.sha256(p.get_payload(decode=True)).hexdigest()\n"
	"       for p in parts[2:]}\n"
	"assert got == exp['attachments'], (got, exp['attachments'])\n";

static void run_checker(const struct fixture *fx, const char *eml, json_t *exp)
{
	char script[PATH_MAX + 16], expf[PATH_MAX + 16], cmd[3 * PATH_MAX];

	fmt(script, sizeof(script), "%s/check_eml.py", fx->root);
	fmt(expf, sizeof(expf), "%s/expect.json", fx->root);
	write_file(script, eml_checker, strlen(eml_checker));
	assert_int_equal(json_dump_file(exp, expf, JSON_INDENT(1)), 0);
	fmt(cmd, sizeof(cmd), "python3 '%s' '%s' '%s'", script, eml, expf);
	assert_int_equal(system(cmd), 0);
}

static json_t *ids_of(const struct fixture *fx, const int *idx, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(fx->id[idx[i]]));
	return a;
}

static void test_eml_parsed_by_python(void **state)
{
	struct fixture *fx = *state;
	const struct adp_option opts[] = { { "max_attachment_bytes", "100" } };
	char p1[PATH_MAX], p2[PATH_MAX], p3[PATH_MAX], day[PATH_MAX], chain[65];
	const char *order[3] = { p1, p2, p3 };
	const int r1[] = { 0, 1, 7, 9, 10, 11, 12 }, r2[] = { 2, 3, 8, 14 },
		  im[] = { 4, 5, 6, 13 };
	int64_t date = (T0_MS + 14000) / 1000; /* the batch's last event */
	struct adp_env env;
	struct adp_batch b;
	json_t *exp;

	env_set(&env, fx, "journal", opts, 1);
	batch_set(&b, fx, "journal", "c0");
	assert_int_equal(run(&adp_eml_ops, &env, &b), ADP_OK);
	day_path(fx, "eml", NULL, day, sizeof(day));
	assert_string_equal(b.out_path, day);
	assert_int_equal(count_files(day), 3);
	room_file(fx, "eml", "journal", ROOM1, ".eml", p1, sizeof(p1));
	room_file(fx, "eml", "journal", ROOM2, ".eml", p2, sizeof(p2));
	room_file(fx, "eml", "journal", IMKEY, ".eml", p3, sizeof(p3));
	expect_chain("c0", order, 3, chain);
	assert_string_equal(b.out_chain, chain);

	{
		char hex[CV_SHA256_HEX], mid[128];

		cv_sha256_hex(ROOM1, strlen(ROOM1), hex);
		/* Message-ID hash is over name, ids and key, not the key alone. */
		(void)hex;
		exp = json_pack("{s:s, s:s, s:[s,s,s], s:I, s:o, s:{s:s}, s:[s,s,s,s,s,s,s]}",
				"subject",
				"Chat transcript: 5c1d-aaaa 2026-11-21T10:00:00.123Z \xE2\x80\x93 "
				"2026-11-21T10:00:12.123Z",
				"from", "alice@contoso.com",
				"to", "alice@contoso.com", "bob@contoso.com", "carol@fabrikam.com",
				"date", (json_int_t)date,
				"ids", ids_of(fx, r1, 7),
				"attachments", "q3.pdf", fx->sha[F_Q3],
				"transcript",
				"[2026-11-21T10:00:01.123Z] alice@contoso.com: hello <b>&amp; "
				"\"quotes\" 'apos' ]]> --",
				"alice@contoso.com joined the room",
				"q3.pdf (26 bytes, sha256 ",
				") - attached",
				"missing.doc (12 bytes",
				"not attached: missing from the file store",
				"carol@fabrikam.com read the room history");
		assert_non_null(exp);
		/* The Message-ID is checked against the file's own header below. */
		{
			char *raw = read_all(p1, NULL), *m, *end;

			assert_non_null(raw);
			m = strstr(raw, "Message-ID:");
			assert_non_null(m);
			m = strchr(m, '<');
			end = strchr(m, '>');
			fmt(mid, sizeof(mid), "%.*s", (int)(end - m + 1), m);
			assert_int_equal(strncmp(mid, "<journal.101-115.", 17), 0);
			assert_non_null(strstr(mid, "@chatvault>"));
			assert_non_null(strstr(raw, "\r\nMIME-Version: 1.0\r\n"));
			assert_non_null(strstr(raw, "\r\nDate: Sat, 21 Nov 2026 10:00:14 +0000\r\n"));
			free(raw);
		}
		json_object_set_new(exp, "message_id", json_string(mid));
		run_checker(fx, p1, exp);
		json_decref(exp);
	}
	{
		char *raw = read_all(p2, NULL), *m, *end, mid[128];

		m = strchr(strstr(raw, "Message-ID:"), '<');
		end = strchr(m, '>');
		fmt(mid, sizeof(mid), "%.*s", (int)(end - m + 1), m);
		free(raw);
		exp = json_pack("{s:s, s:s, s:s, s:[s,s], s:I, s:o, s:{s:s}, "
				"s:[s,s,s,s,s]}",
				"message_id", mid,
				"subject",
				"Chat transcript: Desk & <Ops> \"q\" 'x' 2026-11-21T10:00:02.123Z "
				"\xE2\x80\x93 2026-11-21T10:00:14.123Z",
				"from", "j\xC3\xB6rg@contoso.com",
				"to", "j\xC3\xB6rg@contoso.com", "carol@fabrikam.com",
				"date", (json_int_t)date,
				"ids", ids_of(fx, r2, 4),
				"attachments", RESUME, fx->sha[F_RESUME],
				"transcript",
				"Gr\xC3\xBC\xC3\x9F" "e \xE2\x80\x94 \xE6\x97\xA5\xE6\x9C\xAC "
				"\xF0\x9F\x8E\x89\n    second line\ttab",
				"not attached: 500 bytes exceeds max_attachment_bytes 100",
				"corrupt.bin (8 bytes",
				"not attached: file store copy does not match its sha256",
				"carol@fabrikam.com: see attached");
		assert_non_null(exp);
		run_checker(fx, p2, exp);
		json_decref(exp);
	}
	{
		char *raw = read_all(p3, NULL), *m, *end, mid[128];

		m = strchr(strstr(raw, "Message-ID:"), '<');
		end = strchr(m, '>');
		fmt(mid, sizeof(mid), "%.*s", (int)(end - m + 1), m);
		free(raw);
		exp = json_pack("{s:s, s:s, s:s, s:[s,s], s:I, s:o, s:{}, s:[s,s,s]}",
				"message_id", mid,
				"subject",
				"Chat transcript: alice@contoso.com, bob@contoso.com "
				"2026-11-21T10:00:04.123Z \xE2\x80\x93 2026-11-21T10:00:13.123Z",
				"from", "alice@contoso.com",
				"to", "alice@contoso.com", "bob@contoso.com",
				"date", (json_int_t)date,
				"ids", ids_of(fx, im, 4),
				"attachments",
				"transcript",
				"alice@contoso.com started a conversation with bob@contoso.com",
				"alice@contoso.com: ping\x01pong\x0b!",
				"bob@contoso.com ended the conversation with alice@contoso.com");
		assert_non_null(exp);
		run_checker(fx, p3, exp);
		json_decref(exp);
	}
}

static void test_eml_structure_in_c(void **state)
{
	struct fixture *fx = *state;
	struct adp_env env;
	struct adp_batch b;
	char path[PATH_MAX], *raw, *bnd, boundary[80], delim[96];
	size_t len, parts = 0;

	env_set(&env, fx, "eml", NULL, 0);
	batch_set(&b, fx, "eml", "");
	assert_int_equal(run(&adp_eml_ops, &env, &b), ADP_OK);
	room_file(fx, "eml", "eml", ROOM2, ".eml", path, sizeof(path));
	raw = read_all(path, &len);
	assert_non_null(raw);
	/* Every line ends CRLF and fits 78 octets. */
	for (size_t i = 0, col = 0; i < len; i++) {
		if (raw[i] == '\n') {
			assert_true(i > 0 && raw[i - 1] == '\r');
			col = 0;
		} else if (++col > 79) {
			fail_msg("line longer than 78 at offset %zu", i);
		}
	}
	/* 7-bit headers: jörg is an encoded display name over an ASCII addr-spec. */
	assert_int_equal(strncmp(raw, "From: =?UTF-8?B?", 16), 0);
	assert_non_null(strstr(raw, "?= <j=C3=B6rg@contoso.com>\r\nTo: "));
	assert_non_null(strstr(raw, "\r\nSubject: =?UTF-8?B?"));
	bnd = strstr(raw, "boundary=\"");
	assert_non_null(bnd);
	bnd += 10;
	fmt(boundary, sizeof(boundary), "%.*s", (int)(strchr(bnd, '"') - bnd), bnd);
	fmt(delim, sizeof(delim), "\r\n--%s\r\n", boundary);
	for (char *p = raw; (p = strstr(p, delim)); p++)
		parts++;
	/* transcript, json, and three attachments present within 25 MiB
	 * (résumé, big.bin; corrupt.bin fails its hash). */
	assert_int_equal(parts, 4);
	fmt(delim, sizeof(delim), "\r\n--%s--\r\n", boundary);
	assert_non_null(strstr(raw, delim));
	/* The non-ASCII file name is RFC 2231 encoded. */
	assert_non_null(strstr(raw, "filename*0*=utf-8''r%C3%A9sum%C3%A9%20%C3%BCn%C3%AF.txt"));
	assert_non_null(strstr(raw, "filename=\"big.bin\""));
	free(raw);
}

/* Long and non-ASCII file names survive RFC 2231 continuations; without a
 * file store every attachment is noted, none attached. */
static void test_eml_filenames_and_no_store(void **state)
{
	struct fixture *fx = *state;
	static const char long_name[] =
		"Quarterly \"report\" \xE2\x80\x94 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E "
		"version 2 final FINAL really final (approved by legal) \xF0\x9F\x8E\x89.pdf";
	static const char checker[] =
		"import email, sys\n"
		"from email import policy\n"
		"raw = open(sys.argv[1], 'rb').read()\n"
		"assert all(len(l) <= 78 for l in raw.split(b'\\r\\n')), 'long line'\n"
		"m = email.message_from_bytes(raw, policy=policy.default)\n"
		"want = open(sys.argv[2], encoding='utf-8').read()\n"
		"names = [p.get_filename() for p in m.iter_attachments()]\n"
		"assert names == ['events.json', want], names\n"
		"for p in m.walk():\n"
		"    assert not p.defects, p.defects\n";
	char script[PATH_MAX], want[PATH_MAX], path[PATH_MAX], cmd[3 * PATH_MAX], *raw;
	struct adp_env env;
	struct adp_batch b;

	fx->files[F_Q3].name = long_name;
	env_set(&env, fx, "eml", NULL, 0);
	batch_set(&b, fx, "eml", "");
	assert_int_equal(run(&adp_eml_ops, &env, &b), ADP_OK);
	room_file(fx, "eml", "eml", ROOM1, ".eml", path, sizeof(path));
	raw = read_all(path, NULL);
	assert_non_null(strstr(raw, "filename*1*="));
	free(raw);
	fmt(script, sizeof(script), "%s/names.py", fx->root);
	fmt(want, sizeof(want), "%s/want.txt", fx->root);
	write_file(script, checker, strlen(checker));
	write_file(want, long_name, strlen(long_name));
	fmt(cmd, sizeof(cmd), "python3 '%s' '%s' '%s'", script, path, want);
	assert_int_equal(system(cmd), 0);

	env.file_store = NULL;
	batch_set(&b, fx, "eml", "");
	assert_int_equal(run(&adp_eml_ops, &env, &b), ADP_OK);
	raw = read_all(path, NULL);
	assert_null(strstr(raw, "application/octet-stream"));
	assert_non_null(strstr(raw, "no file store configured"));
	free(raw);
}

static void test_eml_idempotent_and_retry(void **state)
{
	struct fixture *fx = *state;
	char blocker[PATH_MAX], dir[PATH_MAX + 16], path[PATH_MAX], day[PATH_MAX], *a, *c;
	struct adp_option opts[1];
	struct adp_env env;
	struct adp_batch b1, b2;
	size_t la, lc;

	env_set(&env, fx, "eml", NULL, 0);
	batch_set(&b1, fx, "eml", "p");
	assert_int_equal(run(&adp_eml_ops, &env, &b1), ADP_OK);
	room_file(fx, "eml", "eml", ROOM1, ".eml", path, sizeof(path));
	a = read_all(path, &la);
	batch_set(&b2, fx, "eml", "p");
	assert_int_equal(run(&adp_eml_ops, &env, &b2), ADP_OK);
	c = read_all(path, &lc);
	assert_int_equal(la, lc);
	assert_memory_equal(a, c, la);
	assert_string_equal(b1.out_chain, b2.out_chain);
	day_path(fx, "eml", NULL, day, sizeof(day));
	assert_int_equal(count_files(day), 3);
	free(a);
	free(c);

	fmt(blocker, sizeof(blocker), "%s/blocker", fx->root);
	write_file(blocker, "x", 1);
	fmt(dir, sizeof(dir), "%s/eml", blocker);
	opts[0].key = "dir";
	opts[0].value = dir;
	env_set(&env, fx, "eml", opts, 1);
	batch_set(&b1, fx, "eml", "");
	assert_int_equal(run(&adp_eml_ops, &env, &b1), ADP_RETRY);
	assert_non_null(strstr(b1.reason, blocker));
	assert_non_null(strstr(b1.reason, strerror(ENOTDIR)));
	assert_string_equal(b1.out_chain, "");
}

/* A single room: out_path is that file; the empty batch writes nothing. */
static void test_single_room_and_empty_batch(void **state)
{
	struct fixture *fx = *state;
	const struct adp_ops *ops[] = { &adp_xml_ops, &adp_jsonl_ops, &adp_eml_ops };
	struct adp_env env;
	struct adp_batch b;

	for (size_t i = 0; i < 3; i++) {
		env_set(&env, fx, ops[i]->type, NULL, 0);
		batch_set(&b, fx, ops[i]->type, "");
		b.nevents = 2; /* ROOM1 join + post */
		b.last_staging_id = 102;
		assert_int_equal(run(ops[i], &env, &b), ADP_OK);
		assert_true(exists(b.out_path));
		assert_non_null(strstr(b.out_path, "-0000000000000101-0000000000000102"));
		assert_int_equal(strlen(b.out_chain), 64);

		batch_set(&b, fx, ops[i]->type, "keep");
		b.nevents = 0;
		assert_int_equal(run(ops[i], &env, &b), ADP_OK);
		assert_string_equal(b.out_chain, "keep");
	}
	assert_int_equal(count_files(fx->data_dir), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ops_tables, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xml_wellformed_every_id_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xml_type_mapping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xml_time_and_ticks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xml_escaping_unicode_controls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xml_invalid_utf8, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xml_sender, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xml_one_room_per_file_and_manifest, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_xml_details, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xml_redelivery_idempotent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xml_unwritable_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xml_bad_event_fails_blaming_it, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_option_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jsonl_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jsonl_idempotent_and_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eml_parsed_by_python, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eml_structure_in_c, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eml_filenames_and_no_store, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eml_idempotent_and_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_single_room_and_empty_batch, setup, teardown),
	};
	int rc;

	xmlInitParser();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	xmlCleanupParser();
	return rc;
}

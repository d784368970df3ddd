/*
 * test_cfg — conf/cfg.c: built-in defaults, the -D override, the shipped
 * example and regulation fragments, every class of configuration error
 * (each must name file, line and key), adapter options with their types and
 * positions, and cfg_print (secrets masked, output loads back equivalent).
 *
 * Runs with cwd = repository root (conf/chatvault.conf is found from there);
 * every other file is written into a fresh mkdtemp directory per test.
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"
#include "cv_log.h"

struct tctx {
	char dir[256];
	char path[PATH_MAX];     /* last file written */
	char err[CFG_ERRLEN];
};

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int setup(void **state)
{
	struct tctx *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/test_cfg.XXXXXX");
	if (!mkdtemp(t->dir)) {
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct tctx *t = *state;

	nftw(t->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(t);
	return 0;
}

/* Write dir/name (creating no directories) and remember its path. */
static const char *put(struct tctx *t, const char *name, const char *text)
{
	FILE *f;

	snprintf(t->path, sizeof(t->path), "%s/%s", t->dir, name);
	f = fopen(t->path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	return t->path;
}

static struct cfg *load_ok(struct tctx *t, const char *path, const char *override)
{
	struct cfg *cfg = NULL;
	int rc = cfg_load(path, override, &cfg, t->err, sizeof(t->err));

	if (rc != 0)
		fail_msg("cfg_load(%s) failed: %d: %s", path ? path : "NULL", rc, t->err);
	assert_non_null(cfg);
	return cfg;
}

/* Load text as a file; must fail with -EINVAL; returns the error line. */
static const char *load_err(struct tctx *t, const char *text)
{
	struct cfg *cfg = (struct cfg *)0x1;
	const char *path = put(t, "bad.conf", text);
	int rc = cfg_load(path, NULL, &cfg, t->err, sizeof(t->err));

	assert_int_equal(rc, -EINVAL);
	assert_null(cfg);
	assert_int_not_equal(t->err[0], '\0');
	assert_null(strchr(t->err, '\n'));
	return t->err;
}

/* err must start with "<dir>/bad.conf:<line>: <rest>". */
static void assert_err(struct tctx *t, int line, const char *rest)
{
	char want[CFG_ERRLEN + PATH_MAX];

	snprintf(want, sizeof(want), "%s/bad.conf:%d: %s", t->dir, line, rest);
	if (strncmp(t->err, want, strlen(want)) != 0)
		fail_msg("error\n  got:  %s\n  want: %s...", t->err, want);
}

static char *join(const char *a, const char *b)
{
	char *p;

	assert_true(asprintf(&p, "%s/%s", a, b) >= 0);
	return p;
}

/* ------------------------------------------------------------------------ */

static void test_defaults_null_path(void **state)
{
	struct tctx *t = *state;
	struct cfg *c = load_ok(t, NULL, NULL);
	const struct cfg_adapter *a;
	char host[256] = "";

	assert_string_equal(c->source, "(built-in defaults)");
	assert_int_equal(c->nfiles, 0);
	assert_string_equal(c->data_dir, "./var");
	assert_int_equal(c->log_level, CV_LOG_WARN);
	assert_string_equal(c->db.conninfo, "");
	assert_int_equal(c->db.connect_timeout_s, 10);
	assert_int_equal(c->db.retry_max_s, 0);
	assert_int_equal(c->queue.backend, CFG_QUEUE_SPOOL);
	assert_string_equal(c->queue.spool_path, "./var/spool");
	assert_true(c->queue.spool_max_bytes == INT64_C(1073741824));
	assert_string_equal(c->queue.kafka_brokers, "");
	assert_string_equal(c->queue.kafka_topic, "chatvault.events");
	assert_string_equal(c->queue.kafka_group, "chatvault-ingest");
	assert_int_equal(c->queue.nkafka_props, 0);
	assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
	assert_string_equal(c->producer.server, host);
	assert_int_equal(c->producer.batch_max, 1000);
	assert_int_equal(c->producer.linger_ms, 2);
	assert_int_equal(c->producer.busy_timeout_ms, 1000);
	assert_int_equal(c->ingest.batch_size, 5000);
	assert_int_equal(c->ingest.max_wait_ms, 200);
	assert_true(c->ingest.max_event_size == 1048576);
	assert_int_equal(c->deliver.lease_s, 60);
	assert_int_equal(c->deliver.retry_base_ms, 500);
	assert_int_equal(c->deliver.retry_max_ms, 60000);
	assert_string_equal(c->deliver.file_store, "./var/files");
	assert_int_equal(c->retention.nprofiles, 0);
	assert_int_equal(c->retention.schedule_s, 3600);
	assert_int_equal(c->retention.stale_staging_days, 7);

	assert_int_equal(c->nadapters, 2);
	a = cfg_find_adapter(c, "archive");
	assert_non_null(a);
	assert_string_equal(a->type, "archive");
	assert_null(a->path);
	assert_true(a->required);
	assert_int_equal(a->run_interval_s, 10);
	assert_int_equal(a->batch_size, 10000);
	assert_string_equal(a->file, "(built-in)");
	assert_int_equal(a->nopts, 1);
	assert_string_equal(cfg_adapter_opt(a, "dir")->str, "./var/archive");
	assert_int_equal(cfg_adapter_opt(a, "dir")->type, CFG_OPT_STRING);
	assert_string_equal(cfg_adapter_opt(a, "dir")->file, "(built-in)");
	assert_int_equal(cfg_adapter_opt(a, "dir")->line, 0);
	a = cfg_find_adapter(c, "xml");
	assert_non_null(a);
	assert_string_equal(a->type, "xml");
	assert_true(a->required);
	assert_int_equal(a->run_interval_s, 10);
	assert_int_equal(a->batch_size, 10000);
	assert_string_equal(cfg_adapter_opt(a, "dir")->str, "./var/xml");
	cfg_free(c);
}

static void test_override_moves_derived_paths(void **state)
{
	struct tctx *t = *state;
	struct cfg *c;
	const char *p;

	c = load_ok(t, NULL, "/srv/cv/");
	assert_string_equal(c->data_dir, "/srv/cv/");
	assert_string_equal(c->queue.spool_path, "/srv/cv/spool");
	assert_string_equal(c->deliver.file_store, "/srv/cv/files");
	assert_string_equal(cfg_adapter_opt(cfg_find_adapter(c, "archive"), "dir")->str,
			    "/srv/cv/archive");
	assert_string_equal(cfg_adapter_opt(cfg_find_adapter(c, "xml"), "dir")->str, "/srv/cv/xml");
	cfg_free(c);

	/* the file's data_dir, then -D over it; explicit paths stay put */
	p = put(t, "a.conf", "data_dir = \"/data\";\n"
			     "deliver = { file_store = \"/blobs\"; };\n");
	c = load_ok(t, p, NULL);
	assert_string_equal(c->queue.spool_path, "/data/spool");
	assert_string_equal(c->deliver.file_store, "/blobs");
	assert_string_equal(cfg_adapter_opt(cfg_find_adapter(c, "xml"), "dir")->str, "/data/xml");
	cfg_free(c);
	c = load_ok(t, p, "/over");
	assert_string_equal(c->data_dir, "/over");
	assert_string_equal(c->queue.spool_path, "/over/spool");
	assert_string_equal(c->deliver.file_store, "/blobs");
	assert_string_equal(cfg_adapter_opt(cfg_find_adapter(c, "archive"), "dir")->str,
			    "/over/archive");
	cfg_free(c);

	/* an empty -D is a usage error */
	c = NULL;
	assert_int_equal(cfg_load(NULL, "", &c, t->err, sizeof(t->err)), -EINVAL);
	assert_null(c);
	assert_non_null(strstr(t->err, "-D"));
}

static void test_shipped_example_loads(void **state)
{
	struct tctx *t = *state;
	struct cfg *c = load_ok(t, "conf/chatvault.conf", NULL);
	const struct cfg_profile *p;
	size_t l;

	assert_string_equal(c->source, "conf/chatvault.conf");
	assert_int_equal(c->nfiles, 2);
	assert_string_equal(c->files[0], "conf/chatvault.conf");
	l = strlen(c->files[1]);
	assert_true(l > strlen("/regulations/finra-4511.conf"));
	assert_string_equal(c->files[1] + l - strlen("/regulations/finra-4511.conf"),
			    "/regulations/finra-4511.conf");
	assert_string_equal(c->data_dir, "./var");
	assert_int_equal(c->queue.backend, CFG_QUEUE_SPOOL);
	assert_int_equal(c->nadapters, 2);
	assert_string_equal(cfg_adapter_opt(cfg_find_adapter(c, "archive"), "dir")->str,
			    "./var/archive");
	assert_int_equal(c->queue.nkafka_props, 2);
	assert_string_equal(c->queue.kafka_props[0].key, "socket.timeout.ms");
	assert_ptr_equal(c->queue.kafka_props[0].file, c->files[0]);
	assert_int_equal(c->retention.nprofiles, 1);
	p = &c->retention.profiles[0];
	assert_string_equal(p->name, "finra-4511");
	assert_int_equal(p->retention_days, 2192);
	assert_true(p->worm);
	cfg_free(c);

	/* and -D moves its data directory too */
	c = load_ok(t, "conf/chatvault.conf", "/elsewhere");
	assert_string_equal(c->queue.spool_path, "/elsewhere/spool");
	assert_string_equal(cfg_adapter_opt(cfg_find_adapter(c, "xml"), "dir")->str,
			    "/elsewhere/xml");
	cfg_free(c);
}

struct reg_want {
	const char *name;
	int retention_days;
	int extend_days;
	bool worm;
	bool erasure;
	size_t nreq;
};

static const struct reg_want regs[] = {
	{ "finra-4511", 2192, 0, true, false, 1 },
	{ "sec-17a4", 1096, 0, true, false, 1 },
	{ "mifid2", 1827, 2557, false, false, 1 },
	{ "hipaa", 2192, 0, false, false, 1 },
	{ "gdpr", 0, 0, false, true, 0 },
	{ "none", 0, 0, false, false, 0 },
};

static void test_regulation_fragments(void **state)
{
	struct tctx *t = *state;
	char real[PATH_MAX], text[4096];
	char *link = join(t->dir, "regulations");
	size_t o = 0;

	assert_non_null(realpath("conf/regulations", real));
	assert_int_equal(symlink(real, link), 0);
	for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++) {
		const struct reg_want *w = &regs[i];
		struct cfg *c;
		const struct cfg_profile *p;
		char main[1024];

		snprintf(main, sizeof(main),
			 "retention = {\n"
			 "\tprofiles = {\n"
			 "@include \"regulations/%s.conf\"\n"
			 "\t};\n"
			 "};\n", w->name);
		c = load_ok(t, put(t, "main.conf", main), NULL);
		assert_int_equal(c->nfiles, 2);
		assert_int_equal(c->retention.nprofiles, 1);
		p = &c->retention.profiles[0];
		assert_string_equal(p->name, w->name);
		assert_int_equal(p->retention_days, w->retention_days);
		assert_int_equal(p->extend_days, w->extend_days);
		assert_int_equal(p->worm, w->worm);
		assert_int_equal(p->erasure, w->erasure);
		assert_int_equal(p->nrequired_adapters, w->nreq);
		if (w->nreq)
			assert_string_equal(p->required_adapters[0], "archive");
		assert_int_equal(p->nrooms, 0);
		assert_int_equal(p->nusers, 0);
		cfg_free(c);
		o += (size_t)snprintf(text + o, sizeof(text) - o, "@include \"regulations/%s.conf\"\n",
				      w->name);
	}

	/* all six at once (the longest-wins decision is retention's) */
	{
		char main[8192];
		struct cfg *c;

		snprintf(main, sizeof(main), "retention = { profiles = {\n%s}; };\n", text);
		c = load_ok(t, put(t, "all.conf", main), NULL);
		assert_int_equal(c->nfiles, 7);
		assert_int_equal(c->retention.nprofiles, 6);
		cfg_free(c);
	}
	free(link);
}

static void test_error_inside_fragment_names_fragment(void **state)
{
	struct tctx *t = *state;
	char *sub = join(t->dir, "frag");
	char want[PATH_MAX + 128];
	const char *p;
	struct cfg *c = NULL;

	assert_int_equal(mkdir(sub, 0700), 0);
	put(t, "frag/mine.conf", "# mine\nmine = {\n\tretention_dayz = 5;\n};\n");
	p = put(t, "main.conf", "retention = { profiles = {\n@include \"frag/mine.conf\"\n}; };\n");
	assert_int_equal(cfg_load(p, NULL, &c, t->err, sizeof(t->err)), -EINVAL);
	snprintf(want, sizeof(want), "%s/frag/mine.conf:3: retention.profiles.mine.retention_dayz: "
		 "unknown key", t->dir);
	assert_int_equal(strncmp(t->err, want, strlen(want)), 0);

	/* a syntax error inside the fragment names the fragment too */
	put(t, "frag/mine.conf", "mine = {\n\tretention_days = ;\n};\n");
	assert_int_equal(cfg_load(p, NULL, &c, t->err, sizeof(t->err)), -EINVAL);
	snprintf(want, sizeof(want), "%s/frag/mine.conf:2: ", t->dir);
	assert_int_equal(strncmp(t->err, want, strlen(want)), 0);
	free(sub);
}

static void test_unknown_keys(void **state)
{
	struct tctx *t = *state;

	load_err(t, "ingest = { batch_size = 10; };\nqueue = {\n\tspool = { sizee = 1; };\n};\n");
	assert_err(t, 3, "queue.spool.sizee: unknown key");

	load_err(t, "data_dir = \"/x\";\n\nstorage = { a = 1; };\n");
	assert_err(t, 3, "storage: unknown key");

	load_err(t, "adapters = (\n { name = \"a\"; type = \"xml\";\n   dirr = \"/x\"; }\n);\n");
	assert_err(t, 3, "adapters[0].dirr: unknown key");

	load_err(t, "retention = { profiles = {\n p = { keep = 1; }; }; };\n");
	assert_err(t, 2, "retention.profiles.p.keep: unknown key");

	/* but anything goes inside options: the adapter validates those */
	{
		const char *p = put(t, "ok.conf", "adapters = ( { name = \"a\"; type = \"jsonl\";\n"
				    " options = { anything = 1; at_all = \"x\"; }; } );\n");
		struct cfg *c = load_ok(t, p, NULL);

		assert_int_equal(c->adapters[0].nopts, 2);
		cfg_free(c);
	}
}

static void test_wrong_type(void **state)
{
	struct tctx *t = *state;

	load_err(t, "ingest = {\n\tbatch_size = \"many\";\n};\n");
	assert_err(t, 2, "ingest.batch_size: must be an integer");
	load_err(t, "ingest = {\n\tbatch_size = 1.5;\n};\n");
	assert_err(t, 2, "ingest.batch_size: must be an integer");
	load_err(t, "data_dir = 5;\n");
	assert_err(t, 1, "data_dir: must be a string");
	load_err(t, "adapters = ( { name = \"a\"; type = \"xml\";\nrequired = 1; } );\n");
	assert_err(t, 2, "adapters[0].required: must be a boolean");
	load_err(t, "\ndatabase = \"host=x\";\n");
	assert_err(t, 2, "database: must be a group");
	load_err(t, "adapters = { name = \"a\"; };\n");
	assert_err(t, 1, "adapters: must be a list");
	load_err(t, "adapters = ( { name = \"a\"; type = \"xml\";\n options = { d = [1, 2]; }; } );\n");
	assert_err(t, 2, "adapters[0].options.d: must be a string, integer, boolean or float");
	load_err(t, "retention = { profiles = { p = {\n rooms = \"x\"; }; }; };\n");
	assert_err(t, 2, "retention.profiles.p.rooms: must be an array of strings");
}

static void test_out_of_range(void **state)
{
	struct tctx *t = *state;
	struct cfg *c;

	load_err(t, "# c\n\ningest = {\n\tbatch_size = 0;\n};\n");
	assert_err(t, 4, "ingest.batch_size: must be 1..1000000 (got 0)");
	assert_string_equal(strstr(t->err, ": ingest"), ": ingest.batch_size: must be 1..1000000 (got 0)");
	load_err(t, "database = { connect_timeout = 3601; };\n");
	assert_err(t, 1, "database.connect_timeout: must be 1..3600 (got 3601)");
	load_err(t, "queue = { spool = { max_size = 4095; }; };\n");
	assert_err(t, 1, "queue.spool.max_size: must be 4096..1099511627776 (got 4095)");
	load_err(t, "queue = { spool = { max_size = 1099511627777L; }; };\n");
	assert_err(t, 1, "queue.spool.max_size: must be 4096..1099511627776 (got 1099511627777)");
	load_err(t, "ingest = { max_event_size = 255; };\n");
	assert_err(t, 1, "ingest.max_event_size: must be 256..67108864 (got 255)");
	load_err(t, "deliver = { lease = 4; };\n");
	assert_err(t, 1, "deliver.lease: must be 5..3600 (got 4)");
	load_err(t, "retention = { schedule = 59; };\n");
	assert_err(t, 1, "retention.schedule: must be 60..604800 (got 59)");
	load_err(t, "adapters = ( { name = \"a\"; type = \"xml\";\n run_interval = 0; } );\n");
	assert_err(t, 2, "adapters[0].run_interval: must be 1..86400 (got 0)");
	load_err(t, "retention = { profiles = { p = {\n retention_days = 36501; }; }; };\n");
	assert_err(t, 2, "retention.profiles.p.retention_days: must be 0..36500 (got 36501)");

	/* int64 literals are accepted where they fit */
	c = load_ok(t, put(t, "ok.conf", "queue = { spool = { max_size = 1099511627776L; }; };\n"
				       "ingest = { batch_size = 7L; };\n"), NULL);
	assert_true(c->queue.spool_max_bytes == (INT64_C(1) << 40));
	assert_int_equal(c->ingest.batch_size, 7);
	cfg_free(c);
}

static void test_truncated_int_literal(void **state)
{
	struct tctx *t = *state;

	/* libconfig 1.5 reads this as 705032704: refused, not silently used */
	load_err(t, "queue = {\n\tspool = {\n\t\tmax_size = 5000000000;\n\t};\n};\n");
	assert_err(t, 3, "queue.spool.max_size: integer 5000000000 does not fit in 32 bits; "
		   "write 5000000000L");
	/* numbers in comments and strings are not literals */
	{
		struct cfg *c = load_ok(t, put(t, "ok.conf", "# max_size = 5000000000;\n"
					       "data_dir = \"/v/5000000000\"; /* 99999999999 */\n"), NULL);

		assert_string_equal(c->data_dir, "/v/5000000000");
		cfg_free(c);
	}
}

static void test_retry_bounds(void **state)
{
	struct tctx *t = *state;

	load_err(t, "deliver = {\n\tretry_base_ms = 1000;\n\tretry_max_ms = 999;\n};\n");
	assert_err(t, 3, "deliver.retry_max_ms: must be 1000..3600000 (got 999)");
	load_err(t, "deliver = {\n\tretry_base_ms = 70000;\n};\n");
	assert_err(t, 2, "deliver.retry_base_ms: must not exceed retry_max_ms (60000)");
	load_err(t, "deliver = { retry_max_ms = 3600001; };\n");
	assert_err(t, 1, "deliver.retry_max_ms: must be 500..3600000 (got 3600001)");
}

static void test_missing_include(void **state)
{
	struct tctx *t = *state;
	char want[PATH_MAX + 64];

	load_err(t, "retention = {\n\tprofiles = {\n@include \"regulations/nope.conf\"\n\t};\n};\n");
	assert_err(t, 3, "@include \"regulations/nope.conf\": cannot open include file");
	snprintf(want, sizeof(want), "(%s/regulations/nope.conf)", t->dir);
	assert_non_null(strstr(t->err, want));
}

static void test_parse_error(void **state)
{
	struct tctx *t = *state;

	load_err(t, "data_dir = \"/x\";\nlog_level = ;\n");
	assert_err(t, 2, "syntax error");
	load_err(t, "data_dir = \"/x\";\n\nproducer = {\n\tserver = = \"x\";\n};\n");
	assert_err(t, 4, "syntax error");
	load_err(t, "ingest = {\n\tbatch_size = 1;\n");
	assert_err(t, 3, "syntax error");
	load_err(t, "ingest = { batch_size = 1; batch_size = 2; };\n");
	assert_err(t, 1, "duplicate setting name");
}

static void test_missing_file(void **state)
{
	struct tctx *t = *state;
	struct cfg *c = NULL;
	char *p = join(t->dir, "absent.conf");
	char want[PATH_MAX + 64];

	assert_int_equal(cfg_load(p, NULL, &c, t->err, sizeof(t->err)), -EINVAL);
	snprintf(want, sizeof(want), "%s: cannot read: No such file or directory", p);
	assert_string_equal(t->err, want);
	assert_int_equal(cfg_load(t->dir, NULL, &c, t->err, sizeof(t->err)), -EINVAL);
	assert_non_null(strstr(t->err, "Is a directory"));
	/* err may be NULL */
	assert_int_equal(cfg_load(p, NULL, &c, NULL, 0), -EINVAL);
	assert_null(c);
	free(p);
}

static void test_adapter_errors(void **state)
{
	struct tctx *t = *state;

	load_err(t, "adapters = (\n\t{ name = \"a\"; type = \"xml\"; },\n"
		    "\t{ name = \"b\"; type = \"jsonl\"; },\n\t{ name = \"a\"; type = \"eml\"; }\n);\n");
	assert_err(t, 4, "adapters[2].name: duplicate adapter name \"a\"");
	assert_non_null(strstr(t->err, "bad.conf:2)"));

	load_err(t, "adapters = (\n\t{ name = \"Arch ive\"; type = \"xml\"; }\n);\n");
	assert_err(t, 2, "adapters[0].name: must be 1-32 of [a-z0-9_-]");
	load_err(t, "adapters = ( { name = \"abcdefghijabcdefghijabcdefghijabc\"; type = \"xml\"; } );\n");
	assert_err(t, 1, "adapters[0].name: must be 1-32");
	load_err(t, "adapters = (\n\t{ type = \"xml\"; }\n);\n");
	assert_err(t, 2, "adapters[0].name: missing");

	load_err(t, "adapters = (\n\t{ name = \"v\";\n\t  type = \"so\"; }\n);\n");
	assert_err(t, 2, "adapters[0].path: required with type = \"so\"");
	load_err(t, "adapters = (\n\t{ name = \"v\"; type = \"xml\";\n\t  path = \"/x.so\"; }\n);\n");
	assert_err(t, 3, "adapters[0].path: only valid with type = \"so\"");
	load_err(t, "adapters = ( { name = \"v\";\n type = \"pdf\"; } );\n");
	assert_err(t, 2, "adapters[0].type: must be archive, xml, jsonl, eml or so (got \"pdf\")");
	load_err(t, "adapters = ();\n");
	assert_err(t, 1, "adapters: must name at least one adapter");
	load_err(t, "adapters = ( { name = \"v\"; type = \"xml\"; required = false; } );\n");
	assert_err(t, 1, "adapters: at least one adapter must have required = true");
}

static void test_queue_errors(void **state)
{
	struct tctx *t = *state;
	struct cfg *c;

	load_err(t, "queue = {\n\tbackend = \"kafka\";\n};\n");
	assert_err(t, 2, "queue.kafka.brokers: required with backend = \"kafka\"");
	load_err(t, "queue = {\n\tbackend = \"kafka\";\n\tkafka = {\n\t\tbrokers = \"\";\n\t};\n};\n");
	assert_err(t, 4, "queue.kafka.brokers: required with backend = \"kafka\"");
	load_err(t, "queue = {\n\tbackend = \"rabbit\";\n};\n");
	assert_err(t, 2, "queue.backend: must be \"spool\" or \"kafka\" (got \"rabbit\")");
	load_err(t, "queue = { kafka = {\n properties = { a = 1; }; }; };\n");
	assert_err(t, 2, "queue.kafka.properties: must be a list of (\"name\", value) pairs");
	load_err(t, "queue = { kafka = { properties = (\n (\"a.b\", 1),\n (\"a.b\", 2)); }; };\n");
	assert_err(t, 3, "queue.kafka.properties[1]: duplicate property \"a.b\" (first at line 2)");
	load_err(t, "queue = { kafka = { properties = (\n (\"group.id\", \"x\")); }; };\n");
	assert_err(t, 2, "queue.kafka.properties[0]: \"group.id\" is set from");
	load_err(t, "queue = { kafka = { properties = (\n (\"a.b\")); }; };\n");
	assert_err(t, 2, "queue.kafka.properties[0]: must be a (\"name\", value) pair");
	load_err(t, "queue = { kafka = {\n topic = \"\"; }; };\n");
	assert_err(t, 2, "queue.kafka.topic: must not be empty");

	c = load_ok(t, put(t, "k.conf",
			   "queue = {\n"
			   "\tbackend = \"kafka\";\n"
			   "\tkafka = {\n"
			   "\t\tbrokers = \"b1:9092,b2:9092\";\n"
			   "\t\ttopic = \"t\";\n"
			   "\t\tproperties = (\n"
			   "\t\t\t(\"socket.timeout.ms\", 3000),\n"
			   "\t\t\t(\"enable.ssl.certificate.verification\", false),\n"
			   "\t\t\t[\"client.id\", \"cv\"]\n"
			   "\t\t);\n"
			   "\t};\n"
			   "};\n"), NULL);
	assert_int_equal(c->queue.backend, CFG_QUEUE_KAFKA);
	assert_string_equal(c->queue.kafka_brokers, "b1:9092,b2:9092");
	assert_string_equal(c->queue.kafka_topic, "t");
	assert_string_equal(c->queue.kafka_group, "chatvault-ingest");
	assert_int_equal(c->queue.nkafka_props, 3);
	assert_string_equal(c->queue.kafka_props[0].key, "socket.timeout.ms");
	assert_int_equal(c->queue.kafka_props[0].type, CFG_OPT_INT);
	assert_string_equal(c->queue.kafka_props[0].str, "3000");
	assert_int_equal(c->queue.kafka_props[0].line, 7);
	assert_ptr_equal(c->queue.kafka_props[0].file, c->files[0]);
	assert_int_equal(c->queue.kafka_props[1].type, CFG_OPT_BOOL);
	assert_string_equal(c->queue.kafka_props[1].str, "false");
	assert_string_equal(c->queue.kafka_props[2].str, "cv");
	cfg_free(c);
}

static void test_log_level(void **state)
{
	struct tctx *t = *state;
	struct cfg *c;

	load_err(t, "\nlog_level = \"verbose\";\n");
	assert_err(t, 2, "log_level: must be error, warn, info or debug (got \"verbose\")");
	c = load_ok(t, put(t, "ok.conf", "log_level = \"debug\";\n"), NULL);
	assert_int_equal(c->log_level, CV_LOG_DEBUG);
	cfg_free(c);
}

static void test_metrics_listen(void **state)
{
	struct tctx *t = *state;
	struct cfg *c;

	load_err(t, "metrics = {\n\tlisten = \"\";\n};\n");
	assert_err(t, 2, "metrics.listen: must not be empty");
	load_err(t, "metrics = { listen = \"127.0.0.1:9187\";\n port = 1; };\n");
	assert_err(t, 2, "metrics.port: unknown key");
	c = load_ok(t, put(t, "ok.conf", "metrics = { listen = \"[::1]:9187\"; };\n"), NULL);
	assert_string_equal(c->metrics_listen, "[::1]:9187");
	cfg_free(c);
	c = load_ok(t, put(t, "ok2.conf", "log_level = \"info\";\n"), NULL);
	assert_null(c->metrics_listen);
	cfg_free(c);
}

static void test_profile_checks(void **state)
{
	struct tctx *t = *state;

	load_err(t, "retention = { profiles = { p = {\n retention_days = 100;\n extend_days = 99; }; }; };\n");
	assert_err(t, 3, "retention.profiles.p.extend_days: must be 0 or 100..36500 (got 99)");
	load_err(t, "retention = { profiles = { p = {\n required_adapters = [ \"vault\" ]; }; }; };\n");
	assert_err(t, 2, "retention.profiles.p.required_adapters: adapter \"vault\" is not configured");
	load_err(t, "adapters = ( { name = \"archive\"; type = \"archive\"; },\n"
		    " { name = \"x\"; type = \"xml\"; required = false; } );\n"
		    "retention = { profiles = { p = {\n required_adapters = [ \"x\" ]; }; }; };\n");
	assert_err(t, 4, "retention.profiles.p.required_adapters: adapter \"x\"");
	assert_non_null(strstr(t->err, "must have required = true"));
	load_err(t, "retention = { profiles = { p = {\n users = [ \"\" ]; }; }; };\n");
	assert_err(t, 2, "retention.profiles.p.users: element 0 must not be empty");
}

static void test_adapter_options_typed_with_lines(void **state)
{
	struct tctx *t = *state;
	const struct cfg_adapter *a;
	const struct cfg_opt *o;
	struct cfg *c;

	c = load_ok(t, put(t, "o.conf",
			   "adapters = (\n"                                   /* 1 */
			   "\t{\n"                                            /* 2 */
			   "\t\tname = \"vendor\";\n"                         /* 3 */
			   "\t\ttype = \"so\";\n"                             /* 4 */
			   "\t\tpath = \"/usr/lib/x.so\";\n"                  /* 5 */
			   "\t\trun_interval = 30;\n"                         /* 6 */
			   "\t\tbatch_size = 200;\n"                          /* 7 */
			   "\t\toptions = {\n"                                /* 8 */
			   "\t\t\tendpoint = \"https://a.example/\";\n"       /* 9 */
			   "\t\t\tlevel = 19;\n"                              /* 10 */
			   "\t\t\tmax_bytes = 8589934592L;\n"                 /* 11 */
			   "\t\t\tverify = true;\n"                           /* 12 */
			   "\t\t\tratio = 0.25;\n"                            /* 13 */
			   "\t\t};\n"
			   "\t},\n"
			   "\t{ name = \"arch\"; type = \"archive\"; required = false; }\n"   /* 16 */
			   ");\n"), "/dd");
	assert_int_equal(c->nadapters, 2);
	a = cfg_find_adapter(c, "vendor");
	assert_non_null(a);
	assert_ptr_equal(a, &c->adapters[0]);
	assert_string_equal(a->path, "/usr/lib/x.so");
	assert_true(a->required);
	assert_int_equal(a->run_interval_s, 30);
	assert_int_equal(a->batch_size, 200);
	assert_ptr_equal(a->file, c->files[0]);
	assert_int_equal(a->line, 2);
	assert_int_equal(a->nopts, 5);

	o = cfg_adapter_opt(a, "endpoint");
	assert_int_equal(o->type, CFG_OPT_STRING);
	assert_string_equal(o->str, "https://a.example/");
	assert_int_equal(o->line, 9);
	assert_ptr_equal(o->file, c->files[0]);
	o = cfg_adapter_opt(a, "level");
	assert_int_equal(o->type, CFG_OPT_INT);
	assert_true(o->i == 19);
	assert_string_equal(o->str, "19");
	assert_int_equal(o->line, 10);
	o = cfg_adapter_opt(a, "max_bytes");
	assert_int_equal(o->type, CFG_OPT_INT);
	assert_true(o->i == INT64_C(8589934592));
	assert_string_equal(o->str, "8589934592");
	o = cfg_adapter_opt(a, "verify");
	assert_int_equal(o->type, CFG_OPT_BOOL);
	assert_true(o->i == 1);
	assert_string_equal(o->str, "true");
	assert_int_equal(o->line, 12);
	o = cfg_adapter_opt(a, "ratio");
	assert_int_equal(o->type, CFG_OPT_FLOAT);
	assert_true(o->f == 0.25);
	assert_string_equal(o->str, "0.25");
	assert_null(cfg_adapter_opt(a, "dir"));   /* no default dir for "so" */
	assert_null(cfg_adapter_opt(a, "nope"));

	/* a configured archive adapter without dir gets <data_dir>/<name> */
	a = cfg_find_adapter(c, "arch");
	assert_false(a->required);
	assert_int_equal(a->line, 16);
	o = cfg_adapter_opt(a, "dir");
	assert_string_equal(o->str, "/dd/arch");
	assert_string_equal(o->file, "(built-in)");
	/* the list replaced the defaults */
	assert_null(cfg_find_adapter(c, "xml"));
	assert_null(cfg_find_adapter(c, "archive"));
	cfg_free(c);
}

/* Two configurations are the same effective configuration. */
static void assert_opts_equal(const struct cfg_opt *a, size_t na, const struct cfg_opt *b, size_t nb)
{
	assert_int_equal(na, nb);
	for (size_t i = 0; i < na; i++) {
		assert_string_equal(a[i].key, b[i].key);
		assert_int_equal(a[i].type, b[i].type);
		assert_string_equal(a[i].str, b[i].str);
		assert_true(a[i].i == b[i].i);
		assert_true(a[i].f == b[i].f);
	}
}

static void assert_strv_equal(char *const *a, size_t na, char *const *b, size_t nb)
{
	assert_int_equal(na, nb);
	for (size_t i = 0; i < na; i++)
		assert_string_equal(a[i], b[i]);
}

static void assert_cfg_equivalent(const struct cfg *a, const struct cfg *b, bool same_conninfo)
{
	assert_string_equal(a->data_dir, b->data_dir);
	assert_int_equal(a->log_level, b->log_level);
	if (same_conninfo)
		assert_string_equal(a->db.conninfo, b->db.conninfo);
	assert_int_equal(a->db.connect_timeout_s, b->db.connect_timeout_s);
	assert_int_equal(a->db.retry_max_s, b->db.retry_max_s);
	assert_int_equal(a->queue.backend, b->queue.backend);
	assert_string_equal(a->queue.spool_path, b->queue.spool_path);
	assert_true(a->queue.spool_max_bytes == b->queue.spool_max_bytes);
	assert_string_equal(a->queue.kafka_brokers, b->queue.kafka_brokers);
	assert_string_equal(a->queue.kafka_topic, b->queue.kafka_topic);
	assert_string_equal(a->queue.kafka_group, b->queue.kafka_group);
	assert_string_equal(a->producer.server, b->producer.server);
	assert_int_equal(a->producer.batch_max, b->producer.batch_max);
	assert_int_equal(a->producer.linger_ms, b->producer.linger_ms);
	assert_int_equal(a->producer.busy_timeout_ms, b->producer.busy_timeout_ms);
	assert_int_equal(a->ingest.batch_size, b->ingest.batch_size);
	assert_int_equal(a->ingest.max_wait_ms, b->ingest.max_wait_ms);
	assert_true(a->ingest.max_event_size == b->ingest.max_event_size);
	assert_int_equal(a->deliver.lease_s, b->deliver.lease_s);
	assert_int_equal(a->deliver.retry_base_ms, b->deliver.retry_base_ms);
	assert_int_equal(a->deliver.retry_max_ms, b->deliver.retry_max_ms);
	assert_string_equal(a->deliver.file_store, b->deliver.file_store);
	assert_int_equal(a->nadapters, b->nadapters);
	for (size_t i = 0; i < a->nadapters; i++) {
		const struct cfg_adapter *x = &a->adapters[i], *y = &b->adapters[i];

		assert_string_equal(x->name, y->name);
		assert_string_equal(x->type, y->type);
		assert_int_equal(x->path == NULL, y->path == NULL);
		if (x->path)
			assert_string_equal(x->path, y->path);
		assert_int_equal(x->required, y->required);
		assert_int_equal(x->run_interval_s, y->run_interval_s);
		assert_int_equal(x->batch_size, y->batch_size);
		assert_opts_equal(x->opts, x->nopts, y->opts, y->nopts);
	}
	assert_int_equal(a->retention.schedule_s, b->retention.schedule_s);
	assert_int_equal(a->retention.stale_staging_days, b->retention.stale_staging_days);
	assert_int_equal(a->retention.nprofiles, b->retention.nprofiles);
	for (size_t i = 0; i < a->retention.nprofiles; i++) {
		const struct cfg_profile *x = &a->retention.profiles[i], *y = &b->retention.profiles[i];

		assert_string_equal(x->name, y->name);
		assert_int_equal(x->retention_days, y->retention_days);
		assert_int_equal(x->extend_days, y->extend_days);
		assert_int_equal(x->worm, y->worm);
		assert_int_equal(x->erasure, y->erasure);
		assert_strv_equal(x->required_adapters, x->nrequired_adapters, y->required_adapters,
				  y->nrequired_adapters);
		assert_strv_equal(x->rooms, x->nrooms, y->rooms, y->nrooms);
		assert_strv_equal(x->users, x->nusers, y->users, y->nusers);
	}
}

static char *print_to_string(const struct cfg *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	cfg_print(c, f);
	assert_int_equal(fclose(f), 0);
	assert_non_null(buf);
	return buf;
}

static void test_print_masks_and_round_trips(void **state)
{
	struct tctx *t = *state;
	struct cfg *c, *back;
	char *out;

	c = load_ok(t, put(t, "s.conf",
			   "data_dir = \"/srv/cv\";\n"
			   "log_level = \"info\";\n"
			   "database = { conninfo = \"host=db user=cv password=Sup3rS3cret dbname=cv\";\n"
			   "             connect_timeout = 5; retry_max = 600; };\n"
			   "queue = { backend = \"kafka\";\n"
			   "  spool = { max_size = 8589934592L; };\n"
			   "  kafka = { brokers = \"k:9092\"; group = \"g\";\n"
			   "    properties = ( (\"sasl.password\", \"KafkaS3cret\"),\n"
			   "                   (\"ssl.key.pem\", \"PemS3cret\"),\n"
			   "                   (\"socket.timeout.ms\", 3000),\n"
			   "                   (\"x.ratio\", 1.5) ); }; };\n"
			   "producer = { server = \"chat01\"; batch_max = 10; linger_ms = 0;"
			   " busy_timeout_ms = 50; };\n"
			   "ingest = { batch_size = 9; max_wait_ms = 1; max_event_size = 4096; };\n"
			   "deliver = { lease = 30; retry_base_ms = 10; retry_max_ms = 20;"
			   " file_store = \"/blobs\"; };\n"
			   "adapters = (\n"
			   "  { name = \"archive\"; type = \"archive\"; batch_size = 5;\n"
			   "    options = { dir = \"/a \\\"q\\\" \\\\ b\\tc\"; zstd_level = 3; big = 5000000000L;"
			   " f = 2.0; on = false; api_secret = \"OptS3cret\"; }; },\n"
			   "  { name = \"so1\"; type = \"so\"; path = \"/p/x.so\"; required = false;"
			   " run_interval = 99; }\n"
			   ");\n"
			   "retention = { schedule = 120; stale_staging_days = 3;\n"
			   "  profiles = { custom-1 = { retention_days = 10; extend_days = 20; worm = true;\n"
			   "    erasure = true; required_adapters = [\"archive\"];\n"
			   "    rooms = [\"ma-chan://contoso.com/\", \"ma-chan://x/\"]; users = [\"sip:a@b\"]; }; }; };\n"),
		    NULL);
	out = print_to_string(c);
	assert_null(strstr(out, "Sup3rS3cret"));
	assert_null(strstr(out, "KafkaS3cret"));
	assert_null(strstr(out, "PemS3cret"));
	assert_null(strstr(out, "OptS3cret"));
	assert_non_null(strstr(out, "password=****"));
	assert_non_null(strstr(out, "(\"sasl.password\", \"****\")"));
	assert_non_null(strstr(out, "(\"socket.timeout.ms\", 3000)"));

	back = load_ok(t, put(t, "printed.conf", out), NULL);
	assert_string_equal(back->db.conninfo, "host=db user=cv password=**** dbname=cv");
	/* masked values differ by design; blank them out and compare the rest */
	assert_string_equal(back->queue.kafka_props[0].str, "****");
	assert_string_equal(back->queue.kafka_props[1].str, "****");
	free(c->queue.kafka_props[0].str);
	free(c->queue.kafka_props[1].str);
	c->queue.kafka_props[0].str = strdup("****");
	c->queue.kafka_props[1].str = strdup("****");
	assert_string_equal(cfg_adapter_opt(&back->adapters[0], "api_secret")->str, "****");
	free(c->adapters[0].opts[5].str);
	c->adapters[0].opts[5].str = strdup("****");
	assert_cfg_equivalent(c, back, false);
	assert_string_equal(cfg_adapter_opt(&back->adapters[0], "dir")->str, "/a \"q\" \\ b\tc");
	cfg_free(back);
	free(out);
	cfg_free(c);

	/* no secrets: print → load is the identity, also for defaults and the example */
	{
		const char *srcs[] = { NULL, "conf/chatvault.conf" };

		for (size_t i = 0; i < 2; i++) {
			c = load_ok(t, srcs[i], "/d");
			out = print_to_string(c);
			back = load_ok(t, put(t, "printed.conf", out), NULL);
			assert_cfg_equivalent(c, back, true);
			cfg_free(back);
			free(out);
			cfg_free(c);
		}
	}
}

static void test_free_null_and_lookups(void **state)
{
	struct tctx *t = *state;
	struct cfg *c = load_ok(t, NULL, NULL);

	cfg_free(NULL);
	cfg_print(NULL, stdout);
	assert_null(cfg_find_adapter(NULL, "archive"));
	assert_null(cfg_find_adapter(c, NULL));
	assert_null(cfg_find_adapter(c, "nope"));
	assert_null(cfg_adapter_opt(NULL, "dir"));
	assert_null(cfg_adapter_opt(&c->adapters[0], NULL));
	assert_int_equal(cfg_load(NULL, NULL, NULL, t->err, sizeof(t->err)), -EINVAL);
	cfg_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults_null_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_override_moves_derived_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shipped_example_loads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_regulation_fragments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_inside_fragment_names_fragment, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unknown_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_type, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_int_literal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_include, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adapter_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_level, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_listen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_profile_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adapter_options_typed_with_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_print_masks_and_round_trips, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_null_and_lookups, setup, teardown),
	};

	return cmocka_run_group_tests_name("cfg", tests, NULL, NULL);
}

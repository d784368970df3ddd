/*
 * test_archive — cmocka tests for the `archive` adapter (adapters/archive.c)
 * and the bundle reader/verifier (adapters/bundle.c).
 *
 * GNU tar is the independent oracle for the bundle format (design.md §2
 * says a bundle must read with plain `tar --zstd -xf`); libarchive is used
 * only to re-pack tampered copies.  Every test works in its own mkdtemp
 * directory.  Written to pass as root too: unwritable targets are made
 * with a path under a regular file and a directory squatting on the
 * temporary name, which no privilege bypasses.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>
#include <jansson.h>

#include "builtin.h"
#include "bundle.h"
#include "cv_log.h"
#include "cv_time.h"
#include "cv_util.h"

#define NEV 8
#define BASE_TS INT64_C(1709251190123) /* 2024-02-29T23:59:50.123Z */

struct fx {
	char root[PATH_MAX];
	char store[PATH_MAX];
	char data[PATH_MAX];
	char present_sha[CV_SHA256_HEX];   /* in the store, content matches */
	char missing_sha[CV_SHA256_HEX];   /* not in the store */
	char bad_sha[CV_SHA256_HEX];       /* in the store, content does not match */
	struct adp_file files_present[1];
	struct adp_file files_two[2];
	struct adp_file files_bad[1];
	struct adp_event ev[NEV];
	char *json[NEV];
	char ts[NEV][CV_TIME_BUFSZ];
	struct cv_buf expect_jsonl;
	void *st;
};

/* --- helpers --------------------------------------------------------------- */

/* snprintf that fails the test on truncation (test paths are short). */
static void pathf(char *out, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void pathf(char *out, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, len, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < len);
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(cv_write_all(fd, data, len), 0);
	assert_int_equal(close(fd), 0);
}

static void read_file(const char *path, struct cv_buf *out)
{
	char buf[65536];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	cv_buf_reset(out);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		assert_int_equal(cv_buf_append(out, buf, (size_t)n), 0);
	assert_int_equal(n, 0);
	close(fd);
}

/* Run a shell command and capture its stdout; returns its exit status. */
static int run(struct cv_buf *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int run(struct cv_buf *out, const char *fmt, ...)
{
	char cmd[PATH_MAX * 2], buf[4096];
	va_list ap;
	FILE *p;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	p = popen(cmd, "r");
	assert_non_null(p);
	cv_buf_reset(out);
	while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
		assert_int_equal(cv_buf_append(out, buf, n), 0);
	return pclose(p);
}

static json_t *tar_manifest(const char *bundle)
{
	struct cv_buf out = { 0 };
	json_error_t jerr;
	json_t *m;

	assert_int_equal(run(&out, "tar --zstd -xOf '%s' manifest.json", bundle), 0);
	m = json_loadb(out.data, out.len, 0, &jerr);
	assert_non_null(m);
	cv_buf_free(&out);
	return m;
}

static void open_adapter(struct fx *f, const struct adp_option *opts, size_t nopts)
{
	struct adp_env env = {
		.name = "arc1", .data_dir = f->data, .file_store = f->store,
		.opts = opts, .nopts = nopts,
	};
	char err[256] = "";

	assert_int_equal(adp_archive_ops.init(&env, &f->st, err, sizeof(err)), 0);
	assert_non_null(f->st);
}

static int fx_setup(void **state)
{
	static const char present[] = "quarterly figures \xe2\x82\xac 1.2M\n";
	static const char bad[] = "this is not what the name promises\n";
	static const char *const rooms[] = {
		"ma-chan://contoso.com/5c1d-trading", "ma-chan://contoso.com/\xc3\xa9quipe",
		"ma-chan://contoso.com/5c1d-trading",
	};
	static const char *const users[] = {
		"sip:alice@contoso.com", "sip:bob@contoso.com", "sip:\xe5\xbc\xa0\xe4\xbc\x9f@contoso.com",
	};
	static const char *const types[] = {
		"chat.post", "chat.file.upload", "im.message", "chat.join",
	};
	struct fx *f = calloc(1, sizeof(*f));
	char path[PATH_MAX];

	assert_non_null(f);
	pathf(f->root, sizeof(f->root), "/tmp/test_archive.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	pathf(f->store, sizeof(f->store), "%s/store", f->root);
	pathf(f->data, sizeof(f->data), "%s/var", f->root);
	assert_int_equal(mkdir(f->store, 0755), 0);
	assert_int_equal(mkdir(f->data, 0755), 0);

	cv_sha256_hex(present, strlen(present), f->present_sha);
	pathf(path, sizeof(path), "%s/%s", f->store, f->present_sha);
	write_file(path, present, strlen(present));
	cv_sha256_hex("gone", 4, f->missing_sha);
	cv_sha256_hex("expected", 8, f->bad_sha);
	pathf(path, sizeof(path), "%s/%s", f->store, f->bad_sha);
	write_file(path, bad, strlen(bad));

	f->files_present[0] = (struct adp_file){ "q3.pdf", (int64_t)strlen(present),
						 f->present_sha };
	f->files_two[0] = (struct adp_file){ "q3-copy.pdf", (int64_t)strlen(present),
					     f->present_sha };
	f->files_two[1] = (struct adp_file){ "lost.png", 99, f->missing_sha };
	f->files_bad[0] = (struct adp_file){ "forged.txt", 8, f->bad_sha };

	for (size_t i = 0; i < NEV; i++) {
		struct adp_event *e = &f->ev[i];
		const char *type = types[i % 4];
		int n;

		e->staging_id = (int64_t)(i < 5 ? 100 + i : 200 + i); /* a gap: 2 ranges */
		/* Not monotonic in ts: min/max come from the values. */
		e->ts_ms = BASE_TS + (int64_t)((i * 7919) % 13) * 1000;
		assert_int_equal(cv_time_format_ms(e->ts_ms, f->ts[i]), 0);
		e->ts = f->ts[i];
		e->type = type;
		e->id = "0192f0c4-6c1e-7d3a-9b1e-2f6a5c0d9e11";
		e->user = users[i % 3];
		if (strncmp(type, "im.", 3) == 0)
			e->to = "sip:zoe@contoso.com";
		else
			e->room = rooms[i % 3];
		e->text = "h\xc3\xa9llo \xf0\x9f\x93\x88 \xe6\xbc\xa2\xe5\xad\x97";
		e->source_server = (i % 2) ? "chat02" : "chat01";
		e->source_seq = 1000 + (int64_t)(NEV - i);
		if (i == 1) {
			e->files = f->files_present;
			e->nfiles = 1;
		} else if (i == 5) {
			e->files = f->files_two;
			e->nfiles = 2;
		} else if (i == 6) {
			e->files = f->files_bad;
			e->nfiles = 1;
		}
		n = asprintf(&f->json[i], "{\"v\":1,\"id\":\"%s\",\"type\":\"%s\",\"ts\":\"%s\","
			     "\"user\":\"%s\",\"text\":\"%s\",\"source\":{\"server\":\"%s\","
			     "\"seq\":%" PRId64 "}}", e->id, type, e->ts, e->user, e->text,
			     e->source_server, e->source_seq);
		assert_true(n > 0);
		e->json = f->json[i];
		e->json_len = (size_t)n;
		assert_int_equal(cv_buf_append(&f->expect_jsonl, e->json, e->json_len), 0);
		assert_int_equal(cv_buf_append(&f->expect_jsonl, "\n", 1), 0);
	}
	open_adapter(f, NULL, 0);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	struct cv_buf out = { 0 };

	adp_archive_ops.close(f->st);
	assert_int_equal(run(&out, "chmod -R u+w '%s' 2>/dev/null; rm -rf '%s'", f->root,
			     f->root), 0);
	cv_buf_free(&out);
	for (size_t i = 0; i < NEV; i++)
		free(f->json[i]);
	cv_buf_free(&f->expect_jsonl);
	free(f);
	return 0;
}

static void make_batch(struct adp_batch *b, struct adp_event *ev, size_t n, int64_t no,
		       const char *prev)
{
	memset(b, 0, sizeof(*b));
	b->adapter_name = "arc1";
	b->batch_no = no;
	b->events = ev;
	b->nevents = n;
	b->first_staging_id = ev[0].staging_id;
	b->last_staging_id = ev[n - 1].staging_id;
	b->chain_prev = prev;
}

static size_t count_tmp(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (strstr(de->d_name, ".tmp"))
			n++;
	closedir(d);
	return n;
}

static void dir_of(const char *path, char *out, size_t len)
{
	char *slash;

	pathf(out, len, "%s", path);
	slash = strrchr(out, '/');
	assert_non_null(slash);
	*slash = '\0';
}

/* --- init ------------------------------------------------------------------ */

static void test_init_options(void **state)
{
	static const struct {
		const char *key, *value;
	} bad[] = {
		{ "zstd_level", "0" }, { "zstd_level", "20" }, { "zstd_level", "abc" },
		{ "zstd_level", "3x" }, { "zstd_level", "" }, { "zstd_threads", "-1" },
		{ "zstd_threads", "100000" }, { "attachments", "yes" },
	};
	struct fx *f = *state;
	char err[256];
	void *st = NULL;

	assert_int_equal(adp_archive_ops.abi_version, ADP_ABI_VERSION);
	assert_int_equal(adp_archive_ops.struct_size, sizeof(struct adp_ops));
	assert_string_equal(adp_archive_ops.type, "archive");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct adp_option o = { bad[i].key, bad[i].value };
		struct adp_env env = { .name = "a", .data_dir = f->data, .opts = &o, .nopts = 1 };

		err[0] = '\0';
		assert_true(adp_archive_ops.init(&env, &st, err, sizeof(err)) < 0);
		assert_null(st);
		assert_non_null(strstr(err, bad[i].key));
	}
	{
		struct adp_env env = { .name = "a/b", .data_dir = f->data };

		assert_true(adp_archive_ops.init(&env, &st, err, sizeof(err)) < 0);
		env.name = "ok";
		env.data_dir = NULL;
		assert_true(adp_archive_ops.init(&env, &st, err, sizeof(err)) < 0);
	}
	{
		struct adp_option o[] = { { "zstd_level", "19" }, { "zstd_threads", "2" },
					  { "dir", "" }, { "attachments", "false" } };
		struct adp_env env = { .name = "a", .data_dir = f->data, .opts = o, .nopts = 4 };

		assert_int_equal(adp_archive_ops.init(&env, &st, err, sizeof(err)), 0);
		adp_archive_ops.close(st);
	}
	for (const struct adp_key *k = adp_archive_ops.keys; k->name; k++)
		assert_non_null(k->help);
}

/* --- deliver --------------------------------------------------------------- */

static void test_deliver_contents(void **state)
{
	struct fx *f = *state;
	struct adp_batch b;
	struct cv_buf out = { 0 }, want = { 0 };
	char path[PATH_MAX], dir[PATH_MAX], hex[CV_SHA256_HEX];
	json_t *m, *j, *members;
	struct stat sb;

	make_batch(&b, f->ev, NEV, 1, "");
	assert_int_equal(adp_archive_ops.deliver(f->st, &b), ADP_OK);

	/* <data_dir>/archive/YYYY/MM/DD/<name>-<first>-<last>.tar.zst, the date of
	 * the first event (not of min_ts). */
	pathf(path, sizeof(path), "%s/archive/%.4s/%.2s/%.2s/arc1-%016d-%016d.tar.zst",
		 f->data, f->ts[0], f->ts[0] + 5, f->ts[0] + 8, 100, 207);
	assert_string_equal(b.out_path, path);
	/* The batch crosses midnight: the first event's day wins. */
	assert_non_null(strstr(path, "/archive/2024/02/29/arc1-"));
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0444);
	dir_of(path, dir, sizeof(dir));
	assert_int_equal(stat(dir, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0750);
	assert_int_equal(count_tmp(dir), 0);

	/* Exactly these members, in this order. */
	assert_int_equal(run(&out, "tar --zstd -tf '%s'", path), 0);
	assert_int_equal(cv_buf_printf(&want, "events.jsonl\nfiles/%s\nmanifest.json\n",
				       f->present_sha), 0);
	assert_string_equal(out.data, want.data);
	/* Owner, mode and mtime are fixed. */
	assert_int_equal(run(&out, "tar --zstd -tvf '%s' --full-time --utc", path), 0);
	assert_non_null(strstr(out.data, "-r--r--r-- 0/0"));

	assert_int_equal(run(&out, "tar --zstd -xOf '%s' events.jsonl", path), 0);
	assert_int_equal(out.len, f->expect_jsonl.len);
	assert_memory_equal(out.data, f->expect_jsonl.data, out.len);

	m = tar_manifest(path);
	assert_string_equal(json_string_value(json_object_get(m, "format")),
			    "chatvault-bundle/1");
	assert_string_equal(json_string_value(json_object_get(m, "adapter")), "arc1");
	assert_int_equal(json_integer_value(json_object_get(m, "batch_no")), 1);
	assert_int_equal(json_integer_value(json_object_get(m, "first_staging_id")), 100);
	assert_int_equal(json_integer_value(json_object_get(m, "last_staging_id")), 207);
	assert_int_equal(json_integer_value(json_object_get(m, "event_count")), NEV);
	j = json_object_get(m, "staging_ids");
	assert_int_equal(json_array_size(j), 2);
	assert_int_equal(json_integer_value(json_array_get(json_array_get(j, 0), 0)), 100);
	assert_int_equal(json_integer_value(json_array_get(json_array_get(j, 0), 1)), 104);
	assert_int_equal(json_integer_value(json_array_get(json_array_get(j, 1), 0)), 205);
	assert_int_equal(json_integer_value(json_array_get(json_array_get(j, 1), 1)), 207);
	{
		char min_ts[CV_TIME_BUFSZ], max_ts[CV_TIME_BUFSZ];

		assert_int_equal(cv_time_format_ms(BASE_TS, min_ts), 0);
		assert_int_equal(cv_time_format_ms(BASE_TS + 12000, max_ts), 0);
		assert_string_equal(json_string_value(json_object_get(m, "min_ts")), min_ts);
		assert_string_equal(json_string_value(json_object_get(m, "max_ts")), max_ts);
	}
	j = json_object_get(m, "rooms");
	assert_int_equal(json_array_size(j), 2);
	assert_string_equal(json_string_value(json_array_get(j, 0)),
			    "ma-chan://contoso.com/5c1d-trading");
	assert_string_equal(json_string_value(json_array_get(j, 1)),
			    "ma-chan://contoso.com/\xc3\xa9quipe");
	j = json_object_get(m, "users");
	assert_int_equal(json_array_size(j), 4);
	assert_string_equal(json_string_value(json_array_get(j, 0)), "sip:alice@contoso.com");
	assert_string_equal(json_string_value(json_array_get(j, 2)), "sip:zoe@contoso.com");
	j = json_object_get(json_object_get(m, "sources"), "chat01");
	assert_int_equal(json_integer_value(json_object_get(j, "count")), 4);
	assert_int_equal(json_integer_value(json_object_get(j, "first_seq")), 1002);
	assert_int_equal(json_integer_value(json_object_get(j, "last_seq")), 1008);
	j = json_object_get(json_object_get(m, "sources"), "chat02");
	assert_int_equal(json_integer_value(json_object_get(j, "count")), 4);
	assert_int_equal(json_integer_value(json_object_get(j, "first_seq")), 1001);
	assert_int_equal(json_integer_value(json_object_get(j, "last_seq")), 1007);
	assert_string_equal(json_string_value(json_object_get(m, "prev_manifest_sha256")), "");

	/* Member hashes against what tar extracts. */
	members = json_object_get(m, "members");
	assert_int_equal(json_object_size(members), 2);
	cv_sha256_hex(f->expect_jsonl.data, f->expect_jsonl.len, hex);
	j = json_object_get(members, "events.jsonl");
	assert_string_equal(json_string_value(json_object_get(j, "sha256")), hex);
	assert_int_equal(json_integer_value(json_object_get(j, "size")), f->expect_jsonl.len);
	pathf(path, sizeof(path), "files/%s", f->present_sha);
	j = json_object_get(members, path);
	pathf(path, sizeof(path), "%s", b.out_path);
	assert_non_null(j);
	assert_int_equal(run(&out, "tar --zstd -xOf '%s' 'files/%s'", path, f->present_sha), 0);
	cv_sha256_hex(out.data, out.len, hex);
	assert_string_equal(hex, f->present_sha);
	assert_string_equal(json_string_value(json_object_get(j, "sha256")), f->present_sha);
	assert_int_equal(json_integer_value(json_object_get(j, "size")), out.len);

	/* Missing: one absent, one whose content does not hash to its name,
	 * sorted by hash, named after their first reference. */
	j = json_object_get(m, "missing_files");
	assert_int_equal(json_array_size(j), 2);
	for (size_t i = 0; i < 2; i++) {
		json_t *e = json_array_get(j, i);
		const char *sha = json_string_value(json_object_get(e, "sha256"));
		const char *reason = json_string_value(json_object_get(e, "reason"));
		const char *name = json_string_value(json_object_get(e, "name"));

		if (strcmp(sha, f->missing_sha) == 0) {
			assert_string_equal(reason, "not in file store");
			assert_string_equal(name, "lost.png");
		} else {
			assert_string_equal(sha, f->bad_sha);
			assert_string_equal(reason, "hash mismatch");
			assert_string_equal(name, "forged.txt");
		}
	}
	assert_true(strcmp(json_string_value(json_object_get(json_array_get(j, 0), "sha256")),
			   json_string_value(json_object_get(json_array_get(j, 1), "sha256"))) < 0);
	json_decref(m);

	/* out_chain is the hash of the manifest bytes. */
	assert_int_equal(run(&out, "tar --zstd -xOf '%s' manifest.json", path), 0);
	cv_sha256_hex(out.data, out.len, hex);
	assert_string_equal(b.out_chain, hex);

	/* Plain tar extracts it. */
	assert_int_equal(run(&out, "mkdir '%s/x' && tar --zstd -xf '%s' -C '%s/x' && "
			     "ls '%s/x/files'", f->root, path, f->root, f->root), 0);
	cv_buf_free(&out);
	cv_buf_free(&want);
}

static void test_redelivery_identical(void **state)
{
	struct fx *f = *state;
	struct adp_batch b1, b2;
	struct cv_buf one = { 0 }, two = { 0 };
	char dir[PATH_MAX], path2[PATH_MAX];
	struct stat sb;
	pid_t pid;
	int status;

	make_batch(&b1, f->ev, NEV, 1, "");
	assert_int_equal(adp_archive_ops.deliver(f->st, &b1), ADP_OK);
	read_file(b1.out_path, &one);
	make_batch(&b2, f->ev, NEV, 1, "");
	assert_int_equal(adp_archive_ops.deliver(f->st, &b2), ADP_OK);
	assert_string_equal(b1.out_path, b2.out_path);
	assert_string_equal(b1.out_chain, b2.out_chain);
	read_file(b2.out_path, &two);
	assert_int_equal(one.len, two.len);
	assert_memory_equal(one.data, two.data, one.len);
	assert_int_equal(stat(b2.out_path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0444);
	dir_of(b2.out_path, dir, sizeof(dir));
	assert_int_equal(count_tmp(dir), 0);

	/* Another process (another pid, fresh adapter) writes the same bytes. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct adp_option o = { "dir", NULL };
		struct adp_env env = { .name = "arc1", .data_dir = f->data,
				       .file_store = f->store, .opts = &o, .nopts = 1 };
		struct adp_batch b3;
		char other[PATH_MAX];
		void *st = NULL;
		char err[256];

		pathf(other, sizeof(other), "%s/other", f->root);
		o.value = other;
		if (adp_archive_ops.init(&env, &st, err, sizeof(err)) != 0)
			_exit(1);
		make_batch(&b3, f->ev, NEV, 1, "");
		_exit(adp_archive_ops.deliver(st, &b3) == ADP_OK ? 0 : 2);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	pathf(path2, sizeof(path2), "%s/other/%s", f->root,
		 b1.out_path + strlen(f->data) + strlen("/archive/"));
	read_file(path2, &two);
	assert_int_equal(one.len, two.len);
	assert_memory_equal(one.data, two.data, one.len);
	cv_buf_free(&one);
	cv_buf_free(&two);
}

static void test_chain(void **state)
{
	struct fx *f = *state;
	struct adp_batch b1, b2;
	struct adp_bundle_info i1, i2;
	char err[512];
	json_t *m;

	make_batch(&b1, f->ev, 5, 1, "");
	assert_int_equal(adp_archive_ops.deliver(f->st, &b1), ADP_OK);
	make_batch(&b2, f->ev + 5, NEV - 5, 2, b1.out_chain);
	assert_int_equal(adp_archive_ops.deliver(f->st, &b2), ADP_OK);
	assert_string_not_equal(b1.out_path, b2.out_path);
	assert_string_not_equal(b1.out_chain, b2.out_chain);

	m = tar_manifest(b2.out_path);
	assert_string_equal(json_string_value(json_object_get(m, "prev_manifest_sha256")),
			    b1.out_chain);
	assert_int_equal(json_integer_value(json_object_get(m, "batch_no")), 2);
	json_decref(m);

	/* verify walks the chain with what it returns. */
	assert_int_equal(adp_bundle_verify_info(b1.out_path, &i1, err, sizeof(err)), 0);
	assert_int_equal(adp_bundle_verify_info(b2.out_path, &i2, err, sizeof(err)), 0);
	assert_string_equal(i1.manifest_sha256, b1.out_chain);
	assert_string_equal(i1.prev_manifest_sha256, "");
	assert_string_equal(i2.prev_manifest_sha256, i1.manifest_sha256);
	assert_string_equal(i2.manifest_sha256, b2.out_chain);
	assert_int_equal(i1.event_count, 5);
	assert_int_equal(i2.first_staging_id, 205);
	assert_int_equal(i1.last_staging_id + 1, 105);
	assert_string_equal(i1.adapter, "arc1");
}

static void test_attachments_disabled(void **state)
{
	struct fx *f = *state;
	struct adp_option o = { "attachments", "false" };
	struct adp_batch b;
	struct cv_buf out = { 0 };
	json_t *m, *j;

	adp_archive_ops.close(f->st);
	open_adapter(f, &o, 1);
	make_batch(&b, f->ev, NEV, 1, "");
	assert_int_equal(adp_archive_ops.deliver(f->st, &b), ADP_OK);
	assert_int_equal(run(&out, "tar --zstd -tf '%s'", b.out_path), 0);
	assert_string_equal(out.data, "events.jsonl\nmanifest.json\n");
	m = tar_manifest(b.out_path);
	j = json_object_get(m, "missing_files");
	assert_int_equal(json_array_size(j), 3);
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(json_string_value(json_object_get(json_array_get(j, i),
								     "reason")),
				    "attachments disabled");
	json_decref(m);
	cv_buf_free(&out);
}

static void test_threads_and_level(void **state)
{
	struct fx *f = *state;
	struct adp_option o[] = { { "zstd_level", "19" }, { "zstd_threads", "2" } };
	struct adp_batch b;
	char err[512];

	adp_archive_ops.close(f->st);
	open_adapter(f, o, 2);
	make_batch(&b, f->ev, NEV, 1, "");
	assert_int_equal(adp_archive_ops.deliver(f->st, &b), ADP_OK);
	assert_int_equal(adp_bundle_verify(b.out_path, NULL, err, sizeof(err)), 0);
}

static void test_unwritable_retry(void **state)
{
	struct fx *f = *state;
	struct adp_batch b;
	char blocker[PATH_MAX], dir[PATH_MAX], final[PATH_MAX], tmp[PATH_MAX + 8];
	struct adp_option o = { "dir", dir };

	/* A path under a regular file: ENOTDIR, whoever we are. */
	pathf(blocker, sizeof(blocker), "%s/plainfile", f->root);
	write_file(blocker, "x", 1);
	pathf(dir, sizeof(dir), "%s/archive", blocker);
	adp_archive_ops.close(f->st);
	open_adapter(f, &o, 1);
	make_batch(&b, f->ev, NEV, 1, "");
	assert_int_equal(adp_archive_ops.deliver(f->st, &b), ADP_RETRY);
	assert_non_null(strstr(b.reason, blocker));
	assert_non_null(strstr(b.reason, strerror(ENOTDIR)));
	assert_string_equal(b.out_path, "");

	/* /proc takes no new directories either. */
	pathf(dir, sizeof(dir), "/proc/chatvault-test-archive");
	adp_archive_ops.close(f->st);
	open_adapter(f, &o, 1);
	make_batch(&b, f->ev, NEV, 1, "");
	assert_int_equal(adp_archive_ops.deliver(f->st, &b), ADP_RETRY);
	assert_non_null(strstr(b.reason, "/proc/chatvault-test-archive"));

	/* A directory squatting on the temporary name: the write fails after
	 * the day directory exists, and nothing appears under the final name. */
	pathf(dir, sizeof(dir), "%s/arch2", f->root);
	adp_archive_ops.close(f->st);
	open_adapter(f, &o, 1);
	make_batch(&b, f->ev, NEV, 1, "");
	assert_int_equal(adp_archive_ops.deliver(f->st, &b), ADP_OK);
	pathf(final, sizeof(final), "%s", b.out_path);
	assert_int_equal(chmod(final, 0644), 0);
	assert_int_equal(unlink(final), 0);
	pathf(tmp, sizeof(tmp), "%s.tmp", final);
	assert_int_equal(mkdir(tmp, 0755), 0);
	pathf(blocker, sizeof(blocker), "%s/keep", tmp);
	write_file(blocker, "x", 1);
	make_batch(&b, f->ev, NEV, 1, "");
	assert_int_equal(adp_archive_ops.deliver(f->st, &b), ADP_RETRY);
	assert_non_null(strstr(b.reason, tmp));
	assert_int_equal(access(final, F_OK), -1);
	assert_int_equal(errno, ENOENT);

	/* Once the obstacle is gone, the redelivery succeeds. */
	assert_int_equal(unlink(blocker), 0);
	assert_int_equal(rmdir(tmp), 0);
	make_batch(&b, f->ev, NEV, 1, "");
	assert_int_equal(adp_archive_ops.deliver(f->st, &b), ADP_OK);
	assert_int_equal(access(tmp, F_OK), -1);

	/* Unprivileged only: a read-only directory (root ignores modes). */
	if (geteuid() != 0) {
		char day[PATH_MAX];

		dir_of(final, day, sizeof(day));
		assert_int_equal(unlink(final), 0);
		assert_int_equal(chmod(day, 0500), 0);
		make_batch(&b, f->ev, NEV, 1, "");
		assert_int_equal(adp_archive_ops.deliver(f->st, &b), ADP_RETRY);
		assert_non_null(strstr(b.reason, strerror(EACCES)));
	}
}

static void test_fail_bad_event(void **state)
{
	struct fx *f = *state;
	struct adp_batch b;
	struct adp_event ev[NEV];
	static const char two_lines[] = "{\"v\":1}\n{\"v\":1}";

	memcpy(ev, f->ev, sizeof(ev));
	ev[3].ts_ms = CV_TIME_MAX_MS + 1;
	make_batch(&b, ev, NEV, 1, "");
	assert_int_equal(adp_archive_ops.deliver(f->st, &b), ADP_FAIL);
	assert_int_equal(b.fail_staging_id, ev[3].staging_id);
	assert_non_null(strstr(b.reason, "ts"));

	memcpy(ev, f->ev, sizeof(ev));
	ev[2].ts_ms = -1;
	make_batch(&b, ev, NEV, 1, "");
	assert_int_equal(adp_archive_ops.deliver(f->st, &b), ADP_FAIL);
	assert_int_equal(b.fail_staging_id, ev[2].staging_id);

	memcpy(ev, f->ev, sizeof(ev));
	ev[4].json = two_lines;
	ev[4].json_len = sizeof(two_lines) - 1;
	make_batch(&b, ev, NEV, 1, "");
	assert_int_equal(adp_archive_ops.deliver(f->st, &b), ADP_FAIL);
	assert_int_equal(b.fail_staging_id, ev[4].staging_id);

	memcpy(ev, f->ev, sizeof(ev));
	ev[5].room = "ma-chan://bad/\xc0\xaf";
	make_batch(&b, ev, NEV, 1, "");
	assert_int_equal(adp_archive_ops.deliver(f->st, &b), ADP_FAIL);
	assert_int_equal(b.fail_staging_id, ev[5].staging_id);

	/* Out of staging order: the whole batch, no event blamed. */
	memcpy(ev, f->ev, sizeof(ev));
	ev[2].staging_id = ev[1].staging_id;
	make_batch(&b, ev, NEV, 1, "");
	assert_int_equal(adp_archive_ops.deliver(f->st, &b), ADP_FAIL);
	assert_int_equal(b.fail_staging_id, 0);

	/* Nothing was written for any of them. */
	{
		struct cv_buf out = { 0 };

		assert_int_equal(run(&out, "find '%s/archive' -type f 2>/dev/null | wc -l",
				     f->data), 0);
		assert_string_equal(out.data, "0\n");
		cv_buf_free(&out);
	}

	/* An empty batch passes the chain through. */
	make_batch(&b, f->ev, 1, 7, "abc");
	b.nevents = 0;
	assert_int_equal(adp_archive_ops.deliver(f->st, &b), ADP_OK);
	assert_string_equal(b.out_chain, "abc");
	assert_string_equal(b.out_path, "");
}

/* --- reader ---------------------------------------------------------------- */

struct read_log {
	char names[8][80];
	size_t nmembers;
	size_t chunks;
	int64_t next_off;   /* expected offset of the next chunk */
	int64_t bytes;      /* of the first member */
	bool bad;
};

static int read_cb(void *arg, const struct adp_bundle_chunk *c)
{
	struct read_log *l = arg;

	if (c->len > ADP_BUNDLE_CHUNK || c->offset != l->next_off)
		l->bad = true;
	if (c->last) {
		if (c->len != 0 || c->offset != c->size || l->nmembers >= 8)
			l->bad = true;
		else
			pathf(l->names[l->nmembers++], sizeof(l->names[0]), "%s", c->name);
		l->next_off = 0;
		return 0;
	}
	l->next_off += (int64_t)c->len;
	if (l->nmembers == 0)
		l->bytes += (int64_t)c->len;
	l->chunks++;
	return 0;
}

static int stop_cb(void *arg, const struct adp_bundle_chunk *c)
{
	(void)arg;
	(void)c;
	return 42;
}

static void test_bundle_read_streams(void **state)
{
	struct fx *f = *state;
	enum { N = 3000 };
	struct adp_event *ev = calloc(N, sizeof(*ev));
	char *text = malloc(400);
	struct read_log log = { 0 };
	struct adp_batch b;
	char err[512];
	int64_t total = 0;

	assert_non_null(ev);
	assert_non_null(text);
	memset(text, 'a', 399);
	text[399] = '\0';
	for (size_t i = 0; i < N; i++) {
		ev[i] = f->ev[0];
		ev[i].staging_id = 1 + (int64_t)i;
		ev[i].json = text;
		ev[i].json_len = 300 + i % 50;
		total += (int64_t)ev[i].json_len + 1;
	}
	make_batch(&b, ev, N, 1, "");
	assert_int_equal(adp_archive_ops.deliver(f->st, &b), ADP_OK);
	assert_int_equal(adp_bundle_read(b.out_path, read_cb, &log, err, sizeof(err)), 0);
	assert_false(log.bad);
	assert_int_equal(log.nmembers, 2);
	assert_string_equal(log.names[0], "events.jsonl");
	assert_string_equal(log.names[1], "manifest.json");
	assert_int_equal(log.bytes, total);
	assert_true(log.chunks > 2); /* ~1 MB in 64 KiB chunks */

	assert_int_equal(adp_bundle_read(b.out_path, stop_cb, NULL, err, sizeof(err)), 42);
	assert_non_null(strstr(err, "events.jsonl"));
	assert_int_equal(adp_bundle_verify(b.out_path, NULL, err, sizeof(err)), 0);

	{
		char none[PATH_MAX];

		pathf(none, sizeof(none), "%s/none.tar.zst", f->root);
		assert_int_equal(adp_bundle_read(none, read_cb, &log, err, sizeof(err)),
				 -ENOENT);
		assert_non_null(strstr(err, none));
		assert_int_equal(adp_bundle_verify(none, NULL, err, sizeof(err)), -ENOENT);
	}
	free(ev);
	free(text);
}

/* --- verify and tampering ---------------------------------------------------- */

enum tamper {
	T_NONE,               /* a faithful re-pack */
	T_FLIP_EVENTS,        /* one byte of events.jsonl */
	T_MANIFEST_COUNT,     /* manifest event_count + 1 */
	T_MANIFEST_ROOMS,     /* manifest rooms renamed: consistent, but chain breaks */
	T_MANIFEST_FIRST,     /* manifest.json moved to the front */
	T_DROP_FILE,          /* files/<sha> removed */
	T_EXTRA_MEMBER,       /* a member the manifest does not list */
};

/* Copy src to dst through libarchive, altering one thing. */
static void repack(const char *src, const char *dst, enum tamper t)
{
	struct archive *in = archive_read_new(), *out = archive_write_new();
	struct archive_entry *e;
	struct {
		struct archive_entry *e;
		struct cv_buf data;
	} mem[8];
	size_t n = 0, order[8], k = 0;
	char buf[8192];

	assert_non_null(in);
	assert_non_null(out);
	archive_read_support_filter_zstd(in);
	archive_read_support_format_tar(in);
	assert_int_equal(archive_read_open_filename(in, src, 65536), ARCHIVE_OK);
	while (archive_read_next_header(in, &e) == ARCHIVE_OK) {
		la_ssize_t r;

		assert_true(n < 8);
		mem[n].e = archive_entry_clone(e);
		memset(&mem[n].data, 0, sizeof(mem[n].data));
		while ((r = archive_read_data(in, buf, sizeof(buf))) > 0)
			assert_int_equal(cv_buf_append(&mem[n].data, buf, (size_t)r), 0);
		assert_int_equal(r, 0);
		n++;
	}
	archive_read_free(in);

	for (size_t i = 0; i < n; i++) {
		const char *name = archive_entry_pathname(mem[i].e);
		struct cv_buf *d = &mem[i].data;

		if (t == T_FLIP_EVENTS && strcmp(name, "events.jsonl") == 0) {
			d->data[d->len / 2] ^= 0x01;
		} else if (strcmp(name, "manifest.json") == 0 &&
			   (t == T_MANIFEST_COUNT || t == T_MANIFEST_ROOMS)) {
			const char *key = t == T_MANIFEST_COUNT ? "\"event_count\": " :
				"5c1d-trading";
			char *p = strstr(d->data, key);

			assert_non_null(p);
			if (t == T_MANIFEST_COUNT)
				p[strlen(key)] = '9';       /* 8 → 9 */
			else
				p[strlen(key) - 1] = 'G';   /* "…tradinG" */
		}
	}
	if (t == T_MANIFEST_FIRST)
		order[k++] = n - 1;
	for (size_t i = 0; i < n; i++) {
		const char *name = archive_entry_pathname(mem[i].e);

		if (t == T_MANIFEST_FIRST && i == n - 1)
			continue;
		if (t == T_DROP_FILE && strncmp(name, "files/", 6) == 0)
			continue;
		order[k++] = i;
		if (t == T_EXTRA_MEMBER && i == 0)
			order[k++] = 100; /* marker */
	}

	assert_int_equal(archive_write_set_format_pax_restricted(out), ARCHIVE_OK);
	assert_int_equal(archive_write_add_filter_zstd(out), ARCHIVE_OK);
	assert_int_equal(archive_write_set_bytes_in_last_block(out, 1), ARCHIVE_OK);
	assert_int_equal(archive_write_open_filename(out, dst), ARCHIVE_OK);
	for (size_t i = 0; i < k; i++) {
		if (order[i] == 100) {
			struct archive_entry *x = archive_entry_clone(mem[0].e);

			archive_entry_set_pathname(x, "notes.txt");
			archive_entry_set_size(x, 3);
			assert_int_equal(archive_write_header(out, x), ARCHIVE_OK);
			assert_int_equal(archive_write_data(out, "hi\n", 3), 3);
			archive_entry_free(x);
			continue;
		}
		archive_entry_set_size(mem[order[i]].e, (la_int64_t)mem[order[i]].data.len);
		assert_int_equal(archive_write_header(out, mem[order[i]].e), ARCHIVE_OK);
		assert_int_equal(archive_write_data(out, mem[order[i]].data.data,
						    mem[order[i]].data.len),
				 (la_ssize_t)mem[order[i]].data.len);
	}
	assert_int_equal(archive_write_close(out), ARCHIVE_OK);
	archive_write_free(out);
	for (size_t i = 0; i < n; i++) {
		archive_entry_free(mem[i].e);
		cv_buf_free(&mem[i].data);
	}
}

static void tampered_path(const struct fx *f, const char *orig, char *out, size_t len)
{
	const char *base = strrchr(orig, '/') + 1;
	char dir[PATH_MAX];

	/* Same file name, so only the content is at fault. */
	pathf(dir, sizeof(dir), "%s/tampered", f->root);
	mkdir(dir, 0755);
	pathf(out, len, "%s/%s", dir, base);
	unlink(out);
}

static void test_verify_detects_tampering(void **state)
{
	struct fx *f = *state;
	struct adp_batch b;
	char err[1024], bad[PATH_MAX], sha[65];
	struct adp_bundle_info info;
	struct cv_buf data = { 0 };

	make_batch(&b, f->ev, NEV, 1, "");
	assert_int_equal(adp_archive_ops.deliver(f->st, &b), ADP_OK);
	assert_int_equal(adp_bundle_verify(b.out_path, sha, err, sizeof(err)), 0);
	assert_string_equal(sha, b.out_chain);
	tampered_path(f, b.out_path, bad, sizeof(bad));

	/* An untouched re-pack still verifies (the check is of content). */
	repack(b.out_path, bad, T_NONE);
	assert_int_equal(adp_bundle_verify(bad, sha, err, sizeof(err)), 0);
	assert_string_equal(sha, b.out_chain);

	unlink(bad);
	repack(b.out_path, bad, T_FLIP_EVENTS);
	assert_int_equal(adp_bundle_verify(bad, sha, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "member events.jsonl: sha256 mismatch"));
	assert_non_null(strstr(err, bad));
	assert_string_equal(sha, "");

	unlink(bad);
	repack(b.out_path, bad, T_MANIFEST_COUNT);
	assert_int_equal(adp_bundle_verify(bad, sha, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "event_count"));

	/* A self-consistent manifest edit passes on its own: the next
	 * bundle's prev_manifest_sha256 (the chain) is what catches it. */
	unlink(bad);
	repack(b.out_path, bad, T_MANIFEST_ROOMS);
	assert_int_equal(adp_bundle_verify_info(bad, &info, err, sizeof(err)), 0);
	assert_string_not_equal(info.manifest_sha256, b.out_chain);

	unlink(bad);
	repack(b.out_path, bad, T_MANIFEST_FIRST);
	assert_int_equal(adp_bundle_verify(bad, sha, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "manifest"));

	unlink(bad);
	repack(b.out_path, bad, T_DROP_FILE);
	assert_int_equal(adp_bundle_verify(bad, sha, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "listed in manifest but absent"));

	unlink(bad);
	repack(b.out_path, bad, T_EXTRA_MEMBER);
	assert_int_equal(adp_bundle_verify(bad, sha, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "notes.txt"));

	/* Truncated at several points. */
	read_file(b.out_path, &data);
	for (size_t cut = 1; cut < 8; cut++) {
		unlink(bad);
		write_file(bad, data.data, data.len * cut / 8);
		assert_int_equal(adp_bundle_verify(bad, sha, err, sizeof(err)), -EBADMSG);
		assert_non_null(strstr(err, bad));
	}
	/* One flipped byte in the compressed file itself. */
	data.data[data.len / 2] ^= 0x40;
	unlink(bad);
	write_file(bad, data.data, data.len);
	assert_int_equal(adp_bundle_verify(bad, sha, err, sizeof(err)), -EBADMSG);

	/* Renamed: the name no longer matches the manifest. */
	data.data[data.len / 2] ^= 0x40;
	pathf(bad, sizeof(bad), "%s/tampered/arc1-%016d-%016d.tar.zst", f->root, 1, 2);
	write_file(bad, data.data, data.len);
	assert_int_equal(adp_bundle_verify(bad, sha, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "file name"));
	cv_buf_free(&data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_init_options, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_deliver_contents, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_redelivery_identical, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_chain, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_attachments_disabled, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_threads_and_level, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_unwritable_retry, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_fail_bad_event, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_bundle_read_streams, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_verify_detects_tampering, fx_setup,
						fx_teardown),
	};

	/* The hash-mismatch attachment warns on every delivery. */
	cv_log_set_level(CV_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

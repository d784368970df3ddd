/*
 * test_util — common/: SHA-256 vectors, the growable buffer, durable atomic
 * writes, and conninfo masking (a password must never reach a log).
 */
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

#include "cv_util.h"

static void test_sha256(void **state)
{
	char hex[CV_SHA256_HEX];
	struct cv_sha256 *h;

	(void)state;
	cv_sha256_hex("", 0, hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	cv_sha256_hex("abc", 3, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	h = cv_sha256_new();
	assert_non_null(h);
	cv_sha256_update(h, "a", 1);
	cv_sha256_update(h, "bc", 2);
	cv_sha256_final_hex(h, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	cv_sha256_free(h);
	cv_sha256_free(NULL);
}

static void test_buf(void **state)
{
	struct cv_buf b = { 0 };

	(void)state;
	for (int i = 0; i < 1000; i++)
		assert_int_equal(cv_buf_printf(&b, "%d,", i), 0);
	assert_int_equal(strncmp(b.data, "0,1,2,", 6), 0);
	assert_int_equal(b.data[b.len], '\0');
	cv_buf_reset(&b);
	assert_int_equal(b.len, 0);
	cv_buf_free(&b);
	cv_buf_free(NULL);
}

static void test_atomic_write(void **state)
{
	char dir[] = "/tmp/cvutilXXXXXX", path[512], sub[256], bad[600], cmd[300], hex[CV_SHA256_HEX];
	uint64_t size = 0;
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/a/b/c", dir);
	assert_int_equal(cv_mkdir_p(sub, 0750), 0);
	snprintf(path, sizeof(path), "%s/f.txt", sub);
	assert_int_equal(cv_write_file_atomic(path, "abc", 3, 0640), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal(cv_sha256_file(path, hex, &size), 0);
	assert_int_equal(size, 3);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	/* Under a regular file the write must fail and leave nothing. */
	snprintf(bad, sizeof(bad), "%s/x", path);
	assert_int_not_equal(cv_write_file_atomic(bad, "abc", 3, 0640), 0);
	unlink(path);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_mask_conninfo(void **state)
{
	static const struct {
		const char *in, *want;
	} table[] = {
		{ "host=db password=s3cret user=cv", "host=db password=**** user=cv" },
		{ "password = 's3 cret' host=db", "password=**** host=db" },
		{ "postgresql://cv:s3cret@db/chat", "postgresql://cv:****@db/chat" },
		{ "postgres://db/chat?password=s3cret&sslmode=require",
		  "postgres://db/chat?password=****&sslmode=require" },
		{ "", "" },
		{ "host=db", "host=db" },
		{ "host=db\tpassword=s3cret", "host=db\tpassword=****" },
	};
	char out[256];

	(void)state;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		cv_mask_conninfo(table[i].in, out, sizeof(out));
		assert_string_equal(out, table[i].want);
		assert_null(strstr(out, "s3"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256),
		cmocka_unit_test(test_buf),
		cmocka_unit_test(test_atomic_write),
		cmocka_unit_test(test_mask_conninfo),
	};

	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}

/*
 * test_store — store/ without a server: the SQLSTATE → RETRY/FAIL table
 * (style.md) and COPY text escaping.  The database paths themselves are
 * exercised against a real PostgreSQL in tests/integration/.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sto_db.h"

static void test_sqlstate_table(void **state)
{
	static const struct {
		const char *state;
		enum cv_result want;
	} table[] = {
		{ "08000", CV_RETRY }, /* connection exception */
		{ "08006", CV_RETRY }, /* connection failure */
		{ "08001", CV_RETRY }, /* unable to connect */
		{ "40001", CV_RETRY }, /* serialization failure */
		{ "40P01", CV_RETRY }, /* deadlock */
		{ "53100", CV_RETRY }, /* disk full */
		{ "53200", CV_RETRY }, /* out of memory */
		{ "53300", CV_RETRY }, /* too many connections */
		{ "57P01", CV_RETRY }, /* admin shutdown */
		{ "57P02", CV_RETRY }, /* crash shutdown */
		{ "57P03", CV_RETRY }, /* cannot connect now */
		{ "55P03", CV_RETRY }, /* lock not available */
		{ "22001", CV_FAIL },  /* string too long */
		{ "22P02", CV_FAIL },  /* invalid text representation */
		{ "22021", CV_FAIL },  /* bad encoding */
		{ "23505", CV_FAIL },  /* unique violation */
		{ "23502", CV_FAIL },  /* not null violation */
		{ "42601", CV_FAIL },  /* syntax error */
		{ "42501", CV_FAIL },  /* insufficient privilege */
		{ "42P01", CV_FAIL },  /* undefined table */
		{ "XX000", CV_FAIL },  /* internal error: retrying will not help */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		enum cv_result got = sto_classify_sqlstate(table[i].state);

		if (got != table[i].want)
			fail_msg("SQLSTATE %s: got %s, want %s", table[i].state, cv_result_name(got),
				 cv_result_name(table[i].want));
	}
	/* No SQLSTATE at all (client-side failure) is a transient condition. */
	assert_int_equal(sto_classify_sqlstate(NULL), CV_RETRY);
	assert_int_equal(sto_classify_sqlstate("0"), CV_RETRY);
}

static void test_copy_escape(void **state)
{
	struct cv_buf b = { 0 };
	const char in[] = "a\tb\nc\\d\re";

	(void)state;
	assert_int_equal(sto_copy_escape(&b, in, strlen(in)), 0);
	assert_string_equal(b.data, "a\\tb\\nc\\\\d\\re");
	cv_buf_reset(&b);
	assert_int_equal(sto_copy_escape(&b, "plain ü", strlen("plain ü")), 0);
	assert_string_equal(b.data, "plain ü");
	cv_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sqlstate_table),
		cmocka_unit_test(test_copy_escape),
	};

	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}

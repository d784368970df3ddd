/*
 * test_export — the pure parts of retention/ret_export: RFC 4180 field
 * escaping (events.csv), PostgreSQL text[] literals for the catalog query
 * parameters, format names, and the string set.  Everything that touches
 * the database or bundles is in tests/integration/t_export.sh.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ret_export.h"
#include "ret_export_int.h"

static void csv_is(const char *in, const char *want)
{
	struct cv_buf b = { 0 };

	assert_int_equal(ret_export_csv_field(&b, in), 0);
	assert_int_equal(b.len, strlen(want));
	assert_memory_equal(b.data ? b.data : "", want, b.len);
	cv_buf_free(&b);
}

static void test_csv_field(void **state)
{
	(void)state;
	csv_is(NULL, "");
	csv_is("", "");
	csv_is("plain text", "plain text");
	csv_is("déjà 東京 <tag> & 'single'", "déjà 東京 <tag> & 'single'");
	csv_is("a,b", "\"a,b\"");
	csv_is("say \"hi\"", "\"say \"\"hi\"\"\"");
	csv_is("\"", "\"\"\"\"");
	csv_is("line1\nline2", "\"line1\nline2\"");
	csv_is("cr\rhere", "\"cr\rhere\"");
	csv_is("[{\"name\":\"a,b.pdf\",\"size\":1}]",
	       "\"[{\"\"name\"\":\"\"a,b.pdf\"\",\"\"size\"\":1}]\"");
}

static void test_pg_array(void **state)
{
	const char *v[] = { "ma-chan://d/a", "with \"quote\"", "back\\slash", "{brace},comma", "" };
	struct cv_buf b = { 0 };

	(void)state;
	assert_int_equal(ret_export_pg_array(&b, v, 0), 0);
	assert_string_equal(b.data, "{}");
	b.len = 0;
	assert_int_equal(ret_export_pg_array(&b, v, 5), 0);
	assert_string_equal(b.data, "{\"ma-chan://d/a\",\"with \\\"quote\\\"\",\"back\\\\slash\","
			    "\"{brace},comma\",\"\"}");
	cv_buf_free(&b);
}

static void test_format(void **state)
{
	enum ret_export_format f = RET_EXPORT_XML;

	(void)state;
	assert_int_equal(ret_export_format_parse("jsonl", &f), 0);
	assert_int_equal(f, RET_EXPORT_JSONL);
	assert_int_equal(ret_export_format_parse("csv", &f), 0);
	assert_int_equal(f, RET_EXPORT_CSV);
	assert_int_equal(ret_export_format_parse("xml", &f), 0);
	assert_int_equal(f, RET_EXPORT_XML);
	assert_int_equal(ret_export_format_parse("eml", &f), 0);
	assert_int_equal(f, RET_EXPORT_EML);
	assert_int_equal(ret_export_format_parse("XML", &f), -EINVAL);
	assert_int_equal(ret_export_format_parse("pdf", &f), -EINVAL);
	assert_int_equal(ret_export_format_parse("", &f), -EINVAL);
	assert_int_equal(ret_export_format_parse(NULL, &f), -EINVAL);
	assert_string_equal(ret_export_format_name(RET_EXPORT_EML), "eml");
	assert_null(ret_export_format_name((enum ret_export_format)42));
}

static void test_set(void **state)
{
	struct ret_export_set s = { 0 };
	char key[32];

	(void)state;
	assert_false(ret_export_set_has(&s, "x"));
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 5000; i++) {
			snprintf(key, sizeof(key), "sip:user%d@d", i % 1000);
			assert_int_equal(ret_export_set_add(&s, key), 0);
		}
		assert_int_equal(s.n, 1000);
		assert_true(ret_export_set_has(&s, "sip:user999@d"));
		assert_false(ret_export_set_has(&s, "sip:user1000@d"));
		ret_export_set_clear(&s);
		assert_int_equal(s.n, 0);
		assert_false(ret_export_set_has(&s, "sip:user1@d"));
	}
	ret_export_set_free(&s);
	ret_export_set_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csv_field),
		cmocka_unit_test(test_pg_array),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_set),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

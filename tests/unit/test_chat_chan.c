/*
 * test_chat_chan — the persistent chat services' pure decisions
 * (chat/chat_chan_rules.c) and their configuration keys (conf/cfg_chat.c):
 *   - the Lookup service's least-loaded choice (ties to the first);
 *   - room access: public, private for members, managers, invitees only,
 *     missing rooms 404;
 *   - post checks: 413 before 403, story vs message limits, boundaries;
 *   - a token request's file name from fileUrl;
 *   - salvaging envid and command name from a refused envelope;
 *   - chat.channel_uris and friends: defaults, and refusals naming the key.
 * No sockets, no database.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"
#include "chat_chan_rules.h"

static void test_least_loaded(void **state)
{
	size_t a[] = { 3, 1, 1, 2 }, b[] = { 0, 0 }, c[] = { 5 }, d[] = { 2, 1 };

	(void)state;
	assert_int_equal(chat_chan_least_loaded(a, 4), 1);
	assert_int_equal(chat_chan_least_loaded(b, 2), 0);
	assert_int_equal(chat_chan_least_loaded(c, 1), 0);
	assert_int_equal(chat_chan_least_loaded(d, 2), 1);
}

static void test_access(void **state)
{
	(void)state;
	assert_int_equal(chat_chan_access(false, false, false, false, false), 404);
	assert_int_equal(chat_chan_access(false, true, true, true, true), 404);
	assert_int_equal(chat_chan_access(true, false, false, false, false), 200);
	assert_int_equal(chat_chan_access(true, true, false, false, false), 403);
	assert_int_equal(chat_chan_access(true, true, true, false, false), 200);
	assert_int_equal(chat_chan_access(true, true, false, true, false), 200);
	assert_int_equal(chat_chan_access(true, true, false, false, true), 200);
}

static void test_post_check(void **state)
{
	(void)state;
	assert_int_equal(chat_chan_post_check(512, false, 512, 4096, true), 200);
	assert_int_equal(chat_chan_post_check(513, false, 512, 4096, true), 413);
	assert_int_equal(chat_chan_post_check(513, false, 512, 4096, false), 413);   /* size first */
	assert_int_equal(chat_chan_post_check(10, false, 512, 4096, false), 403);
	assert_int_equal(chat_chan_post_check(4096, true, 512, 4096, true), 200);
	assert_int_equal(chat_chan_post_check(4097, true, 512, 4096, true), 413);
	assert_int_equal(chat_chan_post_check(0, false, 512, 4096, true), 200);
}

static void test_file_name(void **state)
{
	char out[256], small[4];

	(void)state;
	assert_int_equal(chat_chan_file_name("https://x/files/g/q3.pdf", out, sizeof(out)), 0);
	assert_string_equal(out, "q3.pdf");
	assert_int_equal(chat_chan_file_name("plain name.txt", out, sizeof(out)), 0);
	assert_string_equal(out, "plain name.txt");
	assert_int_equal(chat_chan_file_name("https://x/files/", out, sizeof(out)), -EINVAL);
	assert_int_equal(chat_chan_file_name("..", out, sizeof(out)), -EINVAL);
	assert_int_equal(chat_chan_file_name("a/.", out, sizeof(out)), -EINVAL);
	assert_int_equal(chat_chan_file_name("a?b", out, sizeof(out)), -EINVAL);
	assert_int_equal(chat_chan_file_name("a\\b", out, sizeof(out)), -EINVAL);
	assert_int_equal(chat_chan_file_name("tab\there", out, sizeof(out)), -EINVAL);
	assert_int_equal(chat_chan_file_name(NULL, out, sizeof(out)), -EINVAL);
	assert_int_equal(chat_chan_file_name("abcd", small, sizeof(small)), -EINVAL);
	{
		char longname[300];

		memset(longname, 'a', 256);
		longname[256] = '\0';
		assert_int_equal(chat_chan_file_name(longname, out, sizeof(out)), -EINVAL);
	}
}

static void test_salvage(void **state)
{
	const char *bad = "<xccos ver=\"1\" envid=\"3001\" xmlns=\"x\"><cmd id=\"cmd:getinv\" "
			  "seqid=\"1\"><data></cmd>";
	char name[40];
	int64_t envid;

	(void)state;
	chat_chan_salvage(bad, strlen(bad), &envid, name, sizeof(name));
	assert_int_equal(envid, 3001);
	assert_string_equal(name, "getinv");
	chat_chan_salvage("garbage", 7, &envid, name, sizeof(name));
	assert_int_equal(envid, 0);
	assert_string_equal(name, "unknown");
	/* not digits, an id with odd characters, a name too long: nothing taken */
	chat_chan_salvage("<x envid=\"12a\"><cmd id=\"cmd:a&b\"/>", 34, &envid, name, sizeof(name));
	assert_int_equal(envid, 0);
	assert_string_equal(name, "unknown");
	/* "myenvid=" is not envid=; the length bound holds (no NUL needed) */
	chat_chan_salvage("<x myenvid=\"7\" envid=\"8\">", 10, &envid, name, sizeof(name));
	assert_int_equal(envid, 0);
	chat_chan_salvage(NULL, 0, &envid, name, sizeof(name));
	assert_string_equal(name, "unknown");
}

static int load_str(const char *text, struct cfg **c, char *err, size_t errlen)
{
	char path[] = "/tmp/test_chat_chan.XXXXXX";
	int fd = mkstemp(path), rc;

	if (fd < 0)
		return -errno;
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		close(fd);
		unlink(path);
		return -EIO;
	}
	close(fd);
	rc = cfg_load(path, "/tmp", c, err, errlen);
	unlink(path);
	return rc;
}

static void test_cfg(void **state)
{
	struct cfg *c = NULL;
	char err[512];

	(void)state;
	assert_int_equal(load_str("chat = { domain = \"d.test\"; };\n", &c, err, sizeof(err)), 0);
	assert_int_equal(c->chat.nchannel_uris, 2);
	assert_string_equal(c->chat.channel_uris[0], "sip:chan1@d.test");
	assert_string_equal(c->chat.channel_uris[1], "sip:chan2@d.test");
	assert_int_equal(c->chat.search_limit, 999);
	assert_int_equal(c->chat.message_size_limit, 512);
	assert_int_equal(c->chat.story_size_limit, 4096);
	assert_string_equal(c->chat.files_listen, "127.0.0.1:0");
	assert_string_equal(c->chat.files_url, "");
	cfg_free(c);
	c = NULL;
	assert_int_equal(load_str("chat = { domain = \"d.test\"; channel_uris = [ \"sip:a@d.test\", "
				  "\"sip:b@d.test\", \"sip:c@d.test\" ]; };\n", &c, err, sizeof(err)), 0);
	assert_int_equal(c->chat.nchannel_uris, 3);
	cfg_free(c);
	c = NULL;

	static const struct {
		const char *conf, *key;
	} bad[] = {
		{ "chat = { channel_uris = [ ]; };", "chat.channel_uris" },
		{ "chat = { channel_uris = [ \"sip:a@example.test\", \"sip:a@example.test\" ]; };",
		  "chat.channel_uris" },
		{ "chat = { channel_uris = [ \"sip:a@other.test\" ]; };", "chat.channel_uris" },
		{ "chat = { channel_uris = [ \"sip:ocschat@example.test\" ]; };", "chat.channel_uris" },
		{ "chat = { channel_uris = [ \"sip:A B@example.test\" ]; };", "chat.channel_uris" },
		{ "chat = { message_size_limit = 40000; };", "chat.message_size_limit" },
		{ "chat = { message_size_limit = 1000; story_size_limit = 999; };",
		  "chat.story_size_limit" },
		{ "chat = { search_limit = 0; };", "chat.search_limit" },
		{ "chat = { files_listen = \"localhost:80\"; };", "chat.files_listen" },
		{ "chat = { files_url = \"ftp://x\"; };", "chat.files_url" },
		{ "chat = { files_url = \"http://x/\\\"a\"; };", "chat.files_url" },
		{ "chat = { files_max_upload_mb = 0; };", "chat.files_max_upload_mb" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_not_equal(load_str(bad[i].conf, &c, err, sizeof(err)), 0);
		if (!strstr(err, bad[i].key))
			fail_msg("%s: error \"%s\" does not name %s", bad[i].conf, err, bad[i].key);
		cfg_free(c);
		c = NULL;
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_least_loaded), cmocka_unit_test(test_access),
		cmocka_unit_test(test_post_check),   cmocka_unit_test(test_file_name),
		cmocka_unit_test(test_salvage),      cmocka_unit_test(test_cfg),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

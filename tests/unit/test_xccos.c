/*
 * test_xccos — chat/chat_xccos: every command a client sends parses into
 * the fields the Channel service needs; replies, notices and fan-out are
 * byte-exact and well-formed; hostile XML (billion laughs, XXE, depth,
 * size) is refused with the right XCCOS code and nothing is expanded.
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

#include "chat_xccos.h"

#define HEAD "<xccos ver=\"1\" envid=\"77\" xmlns=\"urn:parlano:xml:ns:xccos\">"
#define ENV(body) HEAD body "</xccos>"

static int parse(const char *s, struct chat_xccos_msg *m, char *err)
{
	return chat_xccos_parse(s, strlen(s), NULL, m, err, CHAT_XCCOS_ERRLEN);
}

static struct chat_xccos_msg must_parse(const char *s, enum chat_xccos_cmd want)
{
	struct chat_xccos_msg m;
	char err[CHAT_XCCOS_ERRLEN];
	int rc = parse(s, &m, err);

	if (rc != 0)
		fail_msg("parse %s: %d %s", s, rc, err);
	assert_int_equal(m.cmd, want);
	assert_int_equal(m.envid, 77);
	return m;
}

static void test_simple_commands(void **state)
{
	static const struct { const char *xml; enum chat_xccos_cmd cmd; } t[] = {
		{ ENV("<cmd id=\"cmd:requri\" seqid=\"1\"><data/></cmd>"), CHAT_CMD_REQURI },
		{ ENV("<cmd id=\"cmd:getserverinfo\" seqid=\"1\"><data><sib domain=\"d\" infoType=\"123\"/></data></cmd>"),
		  CHAT_CMD_GETSERVERINFO },
		{ ENV("<cmd id=\"cmd:getassociations\" seqid=\"1\"><data/></cmd>"), CHAT_CMD_GETASSOCIATIONS },
		{ ENV("<cmd id=\"cmd:bjoin\" seqid=\"1\"><data/></cmd>"), CHAT_CMD_BJOIN },
	};
	struct chat_xccos_msg m;

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		m = must_parse(t[i].xml, t[i].cmd);
		assert_int_equal(m.kind, CHAT_XCCOS_CMD);
		assert_int_equal(m.seqid, 1);
		chat_xccos_msg_clear(&m);
	}
	assert_string_equal(chat_xccos_reply_name(CHAT_CMD_GETSERVERINFO), "getservinfo");
	assert_string_equal(chat_xccos_reply_name(CHAT_CMD_GETFUTOK), "getftok");
	assert_string_equal(chat_xccos_cmd_name(CHAT_CMD_BCCONTEXT), "bccontext");
	assert_null(chat_xccos_cmd_name(CHAT_CMD_UNKNOWN));
}

static void test_join_bjoin(void **state)
{
	struct chat_xccos_msg m;
	char uri[256];

	(void)state;
	m = must_parse(ENV("<cmd id=\"cmd:join\" seqid=\"3\"><data><chanid key=\"0\" domain=\"example.test\""
			   " value=\"room1\"/></data></cmd>"), CHAT_CMD_JOIN);
	assert_string_equal(m.id, "cmd:join");
	assert_int_equal(m.seqid, 3);
	assert_int_equal(m.nchanids, 1);
	assert_string_equal(m.chanids[0].domain, "example.test");
	assert_int_equal(chat_xccos_chanid_uri(&m.chanids[0], uri, sizeof(uri)), 0);
	assert_string_equal(uri, "ma-chan://example.test/room1");
	assert_int_equal(chat_xccos_chanid_uri(&m.chanids[0], uri, 10), -ENAMETOOLONG);
	chat_xccos_msg_clear(&m);

	m = must_parse(ENV("<cmd id=\"cmd:bjoin\" seqid=\"1\"><data>"
			   "<chanid key=\"0\" domain=\"a.test\" value=\"g0\"/>"
			   "<chanid key=\"1\" domain=\"a.test\" value=\"g1\"/>"
			   "<chanid key=\"2\" domain=\"b.test\" value=\"g2\"/></data></cmd>"), CHAT_CMD_BJOIN);
	assert_int_equal(m.nchanids, 3);
	assert_int_equal(m.chanids[2].key, 2);
	assert_string_equal(m.chanids[2].domain, "b.test");
	assert_string_equal(m.chanids[1].value, "g1");
	chat_xccos_msg_clear(&m);
}

static void test_data_commands(void **state)
{
	struct chat_xccos_msg m;

	(void)state;
	m = must_parse(ENV("<cmd id=\"cmd:part\" seqid=\"1\"><data><chanib uri=\"ma-chan://d/g\"/></data></cmd>"),
		       CHAT_CMD_PART);
	assert_string_equal(m.chanib.uri, "ma-chan://d/g");
	chat_xccos_msg_clear(&m);

	m = must_parse(ENV("<cmd id=\"cmd:chansrch\" seqid=\"1\"><data><qib qtype=\"BYNAME\" criteria=\"ops &amp; dev\""
			   " extended=\"false\"/></data></cmd>"), CHAT_CMD_CHANSRCH);
	assert_string_equal(m.qib.qtype, "BYNAME");
	assert_string_equal(m.qib.criteria, "ops & dev");
	chat_xccos_msg_clear(&m);

	m = must_parse(ENV("<cmd id=\"cmd:bccontext\" seqid=\"1\"><data><chanib uri=\"ma-chan://d/g\"/>"
			   "<bcq><last cnt=\"25\"/></bcq></data></cmd>"), CHAT_CMD_BCCONTEXT);
	assert_string_equal(m.chanib.uri, "ma-chan://d/g");
	assert_int_equal(m.bcq_last, 25);
	chat_xccos_msg_clear(&m);

	m = must_parse(ENV("<cmd id=\"cmd:getpref\" seqid=\"1\"><data><pref label=\"u.GroupChannels\" seqid=\"71\""
			   " createdefault=\"true\"/></data></cmd>"), CHAT_CMD_GETPREF);
	assert_int_equal(m.nprefs, 1);
	assert_string_equal(m.prefs[0].label, "u.GroupChannels");
	assert_int_equal(m.prefs[0].seqid, 71);
	assert_null(m.prefs[0].content);
	chat_xccos_msg_clear(&m);

	m = must_parse(ENV("<cmd id=\"cmd:setpref\" seqid=\"1\"><data><pref label=\"L\" seqid=\"72\""
			   " content=\"aGVsbG8=\"/></data></cmd>"), CHAT_CMD_SETPREF);
	assert_string_equal(m.prefs[0].content, "aGVsbG8=");
	chat_xccos_msg_clear(&m);

	m = must_parse(ENV("<cmd id=\"cmd:getinv\" seqid=\"1\"><data><inv inviteId=\"1\" domain=\"d.test\"/></data></cmd>"),
		       CHAT_CMD_GETINV);
	assert_string_equal(m.inv.domain, "d.test");
	assert_string_equal(m.inv.invite_id, "1");
	chat_xccos_msg_clear(&m);

	m = must_parse(ENV("<cmd id=\"cmd:getfutok\" seqid=\"1\"><data><ftdb channelUri=\"ma-chan://d/g\""
			   " fileUrl=\"q3.pdf\"/></data></cmd>"), CHAT_CMD_GETFUTOK);
	assert_string_equal(m.ftdb.channel_uri, "ma-chan://d/g");
	assert_string_equal(m.ftdb.file_url, "q3.pdf");
	chat_xccos_msg_clear(&m);

	m = must_parse(ENV("<cmd id=\"cmd:getfdtok\" seqid=\"1\"><data><ftdb channelUri=\"ma-chan://d/g\""
			   " fileUrl=\"q3.pdf\"/></data></cmd>"), CHAT_CMD_GETFDTOK);
	chat_xccos_msg_clear(&m);

	m = must_parse(ENV("<grpchat id=\"grpchat\" seqid=\"1\" chanUri=\"ma-chan://d/g\" author=\"sip:a@d\""
			   " ts=\"2026-11-21T10:00:00Z\"><chat>hi <![CDATA[<b>]]></chat></grpchat>"),
		       CHAT_CMD_GRPCHAT);
	assert_int_equal(m.kind, CHAT_XCCOS_GRPCHAT);
	assert_string_equal(m.grpchat.chan_uri, "ma-chan://d/g");
	assert_string_equal(m.grpchat.author, "sip:a@d");
	assert_string_equal(m.grpchat.ts, "2026-11-21T10:00:00Z");
	assert_string_equal(m.grpchat.text, "hi <b>");
	chat_xccos_msg_clear(&m);
}

static void test_rpl_parse(void **state)
{
	struct chat_xccos_msg m;
	char err[CHAT_XCCOS_ERRLEN];

	(void)state;
	assert_int_equal(parse(ENV("<rpl id=\"rpl:join\" seqid=\"1\"><commandid seqid=\"1\" envid=\"4242\"/>"
				   "<resp code=\"200\">SUCCESS_OK</resp><data><chanib uri=\"ma-chan://x/y\""
				   " name=\"room1\" topic=\"hello\"/></data></rpl>"), &m, err), 0);
	assert_int_equal(m.kind, CHAT_XCCOS_RPL);
	assert_int_equal(m.resp.code, 200);
	assert_string_equal(m.resp.text, "SUCCESS_OK");
	assert_int_equal(m.resp.cmd_envid, 4242);
	assert_string_equal(m.chanib.topic, "hello");
	chat_xccos_msg_clear(&m);
}

static void expect_code(const char *xml, size_t len, const struct chat_xccos_limits *lim, int code,
			const char *why)
{
	struct chat_xccos_msg m;
	char err[CHAT_XCCOS_ERRLEN];
	int rc = chat_xccos_parse(xml, len, lim, &m, err, sizeof(err));

	if (rc != code)
		fail_msg("%s: got %d (%s), want %d", why, rc, err, code);
	assert_true(err[0] != '\0');
	if (code != CHAT_XCCOS_UNKNOWN_CMD) {
		assert_null(m.id);
		assert_null(m.grpchat.text);
	}
	chat_xccos_msg_clear(&m);
}
#define EXPECT(xml, code) expect_code(xml, strlen(xml), NULL, code, xml)

static void test_malformed(void **state)
{
	(void)state;
	EXPECT("", 400);
	EXPECT("<xccos", 400);
	EXPECT("not xml", 400);
	EXPECT("<xccos ver=\"1\" envid=\"1\" xmlns=\"urn:parlano:xml:ns:xccos\"><cmd id=\"cmd:requri\"></xccos>", 400);
	EXPECT("<foo/>", 400);
	EXPECT("<xccos ver=\"2\" envid=\"1\" xmlns=\"urn:parlano:xml:ns:xccos\"><cmd id=\"cmd:requri\"/></xccos>", 400);
	EXPECT("<xccos ver=\"1\" envid=\"1\"><cmd id=\"cmd:requri\"/></xccos>", 400);
	EXPECT("<xccos ver=\"1\" xmlns=\"urn:parlano:xml:ns:xccos\"><cmd id=\"cmd:requri\"/></xccos>", 400);
	EXPECT("<xccos ver=\"1\" envid=\"x1\" xmlns=\"urn:parlano:xml:ns:xccos\"><cmd id=\"cmd:requri\"/></xccos>", 400);
	EXPECT(ENV(""), 400);
	EXPECT(ENV("<cmd id=\"cmd:requri\"/><cmd id=\"cmd:requri\"/>"), 400);
	EXPECT(ENV("<cmd seqid=\"1\"/>"), 400);
	EXPECT(ENV("<cmd id=\"cmd:requri\" seqid=\"-1\"/>"), 400);
	EXPECT(ENV("<bogus id=\"x\"/>"), 400);
	EXPECT(ENV("<cmd id=\"cmd:join\" seqid=\"1\"><data/></cmd>"), 400);
	EXPECT(ENV("<cmd id=\"cmd:join\" seqid=\"1\"><data><chanid key=\"0\" domain=\"d\"/></data></cmd>"), 400);
	EXPECT(ENV("<cmd id=\"cmd:part\" seqid=\"1\"><data/></cmd>"), 400);
	EXPECT(ENV("<cmd id=\"cmd:setpref\" seqid=\"1\"><data><pref label=\"L\"/></data></cmd>"), 400);
	EXPECT(ENV("<grpchat id=\"grpchat\" seqid=\"1\"><chat>x</chat></grpchat>"), 400);
	EXPECT(ENV("<cmd id=\"cmd:requri\" seqid=\"1\">&undefined;</cmd>"), 400);
	/* a NUL inside, invalid UTF-8 */
	expect_code(ENV("<cmd id=\"cmd:requri\"/>\0"), sizeof(ENV("<cmd id=\"cmd:requri\"/>\0")) - 1, NULL,
		    400, "NUL");
	EXPECT(ENV("<grpchat chanUri=\"u\"><chat>\xff</chat></grpchat>"), 400);
	/* a declared encoding cannot switch the parser away from UTF-8 */
	{
		struct chat_xccos_msg m;
		char err[CHAT_XCCOS_ERRLEN];

		assert_int_equal(parse("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>"
				       ENV("<grpchat chanUri=\"u\"><chat>\xc3\xa9</chat></grpchat>"), &m, err), 0);
		assert_string_equal(m.grpchat.text, "\xc3\xa9");
		chat_xccos_msg_clear(&m);
	}
}

static void test_unknown_command(void **state)
{
	struct chat_xccos_msg m;
	char err[CHAT_XCCOS_ERRLEN];

	(void)state;
	assert_int_equal(parse(ENV("<cmd id=\"cmd:nodespermcreatechild\" seqid=\"9\"><data/></cmd>"), &m, err),
			 501);
	assert_string_equal(m.id, "cmd:nodespermcreatechild");
	assert_int_equal(m.seqid, 9);
	assert_int_equal(m.envid, 77);
	assert_int_equal(m.cmd, CHAT_CMD_UNKNOWN);
	assert_non_null(strstr(err, "unknown command"));
	chat_xccos_msg_clear(&m);
	EXPECT(ENV("<cmd id=\"join\" seqid=\"1\"/>"), 501);
}

static void test_billion_laughs_xxe(void **state)
{
	static const char laughs[] =
		"<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
		"<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
		"<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">"
		"<!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">]>"
		ENV("<grpchat chanUri=\"u\"><chat>&lol4;</chat></grpchat>");
	static const char xxe[] =
		"<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>"
		ENV("<grpchat chanUri=\"u\"><chat>&xxe;</chat></grpchat>");
	static const char ext_dtd[] =
		"<?xml version=\"1.0\"?><!DOCTYPE xccos SYSTEM \"http://127.0.0.1:1/x.dtd\">"
		ENV("<cmd id=\"cmd:requri\"/>");
	static const char param[] =
		"<!DOCTYPE x [<!ENTITY % p SYSTEM \"file:///etc/passwd\"> %p;]>"
		ENV("<cmd id=\"cmd:requri\"/>");
	struct chat_xccos_msg m;
	char err[CHAT_XCCOS_ERRLEN];

	(void)state;
	assert_int_equal(parse(laughs, &m, err), 400);
	assert_non_null(strstr(err, "DOCTYPE"));
	assert_null(m.grpchat.text);
	assert_int_equal(parse(xxe, &m, err), 400);
	assert_null(m.grpchat.text);
	assert_int_equal(parse(ext_dtd, &m, err), 400);
	assert_int_equal(parse(param, &m, err), 400);
}

static void test_limits(void **state)
{
	struct chat_xccos_limits lim = chat_xccos_default_limits;
	struct cv_buf b = { 0 };
	size_t i;

	(void)state;
	/* depth */
	assert_int_equal(cv_buf_printf(&b, "%s", "<xccos ver=\"1\" envid=\"1\" xmlns=\"urn:parlano:xml:ns:xccos\">"
				       "<cmd id=\"cmd:requri\"><data>"), 0);
	for (i = 0; i < 10000; i++)
		assert_int_equal(cv_buf_printf(&b, "<a>"), 0);
	expect_code(b.data, b.len, NULL, 400, "deep nesting");
	cv_buf_reset(&b);
	/* total size: 413 before parsing */
	assert_int_equal(cv_buf_printf(&b, HEAD "<grpchat chanUri=\"u\"><chat>"), 0);
	for (i = 0; i < 70000; i++)
		assert_int_equal(cv_buf_append(&b, "x", 1), 0);
	assert_int_equal(cv_buf_printf(&b, "</chat></grpchat></xccos>"), 0);
	expect_code(b.data, b.len, NULL, 413, "huge envelope");
	lim.max_bytes = 1 << 20;
	expect_code(b.data, b.len, &lim, 413, "huge text");
	cv_buf_reset(&b);
	/* one huge attribute */
	assert_int_equal(cv_buf_printf(&b, HEAD "<cmd id=\"cmd:part\"><data><chanib uri=\""), 0);
	for (i = 0; i < 5000; i++)
		assert_int_equal(cv_buf_append(&b, "u", 1), 0);
	assert_int_equal(cv_buf_printf(&b, "\"/></data></cmd></xccos>"), 0);
	expect_code(b.data, b.len, NULL, 413, "huge attribute");
	cv_buf_reset(&b);
	/* too many attributes on one element */
	assert_int_equal(cv_buf_printf(&b, HEAD "<cmd id=\"cmd:part\"><data><chanib uri=\"u\""), 0);
	for (i = 0; i < 20; i++)
		assert_int_equal(cv_buf_printf(&b, " a%zu=\"x\"", i), 0);
	assert_int_equal(cv_buf_printf(&b, "/></data></cmd></xccos>"), 0);
	expect_code(b.data, b.len, NULL, 400, "many attributes");
	cv_buf_reset(&b);
	/* too many elements; too many chanids */
	assert_int_equal(cv_buf_printf(&b, HEAD "<cmd id=\"cmd:requri\"><data>"), 0);
	for (i = 0; i < 2000; i++)
		assert_int_equal(cv_buf_printf(&b, "<x/>"), 0);
	assert_int_equal(cv_buf_printf(&b, "</data></cmd></xccos>"), 0);
	expect_code(b.data, b.len, NULL, 413, "many elements");
	cv_buf_reset(&b);
	assert_int_equal(cv_buf_printf(&b, HEAD "<cmd id=\"cmd:bjoin\"><data>"), 0);
	for (i = 0; i < 101; i++)
		assert_int_equal(cv_buf_printf(&b, "<chanid key=\"%zu\" domain=\"d\" value=\"g\"/>", i), 0);
	assert_int_equal(cv_buf_printf(&b, "</data></cmd></xccos>"), 0);
	expect_code(b.data, b.len, NULL, 413, "many chanids");
	cv_buf_free(&b);
}

static void test_encode_replies(void **state)
{
	struct cv_buf b = { 0 };
	struct chat_xccos_sib sib = { .server_time = "2026-11-21T10:00:00.000Z", .search_limit = 999,
				      .message_size_limit = 512, .story_size_limit = 4096,
				      .root_uri = "ma-cat://d.test/root" };
	struct chat_xccos_room room = { .uri = "ma-chan://d.test/g1", .name = "Ops & Dev",
					.description = "the \"ops\" room", .ucnt = 3, .logged = true };
	struct chat_xccos_msg m;
	char err[CHAT_XCCOS_ERRLEN];

	(void)state;
	assert_int_equal(chat_xccos_env_begin(&b, 9001), 0);
	assert_int_equal(chat_xccos_rpl_begin(&b, "join", 1, 1, 4242, 200), 0);
	assert_int_equal(chat_xccos_put_chanib(&b, &room), 0);
	assert_int_equal(chat_xccos_rpl_end(&b), 0);
	assert_int_equal(chat_xccos_rpl_begin(&b, "getservinfo", 2, 1, 4243, 200), 0);
	assert_int_equal(chat_xccos_put_sib(&b, &sib), 0);
	assert_int_equal(chat_xccos_rpl_end(&b), 0);
	assert_int_equal(chat_xccos_env_end(&b), 0);
	assert_string_equal(b.data,
		"<xccos ver=\"1\" envid=\"9001\" xmlns=\"urn:parlano:xml:ns:xccos\">"
		"<rpl id=\"rpl:join\" seqid=\"1\"><commandid seqid=\"1\" envid=\"4242\"/>"
		"<resp code=\"200\">SUCCESS_OK</resp><data>"
		"<chanib name=\"Ops &amp; Dev\" description=\"the &quot;ops&quot; room\" uri=\"ma-chan://d.test/g1\">"
		"<info id=\"urn:parlano:ma:info:ucnt\">3</info>"
		"<info id=\"urn:parlano:ma:info:visibilty\">public</info>"
		"<prop id=\"urn:parlano:ma:prop:logged\">true</prop></chanib></data></rpl>"
		"<rpl id=\"rpl:getservinfo\" seqid=\"2\"><commandid seqid=\"1\" envid=\"4243\"/>"
		"<resp code=\"200\">SUCCESS_OK</resp><data>"
		"<sib serverTime=\"2026-11-21T10:00:00.000Z\" searchLimit=\"999\" messageSizeLimit=\"512\""
		" storySizeLimit=\"4096\" rootUri=\"ma-cat://d.test/root\"/></data></rpl></xccos>");
	/* our own output parses (an envelope with several rpl is for clients;
	 * the decoder takes one message, so parse the first alone) */
	cv_buf_reset(&b);
	assert_int_equal(chat_xccos_env_begin(&b, 1), 0);
	assert_int_equal(chat_xccos_rpl_begin(&b, "requri", 1, 1, 5, 200), 0);
	assert_int_equal(chat_xccos_put_uib(&b, "sip:chan@d.test"), 0);
	assert_int_equal(chat_xccos_rpl_end(&b), 0);
	assert_int_equal(chat_xccos_env_end(&b), 0);
	assert_string_equal(b.data, "<xccos ver=\"1\" envid=\"1\" xmlns=\"urn:parlano:xml:ns:xccos\">"
			    "<rpl id=\"rpl:requri\" seqid=\"1\"><commandid seqid=\"1\" envid=\"5\"/>"
			    "<resp code=\"200\">SUCCESS_OK</resp><data><uib uri=\"sip:chan@d.test\"/>"
			    "</data></rpl></xccos>");
	assert_int_equal(chat_xccos_parse(b.data, b.len, NULL, &m, err, sizeof(err)), 0);
	assert_int_equal(m.resp.cmd_envid, 5);
	chat_xccos_msg_clear(&m);

	cv_buf_reset(&b);
	assert_int_equal(chat_xccos_rpl_begin(&b, "getftok", 1, 1, 6, 200), 0);
	assert_int_equal(chat_xccos_put_token(&b, "00ff", "https://h:8443/files/g1/q3.pdf"), 0);
	assert_int_equal(chat_xccos_put_pref(&b, "L", 72, "aGVsbG8="), 0);
	assert_int_equal(chat_xccos_put_inv(&b, "ma-chan://d/g", "sip:b@d", NULL), 0);
	assert_int_equal(chat_xccos_rpl_end(&b), 0);
	assert_string_equal(b.data, "<rpl id=\"rpl:getftok\" seqid=\"1\"><commandid seqid=\"1\" envid=\"6\"/>"
			    "<resp code=\"200\">SUCCESS_OK</resp><data>"
			    "<token token=\"00ff\" serveruri=\"https://h:8443/files/g1/q3.pdf\"/>"
			    "<pref label=\"L\" seqid=\"72\" content=\"aGVsbG8=\"/>"
			    "<inv chanUri=\"ma-chan://d/g\" author=\"sip:b@d\"/></data></rpl>");
	cv_buf_reset(&b);
	assert_int_equal(chat_xccos_rpl_begin(&b, "foo", 1, 3, 4, 501), 0);
	assert_int_equal(chat_xccos_rpl_end(&b), 0);
	assert_string_equal(b.data, "<rpl id=\"rpl:foo\" seqid=\"1\"><commandid seqid=\"3\" envid=\"4\"/>"
			    "<resp code=\"501\">ERR_UNKNOWN_COMMAND</resp><data></data></rpl>");
	assert_int_equal(chat_xccos_rpl_begin(&b, "x\"y", 1, 3, 4, 200), -EINVAL);
	cv_buf_free(&b);
}

static void test_encode_notices_history(void **state)
{
	struct cv_buf b = { 0 };
	struct chat_xccos_chat c = { .chan_uri = "ma-chan://d/g", .author = "sip:a@d",
				     .ts = "2026-11-21T10:00:00.123Z", .msgid = 17, .text = "a<b" };

	(void)state;
	assert_int_equal(chat_xccos_ntc_begin(&b, "join", 1), 0);
	assert_int_equal(chat_xccos_put_uib(&b, "sip:a@d"), 0);
	assert_int_equal(chat_xccos_ntc_end(&b), 0);
	assert_int_equal(chat_xccos_ntc_begin(&b, "bjoin", 2), 0);
	assert_int_equal(chat_xccos_ntc_end(&b), 0);
	assert_int_equal(chat_xccos_ntc_begin(&b, "part", 3), 0);
	assert_int_equal(chat_xccos_ntc_end(&b), 0);
	assert_int_equal(chat_xccos_put_msg(&b, &c), 0);
	assert_string_equal(b.data,
		"<ntc id=\"ntc:join\" seqid=\"1\"><data><uib uri=\"sip:a@d\"/></data></ntc>"
		"<ntc id=\"ntc:bjoin\" seqid=\"2\"><data></data></ntc>"
		"<ntc id=\"ntc:part\" seqid=\"3\"><data></data></ntc>"
		"<msg id=\"grpchat\" chanUri=\"ma-chan://d/g\" author=\"sip:a@d\" ts=\"2026-11-21T10:00:00.123Z\""
		" msgid=\"17\"><chat>a&lt;b</chat></msg>");
	cv_buf_free(&b);
}

static void test_grpchat_round_trip(void **state)
{
	static const char text[] = "R&D <team> said \"hi\" & 'bye' — déjà vu 日本 😀\n\tline2\r\n]]>";
	static const char author[] = "sip:ren\xc3\xa9\"&<>'\t@d.test";
	struct chat_xccos_chat c = { .chan_uri = "ma-chan://d.test/g?a=1&b=2", .author = author,
				     .ts = "2026-11-21T10:00:00.123Z", .msgid = -1, .text = text };
	struct chat_xccos_msg m;
	struct cv_buf b = { 0 };
	char err[CHAT_XCCOS_ERRLEN];

	(void)state;
	assert_int_equal(chat_xccos_env_begin(&b, 12), 0);
	assert_int_equal(chat_xccos_put_grpchat(&b, 1, &c), 0);
	assert_int_equal(chat_xccos_env_end(&b), 0);
	assert_non_null(strstr(b.data, "<chat>R&amp;D &lt;team&gt; said \"hi\""));
	assert_int_equal(chat_xccos_parse(b.data, b.len, NULL, &m, err, sizeof(err)), 0);
	assert_int_equal(m.kind, CHAT_XCCOS_GRPCHAT);
	assert_int_equal(m.envid, 12);
	assert_string_equal(m.grpchat.text, text);
	assert_string_equal(m.grpchat.author, author);
	assert_string_equal(m.grpchat.chan_uri, c.chan_uri);
	assert_string_equal(m.grpchat.ts, c.ts);
	chat_xccos_msg_clear(&m);
	chat_xccos_msg_clear(NULL);
	/* what XML cannot carry is refused, not emitted */
	cv_buf_reset(&b);
	c.text = "bell\a";
	assert_int_equal(chat_xccos_put_grpchat(&b, 1, &c), -EINVAL);
	c.text = "bad \xc3\x28";
	assert_int_equal(chat_xccos_escape(&b, c.text, false), -EINVAL);
	assert_int_equal(chat_xccos_escape(&b, "\xed\xa0\x80", false), -EINVAL);   /* surrogate */
	assert_int_equal(chat_xccos_escape(&b, "\xef\xbf\xbe", false), -EINVAL);   /* U+FFFE */
	assert_int_equal(chat_xccos_escape(&b, "\xe0\x80\xaf", false), -EINVAL);   /* overlong */
	cv_buf_free(&b);
}

static void test_encode_participants(void **state)
{
	struct chat_xccos_room r = { .name = "Ops", .uri = "ma-chan://d/g", .ucnt = 2 };
	struct cv_buf b = { 0 };
	struct chat_xccos_msg m;
	char err[CHAT_XCCOS_ERRLEN];

	(void)state;
	/* rpl:join as chatd builds it: uib id per live participant, then the
	 * chanib with the aib lists numbering them */
	assert_int_equal(chat_xccos_env_begin(&b, 3), 0);
	assert_int_equal(chat_xccos_rpl_begin(&b, "join", 1, 1, 40, 200), 0);
	assert_int_equal(chat_xccos_put_uib_id(&b, 0, "sip:a@d"), 0);
	assert_int_equal(chat_xccos_put_uib_id(&b, 1, "sip:o'b&<x>\"@d"), 0);
	assert_int_equal(chat_xccos_chanib_begin(&b, &r), 0);
	assert_int_equal(chat_xccos_put_aib(&b, CHAT_XCCOS_AIB_USER, NULL, "0,1"), 0);
	assert_int_equal(chat_xccos_put_aib(&b, CHAT_XCCOS_AIB_CHANOP, "d", "1"), 0);
	assert_int_equal(chat_xccos_chanib_end(&b), 0);
	assert_int_equal(chat_xccos_rpl_end(&b), 0);
	assert_int_equal(chat_xccos_env_end(&b), 0);
	assert_non_null(strstr(b.data,
		"<data><uib id=\"0\" uri=\"sip:a@d\"/>"
		"<uib id=\"1\" uri=\"sip:o&apos;b&amp;&lt;x&gt;&quot;@d\"/>"
		"<chanib name=\"Ops\" uri=\"ma-chan://d/g\">"
		"<info id=\"urn:parlano:ma:info:ucnt\">2</info>"));
	assert_non_null(strstr(b.data,
		"<aib key=\"" CHAT_XCCOS_AIB_USER "\" value=\"0,1\"/>"
		"<aib key=\"" CHAT_XCCOS_AIB_CHANOP "\" domain=\"d\" value=\"1\"/></chanib></data></rpl>"));
	/* the envelope is well-formed for our own decoder */
	assert_int_equal(chat_xccos_parse(b.data, b.len, NULL, &m, err, sizeof(err)), 0);
	assert_int_equal(m.kind, CHAT_XCCOS_RPL);
	assert_int_equal(m.envid, 3);
	chat_xccos_msg_clear(&m);

	/* ntc:join / ntc:part bodies: uib with its aib, chanib by uri holding a uib */
	cv_buf_reset(&b);
	assert_int_equal(chat_xccos_ntc_begin(&b, "join", 1), 0);
	assert_int_equal(chat_xccos_uib_begin(&b, "sip:a@d"), 0);
	assert_int_equal(chat_xccos_put_aib(&b, CHAT_XCCOS_AIB_USER, "d", "g"), 0);
	assert_int_equal(chat_xccos_uib_end(&b), 0);
	assert_int_equal(chat_xccos_ntc_end(&b), 0);
	assert_int_equal(chat_xccos_ntc_begin(&b, "part", 2), 0);
	assert_int_equal(chat_xccos_chanib_begin_uri(&b, "ma-chan://d/g?a=1&b=2"), 0);
	assert_int_equal(chat_xccos_put_uib(&b, "sip:a@d"), 0);
	assert_int_equal(chat_xccos_chanib_end(&b), 0);
	assert_int_equal(chat_xccos_ntc_end(&b), 0);
	assert_string_equal(b.data,
		"<ntc id=\"ntc:join\" seqid=\"1\"><data><uib uri=\"sip:a@d\">"
		"<aib key=\"" CHAT_XCCOS_AIB_USER "\" domain=\"d\" value=\"g\"/></uib></data></ntc>"
		"<ntc id=\"ntc:part\" seqid=\"2\"><data><chanib uri=\"ma-chan://d/g?a=1&amp;b=2\">"
		"<uib uri=\"sip:a@d\"/></chanib></data></ntc>");

	/* missing required values and text XML cannot carry are refused */
	cv_buf_reset(&b);
	assert_int_equal(chat_xccos_put_uib_id(&b, 0, NULL), -EINVAL);
	assert_int_equal(chat_xccos_uib_begin(&b, NULL), -EINVAL);
	assert_int_equal(chat_xccos_chanib_begin_uri(&b, NULL), -EINVAL);
	assert_int_equal(chat_xccos_put_aib(&b, NULL, "d", "1"), -EINVAL);
	assert_int_equal(chat_xccos_put_aib(&b, CHAT_XCCOS_AIB_USER, "d", NULL), -EINVAL);
	assert_int_equal(b.len, 0);
	assert_int_equal(chat_xccos_put_uib_id(&b, 0, "sip:\x01@d"), -EINVAL);
	assert_int_equal(chat_xccos_put_aib(&b, CHAT_XCCOS_AIB_USER, "bad \xc3\x28", "1"), -EINVAL);
	cv_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_commands),
		cmocka_unit_test(test_join_bjoin),
		cmocka_unit_test(test_data_commands),
		cmocka_unit_test(test_rpl_parse),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_unknown_command),
		cmocka_unit_test(test_billion_laughs_xxe),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_encode_replies),
		cmocka_unit_test(test_encode_notices_history),
		cmocka_unit_test(test_grpchat_round_trip),
		cmocka_unit_test(test_encode_participants),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

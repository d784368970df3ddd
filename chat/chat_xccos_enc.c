/*
 * chat_xccos_enc — the XCCOS encoder; see chat_xccos.h.
 *
 * Output is built by appending to a caller's struct cv_buf, so a server can
 * batch several replies, notices and history items into one envelope (one
 * SIP INFO).  Every value passes through chat_xccos_escape(), which refuses
 * (-EINVAL) what XML 1.0 cannot carry instead of emitting a document a
 * client would reject: invalid UTF-8, C0 controls other than TAB/LF/CR,
 * U+FFFE and U+FFFF.  Attribute values also escape TAB, LF and CR as
 * character references, which attribute-value normalisation would
 * otherwise turn into spaces, so a value round-trips byte for byte.
 */
#include "chat_xccos.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

const char *chat_xccos_code_text(int code)
{
	switch (code) {
	case CHAT_XCCOS_OK: return "SUCCESS_OK";
	case CHAT_XCCOS_MALFORMED: return "ERR_MALFORMED";
	case CHAT_XCCOS_UNAUTHORIZED: return "ERR_UNAUTHORIZED";
	case CHAT_XCCOS_FORBIDDEN: return "ERR_FORBIDDEN";
	case CHAT_XCCOS_NOT_FOUND: return "ERR_NOT_FOUND";
	case CHAT_XCCOS_TOO_LARGE: return "ERR_TOO_LARGE";
	case CHAT_XCCOS_UNKNOWN_CMD: return "ERR_UNKNOWN_COMMAND";
	case CHAT_XCCOS_BUSY: return "ERR_BUSY";
	default: return "ERR_SERVER";
	}
}

/* Length of the valid XML character at s (1..4), or 0. */
static size_t xml_char_len(const unsigned char *s)
{
	uint32_t cp;
	size_t n;

	if (s[0] < 0x80) {
		if (s[0] < 0x20 && s[0] != '\t' && s[0] != '\n' && s[0] != '\r')
			return 0;
		return 1;
	}
	if (s[0] >= 0xC2 && s[0] <= 0xDF) {
		n = 2;
		cp = s[0] & 0x1F;
	} else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
		n = 3;
		cp = s[0] & 0x0F;
	} else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)   /* also stops at the NUL */
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE || cp == 0xFFFF)
		return 0;
	return n;
}

int chat_xccos_escape(struct cv_buf *b, const char *s, bool attr)
{
	const unsigned char *p = (const unsigned char *)s, *run = p;
	int rc;

	while (*p) {
		const char *rep = NULL;
		size_t n = xml_char_len(p);

		if (n == 0)
			return -EINVAL;
		switch (*p) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '\r': rep = "&#13;"; break;
		case '"': rep = attr ? "&quot;" : NULL; break;
		case '\'': rep = attr ? "&apos;" : NULL; break;
		case '\t': rep = attr ? "&#9;" : NULL; break;
		case '\n': rep = attr ? "&#10;" : NULL; break;
		default: break;
		}
		if (!rep) {
			p += n;
			continue;
		}
		if ((rc = cv_buf_append(b, run, (size_t)(p - run))) != 0 ||
		    (rc = cv_buf_append(b, rep, strlen(rep))) != 0)
			return rc;
		p++;
		run = p;
	}
	return cv_buf_append(b, run, (size_t)(p - run));
}

static int lit(struct cv_buf *b, const char *s)
{
	return cv_buf_append(b, s, strlen(s));
}

/* ` name="value"` when value is not NULL. */
static int attr_s(struct cv_buf *b, const char *name, const char *value)
{
	int rc;

	if (!value)
		return 0;
	if ((rc = cv_buf_printf(b, " %s=\"", name)) != 0 ||
	    (rc = chat_xccos_escape(b, value, true)) != 0)
		return rc;
	return lit(b, "\"");
}

static int attr_i(struct cv_buf *b, const char *name, int64_t v)
{
	return cv_buf_printf(b, " %s=\"%" PRId64 "\"", name, v);
}

/* Names are ours (reply/notice names), but they land in an attribute. */
static int check_name(const char *name)
{
	if (!name || !*name || strlen(name) > 64)
		return -EINVAL;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
			return -EINVAL;
	return 0;
}

int chat_xccos_env_begin(struct cv_buf *b, int64_t envid)
{
	return cv_buf_printf(b, "<xccos ver=\"1\" envid=\"%" PRId64 "\" xmlns=\"" CHAT_XCCOS_NS "\">",
			     envid);
}

int chat_xccos_env_end(struct cv_buf *b)
{
	return lit(b, "</xccos>");
}

int chat_xccos_rpl_begin(struct cv_buf *b, const char *name, int64_t seqid, int64_t cmd_seqid,
			 int64_t cmd_envid, int code)
{
	if (check_name(name) != 0 || code < 100 || code > 999)
		return -EINVAL;
	return cv_buf_printf(b, "<rpl id=\"rpl:%s\" seqid=\"%" PRId64 "\"><commandid seqid=\"%"
			     PRId64 "\" envid=\"%" PRId64 "\"/><resp code=\"%d\">%s</resp><data>",
			     name, seqid, cmd_seqid, cmd_envid, code, chat_xccos_code_text(code));
}

int chat_xccos_rpl_end(struct cv_buf *b)
{
	return lit(b, "</data></rpl>");
}

int chat_xccos_ntc_begin(struct cv_buf *b, const char *name, int64_t seqid)
{
	if (check_name(name) != 0)
		return -EINVAL;
	return cv_buf_printf(b, "<ntc id=\"ntc:%s\" seqid=\"%" PRId64 "\"><data>", name, seqid);
}

int chat_xccos_ntc_end(struct cv_buf *b)
{
	return lit(b, "</data></ntc>");
}

static int chat_attrs_and_text(struct cv_buf *b, const struct chat_xccos_chat *c)
{
	int rc;

	if (!c->chan_uri || !c->text)
		return -EINVAL;
	if ((rc = attr_s(b, "chanUri", c->chan_uri)) != 0 ||
	    (rc = attr_s(b, "author", c->author)) != 0 ||
	    (rc = attr_s(b, "ts", c->ts)) != 0 ||
	    (c->msgid >= 0 && (rc = attr_i(b, "msgid", c->msgid)) != 0) ||
	    (rc = lit(b, "><chat>")) != 0 ||
	    (rc = chat_xccos_escape(b, c->text, false)) != 0)
		return rc;
	return lit(b, "</chat>");
}

int chat_xccos_put_grpchat(struct cv_buf *b, int64_t seqid, const struct chat_xccos_chat *c)
{
	int rc;

	if ((rc = cv_buf_printf(b, "<grpchat id=\"grpchat\" seqid=\"%" PRId64 "\"", seqid)) != 0 ||
	    (rc = chat_attrs_and_text(b, c)) != 0)
		return rc;
	return lit(b, "</grpchat>");
}

int chat_xccos_put_msg(struct cv_buf *b, const struct chat_xccos_chat *c)
{
	int rc;

	if ((rc = lit(b, "<msg id=\"grpchat\"")) != 0 || (rc = chat_attrs_and_text(b, c)) != 0)
		return rc;
	return lit(b, "</msg>");
}

int chat_xccos_put_uib(struct cv_buf *b, const char *uri)
{
	int rc;

	if (!uri)
		return -EINVAL;
	if ((rc = lit(b, "<uib")) != 0 || (rc = attr_s(b, "uri", uri)) != 0)
		return rc;
	return lit(b, "/>");
}

int chat_xccos_put_sib(struct cv_buf *b, const struct chat_xccos_sib *s)
{
	int rc;

	if ((rc = lit(b, "<sib")) != 0 ||
	    (rc = attr_s(b, "serverTime", s->server_time)) != 0 ||
	    (rc = attr_i(b, "searchLimit", s->search_limit)) != 0 ||
	    (rc = attr_i(b, "messageSizeLimit", s->message_size_limit)) != 0 ||
	    (rc = attr_i(b, "storySizeLimit", s->story_size_limit)) != 0 ||
	    (rc = attr_s(b, "rootUri", s->root_uri)) != 0)
		return rc;
	return lit(b, "/>");
}

int chat_xccos_put_chanib(struct cv_buf *b, const struct chat_xccos_room *r)
{
	int rc = chat_xccos_chanib_begin(b, r);

	return rc ? rc : chat_xccos_chanib_end(b);
}

int chat_xccos_chanib_end(struct cv_buf *b)
{
	return lit(b, "</chanib>");
}

int chat_xccos_chanib_begin_uri(struct cv_buf *b, const char *uri)
{
	int rc;

	if (!uri)
		return -EINVAL;
	if ((rc = lit(b, "<chanib")) != 0 || (rc = attr_s(b, "uri", uri)) != 0)
		return rc;
	return lit(b, ">");
}

int chat_xccos_put_uib_id(struct cv_buf *b, int64_t id, const char *uri)
{
	int rc;

	if (!uri)
		return -EINVAL;
	if ((rc = lit(b, "<uib")) != 0 || (rc = attr_i(b, "id", id)) != 0 ||
	    (rc = attr_s(b, "uri", uri)) != 0)
		return rc;
	return lit(b, "/>");
}

int chat_xccos_uib_begin(struct cv_buf *b, const char *uri)
{
	int rc;

	if (!uri)
		return -EINVAL;
	if ((rc = lit(b, "<uib")) != 0 || (rc = attr_s(b, "uri", uri)) != 0)
		return rc;
	return lit(b, ">");
}

int chat_xccos_uib_end(struct cv_buf *b)
{
	return lit(b, "</uib>");
}

int chat_xccos_put_aib(struct cv_buf *b, const char *key, const char *domain, const char *value)
{
	int rc;

	if (!key || !value)
		return -EINVAL;
	if ((rc = lit(b, "<aib")) != 0 || (rc = attr_s(b, "key", key)) != 0 ||
	    (rc = attr_s(b, "domain", domain)) != 0 || (rc = attr_s(b, "value", value)) != 0)
		return rc;
	return lit(b, "/>");
}

int chat_xccos_chanib_begin(struct cv_buf *b, const struct chat_xccos_room *r)
{
	int rc;

	if ((rc = lit(b, "<chanib")) != 0 ||
	    (rc = attr_s(b, "name", r->name)) != 0 ||
	    (rc = attr_s(b, "description", r->description)) != 0 ||
	    (rc = attr_s(b, "uri", r->uri)) != 0 ||
	    (rc = attr_s(b, "topic", r->topic)) != 0 ||
	    (rc = lit(b, ">")) != 0)
		return rc;
	if (r->ucnt >= 0 &&
	    (rc = cv_buf_printf(b, "<info id=\"urn:parlano:ma:info:ucnt\">%" PRId64 "</info>",
				r->ucnt)) != 0)
		return rc;
	/* "visibilty" is how the attribute is spelled on the wire. */
	if ((rc = cv_buf_printf(b, "<info id=\"urn:parlano:ma:info:visibilty\">%s</info>",
				r->is_private ? "private" : "public")) != 0 ||
	    (rc = cv_buf_printf(b, "<prop id=\"urn:parlano:ma:prop:logged\">%s</prop>",
				r->logged ? "true" : "false")) != 0)
		return rc;
	return 0;
}

int chat_xccos_put_pref(struct cv_buf *b, const char *label, int64_t seqid, const char *content)
{
	int rc;

	if (!label)
		return -EINVAL;
	if ((rc = lit(b, "<pref")) != 0 || (rc = attr_s(b, "label", label)) != 0 ||
	    (rc = attr_i(b, "seqid", seqid)) != 0 || (rc = attr_s(b, "content", content)) != 0)
		return rc;
	return lit(b, "/>");
}

int chat_xccos_put_inv(struct cv_buf *b, const char *chan_uri, const char *author, const char *ts)
{
	int rc;

	if (!chan_uri)
		return -EINVAL;
	if ((rc = lit(b, "<inv")) != 0 || (rc = attr_s(b, "chanUri", chan_uri)) != 0 ||
	    (rc = attr_s(b, "author", author)) != 0 || (rc = attr_s(b, "ts", ts)) != 0)
		return rc;
	return lit(b, "/>");
}

int chat_xccos_put_token(struct cv_buf *b, const char *token, const char *serveruri)
{
	int rc;

	if (!token || !serveruri)
		return -EINVAL;
	if ((rc = lit(b, "<token")) != 0 || (rc = attr_s(b, "token", token)) != 0 ||
	    (rc = attr_s(b, "serveruri", serveruri)) != 0)
		return rc;
	return lit(b, "/>");
}

/*
 * chat_xccos — the XCCOS decoder (libexpat); see chat_xccos.h.  The encoder
 * lives in chat_xccos_enc.c.
 *
 * Hardening, in the order the bytes meet it:
 *   - the size limit is checked before expat sees a byte (413);
 *   - the parser is created with UTF-8 forced (a declared encoding cannot
 *     switch it) and without namespace processing (xmlns is checked as the
 *     plain attribute it is on the wire);
 *   - a DOCTYPE or an entity declaration stops the parser (400): XCCOS has
 *     no DTD, so this refuses billion laughs and XXE before any expansion;
 *     parameter entity parsing stays NEVER and no external entity handler
 *     is set, so nothing outside the buffer is ever read;
 *   - every start tag is counted (element limit, 413), nested (depth
 *     limit, 400), and its attributes counted (400) and measured (413);
 *   - text is kept only inside <chat> and <resp>, measured (413).
 * Handlers record the first error and stop the parser; after XML_Parse the
 * recorded error wins over expat's own ("parsing aborted").
 */
#include "chat_xccos.h"

#include <errno.h>
#include <expat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct chat_xccos_limits chat_xccos_default_limits = {
	.max_bytes = 65536,
	.max_depth = 8,
	.max_elements = 1024,
	.max_attrs = 16,
	.max_attr_len = 2048,
	.max_text = 32768,
	.max_items = 100,
};

static const struct {
	enum chat_xccos_cmd cmd;
	const char *name;     /* after "cmd:" */
	const char *reply;    /* after "rpl:" */
} cmd_table[] = {
	{ CHAT_CMD_REQURI, "requri", "requri" },
	{ CHAT_CMD_GETSERVERINFO, "getserverinfo", "getservinfo" },
	{ CHAT_CMD_GETPREF, "getpref", "getpref" },
	{ CHAT_CMD_SETPREF, "setpref", "setpref" },
	{ CHAT_CMD_GETASSOCIATIONS, "getassociations", "getassociations" },
	{ CHAT_CMD_CHANSRCH, "chansrch", "chansrch" },
	{ CHAT_CMD_JOIN, "join", "join" },
	{ CHAT_CMD_BJOIN, "bjoin", "bjoin" },
	{ CHAT_CMD_PART, "part", "part" },
	{ CHAT_CMD_BCCONTEXT, "bccontext", "bccontext" },
	{ CHAT_CMD_GETINV, "getinv", "getinv" },
	{ CHAT_CMD_GETFUTOK, "getfutok", "getftok" },
	{ CHAT_CMD_GETFDTOK, "getfdtok", "getftok" },
	{ CHAT_CMD_GRPCHAT, "grpchat", "grpchat" },
};

const char *chat_xccos_cmd_name(enum chat_xccos_cmd c)
{
	for (size_t i = 0; i < sizeof(cmd_table) / sizeof(cmd_table[0]); i++)
		if (cmd_table[i].cmd == c)
			return cmd_table[i].name;
	return NULL;
}

const char *chat_xccos_reply_name(enum chat_xccos_cmd c)
{
	for (size_t i = 0; i < sizeof(cmd_table) / sizeof(cmd_table[0]); i++)
		if (cmd_table[i].cmd == c)
			return cmd_table[i].reply;
	return NULL;
}

int chat_xccos_chanid_uri(const struct chat_xccos_chanid *c, char *out, size_t outlen)
{
	int n;

	if (!c->domain || !c->value || !c->domain[0] || !c->value[0] ||
	    strchr(c->domain, '/') || strchr(c->value, '/'))
		return -EINVAL;
	n = snprintf(out, outlen, "ma-chan://%s/%s", c->domain, c->value);
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

/* Where an element sits decides what it means; anything else is skipped. */
enum node {
	N_OTHER = 0, N_XCCOS, N_MSG, N_DATA, N_COMMANDID, N_RESP, N_CHAT,
	N_CHANID, N_CHANIB, N_QIB, N_BCQ, N_LAST, N_PREF, N_FTDB, N_INV,
};

#define MAX_DEPTH_HARD 64   /* the stack; limits.max_depth is clamped to it */

struct px {
	XML_Parser p;
	struct chat_xccos_limits lim;
	struct chat_xccos_msg *m;
	int depth;
	enum node stack[MAX_DEPTH_HARD];
	size_t nelems;
	int nmsgs;              /* cmd/rpl/ntc/grpchat children of xccos */
	bool seen_chanib;
	struct cv_buf text;     /* <chat> or <resp> text */
	bool collect;
	int code;               /* first error, 0 none */
	char *err;
	size_t errlen;
};

static void fail(struct px *x, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(struct px *x, int code, const char *fmt, ...)
{
	va_list ap;

	if (x->code)
		return;
	x->code = code;
	if (x->errlen) {
		va_start(ap, fmt);
		vsnprintf(x->err, x->errlen, fmt, ap);
		va_end(ap);
	}
	XML_StopParser(x->p, XML_FALSE);
}

static const char *attr(const XML_Char **atts, const char *name)
{
	for (size_t i = 0; atts[i]; i += 2)
		if (strcmp(atts[i], name) == 0)
			return atts[i + 1];
	return NULL;
}

/* Copy an optional attribute; false (with x->code set) only on ENOMEM. */
static bool dup_attr(struct px *x, char **dst, const XML_Char **atts, const char *name)
{
	const char *v = attr(atts, name);

	if (!v || *dst)   /* absent, or a repeated element: the first wins */
		return true;
	*dst = strdup(v);
	if (!*dst) {
		fail(x, -ENOMEM, "out of memory");
		return false;
	}
	return true;
}

/* Optional non-negative integer attribute; false with 400 on a bad one. */
static bool int_attr(struct px *x, const XML_Char **atts, const char *name, int64_t *out)
{
	const char *v = attr(atts, name);

	if (!v)
		return true;
	if (cv_parse_i64(v, out) != 0) {
		fail(x, CHAT_XCCOS_MALFORMED, "attribute %s: not a non-negative integer", name);
		return false;
	}
	return true;
}

static bool grow(struct px *x, void **arr, size_t n, size_t elsize)
{
	void *na;

	if (n >= x->lim.max_items) {
		fail(x, CHAT_XCCOS_TOO_LARGE, "more than %zu items", x->lim.max_items);
		return false;
	}
	/* Grow one by one: counts are small and bounded by max_items. */
	na = realloc(*arr, (n + 1) * elsize);
	if (!na) {
		fail(x, -ENOMEM, "out of memory");
		return false;
	}
	*arr = na;
	memset((char *)na + n * elsize, 0, elsize);
	return true;
}

static void start_msg(struct px *x, const char *name, const XML_Char **atts)
{
	struct chat_xccos_msg *m = x->m;
	const char *id = attr(atts, "id");

	if (++x->nmsgs > 1) {
		fail(x, CHAT_XCCOS_MALFORMED, "more than one message in the envelope");
		return;
	}
	if (strcmp(name, "cmd") == 0)
		m->kind = CHAT_XCCOS_CMD;
	else if (strcmp(name, "rpl") == 0)
		m->kind = CHAT_XCCOS_RPL;
	else if (strcmp(name, "ntc") == 0)
		m->kind = CHAT_XCCOS_NTC;
	else if (strcmp(name, "grpchat") == 0)
		m->kind = CHAT_XCCOS_GRPCHAT;
	if (!id && m->kind == CHAT_XCCOS_GRPCHAT)
		id = "grpchat";
	if (!id) {
		fail(x, CHAT_XCCOS_MALFORMED, "<%s> without id", name);
		return;
	}
	if (!(m->id = strdup(id))) {
		fail(x, -ENOMEM, "out of memory");
		return;
	}
	if (!int_attr(x, atts, "seqid", &m->seqid))
		return;
	if (m->kind == CHAT_XCCOS_GRPCHAT) {
		m->cmd = CHAT_CMD_GRPCHAT;
		if (dup_attr(x, &m->grpchat.chan_uri, atts, "chanUri") &&
		    dup_attr(x, &m->grpchat.author, atts, "author"))
			dup_attr(x, &m->grpchat.ts, atts, "ts");
	} else if (m->kind == CHAT_XCCOS_CMD && strncmp(id, "cmd:", 4) == 0) {
		for (size_t i = 0; i < sizeof(cmd_table) / sizeof(cmd_table[0]); i++)
			if (cmd_table[i].cmd != CHAT_CMD_GRPCHAT &&
			    strcmp(id + 4, cmd_table[i].name) == 0)
				m->cmd = cmd_table[i].cmd;
	}
}

static void start_data_child(struct px *x, enum node n, const XML_Char **atts)
{
	struct chat_xccos_msg *m = x->m;

	switch (n) {
	case N_CHANID: {
		struct chat_xccos_chanid *c;

		if (!grow(x, (void **)&m->chanids, m->nchanids, sizeof(*m->chanids)))
			return;
		c = &m->chanids[m->nchanids++];
		if (int_attr(x, atts, "key", &c->key) && dup_attr(x, &c->domain, atts, "domain"))
			dup_attr(x, &c->value, atts, "value");
		return;
	}
	case N_CHANIB:
		if (x->seen_chanib)
			return;
		x->seen_chanib = true;
		if (dup_attr(x, &m->chanib.uri, atts, "uri") &&
		    dup_attr(x, &m->chanib.name, atts, "name") &&
		    dup_attr(x, &m->chanib.description, atts, "description"))
			dup_attr(x, &m->chanib.topic, atts, "topic");
		return;
	case N_QIB:
		if (dup_attr(x, &m->qib.qtype, atts, "qtype"))
			dup_attr(x, &m->qib.criteria, atts, "criteria");
		return;
	case N_PREF: {
		struct chat_xccos_pref *p;

		if (!grow(x, (void **)&m->prefs, m->nprefs, sizeof(*m->prefs)))
			return;
		p = &m->prefs[m->nprefs++];
		p->seqid = -1;
		if (int_attr(x, atts, "seqid", &p->seqid) && dup_attr(x, &p->label, atts, "label"))
			dup_attr(x, &p->content, atts, "content");
		return;
	}
	case N_FTDB:
		if (dup_attr(x, &m->ftdb.channel_uri, atts, "channelUri"))
			dup_attr(x, &m->ftdb.file_url, atts, "fileUrl");
		return;
	case N_INV:
		if (dup_attr(x, &m->inv.invite_id, atts, "inviteId"))
			dup_attr(x, &m->inv.domain, atts, "domain");
		return;
	default:
		return;
	}
}

/* What an element named name means under parent. */
static enum node classify(enum node parent, int depth, const char *name)
{
	static const struct { const char *name; enum node n; } data_children[] = {
		{ "chanid", N_CHANID }, { "chanib", N_CHANIB }, { "qib", N_QIB },
		{ "bcq", N_BCQ }, { "pref", N_PREF }, { "ftdb", N_FTDB }, { "inv", N_INV },
	};

	if (depth == 0)
		return strcmp(name, "xccos") == 0 ? N_XCCOS : N_OTHER;
	switch (parent) {
	case N_XCCOS:
		return N_MSG;   /* which kind is checked in start_msg */
	case N_MSG:
		if (strcmp(name, "data") == 0) return N_DATA;
		if (strcmp(name, "commandid") == 0) return N_COMMANDID;
		if (strcmp(name, "resp") == 0) return N_RESP;
		if (strcmp(name, "chat") == 0) return N_CHAT;
		return N_OTHER;
	case N_DATA:
		for (size_t i = 0; i < sizeof(data_children) / sizeof(data_children[0]); i++)
			if (strcmp(name, data_children[i].name) == 0)
				return data_children[i].n;
		return N_OTHER;
	case N_BCQ:
		return strcmp(name, "last") == 0 ? N_LAST : N_OTHER;
	default:
		return N_OTHER;
	}
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
	struct px *x = ud;
	struct chat_xccos_msg *m = x->m;
	enum node parent = x->depth > 0 ? x->stack[x->depth - 1] : N_OTHER, n;
	int nattrs = 0;

	if (x->code)
		return;
	if (++x->nelems > x->lim.max_elements) {
		fail(x, CHAT_XCCOS_TOO_LARGE, "more than %zu elements", x->lim.max_elements);
		return;
	}
	if (x->depth >= x->lim.max_depth) {
		fail(x, CHAT_XCCOS_MALFORMED, "nested deeper than %d elements", x->lim.max_depth);
		return;
	}
	for (size_t i = 0; atts[i]; i += 2) {
		if (++nattrs > x->lim.max_attrs) {
			fail(x, CHAT_XCCOS_MALFORMED, "<%.32s>: more than %d attributes", name,
			     x->lim.max_attrs);
			return;
		}
		if (strlen(atts[i + 1]) > x->lim.max_attr_len) {
			fail(x, CHAT_XCCOS_TOO_LARGE, "<%.32s %.32s>: value longer than %zu bytes",
			     name, atts[i], x->lim.max_attr_len);
			return;
		}
	}
	n = classify(parent, x->depth, name);
	x->stack[x->depth++] = n;
	switch (n) {
	case N_XCCOS: {
		const char *ver = attr(atts, "ver"), *ns = attr(atts, "xmlns");

		if (!ver || strcmp(ver, "1") != 0) {
			fail(x, CHAT_XCCOS_MALFORMED, "<xccos> without ver=\"1\"");
			return;
		}
		if (!ns || strcmp(ns, CHAT_XCCOS_NS) != 0) {
			fail(x, CHAT_XCCOS_MALFORMED, "<xccos> without xmlns=\"" CHAT_XCCOS_NS "\"");
			return;
		}
		if (!attr(atts, "envid")) {
			fail(x, CHAT_XCCOS_MALFORMED, "<xccos> without envid");
			return;
		}
		int_attr(x, atts, "envid", &m->envid);
		return;
	}
	case N_MSG:
		if (strcmp(name, "cmd") && strcmp(name, "rpl") && strcmp(name, "ntc") &&
		    strcmp(name, "grpchat")) {
			fail(x, CHAT_XCCOS_MALFORMED, "unknown element <%.32s> in <xccos>", name);
			return;
		}
		start_msg(x, name, atts);
		return;
	case N_COMMANDID:
		if (int_attr(x, atts, "seqid", &m->resp.cmd_seqid))
			int_attr(x, atts, "envid", &m->resp.cmd_envid);
		return;
	case N_RESP: {
		int64_t code = 0;

		if (int_attr(x, atts, "code", &code) && code > 999)
			fail(x, CHAT_XCCOS_MALFORMED, "resp code %lld out of range", (long long)code);
		m->resp.code = (int)code;
		x->collect = true;
		cv_buf_reset(&x->text);
		return;
	}
	case N_CHAT:
		x->collect = true;
		cv_buf_reset(&x->text);
		return;
	case N_LAST:
		int_attr(x, atts, "cnt", &m->bcq_last);
		return;
	case N_OTHER:
		if (x->depth == 1)
			fail(x, CHAT_XCCOS_MALFORMED, "root element <%.32s> is not <xccos>", name);
		return;
	default:
		start_data_child(x, n, atts);
		return;
	}
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
	struct px *x = ud;
	enum node n;
	char **dst = NULL;

	(void)name;
	if (x->code || x->depth == 0)
		return;
	n = x->stack[--x->depth];
	if (n == N_CHAT)   /* only ever classified under the message element */
		dst = &x->m->grpchat.text;
	else if (n == N_RESP)
		dst = &x->m->resp.text;
	if (!dst)
		return;
	x->collect = false;
	if (*dst)
		return;   /* a second <chat>: the first wins */
	*dst = strndup(x->text.data ? x->text.data : "", x->text.len);
	if (!*dst)
		fail(x, -ENOMEM, "out of memory");
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
	struct px *x = ud;

	if (x->code || !x->collect || len <= 0)
		return;
	if (x->text.len + (size_t)len > x->lim.max_text) {
		fail(x, CHAT_XCCOS_TOO_LARGE, "text longer than %zu bytes", x->lim.max_text);
		return;
	}
	if (cv_buf_append(&x->text, s, (size_t)len) != 0)
		fail(x, -ENOMEM, "out of memory");
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
			       const XML_Char *pubid, int has_internal_subset)
{
	(void)name; (void)sysid; (void)pubid; (void)has_internal_subset;
	fail(ud, CHAT_XCCOS_MALFORMED, "DOCTYPE refused");
}

static void XMLCALL on_entity_decl(void *ud, const XML_Char *name, int is_param,
				   const XML_Char *value, int value_len, const XML_Char *base,
				   const XML_Char *sysid, const XML_Char *pubid,
				   const XML_Char *notation)
{
	(void)name; (void)is_param; (void)value; (void)value_len; (void)base;
	(void)sysid; (void)pubid; (void)notation;
	fail(ud, CHAT_XCCOS_MALFORMED, "entity declaration refused");
}

/* Required data per command (after a complete parse). */
static int check_command(const struct chat_xccos_msg *m, char *err, size_t errlen)
{
	const char *need = NULL;

	switch (m->cmd) {
	case CHAT_CMD_JOIN:
	case CHAT_CMD_BJOIN:
		if (m->cmd == CHAT_CMD_JOIN && m->nchanids == 0)
			need = "<chanid>";
		for (size_t i = 0; i < m->nchanids; i++)
			if (!m->chanids[i].domain || !m->chanids[i].value)
				need = "chanid domain and value";
		break;
	case CHAT_CMD_PART:
	case CHAT_CMD_BCCONTEXT:
		if (!m->chanib.uri)
			need = "<chanib uri>";
		break;
	case CHAT_CMD_CHANSRCH:
		if (!m->qib.qtype)
			need = "<qib qtype>";
		break;
	case CHAT_CMD_GETPREF:
	case CHAT_CMD_SETPREF:
		if (m->nprefs == 0)
			need = "<pref>";
		for (size_t i = 0; i < m->nprefs; i++)
			if (!m->prefs[i].label ||
			    (m->cmd == CHAT_CMD_SETPREF && !m->prefs[i].content))
				need = m->cmd == CHAT_CMD_SETPREF ? "pref label and content"
								  : "pref label";
		break;
	case CHAT_CMD_GETFUTOK:
	case CHAT_CMD_GETFDTOK:
		if (!m->ftdb.channel_uri || !m->ftdb.file_url)
			need = "<ftdb channelUri fileUrl>";
		break;
	case CHAT_CMD_GRPCHAT:
		if (!m->grpchat.chan_uri || !m->grpchat.text)
			need = "chanUri and <chat>";
		break;
	default:
		break;
	}
	if (!need)
		return 0;
	snprintf(err, errlen, "%s: %s required", m->id, need);
	return CHAT_XCCOS_MALFORMED;
}

int chat_xccos_parse(const char *buf, size_t len, const struct chat_xccos_limits *lim,
		     struct chat_xccos_msg *out, char *err, size_t errlen)
{
	struct px x = { .m = out, .err = err, .errlen = errlen };
	enum XML_Status st;
	int rc;

	memset(out, 0, sizeof(*out));
	out->bcq_last = -1;
	out->resp.cmd_envid = out->resp.cmd_seqid = -1;
	if (errlen)
		err[0] = '\0';
	x.lim = lim ? *lim : chat_xccos_default_limits;
	if (x.lim.max_depth <= 0 || x.lim.max_depth > MAX_DEPTH_HARD)
		x.lim.max_depth = MAX_DEPTH_HARD;
	if (len > x.lim.max_bytes || len > (size_t)INT32_MAX) {
		snprintf(err, errlen, "envelope of %zu bytes, limit %zu", len, x.lim.max_bytes);
		return CHAT_XCCOS_TOO_LARGE;
	}
	x.p = XML_ParserCreate("UTF-8");
	if (!x.p) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	XML_SetUserData(x.p, &x);
	XML_SetElementHandler(x.p, on_start, on_end);
	XML_SetCharacterDataHandler(x.p, on_text);
	XML_SetStartDoctypeDeclHandler(x.p, on_doctype);
	XML_SetEntityDeclHandler(x.p, on_entity_decl);
	XML_SetParamEntityParsing(x.p, XML_PARAM_ENTITY_PARSING_NEVER);
	st = XML_Parse(x.p, buf, (int)len, XML_TRUE);
	if (x.code) {
		rc = x.code;
	} else if (st != XML_STATUS_OK) {
		enum XML_Error e = XML_GetErrorCode(x.p);

		rc = e == XML_ERROR_NO_MEMORY ? -ENOMEM : CHAT_XCCOS_MALFORMED;
		snprintf(err, errlen, "line %lu column %lu: %s",
			 (unsigned long)XML_GetCurrentLineNumber(x.p),
			 (unsigned long)XML_GetCurrentColumnNumber(x.p), XML_ErrorString(e));
	} else if (x.nmsgs == 0) {
		rc = CHAT_XCCOS_MALFORMED;
		snprintf(err, errlen, "empty envelope: no cmd, rpl, ntc or grpchat");
	} else if (out->kind == CHAT_XCCOS_CMD && out->cmd == CHAT_CMD_UNKNOWN) {
		rc = CHAT_XCCOS_UNKNOWN_CMD;
		snprintf(err, errlen, "unknown command \"%.64s\"", out->id);
	} else {
		rc = check_command(out, err, errlen);
	}
	XML_ParserFree(x.p);
	cv_buf_free(&x.text);
	if (rc != 0 && rc != CHAT_XCCOS_UNKNOWN_CMD) {
		chat_xccos_msg_clear(out);
	} else if (rc == CHAT_XCCOS_UNKNOWN_CMD) {
		/* Keep what the reply needs (kind, id, seqid, envid), drop the rest. */
		struct chat_xccos_msg keep = { .kind = out->kind, .id = out->id,
					       .seqid = out->seqid, .envid = out->envid };

		out->id = NULL;
		chat_xccos_msg_clear(out);
		*out = keep;
		out->bcq_last = -1;
		out->resp.cmd_envid = out->resp.cmd_seqid = -1;
	}
	return rc;
}

void chat_xccos_msg_clear(struct chat_xccos_msg *m)
{
	if (!m)
		return;
	free(m->id);
	for (size_t i = 0; i < m->nchanids; i++) {
		free(m->chanids[i].domain);
		free(m->chanids[i].value);
	}
	free(m->chanids);
	free(m->chanib.uri);
	free(m->chanib.name);
	free(m->chanib.description);
	free(m->chanib.topic);
	free(m->qib.qtype);
	free(m->qib.criteria);
	for (size_t i = 0; i < m->nprefs; i++) {
		free(m->prefs[i].label);
		free(m->prefs[i].content);
	}
	free(m->prefs);
	free(m->ftdb.channel_uri);
	free(m->ftdb.file_url);
	free(m->inv.invite_id);
	free(m->inv.domain);
	free(m->grpchat.chan_uri);
	free(m->grpchat.author);
	free(m->grpchat.ts);
	free(m->grpchat.text);
	free(m->resp.text);
	memset(m, 0, sizeof(*m));
	m->bcq_last = -1;
	m->resp.cmd_envid = m->resp.cmd_seqid = -1;
}

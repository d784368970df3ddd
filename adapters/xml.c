/*
 * xml — the Lync Server 2013 Persistent Chat compliance XML adapter.
 *
 * Output follows the format the Lync Compliance service's XML adapter writes
 * (TechNet "Customizing the XSLT definition file in Lync Server 2013"), so the
 * XSLT sheets written for it keep working:
 *
 *   <?xml version="1.0" encoding="UTF-8"?>
 *   <Conversations xmlns:xsi="…XMLSchema-instance" xmlns:xsd="…XMLSchema">
 *     <Conversation>
 *       <Channel uri="ma-chan://…" name="…" islogged=""/>
 *       <FirstMessage type="JOIN" content="" id="…"> Sender, DateTimeUTC </FirstMessage>
 *       <Messages> <Message type content id> Sender, DateTimeUTC </Message>… </Messages>
 *       <StartTimeUTC …/> <EndTimeUTC …/>
 *     </Conversation>
 *   </Conversations>
 *
 * As in the original: no default namespace (only the xsi/xsd declarations
 * .NET's XmlSerializer emits), Channel carries uri and name as attributes,
 * StartTimeUTC/EndTimeUTC follow Messages, and DateTimeUTC has since1970 (ms),
 * string (7 fraction digits) and long (.NET ticks = ms*10000 +
 * 621355968000000000).  Message ids are chatvault staging ids; Sender id is a
 * small integer per user, stable within one file (order of first appearance).
 *
 * Our additions, each optional for a consumer to ignore:
 *   - chat.delete is a Message of type "DELETE" (Lync had none); content is
 *     the event's text, if any.
 *   - IM conversations (im.*) become a Conversation whose Channel uri is
 *     "im:<a>;<b>" (the two SIP addresses without "sip:", sorted bytewise) and
 *     name "<a>, <b>"; im.message → CHAT, im.session.start → JOIN,
 *     im.session.end → PART.
 *   - Message/FirstMessage get <Attachments><File name size sha256/>… when the
 *     event lists files; FILEUPLOAD/FILEDOWNLOAD content is the file names
 *     joined by ", ".
 *   - Characters XML 1.0 cannot carry (C0 controls other than TAB/LF/CR,
 *     U+FFFE/U+FFFF, malformed UTF-8) are replaced by U+FFFD; the Message gets
 *     invalidChars="N" and a warning is logged, so the change is visible.
 *   - room_details: Channel gets a <Description kind scheme domain path
 *     messages participants/> child; user_details: the Conversation ends with
 *     <Participants><User id UserName email internal uri messages/>…;
 *     attachments_manifest: <basename>.attachments.xml lists every file
 *     (name, size, sha256, messageId, type, channel, sender).
 *
 * Files: <dir>/YYYY/MM/DD/<name>-<first>-<last>.xml (UTC day of the batch's
 * first event, ids %016"PRId64"); with one_room_per_file one file per
 * Conversation, "-<12 hex of SHA-256(channel uri)>" before ".xml".  Every
 * file is published with cv_write_file_atomic, so a redelivered batch
 * replaces the same names with the same bytes.
 *
 * Helpers shared with jsonl.c and eml.c (output directory, day directory,
 * durable publish, event checks) are repeated in each file on purpose: each
 * adapter is one self-contained translation unit, like a third-party .so.
 */
#include "adapter.h"
#include "builtin.h"
#include "cv_log.h"
#include "adp_common.h"
#include "cv_time.h"
#include "cv_util.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <libxml/xmlwriter.h>

#define XML_COMPONENT "xml"
/* .NET DateTime ticks (100 ns since 0001-01-01) at the Unix epoch. */
#define NET_EPOCH_TICKS INT64_C(621355968000000000)

static const struct adp_key xml_keys[] = {
	{ "dir", ADP_KEY_STRING, NULL, "output directory (default <data dir>/xml)" },
	{ "internal_domain", ADP_KEY_STRING, NULL,
	  "SIP domain whose users are internal=\"true\" (unset: every user)" },
	{ "one_room_per_file", ADP_KEY_BOOL, "false",
	  "one file per room per batch (OneChatRoomPerOutputFile)" },
	{ "room_details", ADP_KEY_BOOL, "false",
	  "describe each room in Channel (AddChatRoomDetails)" },
	{ "user_details", ADP_KEY_BOOL, "false",
	  "list each conversation's participants (AddUserDetails)" },
	{ "attachments_manifest", ADP_KEY_BOOL, "false",
	  "also write <file>.attachments.xml (CreateFileAttachmentsManifest)" },
	{ NULL, ADP_KEY_STRING, NULL, NULL },
};

struct xml_state {
	char *dir;             /* base output directory */
	char *name;            /* instance name, made safe for file names */
	char *internal_domain; /* NULL: every user is internal */
	bool one_room_per_file;
	bool room_details;
	bool user_details;
	bool attachments_manifest;
};

/* ---- XML 1.0 character hygiene ---------------------------------------- */

/* Decode one UTF-8 sequence: its length, and the code point or UINT32_MAX
 * when malformed (then exactly one byte is consumed). */
static size_t utf8_decode(const unsigned char *s, uint32_t *cp)
{
	unsigned char c = s[0];
	uint32_t v, min;
	size_t n;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
		v = c & 0x1Fu;
		min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		v = c & 0x0Fu;
		min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		v = c & 0x07u;
		min = 0x10000;
	} else {
		*cp = UINT32_MAX;
		return 1;
	}
	/* A NUL terminator fails the continuation test, so no over-read. */
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80) {
			*cp = UINT32_MAX;
			return 1;
		}
		v = (v << 6) | (s[i] & 0x3Fu);
	}
	if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
		*cp = UINT32_MAX;
		return 1;
	}
	*cp = v;
	return n;
}

/* XML 1.0 production [2] Char. */
static bool xml_char_ok(uint32_t c)
{
	return c == 0x9 || c == 0xA || c == 0xD || (c >= 0x20 && c <= 0xD7FF) ||
	       (c >= 0xE000 && c <= 0xFFFD) || (c >= 0x10000 && c <= 0x10FFFF);
}

/* How many characters of s XML cannot carry. */
static size_t xml_invalid_count(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;

	if (!s)
		return 0;
	while (*p) {
		uint32_t cp;

		p += utf8_decode(p, &cp);
		if (cp == UINT32_MAX || !xml_char_ok(cp))
			n++;
	}
	return n;
}

/* s with every character XML cannot carry replaced by U+FFFD, into out. */
static int xml_sanitize(const char *s, struct cv_buf *out)
{
	static const char fffd[] = "\xEF\xBF\xBD";
	const unsigned char *p = (const unsigned char *)s, *run = p;

	cv_buf_reset(out);
	if (cv_buf_append(out, "", 0))
		return -ENOMEM;
	while (*p) {
		uint32_t cp;
		size_t n = utf8_decode(p, &cp);

		if (cp == UINT32_MAX || !xml_char_ok(cp)) {
			if (cv_buf_append(out, run, (size_t)(p - run)) ||
			    cv_buf_append(out, fffd, 3))
				return -ENOMEM;
			run = p + n;
		}
		p += n;
	}
	if (cv_buf_append(out, run, (size_t)(p - run)))
		return -ENOMEM;
	return 0;
}

static size_t event_invalid_count(const struct adp_event *e)
{
	size_t n = xml_invalid_count(e->room) + xml_invalid_count(e->user) +
		   xml_invalid_count(e->to) + xml_invalid_count(e->text);

	for (size_t i = 0; i < e->nfiles; i++)
		n += xml_invalid_count(e->files[i].name) + xml_invalid_count(e->files[i].sha256);
	return n;
}

/* ---- writer with a sticky error ---------------------------------------- */

/*
 * Every libxml2 call can fail (allocation); rather than test each of the
 * hundred calls, the first failure is kept and later calls become no-ops,
 * and the result is checked once at the end.
 */
struct xw {
	xmlTextWriterPtr w;
	struct cv_buf scratch;
	int err;
};

static void x_start(struct xw *x, const char *el)
{
	if (!x->err && xmlTextWriterStartElement(x->w, BAD_CAST el) < 0)
		x->err = -ENOMEM;
}

static void x_end(struct xw *x)
{
	if (!x->err && xmlTextWriterEndElement(x->w) < 0)
		x->err = -ENOMEM;
}

static void x_attr(struct xw *x, const char *name, const char *value)
{
	if (x->err)
		return;
	if (xml_sanitize(value ? value : "", &x->scratch)) {
		x->err = -ENOMEM;
		return;
	}
	if (xmlTextWriterWriteAttribute(x->w, BAD_CAST name, BAD_CAST x->scratch.data) < 0)
		x->err = -ENOMEM;
}

static void x_attr_i64(struct xw *x, const char *name, int64_t v)
{
	char num[32];

	snprintf(num, sizeof(num), "%" PRId64, v);
	x_attr(x, name, num);
}

/* DateTimeUTC-shaped element: since1970, string (7 digits), long (ticks). */
static void x_time(struct xw *x, const char *el, int64_t ms)
{
	int64_t secs = ms / 1000, frac = ms % 1000;
	char str[64];
	struct tm tm;
	time_t t;

	if (frac < 0) {
		frac += 1000;
		secs--;
	}
	t = (time_t)secs;
	if (!gmtime_r(&t, &tm)) {
		if (!x->err)
			x->err = -EINVAL;
		return;
	}
	snprintf(str, sizeof(str), "%04d-%02d-%02dT%02d:%02d:%02d.%03d0000Z",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		 tm.tm_sec, (int)frac);
	x_start(x, el);
	x_attr_i64(x, "since1970", ms);
	x_attr(x, "string", str);
	x_attr_i64(x, "long", ms * 10000 + NET_EPOCH_TICKS);
	x_end(x);
}

/* ---- users -------------------------------------------------------------- */

struct xuser {
	const char *uri;  /* as in the events (borrowed) */
	int64_t messages; /* events sent, within the current scope */
};

struct xusers {
	struct xuser *v;
	size_t n;
	size_t cap;
};

static long users_find(const struct xusers *u, const char *uri)
{
	for (size_t i = 0; i < u->n; i++)
		if (strcmp(u->v[i].uri, uri) == 0)
			return (long)i;
	return -1;
}

static long users_add(struct xusers *u, const char *uri)
{
	long i = users_find(u, uri);

	if (i >= 0)
		return i;
	if (u->n == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 16;
		struct xuser *p = reallocarray(u->v, cap, sizeof(*p));

		if (!p)
			return -ENOMEM;
		u->v = p;
		u->cap = cap;
	}
	u->v[u->n].uri = uri;
	u->v[u->n].messages = 0;
	return (long)u->n++;
}

/* Sender/User attributes: UserName id email internal uri. */
static void x_user_attrs(struct xw *x, const struct xml_state *st, const char *uri, long id)
{
	char *addr = adp_sip_addr(uri);
	const char *at, *domain;
	char *user;

	if (!addr) {
		if (!x->err)
			x->err = -ENOMEM;
		return;
	}
	at = strchr(addr, '@');
	domain = at ? at + 1 : "";
	user = strndup(addr, at ? (size_t)(at - addr) : strlen(addr));
	if (!user) {
		free(addr);
		if (!x->err)
			x->err = -ENOMEM;
		return;
	}
	x_attr(x, "UserName", user);
	x_attr_i64(x, "id", id);
	x_attr(x, "email", addr);
	x_attr(x, "internal",
	       !st->internal_domain || strcasecmp(domain, st->internal_domain) == 0 ?
	       "true" : "false");
	x_attr(x, "uri", adp_sip_strip(uri));
	free(user);
	free(addr);
}

/* ---- document ------------------------------------------------------------ */

static int join_file_names(const struct adp_event *e, struct cv_buf *out)
{
	cv_buf_reset(out);
	if (cv_buf_append(out, "", 0))
		return -ENOMEM;
	for (size_t i = 0; i < e->nfiles; i++)
		if (cv_buf_printf(out, "%s%s", i ? ", " : "",
				  e->files[i].name ? e->files[i].name : ""))
			return -ENOMEM;
	return 0;
}

static void x_message(struct xw *x, const struct xml_state *st, const struct xusers *users,
		      const struct adp_event *e, const char *el)
{
	const struct adp_type_info *m = adp_type_info(e->type);
	size_t bad = event_invalid_count(e);
	struct cv_buf names = { 0 };
	const char *content = e->text ? e->text : "";

	if (!strcmp(m->lync, "FILEUPLOAD") || !strcmp(m->lync, "FILEDOWNLOAD")) {
		if (join_file_names(e, &names)) {
			if (!x->err)
				x->err = -ENOMEM;
			return;
		}
		content = names.data;
	} else if (!strcmp(m->lync, "JOIN") || !strcmp(m->lync, "PART")) {
		content = "";
	}
	x_start(x, el);
	x_attr(x, "type", m->lync);
	x_attr(x, "content", content);
	x_attr_i64(x, "id", e->staging_id);
	if (bad)
		x_attr_i64(x, "invalidChars", (int64_t)bad);
	x_start(x, "Sender");
	x_user_attrs(x, st, e->user, users_find(users, e->user) + 1);
	x_end(x);
	x_time(x, "DateTimeUTC", e->ts_ms);
	if (e->nfiles) {
		x_start(x, "Attachments");
		for (size_t i = 0; i < e->nfiles; i++) {
			x_start(x, "File");
			x_attr(x, "name", e->files[i].name);
			x_attr_i64(x, "size", e->files[i].size);
			x_attr(x, "sha256", e->files[i].sha256);
			x_end(x);
		}
		x_end(x);
	}
	x_end(x);
	cv_buf_free(&names);
}

/* "scheme://domain/path" parts for room_details; pointers into uri. */
static void x_description(struct xw *x, const struct adp_conv *c, size_t nparticipants)
{
	const char *uri = c->key, *colon = strchr(uri, ':');
	char *scheme = NULL, *domain = NULL;
	const char *path = uri;

	if (colon) {
		scheme = strndup(uri, (size_t)(colon - uri));
		path = colon + 1;
		if (strncmp(path, "//", 2) == 0) {
			const char *d = path + 2;
			size_t dl = strcspn(d, "/");

			domain = strndup(d, dl);
			path = d[dl] ? d + dl + 1 : d + dl;
		}
	}
	if ((colon && !scheme) || (colon && strncmp(colon + 1, "//", 2) == 0 && !domain)) {
		if (!x->err)
			x->err = -ENOMEM;
		goto out;
	}
	x_start(x, "Description");
	x_attr(x, "kind", c->im ? "im" : "room");
	x_attr(x, "scheme", scheme ? scheme : "");
	if (domain)
		x_attr(x, "domain", domain);
	x_attr(x, "path", path);
	x_attr_i64(x, "messages", (int64_t)c->nev);
	x_attr_i64(x, "participants", (int64_t)nparticipants);
	x_end(x);
out:
	free(scheme);
	free(domain);
}

static void x_conversation(struct xw *x, const struct xml_state *st, struct xusers *users,
			   const struct adp_batch *b, const struct adp_conv *c)
{
	struct xusers local = { 0 };  /* this conversation's participants */
	int64_t start = INT64_MAX, end = INT64_MIN;

	for (size_t i = 0; i < c->nev; i++) {
		const struct adp_event *e = &b->events[c->ev[i]];
		long u = users_add(&local, e->user);

		if (u < 0 || (c->im && users_add(&local, e->to) < 0)) {
			x->err = -ENOMEM;
			goto out;
		}
		local.v[u].messages++;
		if (e->ts_ms < start)
			start = e->ts_ms;
		if (e->ts_ms > end)
			end = e->ts_ms;
	}
	x_start(x, "Conversation");
	x_start(x, "Channel");
	x_attr(x, "uri", c->key);
	x_attr(x, "name", c->name);
	x_attr(x, "islogged", "");
	if (st->room_details)
		x_description(x, c, local.n);
	x_end(x);
	x_message(x, st, users, &b->events[c->ev[0]], "FirstMessage");
	x_start(x, "Messages");
	for (size_t i = 0; i < c->nev; i++)
		x_message(x, st, users, &b->events[c->ev[i]], "Message");
	x_end(x);
	x_time(x, "StartTimeUTC", start);
	x_time(x, "EndTimeUTC", end);
	if (st->user_details) {
		x_start(x, "Participants");
		for (size_t i = 0; i < local.n; i++) {
			x_start(x, "User");
			x_user_attrs(x, st, local.v[i].uri, users_find(users, local.v[i].uri) + 1);
			x_attr_i64(x, "messages", local.v[i].messages);
			x_end(x);
		}
		x_end(x);
	}
	x_end(x);
out:
	free(local.v);
}

static int x_begin(struct xw *x, xmlBufferPtr *buf)
{
	*buf = xmlBufferCreate();
	if (!*buf)
		return -ENOMEM;
	x->w = xmlNewTextWriterMemory(*buf, 0);
	if (!x->w)
		return -ENOMEM;
	if (xmlTextWriterSetIndent(x->w, 1) < 0 ||
	    xmlTextWriterSetIndentString(x->w, BAD_CAST "  ") < 0 ||
	    xmlTextWriterStartDocument(x->w, "1.0", "UTF-8", NULL) < 0)
		return -ENOMEM;
	return 0;
}

/* Close the document and move its bytes into out. */
static int x_finish(struct xw *x, xmlBufferPtr buf, struct cv_buf *out)
{
	int rc = x->err;

	if (!rc && xmlTextWriterEndDocument(x->w) < 0)
		rc = -ENOMEM;
	xmlFreeTextWriter(x->w);  /* flushes into buf */
	x->w = NULL;
	if (!rc && cv_buf_append(out, xmlBufferContent(buf), (size_t)xmlBufferLength(buf)))
		rc = -ENOMEM;
	return rc;
}

/* One compliance document holding the conversations convs[0..n). */
static int build_document(const struct xml_state *st, const struct adp_batch *b,
			  const struct adp_conv *convs, size_t n, struct cv_buf *out)
{
	struct xw x = { 0 };
	struct xusers users = { 0 };
	xmlBufferPtr buf = NULL;
	int rc;

	/* Sender ids: order of first appearance within this file. */
	for (size_t c = 0; c < n; c++)
		for (size_t i = 0; i < convs[c].nev; i++) {
			const struct adp_event *e = &b->events[convs[c].ev[i]];

			if (users_add(&users, e->user) < 0 ||
			    (convs[c].im && users_add(&users, e->to) < 0)) {
				rc = -ENOMEM;
				goto out;
			}
		}
	rc = x_begin(&x, &buf);
	if (rc)
		goto out;
	x_start(&x, "Conversations");
	x_attr(&x, "xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance");
	x_attr(&x, "xmlns:xsd", "http://www.w3.org/2001/XMLSchema");
	for (size_t c = 0; c < n; c++)
		x_conversation(&x, st, &users, b, &convs[c]);
	x_end(&x);
	rc = x_finish(&x, buf, out);
out:
	if (x.w)
		xmlFreeTextWriter(x.w);
	xmlBufferFree(buf);
	cv_buf_free(&x.scratch);
	free(users.v);
	return rc;
}

/* The CreateFileAttachmentsManifest companion of one document. */
static int build_manifest(const struct adp_batch *b, const struct adp_conv *convs, size_t n,
			  const char *doc_name, struct cv_buf *out)
{
	struct xw x = { 0 };
	xmlBufferPtr buf = NULL;
	int64_t count = 0;
	int rc;

	for (size_t c = 0; c < n; c++)
		for (size_t i = 0; i < convs[c].nev; i++)
			count += (int64_t)b->events[convs[c].ev[i]].nfiles;
	rc = x_begin(&x, &buf);
	if (rc)
		goto out;
	x_start(&x, "Attachments");
	x_attr(&x, "file", doc_name);
	x_attr_i64(&x, "count", count);
	for (size_t c = 0; c < n; c++)
		for (size_t i = 0; i < convs[c].nev; i++) {
			const struct adp_event *e = &b->events[convs[c].ev[i]];

			for (size_t f = 0; f < e->nfiles; f++) {
				x_start(&x, "File");
				x_attr(&x, "name", e->files[f].name);
				x_attr_i64(&x, "size", e->files[f].size);
				x_attr(&x, "sha256", e->files[f].sha256);
				x_attr_i64(&x, "messageId", e->staging_id);
				x_attr(&x, "type", adp_type_info(e->type)->lync);
				x_attr(&x, "channel", convs[c].key);
				x_attr(&x, "sender", adp_sip_strip(e->user));
				x_end(&x);
			}
		}
	x_end(&x);
	rc = x_finish(&x, buf, out);
out:
	if (x.w)
		xmlFreeTextWriter(x.w);
	xmlBufferFree(buf);
	cv_buf_free(&x.scratch);
	return rc;
}

/* ---- output files --------------------------------------------------------- */

struct out_file {
	char *path;
	struct cv_buf data;
	bool primary;  /* a compliance document, not a manifest */
};

struct out_list {
	struct out_file *v;
	size_t n;
	size_t cap;
};

static void outs_free(struct out_list *o)
{
	for (size_t i = 0; i < o->n; i++) {
		free(o->v[i].path);
		cv_buf_free(&o->v[i].data);
	}
	free(o->v);
	memset(o, 0, sizeof(*o));
}

static struct out_file *outs_add(struct out_list *o)
{
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 4;
		struct out_file *p = reallocarray(o->v, cap, sizeof(*p));

		if (!p)
			return NULL;
		o->v = p;
		o->cap = cap;
	}
	memset(&o->v[o->n], 0, sizeof(o->v[o->n]));
	return &o->v[o->n++];
}

/*
 * Publish every file in order.  Any I/O error is ADP_RETRY: full disks,
 * read-only mounts and permissions are the operator's to fix, and nothing in
 * the data is at fault, so quarantining events would be wrong.
 */
static enum adp_result publish(const char *component, const char *base, const char *day,
			       struct out_list *outs, struct adp_batch *b)
{
	struct cv_sha256 *chain = NULL;
	char failed[PATH_MAX];
	size_t primaries = 0;
	const char *first_primary = NULL;
	int rc;

	rc = adp_make_day_dir(base, day, failed, sizeof(failed));
	if (rc)
		goto io_error;
	chain = cv_sha256_new();
	if (!chain) {
		rc = -ENOMEM;
		snprintf(failed, sizeof(failed), "%s", day);
		goto io_error;
	}
	cv_sha256_update(chain, b->chain_prev ? b->chain_prev : "",
			 b->chain_prev ? strlen(b->chain_prev) : 0);
	for (size_t i = 0; i < outs->n; i++) {
		char hex[CV_SHA256_HEX];

		rc = cv_write_file_atomic(outs->v[i].path, outs->v[i].data.data,
					  outs->v[i].data.len, 0640);
		if (rc) {
			snprintf(failed, sizeof(failed), "%s", outs->v[i].path);
			goto io_error;
		}
		cv_sha256_hex(outs->v[i].data.data, outs->v[i].data.len, hex);
		cv_sha256_update(chain, hex, 64);
		if (outs->v[i].primary && primaries++ == 0)
			first_primary = outs->v[i].path;
	}
	cv_sha256_final_hex(chain, b->out_chain);
	snprintf(b->out_path, sizeof(b->out_path), "%s",
		 primaries == 1 ? first_primary : day);
	cv_sha256_free(chain);
	return ADP_OK;
io_error:
	cv_sha256_free(chain);
	/* The path is clipped so the errno text always fits in reason. */
	snprintf(b->reason, sizeof(b->reason), "%.16s: cannot write %.400s: %s", component,
		 failed, strerror(-rc));
	return ADP_RETRY;
}

/* ---- adapter --------------------------------------------------------------- */

static int opt_bool(const struct adp_env *env, const char *key, bool *out, char *err,
		    size_t errlen)
{
	const char *v = adp_env_opt(env, key);

	*out = false;
	if (!v || strcmp(v, "false") == 0)
		return 0;
	if (strcmp(v, "true") == 0) {
		*out = true;
		return 0;
	}
	snprintf(err, errlen, "xml: option %s: expected true or false, got \"%s\"", key, v);
	return -EINVAL;
}

static void xml_close(void *state)
{
	struct xml_state *st = state;

	if (!st)
		return;
	free(st->dir);
	free(st->name);
	free(st->internal_domain);
	free(st);
}

static int xml_init(const struct adp_env *env, void **state, char *err, size_t errlen)
{
	struct xml_state *st = calloc(1, sizeof(*st));
	const char *dom = adp_env_opt(env, "internal_domain");

	*state = NULL;
	if (!st) {
		snprintf(err, errlen, "xml: out of memory");
		return -ENOMEM;
	}
	/* libxml2's one-time setup, idempotent and locked: done here so the
	 * first document is never built while another thread initialises. */
	xmlInitParser();
	if (opt_bool(env, "one_room_per_file", &st->one_room_per_file, err, errlen) ||
	    opt_bool(env, "room_details", &st->room_details, err, errlen) ||
	    opt_bool(env, "user_details", &st->user_details, err, errlen) ||
	    opt_bool(env, "attachments_manifest", &st->attachments_manifest, err, errlen))
		goto fail;
	st->dir = adp_resolve_dir(env, "xml");
	st->name = adp_safe_name(env->name, "xml");
	if (dom && *dom)
		st->internal_domain = strdup(dom);
	if (!st->dir || !st->name || (dom && *dom && !st->internal_domain)) {
		snprintf(err, errlen, "xml: out of memory");
		goto fail;
	}
	*state = st;
	return 0;
fail:
	xml_close(st);
	return -EINVAL;
}

/* Queue one document (and its manifest) named <day>/<stem>.xml. */
static int add_document(const struct xml_state *st, const struct adp_batch *b,
			const struct adp_conv *convs, size_t n, const char *day, const char *stem,
			struct out_list *outs)
{
	struct out_file *f = outs_add(outs);
	char *doc_name = NULL;
	int rc;

	if (!f)
		return -ENOMEM;
	if (asprintf(&f->path, "%s/%s.xml", day, stem) < 0) {
		f->path = NULL;
		return -ENOMEM;
	}
	f->primary = true;
	rc = build_document(st, b, convs, n, &f->data);
	if (rc || !st->attachments_manifest)
		return rc;
	f = outs_add(outs);
	if (!f)
		return -ENOMEM;
	if (asprintf(&f->path, "%s/%s.attachments.xml", day, stem) < 0) {
		f->path = NULL;
		return -ENOMEM;
	}
	if (asprintf(&doc_name, "%s.xml", stem) < 0)
		return -ENOMEM;
	rc = build_manifest(b, convs, n, doc_name, &f->data);
	free(doc_name);
	return rc;
}

/* <name>-<first>-<last>[-<12 hex of SHA-256(key)>]: the same batch always
 * gets the same names. */
static int make_stem(char *out, size_t outlen, const char *name, const struct adp_batch *b,
		     const char *key)
{
	char hex[CV_SHA256_HEX];
	int n;

	if (key) {
		cv_sha256_hex(key, strlen(key), hex);
		n = snprintf(out, outlen, "%s-%016" PRId64 "-%016" PRId64 "-%.12s", name,
			     b->first_staging_id, b->last_staging_id, hex);
	} else {
		n = snprintf(out, outlen, "%s-%016" PRId64 "-%016" PRId64, name,
			     b->first_staging_id, b->last_staging_id);
	}
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

static enum adp_result xml_deliver(void *state, struct adp_batch *b)
{
	const struct xml_state *st = state;
	struct adp_conv_set cs = { 0 };
	struct out_list outs = { 0 };
	enum adp_result res;
	char day[PATH_MAX], stem[512];
	size_t bad = 0;
	int rc;

	b->out_path[0] = b->out_chain[0] = b->reason[0] = '\0';
	b->fail_staging_id = 0;
	if (b->nevents == 0) {
		/* Nothing written: the chain does not move. */
		snprintf(b->out_chain, sizeof(b->out_chain), "%s",
			 b->chain_prev ? b->chain_prev : "");
		return ADP_OK;
	}
	res = adp_check_events(b, "xml", false);
	if (res != ADP_OK)
		return res;
	res = ADP_RETRY;
	rc = adp_convs_build(b, &cs);
	if (!rc)
		rc = adp_day_dir(st->dir, b->events[0].ts_ms, day, sizeof(day));
	if (rc)
		goto build_error;
	if (!st->one_room_per_file) {
		rc = make_stem(stem, sizeof(stem), st->name, b, NULL);
		if (!rc)
			rc = add_document(st, b, cs.v, cs.n, day, stem, &outs);
	} else {
		for (size_t c = 0; c < cs.n && !rc; c++) {
			rc = make_stem(stem, sizeof(stem), st->name, b, cs.v[c].key);
			if (!rc)
				rc = add_document(st, b, &cs.v[c], 1, day, stem, &outs);
		}
	}
	if (rc)
		goto build_error;
	for (size_t i = 0; i < b->nevents; i++)
		bad += event_invalid_count(&b->events[i]);
	if (bad)
		cv_warn(XML_COMPONENT, "%s: batch %" PRId64 "-%" PRId64 ": replaced %zu "
			"character(s) XML 1.0 cannot carry with U+FFFD (see invalidChars)",
			st->name, b->first_staging_id, b->last_staging_id, bad);
	res = publish("xml", st->dir, day, &outs, b);
	goto out;
build_error:
	snprintf(b->reason, sizeof(b->reason), "xml: cannot build output for %s: %s",
		 st->dir, strerror(-rc));
out:
	outs_free(&outs);
	adp_convs_free(&cs);
	return res;
}

const struct adp_ops adp_xml_ops = {
	.abi_version = ADP_ABI_VERSION,
	.struct_size = sizeof(struct adp_ops),
	.type = "xml",
	.keys = xml_keys,
	.init = xml_init,
	.deliver = xml_deliver,
	.close = xml_close,
};

/*
 * eml — the journaling adapter: one RFC 5322 / MIME message per room per
 * batch, the format e-mail archive vendors ingest.
 *
 * Files: <dir>/YYYY/MM/DD/<name>-<first>-<last>-<12 hex>.eml, where the day
 * is the UTC day of the batch's first event, first/last are the batch's
 * staging ids (%016"PRId64") and the hex is SHA-256 of the conversation key
 * (room URI, or "im:<a>;<b>" for an IM pair: the two SIP addresses without
 * "sip:", sorted bytewise, as in the xml adapter).  Conversations are written
 * in order of first appearance; each file goes through cv_write_file_atomic,
 * so a redelivered batch replaces the same names with the same bytes.
 *
 * Message shape (CRLF line endings, lines ≤ 78 octets):
 *   From: sender of the room's first event      To: every participant
 *   Date: the batch's last event (staging order)
 *   Subject: "Chat transcript: <room> <first ts> – <last ts>" (RFC 2047
 *            B encoded-words when not plain ASCII)
 *   Message-ID: <name.first-last.hash@chatvault> (deterministic)
 *   multipart/mixed, boundary "=_chatvault_<hash>" (cannot occur inside the
 *   quoted-printable and base64 parts):
 *     1. text/plain; charset=utf-8, quoted-printable: the transcript
 *        "[ts] user: text", joins, parts, files (each file says whether it is
 *        attached and why not: absent from the file store, larger than
 *        max_attachment_bytes, or the stored copy fails its SHA-256);
 *     2. application/json, base64: the room's canonical events as an array;
 *     3. one application/octet-stream part per distinct attachment (by
 *        SHA-256) found in the file store, filename RFC 2231-encoded when it
 *        is not plain short ASCII.
 * Addresses come from SIP URIs ("sip:alice@contoso.com" → alice@contoso.com).
 * Headers stay 7-bit: an address with non-ASCII characters becomes an RFC
 * 2047 display name holding the real address over an ASCII addr-spec with
 * those bytes as =XX (see mail_addr); the transcript shows it in UTF-8.
 *
 * The directory and publish helpers are repeated in xml.c and jsonl.c on
 * purpose: each adapter is one self-contained translation unit.
 */
#include "adapter.h"
#include "builtin.h"
#include "adp_common.h"
#include "cv_time.h"
#include "cv_util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EML_MAX_LINE 78
/* Bytes of text per RFC 2047 B word: 56 base64 chars, so a word is 68. */
#define EW_CHUNK 42

static const struct adp_key eml_keys[] = {
	{ "dir", ADP_KEY_STRING, NULL, "output directory (default <data dir>/eml)" },
	{ "max_attachment_bytes", ADP_KEY_INT, "26214400",
	  "larger attachments are referenced in the transcript, not attached" },
	{ NULL, ADP_KEY_STRING, NULL, NULL },
};

struct eml_state {
	char *dir;         /* base output directory */
	char *name;        /* instance name, made safe for file names */
	char *file_store;  /* attachments as <file_store>/<sha256>, or NULL */
	int64_t max_attachment_bytes;
};

/* ---- encodings ---------------------------------------------------------- */

static const char b64_digits[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 of data; with wrap, 76-character lines each ended by CRLF. */
static int b64_append(struct cv_buf *out, const void *data, size_t len, bool wrap)
{
	const unsigned char *p = data;
	char quad[4];
	size_t col = 0;

	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		size_t n = len - i < 3 ? len - i : 3;

		if (n > 1)
			v |= (uint32_t)p[i + 1] << 8;
		if (n > 2)
			v |= p[i + 2];
		quad[0] = b64_digits[(v >> 18) & 63];
		quad[1] = b64_digits[(v >> 12) & 63];
		quad[2] = n > 1 ? b64_digits[(v >> 6) & 63] : '=';
		quad[3] = n > 2 ? b64_digits[v & 63] : '=';
		if (cv_buf_append(out, quad, 4))
			return -ENOMEM;
		col += 4;
		if (wrap && col == 76) {
			if (cv_buf_append(out, "\r\n", 2))
				return -ENOMEM;
			col = 0;
		}
	}
	if (wrap && col && cv_buf_append(out, "\r\n", 2))
		return -ENOMEM;
	return 0;
}

/*
 * Quoted-printable (RFC 2045 §6.7) of UTF-8 text whose lines end in "\n":
 * hard breaks become CRLF, lines stay ≤ 76 with "=" soft breaks, trailing
 * white space and a leading "From " are encoded so mail tools cannot alter
 * them.
 */
static int qp_append(struct cv_buf *out, const char *text, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t col = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		char tok[3];
		size_t tl = 1;
		bool at_eol = i + 1 == len || text[i + 1] == '\n';
		bool literal = (c >= 33 && c <= 126 && c != '=') ||
			       ((c == ' ' || c == '\t') && !at_eol);

		if (c == '\n') {
			if (cv_buf_append(out, "\r\n", 2))
				return -ENOMEM;
			col = 0;
			continue;
		}
		/* mbox writers mangle a line starting "From ". */
		if (col == 0 && c == 'F' && len - i >= 5 && memcmp(text + i, "From ", 5) == 0)
			literal = false;
		tok[0] = (char)c;
		if (!literal) {
			tok[0] = '=';
			tok[1] = hex[c >> 4];
			tok[2] = hex[c & 15];
			tl = 3;
		}
		/* 75 leaves room for the "=" of a soft break. */
		if (col + tl > 75) {
			if (cv_buf_append(out, "=\r\n", 3))
				return -ENOMEM;
			col = 0;
		}
		if (cv_buf_append(out, tok, tl))
			return -ENOMEM;
		col += tl;
	}
	if (col && cv_buf_append(out, "\r\n", 2))
		return -ENOMEM;
	return 0;
}

/* Length of the UTF-8 sequence led by c (1 for stray bytes). */
static size_t utf8_len(unsigned char c)
{
	if (c >= 0xF0 && c <= 0xF4)
		return 4;
	if (c >= 0xE0 && c <= 0xEF)
		return 3;
	if (c >= 0xC2 && c <= 0xDF)
		return 2;
	return 1;
}

/*
 * An unstructured header: plain when it is printable ASCII that fits one
 * line, else RFC 2047 B encoded-words, one per folded line, never splitting
 * a UTF-8 character (each word must decode on its own).
 */
static int hdr_text(struct cv_buf *out, const char *name, const char *text)
{
	size_t len = strlen(text), i = 0;
	bool plain = strlen(name) + 2 + len <= EML_MAX_LINE;

	for (size_t k = 0; plain && k < len; k++)
		if ((unsigned char)text[k] < 0x20 || (unsigned char)text[k] > 0x7E)
			plain = false;
	if (plain)
		return cv_buf_printf(out, "%s: %s\r\n", name, text);
	if (cv_buf_printf(out, "%s:", name))
		return -ENOMEM;
	do {
		size_t n = 0;

		while (i + n < len) {
			size_t cl = utf8_len((unsigned char)text[i + n]);

			if (i + n + cl > len)
				cl = len - i - n;
			if (n + cl > EW_CHUNK)
				break;
			n += cl;
		}
		if (cv_buf_append(out, i ? "\r\n =?UTF-8?B?" : " =?UTF-8?B?", i ? 13 : 11) ||
		    b64_append(out, text + i, n, false) || cv_buf_append(out, "?=", 2))
			return -ENOMEM;
		i += n;
	} while (i < len);
	return cv_buf_append(out, "\r\n", 2);
}

/* A structured header value without spaces: folded after the colon when long. */
static int hdr_token(struct cv_buf *out, const char *name, const char *value)
{
	if (strlen(name) + 2 + strlen(value) <= EML_MAX_LINE)
		return cv_buf_printf(out, "%s: %s\r\n", name, value);
	return cv_buf_printf(out, "%s:\r\n %s\r\n", name, value);
}

/* RFC 5322 atext (7-bit: the message never carries raw UTF-8 in headers). */
static bool is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && c < 0x80 && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* "=XX" for every byte outside ASCII, and for "=" itself, so the mapping
 * is reversible; "=" and hex digits are atext, so a dot-atom stays one. */
static int escape_8bit(struct cv_buf *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	int rc = 0;

	for (size_t i = 0; i < len && !rc; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x80 || c == '=')
			rc = cv_buf_printf(out, "=%c%c", hex[c >> 4], hex[c & 15]);
		else
			rc = cv_buf_append(out, &s[i], 1);
	}
	return rc;
}

/*
 * The header form of a readable address ("alice@contoso.com"), appended to
 * out.  The message stays 7-bit (RFC 5322, not RFC 6532: journaling
 * ingesters and Python's parser flag UTF-8 addresses as defects), so an
 * address with non-ASCII characters is written as an RFC 2047 display name
 * holding the address plus an ASCII addr-spec with those bytes as =XX:
 *   =?UTF-8?B?asO2cmdAY29udG9zby5jb20=?= <j=C3=B6rg@contoso.com>
 * A local part that is not a dot-atom is quoted; the domain keeps letters,
 * digits, "-" and "." (anything else becomes "-", non-ASCII =XX).
 */
static int mail_addr(const char *addr, struct cv_buf *out)
{
	const char *at = strrchr(addr, '@'), *domain = at ? at + 1 : "";
	size_t ll = at ? (size_t)(at - addr) : strlen(addr);
	struct cv_buf local = { 0 };
	bool ascii = true, dot_atom = true;
	int rc = 0;

	for (const char *p = addr; *p; p++)
		if ((unsigned char)*p >= 0x80)
			ascii = false;
	if (!ascii) {
		/*
		 * One encoded-word (≤ 45 bytes of text, so ≤ 75 characters):
		 * Python and others keep the space between adjacent words in a
		 * phrase, which would corrupt the name.  A longer address is
		 * cut at a character boundary and marked "…"; nothing is lost,
		 * since the =XX addr-spec is the exact, reversible form.
		 */
		size_t len = strlen(addr), n = 0;

		if (len > 45) {
			while (n < len) {
				size_t cl = utf8_len((unsigned char)addr[n]);

				if (n + cl > 42)
					break;
				n += cl;
			}
		} else {
			n = len;
		}
		rc = cv_buf_append(out, "=?UTF-8?B?", 10);
		if (!rc && n < len) {
			char cut[45];

			memcpy(cut, addr, n);
			memcpy(cut + n, "\xE2\x80\xA6", 3);
			rc = b64_append(out, cut, n + 3, false);
		} else if (!rc) {
			rc = b64_append(out, addr, n, false);
		}
		if (!rc)
			rc = cv_buf_append(out, "?= <", 4);
	}
	if (!rc)
		rc = escape_8bit(&local, addr, ll);
	if (!rc)
		rc = cv_buf_append(&local, "", 0);  /* allocated even when empty */
	if (rc)
		goto out;
	if (local.len == 0 || local.data[0] == '.' || local.data[local.len - 1] == '.')
		dot_atom = false;
	for (size_t i = 0; i < local.len && dot_atom; i++)
		if (local.data[i] == '.' ? local.data[i + 1] == '.' :
		    !is_atext((unsigned char)local.data[i]))
			dot_atom = false;
	if (dot_atom) {
		rc = cv_buf_append(out, local.data, local.len);
	} else {
		rc = cv_buf_append(out, "\"", 1);
		for (size_t i = 0; i < local.len && !rc; i++) {
			unsigned char c = (unsigned char)local.data[i];

			if (c == '"' || c == '\\')
				rc = cv_buf_printf(out, "\\%c", c);
			else
				rc = cv_buf_append(out, c < 0x20 || c == 0x7F ? "?" : &local.data[i], 1);
		}
		if (!rc)
			rc = cv_buf_append(out, "\"", 1);
	}
	if (!rc)
		rc = cv_buf_append(out, "@", 1);
	if (!rc && !*domain)
		rc = cv_buf_append(out, "invalid", 7);
	for (const char *d = domain; *d && !rc; d++) {
		unsigned char c = (unsigned char)*d;

		if (c >= 0x80 || c == '=')
			rc = escape_8bit(out, d, 1);
		else
			rc = cv_buf_append(out, isalnum(c) || c == '-' || c == '.' ? d : "-", 1);
	}
	if (!rc && !ascii)
		rc = cv_buf_append(out, ">", 1);
out:
	cv_buf_free(&local);
	return rc;
}

/*
 * Address list, folded at spaces (between addresses, or between the words
 * of one) to keep lines ≤ 78.  addrs are readable addresses; each is
 * written in its header form (mail_addr).
 */
static int hdr_addrs(struct cv_buf *out, const char *name, char *const *addrs, size_t n)
{
	struct cv_buf item = { 0 };
	size_t start = strlen(name) + 1, col = start;
	int rc = cv_buf_printf(out, "%s:", name);

	for (size_t i = 0; i < n && !rc; i++) {
		const char *p;

		cv_buf_reset(&item);
		rc = mail_addr(addrs[i], &item);
		if (!rc && i + 1 < n)
			rc = cv_buf_append(&item, ",", 1);
		for (p = item.data; !rc && p && *p;) {
			size_t wl = strcspn(p, " ");

			if (col > start && col + 1 + wl > EML_MAX_LINE) {
				rc = cv_buf_append(out, "\r\n", 2);
				col = 0;
			}
			if (!rc)
				rc = cv_buf_printf(out, " %.*s", (int)wl, p);
			col += 1 + wl;
			p += wl;
			while (*p == ' ')
				p++;
		}
	}
	if (!rc)
		rc = cv_buf_append(out, "\r\n", 2);
	cv_buf_free(&item);
	return rc;
}

/* RFC 2231 attr-char: what may stay unencoded in an extended parameter. */
static bool is_attr_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$&+-.^_`|~", c));
}

/* Content-Disposition with a filename: quoted when short plain ASCII, else
 * RFC 2231 UTF-8 percent-encoding split into ≤ 78-octet continuations. */
static int hdr_disposition(struct cv_buf *out, const char *name)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = strlen(name);
	bool plain = len > 0 && len <= 60;
	struct cv_buf enc = { 0 };
	size_t i = 0, seg = 0;
	int rc = 0;

	for (size_t k = 0; plain && k < len; k++) {
		unsigned char c = (unsigned char)name[k];

		if (c < 0x20 || c > 0x7E || c == '"' || c == '\\')
			plain = false;
	}
	if (plain)
		return cv_buf_printf(out, "Content-Disposition: attachment;\r\n filename=\"%s\"\r\n",
				     name);
	for (size_t k = 0; k < len && !rc; k++) {
		unsigned char c = (unsigned char)name[k];

		if (is_attr_char(c))
			rc = cv_buf_append(&enc, &name[k], 1);
		else
			rc = cv_buf_printf(&enc, "%%%c%c", hex[c >> 4], hex[c & 15]);
	}
	if (!rc)
		rc = cv_buf_append(out, "Content-Disposition: attachment", 31);
	/* Segments of ≤ 54 encoded octets, never splitting a %XX. */
	while (!rc && i < enc.len) {
		size_t n = enc.len - i < 54 ? enc.len - i : 54;

		if (i + n < enc.len && n >= 1 && enc.data[i + n - 1] == '%')
			n -= 1;
		else if (i + n < enc.len && n >= 2 && enc.data[i + n - 2] == '%')
			n -= 2;
		rc = cv_buf_printf(out, ";\r\n filename*%zu*=%s%.*s", seg,
				   seg == 0 ? "utf-8''" : "", (int)n, enc.data + i);
		i += n;
		seg++;
	}
	if (!rc)
		rc = cv_buf_append(out, "\r\n", 2);
	cv_buf_free(&enc);
	return rc;
}

/* ---- attachments ------------------------------------------------------- */

enum att_status {
	ATT_ATTACHED,
	ATT_NO_STORE,
	ATT_BAD_HASH,
	ATT_MISSING,
	ATT_TOO_BIG,
	ATT_MISMATCH,
};

struct att {
	const char *sha256;  /* borrowed from the event */
	const char *name;    /* first name it was seen under */
	enum att_status status;
	uint64_t size;       /* in the file store */
};

struct att_set {
	struct att *v;
	size_t n;
	size_t cap;
};

static const struct att *atts_find(const struct att_set *as, const char *sha)
{
	for (size_t i = 0; i < as->n; i++)
		if (sha && strcmp(as->v[i].sha256, sha) == 0)
			return &as->v[i];
	return NULL;
}

static const char *att_note(const struct att *a, const struct eml_state *st, char *buf,
			    size_t len)
{
	switch (a ? a->status : ATT_BAD_HASH) {
	case ATT_ATTACHED:
		return "attached";
	case ATT_NO_STORE:
		return "not attached: no file store configured";
	case ATT_BAD_HASH:
		return "not attached: invalid sha256";
	case ATT_MISSING:
		return "not attached: missing from the file store";
	case ATT_TOO_BIG:
		snprintf(buf, len, "not attached: %" PRIu64 " bytes exceeds "
			 "max_attachment_bytes %" PRId64, a->size, st->max_attachment_bytes);
		return buf;
	case ATT_MISMATCH:
		return "not attached: file store copy does not match its sha256";
	}
	return "not attached";
}

/*
 * Look every distinct attachment of the conversation up in the file store.
 * Absent, oversized or corrupt copies are noted, not fatal; an error reading
 * the store is (RETRY), since the copy may well be there.
 */
static int atts_resolve(const struct eml_state *st, const struct adp_batch *b,
			const struct adp_conv *c, struct att_set *as, char *failed, size_t flen)
{
	for (size_t i = 0; i < c->nev; i++) {
		const struct adp_event *e = &b->events[c->ev[i]];

		for (size_t f = 0; f < e->nfiles; f++) {
			const char *sha = e->files[f].sha256;
			char path[PATH_MAX], hex[CV_SHA256_HEX];
			struct att *a;
			struct stat sb;
			int rc;

			if (!cv_is_sha256_hex(sha) || atts_find(as, sha))
				continue;
			if (as->n == as->cap) {
				size_t cap = as->cap ? as->cap * 2 : 8;
				struct att *p = reallocarray(as->v, cap, sizeof(*p));

				if (!p)
					return -ENOMEM;
				as->v = p;
				as->cap = cap;
			}
			a = &as->v[as->n++];
			a->sha256 = sha;
			a->name = e->files[f].name && *e->files[f].name ? e->files[f].name : sha;
			a->size = 0;
			if (!st->file_store) {
				a->status = ATT_NO_STORE;
				continue;
			}
			rc = snprintf(path, sizeof(path), "%s/%s", st->file_store, sha);
			if (rc < 0 || (size_t)rc >= sizeof(path)) {
				snprintf(failed, flen, "%s", st->file_store);
				return -ENAMETOOLONG;
			}
			if (stat(path, &sb) != 0) {
				if (errno == ENOENT || errno == ENOTDIR) {
					a->status = ATT_MISSING;
					continue;
				}
				snprintf(failed, flen, "%s", path);
				return -errno;
			}
			a->size = (uint64_t)sb.st_size;
			if (!S_ISREG(sb.st_mode)) {
				a->status = ATT_MISSING;
				continue;
			}
			if (sb.st_size > st->max_attachment_bytes) {
				a->status = ATT_TOO_BIG;
				continue;
			}
			rc = cv_sha256_file(path, hex, &a->size);
			if (rc) {
				snprintf(failed, flen, "%s", path);
				return rc;
			}
			a->status = strcmp(hex, sha) == 0 ? ATT_ATTACHED : ATT_MISMATCH;
		}
	}
	return 0;
}

/* Read exactly size bytes of the store copy (checked by atts_resolve). */
static int read_exact(const char *path, uint64_t size, struct cv_buf *out)
{
	char chunk[1 << 16];
	uint64_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	cv_buf_reset(out);
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		got += (uint64_t)n;
		if (got > size) {
			rc = -EAGAIN;  /* changed under us: try the batch again */
			break;
		}
		rc = cv_buf_append(out, chunk, (size_t)n);
		if (rc)
			break;
	}
	close(fd);
	if (!rc && got != size)
		rc = -EAGAIN;
	return rc;
}

/* ---- the message ----------------------------------------------------------- */

/* RFC 5322 date-time of ms, in UTC; fixed English names, not the locale's. */
static void rfc5322_date(int64_t ms, char *out, size_t len)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!gmtime_r(&t, &tm)) {
		snprintf(out, len, "Thu, 01 Jan 1970 00:00:00 +0000");
		return;
	}
	snprintf(out, len, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7],
		 tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		 tm.tm_sec);
}

/* Canonical "YYYY-MM-DDTHH:MM:SS.mmmZ" of ms (the event's ts when present). */
static const char *event_ts(const struct adp_event *e, char *buf, size_t len)
{
	time_t t = (time_t)(e->ts_ms / 1000);
	struct tm tm;

	if (e->ts && *e->ts)
		return e->ts;
	if (!gmtime_r(&t, &tm))
		return "?";
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (int)(e->ts_ms % 1000));
	return buf;
}

struct addr_list {
	char **v;
	size_t n;
	size_t cap;
};

static void addrs_free(struct addr_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* Add the readable address of a SIP URI, once. */
static int addrs_add(struct addr_list *l, const char *uri)
{
	char *a = adp_sip_addr(uri);

	if (!a)
		return -ENOMEM;
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], a) == 0) {
			free(a);
			return 0;
		}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		char **p = reallocarray(l->v, cap, sizeof(*p));

		if (!p) {
			free(a);
			return -ENOMEM;
		}
		l->v = p;
		l->cap = cap;
	}
	l->v[l->n++] = a;
	return 0;
}

/* Text with its line breaks turned into indented continuation lines. */
static int append_text(struct cv_buf *t, const char *s)
{
	int rc = 0;

	for (const char *p = s; *p && !rc; p++) {
		if (*p == '\r' || *p == '\n') {
			if (*p == '\r' && p[1] == '\n')
				p++;
			rc = cv_buf_append(t, "\n    ", 5);
		} else {
			rc = cv_buf_append(t, p, 1);
		}
	}
	return rc;
}

static int transcript_event(struct cv_buf *t, const struct eml_state *st,
			    const struct adp_event *e, const struct att_set *as)
{
	const struct adp_type_info *m = adp_type_info(e->type);
	char tsbuf[80];
	char *who = adp_sip_addr(e->user), *to = e->to ? adp_sip_addr(e->to) : NULL;
	int rc;

	if (!who || (e->to && !to)) {
		rc = -ENOMEM;
		goto out;
	}
	rc = cv_buf_printf(t, "[%s] %s", event_ts(e, tsbuf, sizeof(tsbuf)), who);
	if (rc)
		goto out;
	switch (m->kind) {
	case ADP_K_JOIN:
		rc = cv_buf_printf(t, " joined the room");
		break;
	case ADP_K_PART:
		rc = cv_buf_printf(t, " left the room");
		break;
	case ADP_K_POST:
	case ADP_K_IM:
		rc = cv_buf_printf(t, ": ");
		if (!rc)
			rc = append_text(t, e->text ? e->text : "");
		break;
	case ADP_K_BACKCHAT:
		rc = cv_buf_printf(t, " read the room history");
		break;
	case ADP_K_UPLOAD:
		rc = cv_buf_printf(t, " uploaded %zu file(s)", e->nfiles);
		break;
	case ADP_K_DOWNLOAD:
		rc = cv_buf_printf(t, " downloaded %zu file(s)", e->nfiles);
		break;
	case ADP_K_DELETE:
		rc = cv_buf_printf(t, " deleted a message%s", e->text && *e->text ? ": " : "");
		if (!rc && e->text)
			rc = append_text(t, e->text);
		break;
	case ADP_K_IM_START:
		rc = cv_buf_printf(t, " started a conversation with %s", to);
		break;
	case ADP_K_IM_END:
		rc = cv_buf_printf(t, " ended the conversation with %s", to);
		break;
	}
	if (!rc)
		rc = cv_buf_append(t, "\n", 1);
	for (size_t f = 0; f < e->nfiles && !rc; f++) {
		const struct adp_file *file = &e->files[f];
		char note[160];

		rc = cv_buf_printf(t, "    file: ");
		if (!rc)
			rc = append_text(t, file->name ? file->name : "");
		if (!rc)
			rc = cv_buf_printf(t, " (%" PRId64 " bytes, sha256 %s) - %s\n", file->size,
					   file->sha256 ? file->sha256 : "none",
					   att_note(cv_is_sha256_hex(file->sha256) ?
						    atts_find(as, file->sha256) : NULL,
						    st, note, sizeof(note)));
	}
out:
	free(who);
	free(to);
	return rc;
}

/* Everything one conversation's .eml holds; errors name the path in failed. */
static int build_message(const struct eml_state *st, const struct adp_batch *b,
			 const struct adp_conv *c, struct cv_buf *out, char *failed, size_t flen,
			 const char **verb)
{
	struct att_set atts = { 0 };
	struct addr_list people = { 0 };
	struct cv_buf text = { 0 }, json = { 0 }, blob = { 0 };
	char hex[CV_SHA256_HEX], boundary[64], date[64], tsa[80], tsb[80];
	const struct adp_event *first = NULL, *last = NULL;
	char *subject = NULL, *msgid = NULL, *idname = NULL;
	int rc;

	for (size_t i = 0; i < c->nev; i++) {
		const struct adp_event *e = &b->events[c->ev[i]];

		if (!first || e->ts_ms < first->ts_ms)
			first = e;
		if (!last || e->ts_ms > last->ts_ms)
			last = e;
	}
	/* From is the first event's sender: adding it first puts it first in To. */
	for (size_t i = 0; i < c->nev; i++) {
		const struct adp_event *e = &b->events[c->ev[i]];

		rc = addrs_add(&people, e->user);
		if (!rc && e->to && adp_type_info(e->type)->im)
			rc = addrs_add(&people, e->to);
		if (rc)
			goto out;
	}
	rc = atts_resolve(st, b, c, &atts, failed, flen);
	if (rc) {
		*verb = "read";
		goto out;
	}

	/* Deterministic identities: the same batch and room give the same bytes. */
	{
		struct cv_buf seed = { 0 };

		rc = cv_buf_printf(&seed, "%s%c%" PRId64 "%c%" PRId64 "%c%s", st->name, 0,
				   b->first_staging_id, 0, b->last_staging_id, 0, c->key);
		if (rc)
			goto out;
		cv_sha256_hex(seed.data, seed.len, hex);
		cv_buf_free(&seed);
	}
	snprintf(boundary, sizeof(boundary), "=_chatvault_%.32s", hex);
	idname = strdup(st->name);
	if (!idname) {
		rc = -ENOMEM;
		goto out;
	}
	for (char *p = idname; *p; p++)
		if (*p == '.')
			*p = '-';  /* no ".." in a dot-atom msg-id */
	if (asprintf(&msgid, "<%s.%" PRId64 "-%" PRId64 ".%.12s@chatvault>", idname,
		     b->first_staging_id, b->last_staging_id, hex) < 0) {
		msgid = NULL;
		rc = -ENOMEM;
		goto out;
	}
	if (asprintf(&subject, "Chat transcript: %s %s \xE2\x80\x93 %s", c->name,
		     event_ts(first, tsa, sizeof(tsa)), event_ts(last, tsb, sizeof(tsb))) < 0) {
		subject = NULL;
		rc = -ENOMEM;
		goto out;
	}
	rfc5322_date(b->events[b->nevents - 1].ts_ms, date, sizeof(date));

	/* Headers. */
	rc = hdr_addrs(out, "From", people.v, 1);
	if (!rc)
		rc = hdr_addrs(out, "To", people.v, people.n);
	if (!rc)
		rc = cv_buf_printf(out, "Date: %s\r\n", date);
	if (!rc)
		rc = hdr_text(out, "Subject", subject);
	if (!rc)
		rc = hdr_token(out, "Message-ID", msgid);
	if (!rc)
		rc = cv_buf_printf(out, "MIME-Version: 1.0\r\n"
				   "Content-Type: multipart/mixed;\r\n boundary=\"%s\"\r\n", boundary);
	if (!rc)
		rc = hdr_text(out, "X-Chatvault-Room", c->key);
	if (!rc)
		rc = cv_buf_printf(out, "X-Chatvault-Staging-Ids: %" PRId64 "-%" PRId64 "\r\n",
				   b->first_staging_id, b->last_staging_id);
	if (!rc)
		rc = cv_buf_printf(out, "\r\nThis is a multi-part message in MIME format.\r\n");
	if (rc)
		goto out;

	/* 1. transcript */
	rc = cv_buf_printf(&text, "Chat transcript: %s\nConversation: ", c->name);
	if (!rc)
		rc = append_text(&text, c->key);
	if (!rc)
		rc = cv_buf_printf(&text, "\nFrom %s to %s, %zu event(s)\nParticipants:",
				   event_ts(first, tsa, sizeof(tsa)), event_ts(last, tsb, sizeof(tsb)),
				   c->nev);
	for (size_t i = 0; i < people.n && !rc; i++)
		rc = cv_buf_printf(&text, "%s %s", i ? "," : "", people.v[i]);
	if (!rc)
		rc = cv_buf_append(&text, "\n\n", 2);
	for (size_t i = 0; i < c->nev && !rc; i++)
		rc = transcript_event(&text, st, &b->events[c->ev[i]], &atts);
	if (!rc)
		rc = cv_buf_printf(out, "\r\n--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
				   "Content-Transfer-Encoding: quoted-printable\r\n\r\n", boundary);
	if (!rc)
		rc = qp_append(out, text.data, text.len);
	if (rc)
		goto out;

	/* 2. the canonical events */
	rc = cv_buf_append(&json, "[\n", 2);
	for (size_t i = 0; i < c->nev && !rc; i++) {
		const struct adp_event *e = &b->events[c->ev[i]];

		if (i && cv_buf_append(&json, ",\n", 2))
			rc = -ENOMEM;
		if (!rc)
			rc = cv_buf_append(&json, e->json, e->json_len);
	}
	if (!rc)
		rc = cv_buf_append(&json, "\n]\n", 3);
	if (!rc)
		rc = cv_buf_printf(out, "\r\n--%s\r\nContent-Type: application/json; charset=utf-8\r\n"
				   "Content-Transfer-Encoding: base64\r\n"
				   "Content-Disposition: attachment;\r\n filename=\"events.json\"\r\n"
				   "\r\n", boundary);
	if (!rc)
		rc = b64_append(out, json.data, json.len, true);
	if (rc)
		goto out;

	/* 3. attachments present in the file store */
	for (size_t i = 0; i < atts.n && !rc; i++) {
		char path[PATH_MAX];

		if (atts.v[i].status != ATT_ATTACHED)
			continue;
		snprintf(path, sizeof(path), "%s/%s", st->file_store, atts.v[i].sha256);
		rc = read_exact(path, atts.v[i].size, &blob);
		if (rc) {
			snprintf(failed, flen, "%s", path);
			*verb = "read";
			break;
		}
		rc = cv_buf_printf(out, "\r\n--%s\r\nContent-Type: application/octet-stream\r\n"
				   "Content-Transfer-Encoding: base64\r\n", boundary);
		if (!rc)
			rc = hdr_disposition(out, atts.v[i].name);
		if (!rc)
			rc = cv_buf_append(out, "\r\n", 2);
		if (!rc)
			rc = b64_append(out, blob.data, blob.len, true);
	}
	if (!rc)
		rc = cv_buf_printf(out, "\r\n--%s--\r\n", boundary);
out:
	free(atts.v);
	addrs_free(&people);
	cv_buf_free(&text);
	cv_buf_free(&json);
	cv_buf_free(&blob);
	free(subject);
	free(msgid);
	free(idname);
	return rc;
}

/* ---- adapter ------------------------------------------------------------------- */

static void eml_close(void *state)
{
	struct eml_state *st = state;

	if (!st)
		return;
	free(st->dir);
	free(st->name);
	free(st->file_store);
	free(st);
}

static int eml_init(const struct adp_env *env, void **state, char *err, size_t errlen)
{
	struct eml_state *st = calloc(1, sizeof(*st));
	const char *max = adp_env_opt(env, "max_attachment_bytes");

	*state = NULL;
	if (!st) {
		snprintf(err, errlen, "eml: out of memory");
		return -ENOMEM;
	}
	st->max_attachment_bytes = 26214400;
	if (max && cv_parse_i64(max, &st->max_attachment_bytes)) {
		snprintf(err, errlen, "eml: option max_attachment_bytes: expected a "
			 "non-negative integer, got \"%s\"", max);
		eml_close(st);
		return -EINVAL;
	}
	st->dir = adp_resolve_dir(env, "eml");
	st->name = adp_safe_name(env->name, "eml");
	if (env->file_store && *env->file_store)
		st->file_store = strdup(env->file_store);
	if (!st->dir || !st->name || (env->file_store && *env->file_store && !st->file_store)) {
		snprintf(err, errlen, "eml: out of memory");
		eml_close(st);
		return -ENOMEM;
	}
	*state = st;
	return 0;
}

static enum adp_result eml_deliver(void *state, struct adp_batch *b)
{
	const struct eml_state *st = state;
	struct adp_conv_set cs = { 0 };
	struct cv_buf data = { 0 };
	struct cv_sha256 *chain = NULL;
	char day[PATH_MAX], path[PATH_MAX], failed[PATH_MAX];
	const char *verb = "write";
	enum adp_result res;
	int rc;

	b->out_path[0] = b->out_chain[0] = b->reason[0] = '\0';
	b->fail_staging_id = 0;
	if (b->nevents == 0) {
		/* Nothing written: the chain does not move. */
		snprintf(b->out_chain, sizeof(b->out_chain), "%s",
			 b->chain_prev ? b->chain_prev : "");
		return ADP_OK;
	}
	res = adp_check_events(b, "eml", true);
	if (res != ADP_OK)
		return res;
	res = ADP_RETRY;
	snprintf(failed, sizeof(failed), "%s", st->dir);
	rc = adp_convs_build(b, &cs);
	if (!rc)
		rc = adp_day_dir(st->dir, b->events[0].ts_ms, day, sizeof(day));
	chain = rc ? NULL : cv_sha256_new();
	if (!rc && !chain)
		rc = -ENOMEM;
	if (!rc)
		rc = adp_make_day_dir(st->dir, day, failed, sizeof(failed));
	if (rc)
		goto io_error;
	cv_sha256_update(chain, b->chain_prev ? b->chain_prev : "",
			 b->chain_prev ? strlen(b->chain_prev) : 0);
	/*
	 * One message at a time: only one room's attachments are in memory.  A
	 * failure part-way leaves earlier rooms' complete files, which the
	 * redelivered batch rewrites byte for byte.
	 */
	for (size_t c = 0; c < cs.n; c++) {
		char hex[CV_SHA256_HEX];
		int n;

		cv_sha256_hex(cs.v[c].key, strlen(cs.v[c].key), hex);
		n = snprintf(path, sizeof(path), "%s/%s-%016" PRId64 "-%016" PRId64 "-%.12s.eml",
			     day, st->name, b->first_staging_id, b->last_staging_id, hex);
		if (n < 0 || (size_t)n >= sizeof(path)) {
			snprintf(failed, sizeof(failed), "%s", day);
			rc = -ENAMETOOLONG;
			goto io_error;
		}
		snprintf(failed, sizeof(failed), "%s", path);
		cv_buf_reset(&data);
		verb = "build";
		rc = build_message(st, b, &cs.v[c], &data, failed, sizeof(failed), &verb);
		if (rc)
			goto io_error;
		verb = "write";
		rc = cv_write_file_atomic(path, data.data, data.len, 0640);
		if (rc)
			goto io_error;
		cv_sha256_hex(data.data, data.len, hex);
		cv_sha256_update(chain, hex, 64);
	}
	cv_sha256_final_hex(chain, b->out_chain);
	snprintf(b->out_path, sizeof(b->out_path), "%s", cs.n == 1 ? path : day);
	res = ADP_OK;
	goto out;
io_error:
	/*
	 * Every I/O failure is a RETRY: a full disk, a read-only mount or an
	 * unreadable file store is the operator's to fix, never the data's
	 * fault.  The path is clipped so the errno text always fits.
	 */
	snprintf(b->reason, sizeof(b->reason), "eml: cannot %s %.400s: %s", verb, failed,
		 strerror(-rc));
out:
	cv_sha256_free(chain);
	cv_buf_free(&data);
	adp_convs_free(&cs);
	return res;
}

const struct adp_ops adp_eml_ops = {
	.abi_version = ADP_ABI_VERSION,
	.struct_size = sizeof(struct adp_ops),
	.type = "eml",
	.keys = eml_keys,
	.init = eml_init,
	.deliver = eml_deliver,
	.close = eml_close,
};

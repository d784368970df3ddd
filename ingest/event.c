/*
 * event — parse, validate and serialise the v1 compliance event (see
 * event.h and design.md §2 "Event").  This file is the single owner of the
 * wire rules; schema/event.v1.schema.json documents the same rules for
 * people and other tools, and the two must change together.
 *
 * Parsing is two passes: a hand-written scan for what jansson either
 * accepts (trailing whitespace, line breaks between tokens) or reports
 * poorly (invalid UTF-8), then jansson for the JSON grammar, escapes and
 * duplicate keys.  Validation works on jansson's strings in place; only
 * accepted values are copied, once, into the struct.
 *
 * Serialising does not go through a jansson tree: the canonical form is
 * written straight into one exactly-sized buffer.  The bytes are the same
 * as json_dumps(..., JSON_COMPACT | JSON_PRESERVE_ORDER) of the event
 * (tests/unit/test_event.c checks that), so "canonical" is defined by a
 * library, not by this file alone.
 *
 * Every error is one line of valid UTF-8 (it ends up in the quarantine
 * table's text column and in logs), starts lower-case and names the field.
 *
 * No state: every function is reentrant and thread-safe.
 */
#include "event.h"

#include "cv_time.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static const char *const type_names[ING_EV__COUNT] = {
	[ING_EV_CHAT_JOIN] = "chat.join",
	[ING_EV_CHAT_PART] = "chat.part",
	[ING_EV_CHAT_POST] = "chat.post",
	[ING_EV_CHAT_BACKCHAT] = "chat.backchat",
	[ING_EV_CHAT_FILE_UPLOAD] = "chat.file.upload",
	[ING_EV_CHAT_FILE_DOWNLOAD] = "chat.file.download",
	[ING_EV_CHAT_DELETE] = "chat.delete",
	[ING_EV_IM_MESSAGE] = "im.message",
	[ING_EV_IM_SESSION_START] = "im.session.start",
	[ING_EV_IM_SESSION_END] = "im.session.end",
};

/* Top-level fields, in canonical (serialisation) order. */
enum field {
	F_V,
	F_ID,
	F_TYPE,
	F_TS,
	F_ROOM,
	F_USER,
	F_TO,
	F_TEXT,
	F_FILES,
	F_SOURCE,
	F__COUNT
};

static const char *const field_names[F__COUNT] = {
	"v", "id", "type", "ts", "room", "user", "to", "text", "files", "source",
};

/* ---- which fields a type requires ------------------------------------ */

static bool needs_room(enum ing_event_type t)
{
	return ing_event_type_is_chat(t);
}

static bool needs_to(enum ing_event_type t)
{
	return ing_event_type_is_im(t);
}

static bool needs_text(enum ing_event_type t)
{
	return t == ING_EV_CHAT_POST || t == ING_EV_IM_MESSAGE;
}

static bool needs_files(enum ing_event_type t)
{
	return t == ING_EV_CHAT_FILE_UPLOAD || t == ING_EV_CHAT_FILE_DOWNLOAD;
}

/* ---- UTF-8 ------------------------------------------------------------ */

/*
 * Length of the well-formed UTF-8 sequence at s[0..n) (Unicode table 3-7),
 * or 0 with *why saying what is wrong with it.
 */
static size_t utf8_seq(const unsigned char *s, size_t n, const char **why)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xBF;
	size_t need;

	if (c < 0x80)
		return 1;
	if (c < 0xC0) {
		*why = "unexpected continuation byte";
		return 0;
	}
	if (c < 0xC2) {
		*why = "overlong encoding";
		return 0;
	}
	if (c < 0xE0) {
		need = 2;
	} else if (c < 0xF0) {
		need = 3;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
	} else if (c < 0xF5) {
		need = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	} else {
		*why = c < 0xF8 ? "code point above U+10FFFF" : "invalid byte";
		return 0;
	}
	if (n < 2) {
		*why = "truncated sequence";
		return 0;
	}
	/* The second byte carries every range restriction. */
	if (s[1] < lo && s[1] >= 0x80) {
		*why = "overlong encoding";
		return 0;
	}
	if (s[1] > hi && s[1] <= 0xBF) {
		*why = c == 0xED ? "UTF-16 surrogate" : "code point above U+10FFFF";
		return 0;
	}
	for (size_t i = 1; i < need; i++) {
		if (i >= n || (s[i] & 0xC0) != 0x80) {
			*why = "truncated sequence";
			return 0;
		}
	}
	return need;
}

/*
 * Offset of the first ill-formed sequence in s[0..n), or n when all is
 * well.  ASCII, the common case, is skipped eight bytes at a time.
 */
static size_t utf8_check(const char *str, size_t n, const char **why)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, k;
	uint64_t w;

	while (i < n) {
		while (i + 8 <= n) {
			memcpy(&w, s + i, 8);
			if (w & UINT64_C(0x8080808080808080))
				break;
			i += 8;
		}
		if (i >= n)
			break;
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		k = utf8_seq(s + i, n - i, why);
		if (k == 0)
			return i;
		i += k;
	}
	return n;
}

/*
 * Control characters: C0, DEL, and C1 (U+0080..U+009F, UTF-8 C2 80..C2 9F).
 * The input is known to be valid UTF-8.
 */
static bool has_control(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < 0x20 || s[i] == 0x7F)
			return true;
		if (s[i] == 0xC2 && i + 1 < n && s[i + 1] <= 0x9F)
			return true;
	}
	return false;
}

/* ---- error text ------------------------------------------------------- */

/*
 * Make err one line of valid UTF-8 whatever went into it: vsnprintf may
 * have cut a sequence in half and jansson's "near '...'" may quote raw
 * input bytes.
 */
static void sanitise(char *err)
{
	unsigned char *s = (unsigned char *)err;
	size_t n = strlen(err), i = 0, k;
	const char *why;

	while (i < n) {
		if (s[i] < 0x20 || s[i] == 0x7F) {
			s[i++] = '?';
			continue;
		}
		k = utf8_seq(s + i, n - i, &why);
		if (k == 0)
			s[i++] = '?';
		else
			i += k;
	}
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	sanitise(err);
	return -EINVAL;
}

/*
 * Quote untrusted bytes for an error message: at most ~40 input bytes, cut
 * on a character boundary, '"' and '\' escaped, "..." when cut.  out must
 * hold QUOTE_MAX.
 */
#define QUOTE_IN 40
#define QUOTE_MAX (QUOTE_IN * 2 + 32)

static const char *quote_pfx(char out[QUOTE_MAX], const char *pfx, const char *s, size_t n)
{
	size_t cut = n, o = 0;

	if (cut > QUOTE_IN) {
		cut = QUOTE_IN;
		while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
			cut--;
	}
	out[o++] = '"';
	/* pfx is ours ("source.", "files[3]."), short and plain. */
	for (; *pfx && o < QUOTE_MAX - QUOTE_IN * 2 - 6; pfx++)
		out[o++] = *pfx;
	for (size_t i = 0; i < cut; i++) {
		if (s[i] == '"' || s[i] == '\\')
			out[o++] = '\\';
		out[o++] = s[i];
	}
	out[o++] = '"';
	if (cut < n) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

static const char *quote(char out[QUOTE_MAX], const char *s, size_t n)
{
	return quote_pfx(out, "", s, n);
}

/*
 * Where in the raw text is byte pos?  A small scanner that knows JSON's
 * strings and nesting, run only on the error path, so that a UTF-8 or
 * jansson error can name the field it is in.
 *   top: the top-level key whose value contains pos (NULL when none);
 *   key: the last object key read before pos, at any depth.
 */
struct where {
	const char *top;
	size_t top_len;
	const char *key;
	size_t key_len;
};

static void locate(const char *buf, size_t pos, struct where *w)
{
	uint64_t is_obj = 0, want_key = 0; /* bit d-1: container at depth d */
	const char *cand = NULL;
	size_t cand_len = 0, start = 0;
	bool in_str = false, esc = false, str_is_key = false;
	unsigned depth = 0;

	memset(w, 0, sizeof(*w));
	for (size_t i = 0; i < pos; i++) {
		char c = buf[i];
		uint64_t bit = depth >= 1 && depth <= 64 ? UINT64_C(1) << (depth - 1) : 0;

		if (in_str) {
			if (esc) {
				esc = false;
			} else if (c == '\\') {
				esc = true;
			} else if (c == '"') {
				in_str = false;
				if (str_is_key) {
					w->key = buf + start;
					w->key_len = i - start;
					if (depth == 1) {
						cand = w->key;
						cand_len = w->key_len;
					}
				}
			}
			continue;
		}
		switch (c) {
		case '"':
			in_str = true;
			start = i + 1;
			str_is_key = (want_key & bit) != 0;
			break;
		case '{':
		case '[':
			depth++;
			if (depth >= 1 && depth <= 64) {
				bit = UINT64_C(1) << (depth - 1);
				if (c == '{') {
					is_obj |= bit;
					want_key |= bit;
				} else {
					is_obj &= ~bit;
					want_key &= ~bit;
				}
			}
			break;
		case '}':
		case ']':
			if (depth == 1)
				w->top = NULL;
			if (depth > 0)
				depth--;
			break;
		case ':':
			if (is_obj & bit) {
				want_key &= ~bit;
				if (depth == 1) {
					w->top = cand;
					w->top_len = cand_len;
				}
			}
			break;
		case ',':
			if (is_obj & bit) {
				want_key |= bit;
				if (depth == 1)
					w->top = NULL;
			}
			break;
		default:
			break;
		}
	}
}

/* "field \"x\": " for the top-level field holding pos, or "". */
static const char *field_prefix(char *out, size_t outlen, const char *buf, size_t pos)
{
	char q[QUOTE_MAX];
	struct where w;

	locate(buf, pos, &w);
	if (!w.top)
		return "";
	snprintf(out, outlen, "field %s: ", quote(q, w.top, w.top_len));
	return out;
}

static int json_fail(const char *buf, size_t n, const json_error_t *jerr, char *err, size_t errlen)
{
	size_t pos = jerr->position < 0 ? 0 : (size_t)jerr->position;
	char pfx[QUOTE_MAX + 16], q[QUOTE_MAX];
	struct where w;

	if (pos > n)
		pos = n;
	switch (json_error_code(jerr)) {
	case json_error_out_of_memory:
		fail(err, errlen, "out of memory parsing the event");
		return -ENOMEM;
	case json_error_end_of_input_expected:
		return fail(err, errlen, "trailing data after the event object at byte %zu",
			    pos > 0 ? pos - 1 : 0);
	case json_error_duplicate_key:
		/* jansson stops just after the repeated key. */
		locate(buf, pos, &w);
		if (w.key) {
			if (w.top)
				return fail(err, errlen, "field %s: duplicate key %s",
					    quote(pfx, w.top, w.top_len),
					    quote(q, w.key, w.key_len));
			return fail(err, errlen, "duplicate field %s", quote(q, w.key, w.key_len));
		}
		break;
	default:
		break;
	}
	return fail(err, errlen, "%sinvalid JSON: %s at line %d column %d",
		    field_prefix(pfx, sizeof(pfx), buf, pos), jerr->text, jerr->line,
		    jerr->column);
}

/* ---- value rules (shared by parse and validate) ----------------------- */

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* 8-4-4-4-12 hex; canonical (lower-case) form into out when non-NULL. */
static bool uuid_ok(const char *s, size_t n, bool lower_only, char *out)
{
	if (n != ING_EVENT_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!is_hex(s[i]) || (lower_only && s[i] >= 'A' && s[i] <= 'F')) {
			return false;
		}
		if (out)
			out[i] = lower(s[i]);
	}
	if (out)
		out[n] = '\0';
	return true;
}

static bool sha256_ok(const char *s, size_t n, bool lower_only, char *out)
{
	if (n != 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!is_hex(s[i]) || (lower_only && s[i] >= 'A' && s[i] <= 'F'))
			return false;
		if (out)
			out[i] = lower(s[i]);
	}
	if (out)
		out[n] = '\0';
	return true;
}

/* Length, control characters and spaces: what every URI field shares. */
static int uri_common(const char *f, const char *s, size_t n, char *err, size_t errlen)
{
	if (n == 0)
		return fail(err, errlen, "field \"%s\": must not be empty", f);
	if (n > ING_EVENT_MAX_URI)
		return fail(err, errlen, "field \"%s\": too long (%zu bytes, limit %d)", f, n,
			    ING_EVENT_MAX_URI);
	if (has_control(s, n))
		return fail(err, errlen, "field \"%s\": control character in URI", f);
	if (memchr(s, ' ', n))
		return fail(err, errlen, "field \"%s\": space in URI", f);
	return 0;
}

/*
 * user and to: "sip:" or "sips:" then user@host, both halves non-empty.
 * The scheme is matched in lower case only: the canonical form stores one
 * spelling so archives can be searched byte for byte.
 */
static int check_sip(const char *f, const char *s, size_t n, char *err, size_t errlen)
{
	const char *rest, *at;
	size_t rlen;
	int rc;

	rc = uri_common(f, s, n, err, errlen);
	if (rc)
		return rc;
	if (n > 4 && memcmp(s, "sip:", 4) == 0)
		rest = s + 4;
	else if (n > 5 && memcmp(s, "sips:", 5) == 0)
		rest = s + 5;
	else
		return fail(err, errlen, "field \"%s\": not a SIP URI (want sip:user@domain)", f);
	rlen = n - (size_t)(rest - s);
	at = memchr(rest, '@', rlen);
	if (!at || at == rest || at == s + n - 1)
		return fail(err, errlen, "field \"%s\": SIP URI must be sip:user@domain", f);
	return 0;
}

/* room: "scheme:rest", scheme [a-z][a-z0-9+.-]*, rest non-empty. */
static int check_room(const char *s, size_t n, char *err, size_t errlen)
{
	size_t i;
	int rc;

	rc = uri_common("room", s, n, err, errlen);
	if (rc)
		return rc;
	if (!(s[0] >= 'a' && s[0] <= 'z'))
		goto bad;
	for (i = 1; i < n && s[i] != ':'; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
		      c == '.' || c == '-'))
			goto bad;
	}
	if (i >= n - 1)
		goto bad;
	return 0;
bad:
	return fail(err, errlen, "field \"room\": not a URI (want scheme:identifier)");
}

static int check_server(const char *s, size_t n, char *err, size_t errlen)
{
	if (n == 0 || n > ING_EVENT_MAX_SERVER)
		return fail(err, errlen, "field \"source.server\": length %zu out of range 1..%d",
			    n, ING_EVENT_MAX_SERVER);
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return fail(err, errlen,
				    "field \"source.server\": only A-Z a-z 0-9 . _ - allowed");
	}
	return 0;
}

/*
 * A file name is shown to people and may become a file name in an export:
 * no path separator, no "." or "..", nothing invisible.
 */
static int check_file_name(size_t idx, const char *s, size_t n, char *err, size_t errlen)
{
	if (n == 0)
		return fail(err, errlen, "field \"files[%zu].name\": must not be empty", idx);
	if (n > ING_EVENT_MAX_FILE_NAME)
		return fail(err, errlen, "field \"files[%zu].name\": too long (%zu bytes, limit %d)",
			    idx, n, ING_EVENT_MAX_FILE_NAME);
	if (has_control(s, n))
		return fail(err, errlen, "field \"files[%zu].name\": control character", idx);
	if (memchr(s, '/', n))
		return fail(err, errlen, "field \"files[%zu].name\": must not contain '/'", idx);
	if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return fail(err, errlen, "field \"files[%zu].name\": must not be \".\" or \"..\"",
			    idx);
	return 0;
}

/* ---- parse ------------------------------------------------------------ */

/* "a string", "an integer", ... for "must be X, not Y" reasons. */
static const char *json_kind(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number with a fraction or exponent";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "?";
}

static int want_string(const char *f, const json_t *j, const char **s, size_t *n, char *err,
		       size_t errlen)
{
	/* Defined outputs on every path (and no maybe-uninitialized at -O2). */
	*s = NULL;
	*n = 0;
	if (!json_is_string(j))
		return fail(err, errlen, "field \"%s\": must be a string, not %s", f, json_kind(j));
	*s = json_string_value(j);
	*n = json_string_length(j);
	return 0;
}

static int want_int(const char *f, const json_t *j, int64_t *v, char *err, size_t errlen)
{
	*v = 0;
	if (!json_is_integer(j))
		return fail(err, errlen, "field \"%s\": must be an integer, not %s", f,
			    json_kind(j));
	*v = (int64_t)json_integer_value(j);
	return 0;
}

static int missing(const char *f, char *err, size_t errlen)
{
	return fail(err, errlen, "missing required field \"%s\"", f);
}

static int dup_str(char **dst, const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (!p)
		return -ENOMEM;
	memcpy(p, s, n);
	p[n] = '\0';
	*dst = p;
	return 0;
}

static int field_index(const char *k)
{
	/* The key set is fixed and small: compare against each name. */
	for (int i = 0; i < F__COUNT; i++)
		if (strcmp(k, field_names[i]) == 0)
			return i;
	return -1;
}

static int type_lookup(const char *s, size_t n)
{
	for (int i = 0; i < ING_EV__COUNT; i++)
		if (strncmp(type_names[i], s, n) == 0 && type_names[i][n] == '\0')
			return i;
	return -1;
}

static int parse_file(size_t idx, const json_t *item, struct ing_event_file *file, char *err,
		      size_t errlen)
{
	const json_t *name = NULL, *size = NULL, *sha = NULL, *val;
	const char *key, *s;
	char f[48], q[QUOTE_MAX];
	size_t n;
	int rc;

	if (!json_is_object(item))
		return fail(err, errlen, "field \"files[%zu]\": must be an object, not %s", idx,
			    json_kind(item));
	json_object_foreach((json_t *)item, key, val) {
		if (strcmp(key, "name") == 0)
			name = val;
		else if (strcmp(key, "size") == 0)
			size = val;
		else if (strcmp(key, "sha256") == 0)
			sha = val;
		else
			goto unknown;
	}
	snprintf(f, sizeof(f), "files[%zu].name", idx);
	if (!name)
		return missing(f, err, errlen);
	rc = want_string(f, name, &s, &n, err, errlen);
	if (rc)
		return rc;
	rc = check_file_name(idx, s, n, err, errlen);
	if (rc)
		return rc;

	snprintf(f, sizeof(f), "files[%zu].size", idx);
	if (!size)
		return missing(f, err, errlen);
	rc = want_int(f, size, &file->size, err, errlen);
	if (rc)
		return rc;
	if (file->size < 0)
		return fail(err, errlen, "field \"%s\": must be >= 0", f);

	snprintf(f, sizeof(f), "files[%zu].sha256", idx);
	if (!sha)
		return missing(f, err, errlen);
	rc = want_string(f, sha, &s, &n, err, errlen);
	if (rc)
		return rc;
	if (!sha256_ok(s, n, false, file->sha256))
		return fail(err, errlen, "field \"%s\": want 64 hex digits", f);

	/* Copy last: the rules above are cheaper than a malloc. */
	return dup_str(&file->name, json_string_value(name), json_string_length(name));
unknown:
	snprintf(f, sizeof(f), "files[%zu].", idx);
	return fail(err, errlen, "unknown field %s", quote_pfx(q, f, key, strlen(key)));
}

static int parse_files(const json_t *j, enum ing_event_type type, struct ing_event *ev,
		       char *err, size_t errlen)
{
	size_t n = 0;
	int rc;

	if (!json_is_array(j))
		return fail(err, errlen, "field \"files\": must be an array, not %s", json_kind(j));
	n = json_array_size(j);
	if (n == 0 && needs_files(type))
		return fail(err, errlen, "field \"files\": must not be empty for %s",
			    type_names[type]);
	if (n > ING_EVENT_MAX_FILES)
		return fail(err, errlen, "field \"files\": %zu files, limit %d", n,
			    ING_EVENT_MAX_FILES);
	ev->has_files = true;
	if (n == 0)
		return 0;
	ev->files = calloc(n, sizeof(*ev->files));
	if (!ev->files)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		rc = parse_file(i, json_array_get(j, i), &ev->files[i], err, errlen);
		/* Count it even on error so ing_event_clear frees its name. */
		ev->nfiles = i + 1;
		if (rc)
			return rc;
	}
	return 0;
}

static int parse_source(const json_t *j, struct ing_event *ev, char *err, size_t errlen)
{
	const json_t *server = NULL, *seq = NULL, *val;
	const char *key, *s;
	char q[QUOTE_MAX];
	size_t n;
	int rc;

	if (!json_is_object(j))
		return fail(err, errlen, "field \"source\": must be an object, not %s",
			    json_kind(j));
	json_object_foreach((json_t *)j, key, val) {
		if (strcmp(key, "server") == 0)
			server = val;
		else if (strcmp(key, "seq") == 0)
			seq = val;
		else
			return fail(err, errlen, "unknown field %s",
				    quote_pfx(q, "source.", key, strlen(key)));
	}
	if (!server)
		return missing("source.server", err, errlen);
	rc = want_string("source.server", server, &s, &n, err, errlen);
	if (rc)
		return rc;
	rc = check_server(s, n, err, errlen);
	if (rc)
		return rc;
	if (!seq)
		return missing("source.seq", err, errlen);
	rc = want_int("source.seq", seq, &ev->source_seq, err, errlen);
	if (rc)
		return rc;
	if (ev->source_seq < 0)
		return fail(err, errlen, "field \"source.seq\": must be >= 0");
	return dup_str(&ev->source_server, s, n);
}

/* An optional or type-required URI-ish string field. */
static int parse_uri(enum field fi, const json_t *j, bool required, char **dst, char *err,
		     size_t errlen)
{
	const char *f = field_names[fi], *s;
	size_t n;
	int rc;

	if (!j)
		return required ? missing(f, err, errlen) : 0;
	rc = want_string(f, j, &s, &n, err, errlen);
	if (rc)
		return rc;
	rc = fi == F_ROOM ? check_room(s, n, err, errlen) : check_sip(f, s, n, err, errlen);
	if (rc)
		return rc;
	return dup_str(dst, s, n);
}

/* Rules on a decoded JSON object; fills ev. */
static int parse_object(json_t *root, unsigned flags, struct ing_event *ev, char *err,
			size_t errlen)
{
	const bool stamped = !(flags & ING_PARSE_ALLOW_UNSTAMPED);
	const json_t *slot[F__COUNT] = { 0 };
	enum ing_event_type type;
	char q[QUOTE_MAX], why[96];
	const char *key, *s;
	json_t *val;
	int64_t v;
	size_t n;
	int rc, i;

	json_object_foreach(root, key, val) {
		i = field_index(key);
		if (i < 0)
			return fail(err, errlen, "unknown field %s", quote(q, key, strlen(key)));
		slot[i] = val;
	}

	if (!slot[F_V])
		return missing("v", err, errlen);
	rc = want_int("v", slot[F_V], &v, err, errlen);
	if (rc)
		return rc;
	if (v != ING_EVENT_VERSION)
		return fail(err, errlen, "field \"v\": unsupported version %lld", (long long)v);

	if (slot[F_ID]) {
		rc = want_string("id", slot[F_ID], &s, &n, err, errlen);
		if (rc)
			return rc;
		if (!uuid_ok(s, n, false, ev->id))
			return fail(err, errlen,
				    "field \"id\": not a UUID (want 8-4-4-4-12 hex digits)");
	} else if (stamped) {
		return missing("id", err, errlen);
	}

	if (!slot[F_TYPE])
		return missing("type", err, errlen);
	rc = want_string("type", slot[F_TYPE], &s, &n, err, errlen);
	if (rc)
		return rc;
	i = type_lookup(s, n);
	if (i < 0)
		return fail(err, errlen, "field \"type\": unknown event type %s", quote(q, s, n));
	type = (enum ing_event_type)i;
	ev->type = type;

	if (slot[F_TS]) {
		rc = want_string("ts", slot[F_TS], &s, &n, err, errlen);
		if (rc)
			return rc;
		if (cv_time_parse_rfc3339(s, &ev->ts_ms, why, sizeof(why)))
			return fail(err, errlen, "field \"ts\": %s", why);
	} else if (stamped) {
		return missing("ts", err, errlen);
	}

	rc = parse_uri(F_ROOM, slot[F_ROOM], needs_room(type), &ev->room, err, errlen);
	if (rc)
		return rc;
	rc = parse_uri(F_USER, slot[F_USER], true, &ev->user, err, errlen);
	if (rc)
		return rc;
	rc = parse_uri(F_TO, slot[F_TO], needs_to(type), &ev->to, err, errlen);
	if (rc)
		return rc;

	if (slot[F_TEXT]) {
		rc = want_string("text", slot[F_TEXT], &s, &n, err, errlen);
		if (rc)
			return rc;
		if (n == 0 && needs_text(type))
			return fail(err, errlen, "field \"text\": must not be empty for %s",
				    type_names[type]);
		rc = dup_str(&ev->text, s, n);
		if (rc)
			return rc;
	} else if (needs_text(type)) {
		return missing("text", err, errlen);
	}

	if (slot[F_FILES]) {
		rc = parse_files(slot[F_FILES], type, ev, err, errlen);
		if (rc)
			return rc;
	} else if (needs_files(type)) {
		return missing("files", err, errlen);
	}

	if (slot[F_SOURCE]) {
		rc = parse_source(slot[F_SOURCE], ev, err, errlen);
		if (rc)
			return rc;
	} else if (stamped) {
		return missing("source", err, errlen);
	}
	return 0;
}

int ing_event_parse(const char *buf, size_t len, size_t max_size, unsigned flags,
		    struct ing_event *ev, char *err, size_t errlen)
{
	char pfx[QUOTE_MAX + 16];
	json_t *root = NULL;
	json_error_t jerr;
	const char *why = NULL, *nl;
	size_t n = len, off;
	int rc;

	ing_event_init(ev);
	if (max_size == 0)
		max_size = ING_EVENT_DEFAULT_MAX_SIZE;
	/* Before anything else: never spend work on an oversized input. */
	if (len > max_size)
		return fail(err, errlen, "event is %zu bytes, limit %zu", len, max_size);
	if (n > 0 && buf[n - 1] == '\n') {
		n--;
		if (n > 0 && buf[n - 1] == '\r')
			n--;
	}
	if (n == 0)
		return fail(err, errlen, "empty event");

	off = utf8_check(buf, n, &why);
	if (off < n)
		return fail(err, errlen, "%sinvalid UTF-8 at byte %zu (%s)",
			    field_prefix(pfx, sizeof(pfx), buf, off), off, why);

	if (buf[0] != '{') {
		/* buf is not NUL-terminated: no strspn (found by fuzz_event). */
		for (off = 0; off < n && (buf[off] == ' ' || buf[off] == '\t'); off++)
			;
		if (off < n && buf[off] == '{')
			return fail(err, errlen, "whitespace before the event object");
		return fail(err, errlen, "event is not a JSON object");
	}

	root = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return json_fail(buf, n, &jerr, err, errlen);
	/* jansson accepts trailing whitespace; the contract does not. */
	if (buf[n - 1] != '}') {
		rc = fail(err, errlen, "trailing whitespace after the event object");
		goto out;
	}
	/*
	 * JSON strings cannot hold a raw line break, so one here is whitespace
	 * between tokens: legal JSON, but not one event per line.
	 */
	if ((nl = memchr(buf, '\n', n)) || (nl = memchr(buf, '\r', n))) {
		rc = fail(err, errlen, "line break inside the event at byte %zu",
			  (size_t)(nl - buf));
		goto out;
	}
	rc = parse_object(root, flags, ev, err, errlen);
	if (rc == -ENOMEM)
		fail(err, errlen, "out of memory parsing the event");
out:
	json_decref(root);
	if (rc)
		ing_event_clear(ev);
	return rc;
}

/* ---- validate (events built in memory) -------------------------------- */

static int check_utf8_field(const char *f, const char *s, size_t n, char *err, size_t errlen)
{
	const char *why = NULL;
	size_t off = utf8_check(s, n, &why);

	if (off < n)
		return fail(err, errlen, "field \"%s\": invalid UTF-8 at byte %zu (%s)", f, off,
			    why);
	return 0;
}

static int validate_uri(enum field fi, const char *s, bool required, char *err, size_t errlen)
{
	const char *f = field_names[fi];
	size_t n;
	int rc;

	if (!s)
		return required ? missing(f, err, errlen) : 0;
	n = strlen(s);
	rc = check_utf8_field(f, s, n, err, errlen);
	if (rc)
		return rc;
	return fi == F_ROOM ? check_room(s, n, err, errlen) : check_sip(f, s, n, err, errlen);
}

int ing_event_validate(const struct ing_event *ev, unsigned flags, char *err, size_t errlen)
{
	const bool stamped = !(flags & ING_PARSE_ALLOW_UNSTAMPED);
	enum ing_event_type type = ev->type;
	char f[48];
	int rc;

	if (ev->id[0]) {
		if (!uuid_ok(ev->id, strnlen(ev->id, sizeof(ev->id)), true, NULL))
			return fail(err, errlen,
				    "field \"id\": not a lower-case UUID (want 8-4-4-4-12 hex digits)");
	} else if (stamped) {
		return missing("id", err, errlen);
	}
	if ((int)type < 0 || type >= ING_EV__COUNT)
		return fail(err, errlen, "field \"type\": unknown event type %d", (int)type);
	if (ev->ts_ms != -1 || stamped) {
		if (ev->ts_ms == -1)
			return missing("ts", err, errlen);
		if (ev->ts_ms < CV_TIME_MIN_MS || ev->ts_ms > CV_TIME_MAX_MS)
			return fail(err, errlen, "field \"ts\": %lld ms out of range",
				    (long long)ev->ts_ms);
	}
	rc = validate_uri(F_ROOM, ev->room, needs_room(type), err, errlen);
	if (rc)
		return rc;
	rc = validate_uri(F_USER, ev->user, true, err, errlen);
	if (rc)
		return rc;
	rc = validate_uri(F_TO, ev->to, needs_to(type), err, errlen);
	if (rc)
		return rc;
	if (ev->text) {
		size_t n = strlen(ev->text);

		rc = check_utf8_field("text", ev->text, n, err, errlen);
		if (rc)
			return rc;
		if (n == 0 && needs_text(type))
			return fail(err, errlen, "field \"text\": must not be empty for %s",
				    type_names[type]);
	} else if (needs_text(type)) {
		return missing("text", err, errlen);
	}
	if (!ev->has_files) {
		if (needs_files(type))
			return missing("files", err, errlen);
		if (ev->nfiles)
			return fail(err, errlen, "field \"files\": nfiles set without has_files");
	} else {
		if (ev->nfiles == 0 && needs_files(type))
			return fail(err, errlen, "field \"files\": must not be empty for %s",
				    type_names[type]);
		if (ev->nfiles > ING_EVENT_MAX_FILES)
			return fail(err, errlen, "field \"files\": %zu files, limit %d", ev->nfiles,
				    ING_EVENT_MAX_FILES);
		if (ev->nfiles && !ev->files)
			return fail(err, errlen, "field \"files\": nfiles set without files");
	}
	for (size_t i = 0; i < (ev->has_files ? ev->nfiles : 0); i++) {
		const struct ing_event_file *file = &ev->files[i];
		size_t n;

		snprintf(f, sizeof(f), "files[%zu].name", i);
		if (!file->name)
			return missing(f, err, errlen);
		n = strlen(file->name);
		rc = check_utf8_field(f, file->name, n, err, errlen);
		if (rc)
			return rc;
		rc = check_file_name(i, file->name, n, err, errlen);
		if (rc)
			return rc;
		if (file->size < 0)
			return fail(err, errlen, "field \"files[%zu].size\": must be >= 0", i);
		if (!sha256_ok(file->sha256, strnlen(file->sha256, sizeof(file->sha256)), true,
			       NULL))
			return fail(err, errlen,
				    "field \"files[%zu].sha256\": want 64 lower-case hex digits", i);
	}
	if (ev->source_server) {
		rc = check_server(ev->source_server, strlen(ev->source_server), err, errlen);
		if (rc)
			return rc;
		if (ev->source_seq < 0)
			return fail(err, errlen, "field \"source.seq\": must be >= 0");
	} else if (stamped) {
		return missing("source", err, errlen);
	}
	return 0;
}

/* ---- serialise -------------------------------------------------------- */

/*
 * Bytes each input byte becomes inside a JSON string, matching jansson's
 * dump_string() without JSON_ENSURE_ASCII / JSON_ESCAPE_SLASH: '"' and '\'
 * and the short escapes take 2, other C0 controls "\u00XX" take 6, the rest
 * (DEL and all of UTF-8 included) are copied.
 */
static const unsigned char esc_width[256] = {
	6, 6, 6, 6, 6, 6, 6, 6, 2, 2, 2, 6, 2, 2, 6, 6, /* 0x00: \b \t \n \f \r */
	6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
	1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x22 '"' */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, /* 0x5c '\' */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* Quoted, escaped length of s. */
static size_t str_width(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t w = 2;

	for (; *p; p++)
		w += esc_width[*p];
	return w;
}

static char *put_lit(char *p, const char *lit, size_t n)
{
	memcpy(p, lit, n);
	return p + n;
}

#define PUT_LIT(p, lit) put_lit((p), (lit), sizeof(lit) - 1)

static char *put_str(char *p, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *u = (const unsigned char *)s;
	const unsigned char *run = u;

	*p++ = '"';
	for (; *u; u++) {
		unsigned char c = *u;

		if (esc_width[c] == 1)
			continue;
		/* Flush the run of plain bytes before this one. */
		memcpy(p, run, (size_t)(u - run));
		p += u - run;
		run = u + 1;
		*p++ = '\\';
		switch (c) {
		case '"':
		case '\\':
			*p++ = (char)c;
			break;
		case '\b':
			*p++ = 'b';
			break;
		case '\f':
			*p++ = 'f';
			break;
		case '\n':
			*p++ = 'n';
			break;
		case '\r':
			*p++ = 'r';
			break;
		case '\t':
			*p++ = 't';
			break;
		default:
			p = PUT_LIT(p, "u00");
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
			break;
		}
	}
	memcpy(p, run, (size_t)(u - run));
	p += u - run;
	*p++ = '"';
	return p;
}

/* Decimal digits of v >= 0 (sizes and sequence numbers). */
static size_t int_width(int64_t v)
{
	size_t w = 1;
	uint64_t u = (uint64_t)v;

	while (u >= 10) {
		u /= 10;
		w++;
	}
	return w;
}

static char *put_int(char *p, int64_t v)
{
	size_t w = int_width(v);
	uint64_t u = (uint64_t)v;

	for (size_t i = w; i-- > 0;) {
		p[i] = (char)('0' + u % 10);
		u /= 10;
	}
	return p + w;
}

int ing_event_serialize(const struct ing_event *ev, char **out, size_t *outlen)
{
	char ts[CV_TIME_BUFSZ], *buf, *p;
	const char *tname;
	size_t total;

	*out = NULL;
	*outlen = 0;
	/*
	 * Full validation, not just "complete": whatever we write here is
	 * stored byte for byte and must parse back.  It costs one scan of the
	 * strings, small beside the copy itself.
	 */
	if (ing_event_validate(ev, 0, NULL, 0))
		return -EINVAL;
	if (cv_time_format_ms(ev->ts_ms, ts))
		return -EINVAL;
	tname = type_names[ev->type];

	/* Pass 1: the exact size, so pass 2 writes into one allocation. */
	total = sizeof("{\"v\":1,\"id\":\"\",\"type\":,\"ts\":\"\"") - 1 + ING_EVENT_ID_LEN +
		str_width(tname) + 24;
	if (ev->room)
		total += sizeof(",\"room\":") - 1 + str_width(ev->room);
	total += sizeof(",\"user\":") - 1 + str_width(ev->user);
	if (ev->to)
		total += sizeof(",\"to\":") - 1 + str_width(ev->to);
	if (ev->text)
		total += sizeof(",\"text\":") - 1 + str_width(ev->text);
	if (ev->has_files) {
		total += sizeof(",\"files\":[]") - 1;
		for (size_t i = 0; i < ev->nfiles; i++)
			total += (i ? 1 : 0) +
				 sizeof("{\"name\":,\"size\":,\"sha256\":\"\"}") - 1 +
				 str_width(ev->files[i].name) + int_width(ev->files[i].size) + 64;
	}
	total += sizeof(",\"source\":{\"server\":,\"seq\":}}") - 1 +
		 str_width(ev->source_server) + int_width(ev->source_seq);

	buf = malloc(total + 1);
	if (!buf)
		return -ENOMEM;
	p = PUT_LIT(buf, "{\"v\":1,\"id\":\"");
	p = put_lit(p, ev->id, ING_EVENT_ID_LEN);
	p = PUT_LIT(p, "\",\"type\":");
	p = put_str(p, tname);
	p = PUT_LIT(p, ",\"ts\":\"");
	p = put_lit(p, ts, 24);
	*p++ = '"';
	if (ev->room) {
		p = PUT_LIT(p, ",\"room\":");
		p = put_str(p, ev->room);
	}
	p = PUT_LIT(p, ",\"user\":");
	p = put_str(p, ev->user);
	if (ev->to) {
		p = PUT_LIT(p, ",\"to\":");
		p = put_str(p, ev->to);
	}
	if (ev->text) {
		p = PUT_LIT(p, ",\"text\":");
		p = put_str(p, ev->text);
	}
	if (ev->has_files) {
		p = PUT_LIT(p, ",\"files\":[");
		for (size_t i = 0; i < ev->nfiles; i++) {
			if (i)
				*p++ = ',';
			p = PUT_LIT(p, "{\"name\":");
			p = put_str(p, ev->files[i].name);
			p = PUT_LIT(p, ",\"size\":");
			p = put_int(p, ev->files[i].size);
			p = PUT_LIT(p, ",\"sha256\":\"");
			p = put_lit(p, ev->files[i].sha256, 64);
			p = PUT_LIT(p, "\"}");
		}
		*p++ = ']';
	}
	p = PUT_LIT(p, ",\"source\":{\"server\":");
	p = put_str(p, ev->source_server);
	p = PUT_LIT(p, ",\"seq\":");
	p = put_int(p, ev->source_seq);
	p = PUT_LIT(p, "}}");
	*p = '\0';
	/* The two passes must agree; a mismatch is a bug in this file. */
	if ((size_t)(p - buf) != total) {
		free(buf);
		return -EINVAL;
	}
	*out = buf;
	*outlen = total;
	return 0;
}

/* ---- lifecycle, copy, equality ---------------------------------------- */

void ing_event_init(struct ing_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->ts_ms = -1;
}

void ing_event_clear(struct ing_event *ev)
{
	if (!ev)
		return;
	free(ev->room);
	free(ev->user);
	free(ev->to);
	free(ev->text);
	for (size_t i = 0; i < ev->nfiles; i++)
		free(ev->files[i].name);
	free(ev->files);
	free(ev->source_server);
	ing_event_init(ev);
}

static int copy_str(char **dst, const char *src)
{
	if (!src) {
		*dst = NULL;
		return 0;
	}
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

int ing_event_copy(struct ing_event *dst, const struct ing_event *src)
{
	int rc = -ENOMEM;

	/* Scalars and fixed arrays first, then pointers one by one. */
	*dst = *src;
	dst->room = dst->user = dst->to = dst->text = dst->source_server = NULL;
	dst->files = NULL;
	dst->nfiles = 0;
	if (copy_str(&dst->room, src->room) || copy_str(&dst->user, src->user) ||
	    copy_str(&dst->to, src->to) || copy_str(&dst->text, src->text) ||
	    copy_str(&dst->source_server, src->source_server))
		goto out;
	if (src->nfiles) {
		dst->files = calloc(src->nfiles, sizeof(*dst->files));
		if (!dst->files)
			goto out;
		for (size_t i = 0; i < src->nfiles; i++) {
			dst->files[i] = src->files[i];
			dst->files[i].name = NULL;
			dst->nfiles = i + 1;
			if (copy_str(&dst->files[i].name, src->files[i].name))
				goto out;
		}
	}
	rc = 0;
out:
	if (rc)
		ing_event_clear(dst);
	return rc;
}

static bool str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

bool ing_event_equal(const struct ing_event *a, const struct ing_event *b)
{
	if (strcmp(a->id, b->id) != 0 || a->type != b->type || a->ts_ms != b->ts_ms ||
	    !str_eq(a->room, b->room) || !str_eq(a->user, b->user) || !str_eq(a->to, b->to) ||
	    !str_eq(a->text, b->text) || a->has_files != b->has_files ||
	    a->nfiles != b->nfiles || !str_eq(a->source_server, b->source_server))
		return false;
	if (a->source_server && a->source_seq != b->source_seq)
		return false;
	for (size_t i = 0; i < a->nfiles; i++) {
		const struct ing_event_file *fa = &a->files[i], *fb = &b->files[i];

		if (!str_eq(fa->name, fb->name) || fa->size != fb->size ||
		    strcmp(fa->sha256, fb->sha256) != 0)
			return false;
	}
	return true;
}

/* ---- types and ids ---------------------------------------------------- */

const char *ing_event_type_name(enum ing_event_type type)
{
	if ((int)type < 0 || type >= ING_EV__COUNT)
		return NULL;
	return type_names[type];
}

int ing_event_type_parse(const char *name)
{
	if (!name)
		return -1;
	return type_lookup(name, strlen(name));
}

int ing_uuid_v7(int64_t now_ms, char out[ING_EVENT_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	size_t got = 0;
	ssize_t r;
	int o = 0;

	if (now_ms < 0 || now_ms >= (INT64_C(1) << 48))
		return -EINVAL;
	/* RFC 9562 §5.7: 48-bit big-endian ms, then 74 random bits. */
	for (int i = 0; i < 6; i++)
		b[i] = (unsigned char)((uint64_t)now_ms >> (40 - 8 * i));
	while (got < 10) {
		/* Up to 256 bytes never come back short, but EINTR can. */
		r = getrandom(b + 6 + got, 10 - got, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)r;
	}
	b[6] = (unsigned char)(0x70 | (b[6] & 0x0F)); /* version 7 */
	b[8] = (unsigned char)(0x80 | (b[8] & 0x3F)); /* variant 10 */
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[o] = '\0';
	return 0;
}

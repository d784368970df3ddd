/*
 * cv_log — see cv_log.h.  A record is formatted into one buffer and written
 * with one fwrite under the stream lock, so lines from two threads never
 * interleave.
 */
#include "cv_log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cv_time.h"

/* Process-wide threshold; WARN by default ("quiet by default"). */
static _Atomic int log_threshold = CV_LOG_WARN;
static _Atomic int log_format = CV_LOG_HUMAN;
static atomic_bool log_journal = false;

static const char *const level_names[] = { "error", "warn", "info", "debug" };
/* sd-daemon(3) priorities: SD_ERR, SD_WARNING, SD_INFO, SD_DEBUG. */
static const char level_prio[] = { '3', '4', '6', '7' };

#define LOG_LINE_MAX 8192

void cv_log_set_level(enum cv_log_level level)
{
	atomic_store(&log_threshold, (int)level);
}

enum cv_log_level cv_log_get_level(void)
{
	return (enum cv_log_level)atomic_load(&log_threshold);
}

int cv_log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(name, level_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *cv_log_level_name(enum cv_log_level level)
{
	if ((int)level < 0 || (size_t)level >= sizeof(level_names) / sizeof(level_names[0]))
		return "?";
	return level_names[level];
}

void cv_log_set_format(enum cv_log_format format, bool journal)
{
	atomic_store(&log_format, (int)format);
	atomic_store(&log_journal, journal);
}

enum cv_log_format cv_log_get_format(void)
{
	return (enum cv_log_format)atomic_load(&log_format);
}

int cv_log_format_parse(const char *name)
{
	if (strcmp(name, "human") == 0)
		return CV_LOG_HUMAN;
	if (strcmp(name, "logfmt") == 0)
		return CV_LOG_LOGFMT;
	return -1;
}

bool cv_log_stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char tail;

	if (!js || sscanf(js, "%llu:%llu%c", &dev, &ino, &tail) != 2)
		return false;
	if (fstat(2, &st) != 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* ---- the line writer ---------------------------------------------------------- */

/* Kept free for the end of a cut record: '"', " truncated=true", '\n', NUL. */
#define RESERVE 20

struct lw {
	char *p;
	size_t len, cap;
	bool full;        /* a put did not fit: the record is cut */
	bool quote_open;  /* inside a quoted value */
};

static bool lw_room(struct lw *w, size_t n)
{
	if (w->full || w->len + n + RESERVE > w->cap) {
		w->full = true;
		return false;
	}
	return true;
}

static void lw_put(struct lw *w, const char *s, size_t n)
{
	if (!lw_room(w, n))
		return;
	memcpy(w->p + w->len, s, n);
	w->len += n;
}

static void lw_puts(struct lw *w, const char *s)
{
	lw_put(w, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid
 * (overlong, surrogate, past U+10FFFF, cut short by the NUL). */
static size_t utf8_seq(const unsigned char *s)
{
	unsigned int c = s[0], min;
	uint32_t cp;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, min = 0x10000;
	else
		return 0;
	cp = c & (0x3fu >> (n - 1));
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/*
 * Copy s escaped.  Always: \n \r \t, other control bytes as \u00XX, invalid
 * UTF-8 as \ufffd.  quoted (a logfmt value inside "…"): also \" and \\, which
 * makes the value a JSON string.  Each escape or character is written whole
 * or not at all.
 */
static void lw_escaped(struct lw *w, const char *s, bool quoted)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");

	while (*p && !w->full) {
		char tmp[8];
		const char *out = tmp;
		size_t n, adv = 1;

		if (quoted && (*p == '"' || *p == '\\')) {
			tmp[0] = '\\', tmp[1] = (char)*p, n = 2;
		} else if (*p == '\n') {
			out = "\\n", n = 2;
		} else if (*p == '\r') {
			out = "\\r", n = 2;
		} else if (*p == '\t') {
			out = "\\t", n = 2;
		} else if (*p < 0x20 || *p == 0x7f) {
			n = (size_t)snprintf(tmp, sizeof(tmp), "\\u%04x", (unsigned int)*p);
		} else if ((adv = utf8_seq(p)) > 0) {
			out = (const char *)p, n = adv;
		} else {
			out = "\\ufffd", n = 6, adv = 1;
		}
		lw_put(w, out, n);
		p += adv;
	}
}

/* A logfmt value: bare when it is a non-empty run of printable ASCII other
 * than space, '=', '"' and '\\'; else quoted. */
static void lw_value(struct lw *w, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	bool bare = *p != '\0';

	for (; *p && bare; p++)
		if (*p <= 0x20 || *p >= 0x7f || *p == '=' || *p == '"' || *p == '\\')
			bare = false;
	if (bare) {
		lw_puts(w, s);
		return;
	}
	lw_put(w, "\"", 1);
	if (w->full)
		return;
	w->quote_open = true;
	lw_escaped(w, s, true);
	lw_put(w, "\"", 1);
	if (!w->full)
		w->quote_open = false;
}

static void lw_key(struct lw *w, const char *key)
{
	char k[64];
	size_t n = 0;

	for (const char *p = key ? key : ""; *p && n < sizeof(k) - 1; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '_' || c == '.' || c == '-';

		k[n++] = ok ? c : '_';
	}
	if (n == 0)
		k[n++] = '_';
	k[n] = '\0';
	lw_put(w, " ", 1);
	lw_puts(w, k);
	lw_put(w, "=", 1);
}

static void lw_fields(struct lw *w, const struct cv_kv *kv, size_t nkv)
{
	for (size_t i = 0; i < nkv && !w->full; i++) {
		char num[48];

		lw_key(w, kv[i].key);
		switch (kv[i].type) {
		case CV_KV_INT:
			snprintf(num, sizeof(num), "%" PRId64, kv[i].i);
			lw_puts(w, num);
			break;
		case CV_KV_DBL:
			snprintf(num, sizeof(num), "%.3f", kv[i].d);
			lw_puts(w, num);
			break;
		case CV_KV_STR:
		default:
			lw_value(w, kv[i].s);
			break;
		}
	}
}

/* Close a cut record and end the line; the reserve guarantees the room. */
static size_t lw_finish(struct lw *w)
{
	if (w->full) {
		if (w->quote_open)
			w->p[w->len++] = '"';
		memcpy(w->p + w->len, " truncated=true", 15);
		w->len += 15;
	}
	w->p[w->len++] = '\n';
	w->p[w->len] = '\0';
	return w->len;
}

/* One record; cmd_error: the human form is "chatvault: <component>: <msg>". */
static size_t format_record(char *buf, size_t len, enum cv_log_format format, bool journal,
			    int64_t ts_ms, enum cv_log_level level, const char *component,
			    const char *msg, const struct cv_kv *kv, size_t nkv, bool cmd_error)
{
	struct lw w = { .p = buf, .cap = len };
	int li = (int)level >= 0 && (int)level <= CV_LOG_DEBUG ? (int)level : CV_LOG_ERROR;

	if (len < RESERVE + 2) {
		if (len >= 2) {
			buf[0] = '\n', buf[1] = '\0';
			return 1;
		}
		if (len == 1)
			buf[0] = '\0';
		return 0;
	}
	if (journal) {
		char prio[3] = { '<', level_prio[li], '>' };

		lw_put(&w, prio, 3);
	}
	if (format == CV_LOG_LOGFMT) {
		if (ts_ms >= 0) {
			char ts[CV_TIME_BUFSZ];

			if (cv_time_format_ms(ts_ms, ts) == 0) {
				lw_puts(&w, "ts=");
				lw_puts(&w, ts);
				lw_put(&w, " ", 1);
			}
		}
		lw_puts(&w, "level=");
		lw_puts(&w, level_names[li]);
		if (component) {
			lw_puts(&w, " component=");
			lw_value(&w, component);
		}
		lw_puts(&w, " msg=\"");
		if (!w.full) {
			w.quote_open = true;
			lw_escaped(&w, msg, true);
			lw_put(&w, "\"", 1);
			if (!w.full)
				w.quote_open = false;
		}
	} else {
		lw_puts(&w, "chatvault: ");
		if (!cmd_error) {
			lw_puts(&w, level_names[li]);
			lw_puts(&w, ": ");
		}
		if (component) {
			lw_escaped(&w, component, false);
			lw_puts(&w, ": ");
		}
		lw_escaped(&w, msg, false);
	}
	lw_fields(&w, kv, nkv);
	return lw_finish(&w);
}

size_t cv_log_format_line(char *buf, size_t len, enum cv_log_format format, bool journal,
			  int64_t ts_ms, enum cv_log_level level, const char *component,
			  const char *msg, const struct cv_kv *kv, size_t nkv)
{
	return format_record(buf, len, format, journal, ts_ms, level, component, msg, kv, nkv,
			     false);
}

static void emit(const char *line, size_t n)
{
	flockfile(stderr);
	fwrite(line, 1, n, stderr);
	fflush(stderr);
	funlockfile(stderr);
}

static void write_record(enum cv_log_level level, const char *component, const char *msg,
			 const struct cv_kv *kv, size_t nkv, bool cmd_error)
{
	char line[LOG_LINE_MAX];
	enum cv_log_format format = cv_log_get_format();
	bool journal = atomic_load(&log_journal);
	int64_t ts = format == CV_LOG_LOGFMT && !journal ? cv_time_now_ms() : -1;
	size_t n = format_record(line, sizeof(line), format, journal, ts, level, component, msg, kv,
				 nkv, cmd_error);

	emit(line, n);
}

void cv_logkv_n(enum cv_log_level level, const char *component, const char *msg,
		const struct cv_kv *kv, size_t nkv)
{
	if ((int)level > atomic_load(&log_threshold))
		return;
	write_record(level, component, msg, kv, nkv, false);
}

void cv_log(enum cv_log_level level, const char *component, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	if ((int)level > atomic_load(&log_threshold))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	write_record(level, component, msg, NULL, 0, false);
}

void cv_log_cmd_error(const char *cmd, const char *msg)
{
	write_record(CV_LOG_ERROR, cmd, msg, NULL, 0, true);
}

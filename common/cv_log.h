/*
 * cv_log — one-line diagnostics to stderr, for a human or for a machine.
 *
 * Every record is exactly one line, whatever its input: control characters,
 * quotes and invalid UTF-8 in a message or a field are escaped, so an event's
 * text or a database error can neither split a line nor forge another one.
 * Two formats (docs/OPERATIONS.md, "Logs"):
 *
 *   human   chatvault: <level>: <component>: <message> [key=value ...]
 *   logfmt  [ts=<UTC>] level=<level> component=<component> msg="<message>"
 *           [key=value ...]
 *
 * In logfmt a value is bare when it is a non-empty run of printable bytes
 * without space, '=', '"' or '\\', and otherwise a double-quoted JSON string
 * (\" \\ \n \r \t \u00XX; invalid UTF-8 becomes \ufffd).  When stderr is the
 * journal (JOURNAL_STREAM names stderr's device and inode, as systemd sets it)
 * every line starts with the sd-daemon priority "<N>" (3 error, 4 warn, 6 info,
 * 7 debug), which journald strips and records as PRIORITY, and ts= is left
 * out (journald stamps the record itself).
 *
 * Messages must never contain secrets: callers pass conninfo strings through
 * cv_mask_conninfo() first (see cv_util.h).
 *
 * The threshold and the format are the process-wide state of this module
 * (like syslog's setlogmask and openlog): set once by the CLI from -v/-q,
 * --log-format or the config, read atomically by every thread.  Tests never
 * need to redefine them.
 */
#ifndef CV_LOG_H
#define CV_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cv_log_level {
	CV_LOG_ERROR = 0,
	CV_LOG_WARN = 1,
	CV_LOG_INFO = 2,
	CV_LOG_DEBUG = 3,
};

enum cv_log_format {
	CV_LOG_HUMAN = 0,
	CV_LOG_LOGFMT = 1,
};

void cv_log_set_level(enum cv_log_level level);
enum cv_log_level cv_log_get_level(void);
/* "error", "warn", "info", "debug" → level; -1 if unknown. */
int cv_log_level_parse(const char *name);
const char *cv_log_level_name(enum cv_log_level level);

/* journal: prefix every line with "<N>" and leave out ts=. */
void cv_log_set_format(enum cv_log_format format, bool journal);
enum cv_log_format cv_log_get_format(void);
/* "human", "logfmt" → format; -1 if unknown. */
int cv_log_format_parse(const char *name);
/* Is stderr the journal?  True only when $JOURNAL_STREAM ("DEV:INO") names
 * the file stderr is open on: an inherited variable with stderr redirected
 * elsewhere does not count (sd_journal_stream_fd(3), systemd.exec(5)). */
bool cv_log_stderr_is_journal(void);

/* A typed key=value field; build them with the CV_KS/CV_KI/CV_KF macros. */
enum cv_kv_type { CV_KV_STR, CV_KV_INT, CV_KV_DBL };

struct cv_kv {
	const char *key;          /* [A-Za-z0-9_.-]; anything else becomes '_' */
	enum cv_kv_type type;
	const char *s;            /* CV_KV_STR; NULL prints as "" */
	int64_t i;                /* CV_KV_INT */
	double d;                 /* CV_KV_DBL, printed with %.3f */
};

#define CV_KS(k, v) ((struct cv_kv){ .key = (k), .type = CV_KV_STR, .s = (v) })
#define CV_KI(k, v) ((struct cv_kv){ .key = (k), .type = CV_KV_INT, .i = (int64_t)(v) })
#define CV_KF(k, v) ((struct cv_kv){ .key = (k), .type = CV_KV_DBL, .d = (double)(v) })

void cv_log(enum cv_log_level level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A record with fields: cv_logkv(CV_LOG_INFO, "deliver", "batch delivered",
 *     CV_KS("adapter", name), CV_KI("events", n), CV_KI("ms", ms)); */
void cv_logkv_n(enum cv_log_level level, const char *component, const char *msg,
		const struct cv_kv *kv, size_t nkv);
#define cv_logkv(level, comp, msg, ...)                                                    \
	cv_logkv_n((level), (comp), (msg), (const struct cv_kv[]){ __VA_ARGS__ },            \
		   sizeof((const struct cv_kv[]){ __VA_ARGS__ }) / sizeof(struct cv_kv))

/* The command's one-line error ("names what failed and why"), never
 * filtered by the threshold: "chatvault: <cmd>: <msg>" in the human format,
 * level=error component=<cmd> msg="<msg>" in logfmt.  cmd may be NULL. */
void cv_log_cmd_error(const char *cmd, const char *msg);

/*
 * Format one record into buf (always NUL-terminated, always ending in '\n'
 * when len >= 2; a record longer than buf is cut at a character boundary and
 * ends with " truncated=true").  ts_ms < 0 leaves ts= out.  Returns the
 * line's length.  Pure: what cv_logkv_n writes, exposed for the tests.
 */
size_t cv_log_format_line(char *buf, size_t len, enum cv_log_format format, bool journal,
			  int64_t ts_ms, enum cv_log_level level, const char *component,
			  const char *msg, const struct cv_kv *kv, size_t nkv);

#define cv_err(comp, ...) cv_log(CV_LOG_ERROR, comp, __VA_ARGS__)
#define cv_warn(comp, ...) cv_log(CV_LOG_WARN, comp, __VA_ARGS__)
#define cv_info(comp, ...) cv_log(CV_LOG_INFO, comp, __VA_ARGS__)
#define cv_debug(comp, ...) cv_log(CV_LOG_DEBUG, comp, __VA_ARGS__)

#endif

/*
 * cv_log — one-line diagnostics to stderr.
 *
 * Every line is "chatvault: <level>: <component>: <message>" so journald and a
 * human both read it.  Messages must never contain secrets: callers pass
 * conninfo strings through cv_mask_conninfo() first (see cv_util.h).
 *
 * The threshold is the one piece of process-wide state in the code base (like
 * syslog's setlogmask): it is set once by the CLI from -v/-q or the config and
 * read atomically by every thread.  Tests never need to redefine it.
 */
#ifndef CV_LOG_H
#define CV_LOG_H

enum cv_log_level {
	CV_LOG_ERROR = 0,
	CV_LOG_WARN = 1,
	CV_LOG_INFO = 2,
	CV_LOG_DEBUG = 3,
};

void cv_log_set_level(enum cv_log_level level);
enum cv_log_level cv_log_get_level(void);
/* "error", "warn", "info", "debug" → level; -1 if unknown. */
int cv_log_level_parse(const char *name);
const char *cv_log_level_name(enum cv_log_level level);

void cv_log(enum cv_log_level level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define cv_err(comp, ...) cv_log(CV_LOG_ERROR, comp, __VA_ARGS__)
#define cv_warn(comp, ...) cv_log(CV_LOG_WARN, comp, __VA_ARGS__)
#define cv_info(comp, ...) cv_log(CV_LOG_INFO, comp, __VA_ARGS__)
#define cv_debug(comp, ...) cv_log(CV_LOG_DEBUG, comp, __VA_ARGS__)

#endif

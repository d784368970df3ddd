/*
 * cv_log — see cv_log.h.  A single fprintf per line keeps lines from two
 * threads from interleaving (stdio locks the stream for the call).
 */
#include "cv_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* Process-wide threshold; WARN by default ("quiet by default"). */
static _Atomic int log_threshold = CV_LOG_WARN;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

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

void cv_log(enum cv_log_level level, const char *component, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	if ((int)level > atomic_load(&log_threshold))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "chatvault: %s: %s: %s\n", cv_log_level_name(level), component, msg);
}

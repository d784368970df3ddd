/*
 * fuzz_config — the configuration loader (conf/cfg.c: libconfig, the
 * 32-bit literal re-scan, the tree walk) on hostile files.
 *
 * Input: the bytes of a chatvault.conf.  They are written to a fresh file
 * in a private directory under /tmp (fuzz_tmp.h), loaded with cfg_load(),
 * printed with cfg_print() to /dev/null when they load, freed, unlinked.
 *
 * @include: libconfig resolves it against the main file's directory (the
 * private one), where this target puts regulations/finra-4511.conf and
 * regulations/gdpr.conf, so the seed configurations' includes work.  An
 * include that could leave that directory (an absolute path, "..", or any
 * byte outside [A-Za-z0-9._/-]) is turned into a comment before the file
 * is written: a fuzzer must not read /dev/zero or /proc through it.
 *
 * Contract checks (abort): 0 with a config, or -EINVAL/-ENOMEM with no
 * config and a non-empty one-line reason.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cfg.h"
#include "fuzz_tmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NAME "fuzz_config"
#include "fuzz_check.h"

/* Profiles as conf/regulations/ has them, without the comments. */
static const char finra[] =
	"finra-4511 = {\n\tretention_days = 2192;\n\textend_days = 0;\n\tworm = true;\n"
	"\terasure = false;\n\trequired_adapters = [ \"archive\" ];\n\trooms = [];\n"
	"\tusers = [];\n};\n";
static const char gdpr[] =
	"gdpr = {\n\tretention_days = 0;\n\textend_days = 0;\n\tworm = false;\n"
	"\terasure = true;\n\trequired_adapters = [];\n\trooms = [];\n\tusers = [];\n};\n";

/*
 * Is the "@include" at p (matched without regard to case, to be safe)
 * followed by blanks and a quoted name that stays inside the directory?
 */
static bool include_is_local(const uint8_t *p, const uint8_t *end)
{
	const uint8_t *q = p + 8, *name;

	while (q < end && (*q == ' ' || *q == '\t'))
		q++;
	if (q >= end || *q != '"')
		return false;
	name = ++q;
	for (; q < end && *q != '"'; q++) {
		if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
		      (*q >= '0' && *q <= '9') || *q == '.' || *q == '_' || *q == '-' ||
		      *q == '/'))
			return false;
		if (*q == '.' && q + 1 < end && q[1] == '.')
			return false;
	}
	return q < end && q > name && *name != '/';
}

/*
 * Turn every "@include" that could leave the directory into a comment
 * ('@' becomes '#'), wherever it is: in a comment or a string that
 * changes nothing, elsewhere it keeps libconfig from opening the file.
 */
static void neutralise_includes(uint8_t *buf, size_t size)
{
	const uint8_t *end = buf + size;

	for (uint8_t *p = buf; (size_t)(end - p) >= 8; p++)
		if (*p == '@' && strncasecmp((const char *)p + 1, "include", 7) == 0 &&
		    !include_is_local(p, end))
			*p = '#';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *devnull;
	char path[FUZZ_PATH_MAX], err[CFG_ERRLEN];
	struct cfg *cfg = (struct cfg *)&err;  /* must be reset to NULL on error */
	uint8_t *copy;
	int rc;

	copy = malloc(size ? size : 1);
	CHECK(copy != NULL);
	if (size)
		memcpy(copy, data, size);
	neutralise_includes(copy, size);
	if (!devnull) {
		devnull = fopen("/dev/null", "w");
		CHECK(devnull != NULL);
		fuzz_tmp_fixed("regulations", NULL);
		fuzz_tmp_fixed("regulations/finra-4511.conf", finra);
		fuzz_tmp_fixed("regulations/gdpr.conf", gdpr);
	}
	fuzz_tmp_write(copy, size, ".conf", path);
	free(copy);
	memset(err, 0x55, sizeof(err));
	rc = cfg_load(path, NULL, &cfg, err, sizeof(err));
	if (fuzz_verbose())
		fprintf(stderr, "fuzz_config: cfg_load %d%s%s\n", rc, rc ? ": " : "", rc ? err : "");
	if (rc == 0) {
		CHECK(cfg != NULL && cfg->data_dir && cfg->nadapters > 0);
		cfg_print(cfg, devnull);
		cfg_free(cfg);
	} else {
		CHECK(rc == -EINVAL || rc == -ENOMEM);
		CHECK(cfg == NULL);
		CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
	}
	unlink(path);
	return 0;
}

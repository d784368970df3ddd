/*
 * fuzz_export — the export-package checker of `chatvault verify`
 * (retention/ret_vexport.c, ret_vexport_check(): member order, events.jsonl
 * lines through the event parser, the CSV record counter, the
 * chatvault-export/1 manifest) on hostile files.
 *
 * Input: the bytes of an export package (tar + zstd, docs/FORMATS.md §3),
 * or "tar\n" and the uncompressed tar (compressed here first, see
 * fuzz_tmp_write_tar_zst), written to a fresh "in-XXXXXX.tar.zst" in a
 * private directory under /tmp (fuzz_tmp.h); findings are printed to
 * /dev/null.  ret_vexport_check
 * is declared in the internal header retention/ret_vint.h: when its
 * signature changes, this target changes with it.
 *
 * Contract checks (abort): 0 or -ENOMEM; every source bundle it keeps has
 * a name; the counters only count up.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_tmp.h"
#include "ret_vint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NAME "fuzz_export"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *devnull;
	struct ret_verify_result res;
	struct ret_vexport x;
	struct ret_vrep rep;
	char path[FUZZ_PATH_MAX];
	int rc;

	if (!devnull) {
		devnull = fopen("/dev/null", "w");
		CHECK(devnull != NULL);
	}
	memset(&res, 0, sizeof(res));
	rep.out = fuzz_verbose() ? stderr : devnull;
	rep.quiet = false;
	rep.res = &res;
	fuzz_tmp_write_tar_zst(data, size, path);
	rc = ret_vexport_check(&rep, path, &x);
	if (fuzz_verbose())
		fprintf(stderr, "fuzz_export: %d: %" PRId64 " problems, %" PRId64
			" unreadable, %" PRId64 " events, %zu source bundles\n", rc,
			res.problems, res.unreadable, x.events, x.nsrc);
	CHECK(rc == 0 || rc == -ENOMEM);
	CHECK(res.problems >= 0 && res.unreadable >= 0 && x.events >= 0);
	CHECK(!res.problems || res.first_problem[0]);
	CHECK(!res.unreadable || res.first_unreadable[0]);
	for (size_t i = 0; i < x.nsrc; i++)
		CHECK(memchr(x.src[i].name, '\0', sizeof(x.src[i].name)) != NULL);
	ret_vexport_free(&x);
	unlink(path);
	return 0;
}

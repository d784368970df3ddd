/*
 * ret_lines — see ret_lines.h.
 */
#include "ret_lines.h"

#include <errno.h>
#include <string.h>

int ret_lines_feed(struct ret_lines *l, const void *data, size_t len)
{
	const char *p = data, *end = p + len;
	int rc;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);

		if (l->skipping) {
			if (nl) {
				l->skipping = false;
				l->lineno++;
			}
		} else if (l->part.len + n > (l->max ? l->max : RET_LINE_MAX)) {
			size_t so_far = l->part.len + n;

			cv_buf_reset(&l->part);
			if (!nl) {
				l->skipping = true;
			} else {
				l->lineno++;
			}
			if ((rc = l->fn(l->arg, NULL, so_far, l->lineno + (nl ? 0 : 1))) != 0)
				return rc;
		} else if (!nl) {
			if (cv_buf_append(&l->part, p, n) != 0)
				return -ENOMEM;
		} else if (l->part.len == 0) {
			/* The common case: the whole line is in this chunk. */
			if ((rc = l->fn(l->arg, p, n, ++l->lineno)) != 0)
				return rc;
		} else {
			if (cv_buf_append(&l->part, p, n) != 0)
				return -ENOMEM;
			rc = l->fn(l->arg, l->part.data, l->part.len, ++l->lineno);
			cv_buf_reset(&l->part);
			if (rc)
				return rc;
		}
		p = nl ? nl + 1 : end;
	}
	return 0;
}

void ret_lines_free(struct ret_lines *l)
{
	cv_buf_free(&l->part);
	l->part = (struct cv_buf){ 0 };
}

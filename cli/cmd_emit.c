/*
 * cmd_emit — `chatvault emit [--check] [FILE|-]`: JSON Lines → producer.
 *
 * Lines are read with a bound (ingest.max_event_size): a longer line is
 * reported and skipped without ever being held in memory whole.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cv_log.h"
#include "event.h"
#include "producer.h"

struct emit_tally {
	pthread_mutex_t mu;
	FILE *acks;      /* --acks: ids of durable events, as they become so */
	int64_t durable;
	int64_t failed;
};

/* Read one line into buf (capacity max + 1).  Returns the line length, -1
 * at EOF, or -2 when the line is longer than max (it is consumed). */
static ssize_t read_line(FILE *in, char *buf, size_t max, size_t *total)
{
	size_t n = 0;
	int c;

	*total = 0;
	while ((c = getc_unlocked(in)) != EOF) {
		if (c == '\n')
			return n > max ? -2 : (ssize_t)n;
		if (n < max)
			buf[n] = (char)c;
		n++;
		(*total)++;
	}
	if (n == 0)
		return -1;
	return n > max ? -2 : (ssize_t)n;
}

static void on_durable(void *opaque, const char *id, int status)
{
	struct emit_tally *t = opaque;

	pthread_mutex_lock(&t->mu);
	if (status == 0) {
		t->durable++;
		if (t->acks) {
			fprintf(t->acks, "%s\n", id);
			fflush(t->acks);
		}
	} else {
		t->failed++;
		fprintf(stderr, "chatvault: emit: event %s: not durable: %s\n", id,
			status == -EBUSY ? "queue full or unreachable" : strerror(-status));
	}
	pthread_mutex_unlock(&t->mu);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

int cmd_emit(struct cli_ctx *ctx, int argc, char **argv)
{
	struct emit_tally tally = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct ing_producer *prod = NULL;
	const char *path = NULL, *acks_path = NULL;
	bool check = false, stopped = false;
	int64_t lineno = 0, invalid = 0, accepted = 0;
	size_t max;
	char *buf = NULL;
	FILE *in = stdin;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--check") == 0) {
			check = true;
		} else if (strcmp(argv[i], "--acks") == 0 && i + 1 < argc) {
			acks_path = argv[++i];
		} else if (argv[i][0] == '-' && strcmp(argv[i], "-") != 0) {
			cli_error(ctx, "unknown option %s (see chatvault emit --help)", argv[i]);
			return CLI_USAGE;
		} else if (path) {
			cli_error(ctx, "one input at a time (got %s and %s)", path, argv[i]);
			return CLI_USAGE;
		} else {
			path = argv[i];
		}
	}
	if ((rc = cli_load_config(ctx)) != CLI_OK)
		return rc;
	if (path && strcmp(path, "-") != 0) {
		in = fopen(path, "r");
		if (!in) {
			cli_error(ctx, "%s: %s", path, strerror(errno));
			return CLI_RUNTIME;
		}
	}
	max = (size_t)ctx->cfg->ingest.max_event_size;
	buf = malloc(max + 1);
	if (!buf) {
		cli_error(ctx, "out of memory");
		rc = CLI_RUNTIME;
		goto out;
	}
	if (acks_path && !(tally.acks = fopen(acks_path, "a"))) {
		cli_error(ctx, "%s: %s", acks_path, strerror(errno));
		rc = CLI_RUNTIME;
		goto out;
	}
	if (!check) {
		char err[512];

		prod = ing_producer_new(ctx->cfg, err, sizeof(err));
		if (!prod) {
			cli_error(ctx, "cannot open the queue: %s", err);
			rc = CLI_RUNTIME;
			goto out;
		}
	}
	for (;;) {
		struct ing_event ev;
		char why[ING_EVENT_ERRLEN];
		size_t total;
		ssize_t len = read_line(in, buf, max, &total);

		if (len == -1)
			break;
		lineno++;
		if (len == -2) {
			fprintf(stderr, "chatvault: emit: line %" PRId64 ": event is %zu bytes, limit %zu\n",
				lineno, total, max);
			invalid++;
			continue;
		}
		ing_event_init(&ev);
		if (ing_event_parse(buf, (size_t)len, max, ING_PARSE_ALLOW_UNSTAMPED, &ev, why,
				    sizeof(why)) != 0) {
			fprintf(stderr, "chatvault: emit: line %" PRId64 ": %s\n", lineno, why);
			invalid++;
			continue;
		}
		if (!check) {
			enum ing_emit_result er;
			int waited = 0;

			/* BUSY: the queue is full; wait for the consumer, up to 60 s. */
			while ((er = ing_producer_emit(prod, &ev, on_durable, &tally, why,
						       sizeof(why))) == ING_EMIT_BUSY && waited < 60000) {
				sleep_ms(50);
				waited += 50;
			}
			if (er == ING_EMIT_INVALID) {
				fprintf(stderr, "chatvault: emit: line %" PRId64 ": %s\n", lineno, why);
				invalid++;
			} else if (er != ING_EMIT_OK) {
				cli_error(ctx, "line %" PRId64 ": %s; stopping: this and later lines were "
					  "not enqueued", lineno, why);
				stopped = true;
				ing_event_clear(&ev);
				break;
			} else {
				accepted++;
			}
		}
		ing_event_clear(&ev);
	}
	if (ferror(in)) {
		cli_error(ctx, "%s: read error: %s", path ? path : "stdin", strerror(errno));
		stopped = true;
	}
	if (prod) {
		while (ing_producer_flush(prod, 1000) != 0)
			cv_info("emit", "waiting for %zu events to become durable",
				ing_producer_pending(prod));
		ing_producer_free(prod);
		prod = NULL;
	}
	if (check)
		fprintf(stderr, "chatvault: emit: %" PRId64 " lines, %" PRId64 " invalid\n", lineno,
			invalid);
	else
		fprintf(stderr, "chatvault: emit: %" PRId64 " events durable, %" PRId64
			" not durable, %" PRId64 " invalid lines\n", tally.durable, tally.failed,
			invalid);
	rc = (invalid || tally.failed || stopped || (!check && tally.durable != accepted))
		     ? CLI_RUNTIME : CLI_OK;
out:
	ing_producer_free(prod);
	free(buf);
	if (tally.acks)
		fclose(tally.acks);
	if (in != stdin)
		fclose(in);
	return rc;
}

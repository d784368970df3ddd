/*
 * it_chat_listen — a chat.users listener the way chatd runs one, against a
 * real PostgreSQL (PG* env), for tests/integration/t_chat_users.sh.
 *
 *   it_chat_listen CONFIG READY_FILE WANT TIMEOUT_S
 *
 * Loads CONFIG (its chat.realm matters), opens the chat store, LISTENs, loads the users, creates READY_FILE, then
 * waits for WANT notifications (at most TIMEOUT_S seconds).  After every
 * batch it reloads the users and prints "user URI disabled=0|1"; when the
 * connection is lost it prints "reconnect", listens again and reloads.
 * Prints "notifications N"; exit 0 when N >= WANT.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cfg.h"
#include "chat_store.h"
#include "cv_time.h"

static void print_user(void *arg, const struct chat_user *u)
{
	(void)arg;
	printf("user %s disabled=%d chat=%d im=%d\n", u->uri, u->disabled, u->chat_enabled,
	       u->im_enabled);
}

static int reload(struct chat_store *st)
{
	char err[512];
	int n = chat_store_users_load(st, print_user, NULL, err, sizeof(err));

	if (n < 0)
		fprintf(stderr, "load: %s\n", err);
	fflush(stdout);
	return n;
}

int main(int argc, char **argv)
{
	struct cfg *cfg = NULL;
	struct chat_store *st = NULL;
	char err[512];
	int want, fd, total = 0;
	int64_t deadline;
	FILE *f;

	if (argc != 5)
		return fprintf(stderr, "usage: it_chat_listen CONFIG READY_FILE WANT TIMEOUT_S\n"), 2;
	want = atoi(argv[3]);
	deadline = cv_time_mono_ms() + atoi(argv[4]) * 1000LL;
	if (cfg_load(argv[1], NULL, &cfg, err, sizeof(err)) != 0)
		return fprintf(stderr, "config: %s\n", err), 1;
	if (chat_store_open(cfg, &st, err, sizeof(err)) != 0)
		return fprintf(stderr, "open: %s\n", err), 1;
	if ((fd = chat_store_listen(st, err, sizeof(err))) < 0)
		return fprintf(stderr, "listen: %s\n", err), 1;
	if (reload(st) < 0)
		return 1;
	if (!(f = fopen(argv[2], "w")))
		return perror(argv[2]), 1;
	fclose(f);
	while (total < want && cv_time_mono_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int n;

		if (poll(&p, 1, 200) <= 0)
			continue;
		n = chat_store_poll_changes(st);
		if (n < 0) {
			printf("reconnect\n");
			fflush(stdout);
			if ((fd = chat_store_listen(st, err, sizeof(err))) < 0)
				return fprintf(stderr, "listen again: %s\n", err), 1;
			if (reload(st) < 0)
				return 1;
			continue;
		}
		if (n > 0) {
			total += n;
			printf("batch %d\n", n);
			if (reload(st) < 0)
				return 1;
		}
	}
	printf("notifications %d\n", total);
	chat_store_close(st);
	cfg_free(cfg);
	return total >= want ? 0 : 1;
}

/*
 * it_pchat_files — runs the file service (chat/chat_files.c) for
 * tests/integration/t_pchat_files.sh against the database the PG*
 * environment names.
 *
 *   it_pchat_files STORE HOOKLOG PORTFILE MAX_UPLOAD
 *
 * Listens on 127.0.0.1 on a free port, written to PORTFILE once serving.
 * The on_transfer hook appends one line per call to HOOKLOG:
 *   "upload|download USER ROOM NAME SIZE SHA256"
 * and fails (the service must answer 503) while HOOKLOG.fail exists; a
 * failing call is not logged.  Runs until SIGTERM or SIGINT.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "chat_files.h"

struct hook_state {
	const char *log;
	char fail[4096];
};

static int hook(void *arg, enum chat_file_dir dir, const char *user, const char *room,
		const char *name, int64_t size, const char *sha256)
{
	struct hook_state *h = arg;
	FILE *f;

	if (access(h->fail, F_OK) == 0)
		return -1;
	if (!(f = fopen(h->log, "a")))
		return -1;
	fprintf(f, "%s %s %s %s %lld %s\n", dir == CHAT_FILE_UPLOAD ? "upload" : "download", user,
		room, name, (long long)size, sha256);
	return fclose(f) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct chat_files_opts o = { .on_transfer = hook };
	struct hook_state h;
	struct chat_files *f = NULL;
	struct cfg *cfg = NULL;
	char err[512];
	sigset_t set;
	FILE *pf;
	int sig;

	if (argc != 5) {
		fprintf(stderr, "usage: it_pchat_files STORE HOOKLOG PORTFILE MAX_UPLOAD\n");
		return 2;
	}
	h.log = argv[2];
	snprintf(h.fail, sizeof(h.fail), "%s.fail", argv[2]);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);   /* before the daemon's thread starts */
	if (cfg_load(NULL, NULL, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "it_pchat_files: %s\n", err);
		return 1;
	}
	o.cfg = cfg;
	o.file_store = argv[1];
	o.hook_arg = &h;
	o.max_upload = atoll(argv[4]);
	if (chat_files_start(&o, &f, err, sizeof(err)) != 0) {
		fprintf(stderr, "it_pchat_files: %s\n", err);
		cfg_free(cfg);
		return 1;
	}
	if (!(pf = fopen(argv[3], "w")) || fprintf(pf, "%u\n", chat_files_port(f)) < 0 ||
	    fclose(pf) != 0) {
		fprintf(stderr, "it_pchat_files: cannot write %s\n", argv[3]);
		chat_files_stop(f);
		cfg_free(cfg);
		return 1;
	}
	sigwait(&set, &sig);
	chat_files_stop(f);
	cfg_free(cfg);
	return 0;
}

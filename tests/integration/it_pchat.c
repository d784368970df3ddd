/*
 * it_pchat — drives chat/chat_rooms.c (and the XCCOS encoder over what it
 * returns) for tests/integration/t_pchat_store.sh, against the database the
 * PG* environment names (built-in config defaults).
 *
 *   it_pchat search CRITERIA USER            room URIs USER finds, one a line
 *   it_pchat assoc USER                      "role uri" lines (getassociations)
 *   it_pchat invitations USER                room URIs with an open invitation
 *   it_pchat post ROOM AUTHOR TEXT           prints the message id (0: not logged)
 *   it_pchat history ROOM N                  an rpl:bccontext envelope (XCCOS)
 *   it_pchat token-issue upload|download ROOM USER NAME      prints the token
 *   it_pchat token-consume upload|download TOKEN             "user room guid name sha256"
 *   it_pchat file-record TOKEN ROOM NAME SHA256 SIZE USER
 *   it_pchat pref-set USER LABEL BASE64      prints the new seqid
 *   it_pchat pref-get USER LABEL             "seqid content" (content "-" when none)
 *
 * Exit 0 ok, 3 token refused (-EACCES), 4 not found (-ENOENT), 1 other
 * failure (message on stderr), 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "chat_rooms.h"
#include "chat_xccos.h"

static int status(int rc, const char *err)
{
	if (rc == 0)
		return 0;
	fprintf(stderr, "it_pchat: %s (%d)\n", err, rc);
	return rc == -EACCES ? 3 : rc == -ENOENT ? 4 : 1;
}

static int kind_of(const char *s, enum chat_token_kind *k)
{
	if (strcmp(s, "upload") == 0)
		*k = CHAT_TOKEN_UPLOAD;
	else if (strcmp(s, "download") == 0)
		*k = CHAT_TOKEN_DOWNLOAD;
	else
		return -1;
	return 0;
}

static int history(struct chat_rooms *r, const char *room, int last, char *err, size_t errlen)
{
	struct chat_history_msg *h = NULL;
	struct cv_buf b = { 0 };
	size_t n = 0;
	int rc;

	if ((rc = chat_room_history(r, room, last, &h, &n, err, errlen)) != 0)
		return rc;
	rc = chat_xccos_env_begin(&b, 1);
	if (!rc)
		rc = chat_xccos_rpl_begin(&b, chat_xccos_reply_name(CHAT_CMD_BCCONTEXT), 1, 1, 1, 200);
	for (size_t i = 0; !rc && i < n; i++) {
		struct chat_xccos_chat c = { .chan_uri = room, .author = h[i].author, .ts = h[i].ts,
					     .msgid = h[i].id, .text = h[i].text };

		rc = chat_xccos_put_msg(&b, &c);
	}
	if (!rc)
		rc = chat_xccos_rpl_end(&b);
	if (!rc)
		rc = chat_xccos_env_end(&b);
	if (!rc)
		printf("%s\n", b.data);
	else
		snprintf(err, errlen, "encode: %s", strerror(-rc));
	cv_buf_free(&b);
	chat_history_free(h, n);
	return rc;
}

static int rooms_out(int rc, struct chat_room *v, size_t n, bool role)
{
	for (size_t i = 0; rc == 0 && i < n; i++)
		printf(role ? "%s %s\n" : "%.0s%s\n", v[i].role, v[i].uri);
	chat_room_list_free(v, n);
	return rc;
}

int main(int argc, char **argv)
{
	struct chat_rooms_opts o = { .application = "it_pchat" };
	char err[CHAT_ROOMS_ERRLEN] = "", cerr[CFG_ERRLEN];
	struct chat_rooms *r = NULL;
	struct chat_room *v = NULL;
	struct cfg *cfg = NULL;
	enum chat_token_kind k;
	const char *cmd = argc > 1 ? argv[1] : "";
	size_t n = 0;
	int rc;

	if (cfg_load(NULL, NULL, &cfg, cerr, sizeof(cerr)) != 0) {
		fprintf(stderr, "it_pchat: %s\n", cerr);
		return 1;
	}
	o.cfg = cfg;
	if ((rc = chat_rooms_open(&o, &r, err, sizeof(err))) != 0) {
		cfg_free(cfg);
		return status(rc, err);
	}
	if (strcmp(cmd, "search") == 0 && argc == 4) {
		rc = chat_room_search(r, argv[2], argv[3], 100, &v, &n, err, sizeof(err));
		rc = rooms_out(rc, v, n, false);
	} else if (strcmp(cmd, "assoc") == 0 && argc == 3) {
		rc = chat_rooms_associations(r, argv[2], &v, &n, err, sizeof(err));
		rc = rooms_out(rc, v, n, true);
	} else if (strcmp(cmd, "invitations") == 0 && argc == 3) {
		rc = chat_room_invitations(r, argv[2], &v, &n, err, sizeof(err));
		rc = rooms_out(rc, v, n, false);
	} else if (strcmp(cmd, "post") == 0 && argc == 5) {
		int64_t id;

		if ((rc = chat_room_msg_append(r, argv[2], argv[3], NULL, argv[4], &id, err,
					       sizeof(err))) == 0)
			printf("%lld\n", (long long)id);
	} else if (strcmp(cmd, "history") == 0 && argc == 4) {
		rc = history(r, argv[2], atoi(argv[3]), err, sizeof(err));
	} else if (strcmp(cmd, "token-issue") == 0 && argc == 6 && kind_of(argv[2], &k) == 0) {
		char tok[CHAT_TOKEN_HEX];

		if ((rc = chat_token_issue(r, k, argv[4], argv[3], argv[5], tok, err, sizeof(err))) == 0)
			printf("%s\n", tok);
	} else if (strcmp(cmd, "token-consume") == 0 && argc == 4 && kind_of(argv[2], &k) == 0) {
		struct chat_token t;

		if ((rc = chat_token_consume(r, k, argv[3], &t, err, sizeof(err))) == 0)
			printf("%s %s %s %s %s\n", t.user, t.room, t.guid, t.name,
			       t.sha256[0] ? t.sha256 : "-");
	} else if (strcmp(cmd, "file-record") == 0 && argc == 8) {
		rc = chat_file_record(r, argv[2], argv[3], argv[4], argv[5], atoll(argv[6]), argv[7],
				      err, sizeof(err));
	} else if (strcmp(cmd, "pref-set") == 0 && argc == 5) {
		int64_t seq;

		if ((rc = chat_pref_set(r, argv[2], argv[3], argv[4], &seq, err, sizeof(err))) == 0)
			printf("%lld\n", (long long)seq);
	} else if (strcmp(cmd, "pref-get") == 0 && argc == 4) {
		int64_t seq;
		char *content;

		if ((rc = chat_pref_get(r, argv[2], argv[3], &seq, &content, err, sizeof(err))) == 0)
			printf("%lld %s\n", (long long)seq, content ? content : "-");
		free(content);
	} else {
		fprintf(stderr, "it_pchat: usage: see tests/integration/it_pchat.c\n");
		chat_rooms_close(r);
		cfg_free(cfg);
		return 2;
	}
	chat_rooms_close(r);
	cfg_free(cfg);
	return status(rc, err);
}

/*
 * cmd_room — `chatvault room …`: persistent chat rooms in the pchat store
 * (chat/chat_rooms.c, schema/005_pchat.sql).
 *
 *   room add NAME --domain D [--description T] [--topic T] [--private] [--no-log]
 *   room list [--json]
 *   room search CRITERIA --user URI [--limit N] [--json]
 *   room member add|remove ROOM_URI USER_URI [--manager]
 *   room member list ROOM_URI [--json]
 *   room invite ROOM_URI USER_URI
 *
 * Like every command but `migrate`, it expects the schema to be current
 * (`chatvault migrate`).  Exit 0 done, 1 runtime failure (database, no
 * such room or member, duplicate name), 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "chat_rooms.h"
#include "cli.h"

static int open_rooms(struct cli_ctx *ctx, struct chat_rooms **r)
{
	struct chat_rooms_opts o = { .application = "chatvault-room" };
	char err[CHAT_ROOMS_ERRLEN];
	int rc;

	if ((rc = cli_load_config(ctx)) != CLI_OK)
		return rc;
	o.cfg = ctx->cfg;
	if (chat_rooms_open(&o, r, err, sizeof(err)) != 0) {
		cli_error(ctx, "%s", err);
		return CLI_RUNTIME;
	}
	return CLI_OK;
}

static int fail_rc(struct cli_ctx *ctx, int rc, const char *err)
{
	cli_error(ctx, "%s", err);
	return rc == -EINVAL ? CLI_USAGE : CLI_RUNTIME;
}

static int room_add(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "domain", required_argument, NULL, 'd' }, { "description", required_argument, NULL, 'D' },
		{ "topic", required_argument, NULL, 't' }, { "private", no_argument, NULL, 'p' },
		{ "no-log", no_argument, NULL, 'n' }, { NULL, 0, NULL, 0 },
	};
	struct chat_room_new nr = { .logged = true };
	char uri[CHAT_ROOM_URI_MAX], err[CHAT_ROOMS_ERRLEN];
	struct chat_rooms *r = NULL;
	int c, rc;

	optind = 0;   /* 0: glibc re-initialises (main parsed with "+"), so options may follow operands */
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'd': nr.domain = optarg; break;
		case 'D': nr.description = optarg; break;
		case 't': nr.topic = optarg; break;
		case 'p': nr.is_private = true; break;
		case 'n': nr.logged = false; break;
		default: return CLI_USAGE;
		}
	}
	if (optind + 1 != argc || !nr.domain) {
		cli_error(ctx, "usage: chatvault room add NAME --domain D [--description T] [--topic T] "
			  "[--private] [--no-log]");
		return CLI_USAGE;
	}
	nr.name = argv[optind];
	if ((rc = open_rooms(ctx, &r)) != CLI_OK)
		return rc;
	if ((c = chat_room_add(r, &nr, uri, err, sizeof(err))) != 0)
		rc = fail_rc(ctx, c, err);
	else
		printf("%s\n", uri);
	chat_rooms_close(r);
	return rc;
}

static json_t *room_json(const struct chat_room *x)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:I, s:s}", "uri", x->uri, "name", x->name,
			 "domain", x->domain, "description", x->description, "topic", x->topic,
			 "private", x->is_private, "logged", x->logged, "members", (json_int_t)x->members,
			 "created", x->created);
}

static int print_rooms(struct cli_ctx *ctx, const struct chat_room *v, size_t n, bool json)
{
	if (json) {
		json_t *a = json_array();

		for (size_t i = 0; a && i < n; i++)
			if (json_array_append_new(a, room_json(&v[i])) != 0) {
				json_decref(a);
				a = NULL;
			}
		if (!a || json_dumpf(a, stdout, JSON_COMPACT) != 0) {
			json_decref(a);
			cli_error(ctx, "out of memory");
			return CLI_RUNTIME;
		}
		json_decref(a);
		printf("\n");
		return CLI_OK;
	}
	for (size_t i = 0; i < n; i++)
		printf("%s\t%s\t%s%s\tmembers=%lld\t%s\n", v[i].uri, v[i].name,
		       v[i].is_private ? "private" : "public", v[i].logged ? "" : ",no-log",
		       (long long)v[i].members, v[i].topic);
	return CLI_OK;
}

static int room_list_or_search(struct cli_ctx *ctx, int argc, char **argv, bool search)
{
	static const struct option lo[] = {
		{ "json", no_argument, NULL, 'j' }, { "user", required_argument, NULL, 'u' },
		{ "limit", required_argument, NULL, 'l' }, { NULL, 0, NULL, 0 },
	};
	const char *user = NULL;
	char err[CHAT_ROOMS_ERRLEN];
	struct chat_rooms *r = NULL;
	struct chat_room *v = NULL;
	size_t n = 0;
	bool json = false;
	int c, rc, limit = 100;

	optind = 0;   /* 0: glibc re-initialises (main parsed with "+"), so options may follow operands */
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'u': user = optarg; break;
		case 'l': limit = atoi(optarg); break;
		default: return CLI_USAGE;
		}
	}
	if (search ? (optind + 1 != argc || !user || limit <= 0) : (optind != argc || user)) {
		cli_error(ctx, search ? "usage: chatvault room search CRITERIA --user URI [--limit N] [--json]"
				      : "usage: chatvault room list [--json]");
		return CLI_USAGE;
	}
	if ((rc = open_rooms(ctx, &r)) != CLI_OK)
		return rc;
	c = search ? chat_room_search(r, argv[optind], user, limit, &v, &n, err, sizeof(err))
		   : chat_room_list(r, &v, &n, err, sizeof(err));
	rc = c ? fail_rc(ctx, c, err) : print_rooms(ctx, v, n, json);
	chat_room_list_free(v, n);
	chat_rooms_close(r);
	return rc;
}

static int member_list(struct cli_ctx *ctx, struct chat_rooms *r, const char *room, bool json)
{
	char err[CHAT_ROOMS_ERRLEN];
	struct chat_member *m = NULL;
	struct chat_room info;
	size_t n = 0;
	int c;

	/* An unknown room is an error, not an empty list. */
	if ((c = chat_room_get(r, room, &info, err, sizeof(err))) != 0)
		return fail_rc(ctx, c, err);
	chat_room_free_fields(&info);
	if ((c = chat_room_member_list(r, room, &m, &n, err, sizeof(err))) != 0)
		return fail_rc(ctx, c, err);
	if (json) {
		json_t *a = json_array();

		for (size_t i = 0; a && i < n; i++)
			json_array_append_new(a, json_pack("{s:s, s:s}", "user", m[i].user, "role", m[i].role));
		if (a)
			json_dumpf(a, stdout, JSON_COMPACT);
		printf("\n");
		json_decref(a);
	} else {
		for (size_t i = 0; i < n; i++)
			printf("%s\t%s\n", m[i].user, m[i].role);
	}
	chat_member_list_free(m, n);
	return CLI_OK;
}

static int room_member(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "manager", no_argument, NULL, 'm' }, { "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	char err[CHAT_ROOMS_ERRLEN];
	struct chat_rooms *r = NULL;
	bool manager = false, json = false, list;
	const char *op;
	int c, rc;

	optind = 0;   /* 0: glibc re-initialises (main parsed with "+"), so options may follow operands */
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'm': manager = true; break;
		case 'j': json = true; break;
		default: return CLI_USAGE;
		}
	}
	op = optind < argc ? argv[optind] : "";
	list = strcmp(op, "list") == 0;
	if (!(list && optind + 2 == argc && !manager) &&
	    !((strcmp(op, "add") == 0 || strcmp(op, "remove") == 0) && optind + 3 == argc && !json)) {
		cli_error(ctx, "usage: chatvault room member add|remove ROOM_URI USER_URI [--manager] | "
			  "member list ROOM_URI [--json]");
		return CLI_USAGE;
	}
	if ((rc = open_rooms(ctx, &r)) != CLI_OK)
		return rc;
	if (list)
		rc = member_list(ctx, r, argv[optind + 1], json);
	else if (strcmp(op, "add") == 0)
		c = chat_room_member_add(r, argv[optind + 1], argv[optind + 2], manager, err, sizeof(err));
	else
		c = chat_room_member_remove(r, argv[optind + 1], argv[optind + 2], manager, err,
					    sizeof(err));
	if (!list && c != 0)
		rc = fail_rc(ctx, c, err);
	chat_rooms_close(r);
	return rc;
}

static int room_invite(struct cli_ctx *ctx, int argc, char **argv)
{
	char err[CHAT_ROOMS_ERRLEN], by[600];
	struct chat_rooms *r = NULL;
	const char *u = getenv("USER");
	int c, rc;

	if (argc != 3) {
		cli_error(ctx, "usage: chatvault room invite ROOM_URI USER_URI");
		return CLI_USAGE;
	}
	/* The inviter of an administrative invitation: the operator's login. */
	snprintf(by, sizeof(by), "admin:%s", u && *u ? u : "unknown");
	if ((rc = open_rooms(ctx, &r)) != CLI_OK)
		return rc;
	if ((c = chat_room_invite(r, argv[1], argv[2], by, err, sizeof(err))) != 0)
		rc = fail_rc(ctx, c, err);
	chat_rooms_close(r);
	return rc;
}

int cmd_room(struct cli_ctx *ctx, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";

	/* Each subcommand sees its own name as argv[0]. */
	if (strcmp(sub, "add") == 0)
		return room_add(ctx, argc - 1, argv + 1);
	if (strcmp(sub, "list") == 0)
		return room_list_or_search(ctx, argc - 1, argv + 1, false);
	if (strcmp(sub, "search") == 0)
		return room_list_or_search(ctx, argc - 1, argv + 1, true);
	if (strcmp(sub, "member") == 0)
		return room_member(ctx, argc - 1, argv + 1);
	if (strcmp(sub, "invite") == 0)
		return room_invite(ctx, argc - 1, argv + 1);
	cli_error(ctx, "usage: chatvault room add|list|search|member|invite ... (see chatvault room --help)");
	return CLI_USAGE;
}

/*
 * chat_rooms — the persistent chat store (schema/005_pchat.sql, schema
 * "pchat"): rooms, members and managers, invitations, history,
 * preferences, and single-use file tokens.  Used by the `room` command,
 * the file service (chat_files) and, next, the Channel service.
 *
 * A struct chat_rooms owns one PostgreSQL connection (struct sto_db,
 * opened from cfg->db like every other command) and is used by one thread
 * at a time.  Every statement is parameterised.
 *
 * Results: 0, or a negative errno:
 *   -ENOENT  the room (or the file, or the member) does not exist
 *   -EEXIST  a room of that name exists in the domain
 *   -EINVAL  invalid input (the reason is in err)
 *   -EACCES  token refused (unknown, used, expired, other kind)
 *   -EAGAIN  transient database failure (connection, serialization): retry
 *   -EIO     any other database failure
 *   -ENOMEM
 * with one line in err naming what failed.
 */
#ifndef CHAT_ROOMS_H
#define CHAT_ROOMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

#define CHAT_ROOMS_ERRLEN 512
#define CHAT_ROOM_URI_MAX 384
#define CHAT_TOKEN_HEX 33         /* 128 bits as hex + NUL */

struct chat_rooms;

struct chat_rooms_opts {
	const struct cfg *cfg;        /* db.conninfo, connect_timeout_s, retry_max_s */
	const char *application;      /* application_name */
	int retry_max_s;              /* 0: cfg->db.retry_max_s, or 30 when that is 0 */
	bool migrate;                 /* apply the compiled-in migrations first */
};

int chat_rooms_open(const struct chat_rooms_opts *o, struct chat_rooms **out, char *err,
		    size_t errlen) __attribute__((warn_unused_result));
void chat_rooms_close(struct chat_rooms *r);

/* ---- rooms */

struct chat_room {
	char *uri;            /* ma-chan://<domain>/<guid> */
	char *domain, *guid, *name, *description, *topic;
	bool is_private, logged;
	int64_t members;      /* member count (XCCOS ucnt) */
	char created[32];     /* ISO 8601 UTC, ms */
	char role[8];         /* associations: "member" or "manager"; else "" */
};
void chat_room_free_fields(struct chat_room *room);
void chat_room_list_free(struct chat_room *rooms, size_t n);

struct chat_room_new {
	const char *name, *domain;
	const char *description, *topic;   /* NULL: "" */
	bool is_private;
	bool logged;
};
/* Create a room with a fresh random guid; uri_out receives its URI. */
int chat_room_add(struct chat_rooms *r, const struct chat_room_new *n, char uri_out[CHAT_ROOM_URI_MAX],
		  char *err, size_t errlen) __attribute__((warn_unused_result));
int chat_room_get(struct chat_rooms *r, const char *uri, struct chat_room *out, char *err,
		  size_t errlen) __attribute__((warn_unused_result));
/* Every room, by domain and name (administration: private ones included). */
int chat_room_list(struct chat_rooms *r, struct chat_room **out, size_t *n, char *err,
		   size_t errlen) __attribute__((warn_unused_result));
/*
 * cmd:chansrch qtype BYNAME: rooms whose name contains criteria (case
 * insensitive, taken literally: % and _ are not wildcards; "" matches
 * all), at most limit (> 0), by name.  A private room is listed only when
 * user is one of its members or managers.
 */
int chat_room_search(struct chat_rooms *r, const char *criteria, const char *user, int limit,
		     struct chat_room **out, size_t *n, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* May user see and enter the room?  A public room: anyone; a private one:
 * its members, managers and invitees.  *ok false when the room does not
 * exist. */
int chat_room_can_access(struct chat_rooms *r, const char *room, const char *user, bool *ok,
			 char *err, size_t errlen) __attribute__((warn_unused_result));

/* ---- membership */

/* manager: the managers list instead of the members list.  Adding twice
 * is not an error; removing an absent user is -ENOENT. */
int chat_room_member_add(struct chat_rooms *r, const char *room, const char *user, bool manager,
			 char *err, size_t errlen) __attribute__((warn_unused_result));
int chat_room_member_remove(struct chat_rooms *r, const char *room, const char *user,
			    bool manager, char *err, size_t errlen) __attribute__((warn_unused_result));

struct chat_member {
	char *user;
	char role[8];         /* "member" or "manager" */
};
/* Members, then managers, each by user URI. */
int chat_room_member_list(struct chat_rooms *r, const char *room, struct chat_member **out,
			  size_t *n, char *err, size_t errlen) __attribute__((warn_unused_result));
void chat_member_list_free(struct chat_member *m, size_t n);

/* An open invitation (kept once per room and user). */
int chat_room_invite(struct chat_rooms *r, const char *room, const char *user, const char *by,
		     char *err, size_t errlen) __attribute__((warn_unused_result));
/* Open invitations of user (room fields filled, role ""), newest first. */
int chat_room_invitations(struct chat_rooms *r, const char *user, struct chat_room **out,
			  size_t *n, char *err, size_t errlen) __attribute__((warn_unused_result));

/* cmd:getassociations: the rooms user is a member of (role "member"), then
 * those user manages (role "manager"), each by name. */
int chat_rooms_associations(struct chat_rooms *r, const char *user, struct chat_room **out,
			    size_t *n, char *err, size_t errlen) __attribute__((warn_unused_result));

/* ---- history */

/* Append a post; ts NULL: now.  *id receives the room-local message id, or
 * 0 when the room keeps no history (logged = false). */
int chat_room_msg_append(struct chat_rooms *r, const char *room, const char *author,
			 const char *ts, const char *text, int64_t *id, char *err, size_t errlen)
	__attribute__((warn_unused_result));

struct chat_history_msg {
	int64_t id;
	char *author;
	char ts[32];          /* ISO 8601 UTC, ms */
	char *text;
};
/* The last `last` (> 0) messages of the room, oldest first. */
int chat_room_history(struct chat_rooms *r, const char *room, int last, struct chat_history_msg **out,
		      size_t *n, char *err, size_t errlen) __attribute__((warn_unused_result));
void chat_history_free(struct chat_history_msg *m, size_t n);

/* ---- preferences (content: base64, as on the wire) */

/* *content NULL (and *seqid 0) when the user has no such preference. */
int chat_pref_get(struct chat_rooms *r, const char *user, const char *label, int64_t *seqid,
		  char **content, char *err, size_t errlen) __attribute__((warn_unused_result));
/* Store content (invalid base64 → -EINVAL); *seqid receives the new version. */
int chat_pref_set(struct chat_rooms *r, const char *user, const char *label, const char *content,
		  int64_t *seqid, char *err, size_t errlen) __attribute__((warn_unused_result));

/* ---- file tokens */

enum chat_token_kind { CHAT_TOKEN_UPLOAD = 0, CHAT_TOKEN_DOWNLOAD = 1 };

/*
 * Issue a single-use token, valid 30 minutes, for user to upload name into
 * room or download it from there.  A download token needs the file
 * (-ENOENT otherwise) and carries its sha256.
 */
int chat_token_issue(struct chat_rooms *r, enum chat_token_kind kind, const char *user,
		     const char *room, const char *name, char token[CHAT_TOKEN_HEX], char *err,
		     size_t errlen) __attribute__((warn_unused_result));

struct chat_token {
	char user[512];
	char room[CHAT_ROOM_URI_MAX];
	char guid[80];        /* the room's guid (the file URL's first segment) */
	char name[256];
	char sha256[65];      /* download: the file; upload: "" */
};
/* Consume token for kind: atomically marks it used if it is unused and
 * unexpired.  -EACCES when it is unknown, used, expired or of the other
 * kind (one statement: a racing second use always loses). */
int chat_token_consume(struct chat_rooms *r, enum chat_token_kind kind, const char *token,
		       struct chat_token *out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* After an upload: record the file under (room, name) and on its token. */
int chat_file_record(struct chat_rooms *r, const char *token, const char *room, const char *name,
		     const char *sha256, int64_t size, const char *user, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif

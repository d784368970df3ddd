/*
 * chat_rooms — the persistent chat store; see chat_rooms.h and
 * schema/005_pchat.sql.
 *
 * Every operation is one parameterised statement (so each is atomic on its
 * own and needs no explicit transaction); results are text.  Failures are
 * mapped from the SQLSTATE: 23505 → -EEXIST, 23503 → -ENOENT (a foreign key
 * to a room that does not exist), class 22 and 23514 → -EINVAL, what
 * sto_classify() calls transient → -EAGAIN, the rest → -EIO.
 */
#include "chat_rooms.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "sto_db.h"
#include "sto_migrate.h"

struct chat_rooms {
	struct sto_db *db;
};

int chat_rooms_open(const struct chat_rooms_opts *o, struct chat_rooms **out, char *err,
		    size_t errlen)
{
	struct sto_db_opts dbo = {
		.conninfo = o->cfg->db.conninfo,
		.connect_timeout_s = o->cfg->db.connect_timeout_s,
		.retry_max_s = o->retry_max_s ? o->retry_max_s
			       : (o->cfg->db.retry_max_s ? o->cfg->db.retry_max_s : 30),
		.application = o->application ? o->application : "chatvault-pchat",
	};
	struct chat_rooms *r;
	int applied = 0;

	*out = NULL;
	if (!(r = calloc(1, sizeof(*r)))) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (sto_db_open(&dbo, &r->db, err, errlen) != 0) {
		free(r);
		return -EAGAIN;
	}
	if (o->migrate &&
	    sto_migrate(r->db, sto_migrations, sto_nmigrations, &applied, err, errlen) != CV_OK) {
		chat_rooms_close(r);
		return -EIO;
	}
	*out = r;
	return 0;
}

void chat_rooms_close(struct chat_rooms *r)
{
	if (!r)
		return;
	sto_db_close(r->db);
	free(r);
}

/* Run one statement; on success *out (if not NULL) holds the result. */
static int q(struct chat_rooms *r, const char *what, const char *sql, int n,
	     const char *const *params, PGresult **out, char *err, size_t errlen)
{
	PGresult *res;
	ExecStatusType st;
	const char *state, *msg;
	int rc;

	if (out)
		*out = NULL;
	if (sto_db_ensure(r->db, err, errlen) != 0)
		return -EAGAIN;
	res = PQexecParams(sto_db_conn(r->db), sql, n, NULL, params, NULL, NULL, 0);
	st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		if (out)
			*out = res;
		else
			PQclear(res);
		return 0;
	}
	state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	if (!state)
		state = "";
	if (strcmp(state, "23505") == 0)
		rc = -EEXIST;
	else if (strcmp(state, "23503") == 0)
		rc = -ENOENT;
	else if (strncmp(state, "22", 2) == 0 || strcmp(state, "23514") == 0)
		rc = -EINVAL;
	else if (sto_classify(r->db, res) == CV_RETRY)
		rc = -EAGAIN;
	else
		rc = -EIO;
	snprintf(err, errlen, "%s: %s%s%s", what, state, *state ? " " : "",
		 msg ? msg : PQerrorMessage(sto_db_conn(r->db)));
	PQclear(res);
	return rc;
}

/* Reject what no statement should see: empty, too long, NUL-free by type. */
static int check_str(const char *what, const char *s, size_t max, char *err, size_t errlen)
{
	if (!s || !*s) {
		snprintf(err, errlen, "%s: empty", what);
		return -EINVAL;
	}
	if (strlen(s) > max) {
		snprintf(err, errlen, "%s: longer than %zu bytes", what, max);
		return -EINVAL;
	}
	return 0;
}

static char *dupv(PGresult *res, int row, int col)
{
	return strdup(PQgetvalue(res, row, col));
}

void chat_room_free_fields(struct chat_room *room)
{
	if (!room)
		return;
	free(room->uri);
	free(room->domain);
	free(room->guid);
	free(room->name);
	free(room->description);
	free(room->topic);
	memset(room, 0, sizeof(*room));
}

void chat_room_list_free(struct chat_room *rooms, size_t n)
{
	for (size_t i = 0; rooms && i < n; i++)
		chat_room_free_fields(&rooms[i]);
	free(rooms);
}

/* The columns every room query selects, in this order (then role). */
#define ROOM_COLS \
	"r.uri, r.domain, r.guid, r.name, r.description, r.topic, r.private, r.logged, " \
	"(SELECT count(*) FROM pchat.members m WHERE m.room = r.uri), " \
	"to_char(r.created AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

static int room_from_row(PGresult *res, int row, struct chat_room *o)
{
	memset(o, 0, sizeof(*o));
	o->uri = dupv(res, row, 0);
	o->domain = dupv(res, row, 1);
	o->guid = dupv(res, row, 2);
	o->name = dupv(res, row, 3);
	o->description = dupv(res, row, 4);
	o->topic = dupv(res, row, 5);
	o->is_private = PQgetvalue(res, row, 6)[0] == 't';
	o->logged = PQgetvalue(res, row, 7)[0] == 't';
	o->members = strtoll(PQgetvalue(res, row, 8), NULL, 10);
	snprintf(o->created, sizeof(o->created), "%s", PQgetvalue(res, row, 9));
	if (PQnfields(res) > 10)
		snprintf(o->role, sizeof(o->role), "%s", PQgetvalue(res, row, 10));
	if (!o->uri || !o->domain || !o->guid || !o->name || !o->description || !o->topic) {
		chat_room_free_fields(o);
		return -ENOMEM;
	}
	return 0;
}

static int rooms_from(PGresult *res, struct chat_room **out, size_t *n, char *err, size_t errlen)
{
	int rows = PQntuples(res);
	struct chat_room *v = calloc(rows ? (size_t)rows : 1, sizeof(*v));

	*out = NULL;
	*n = 0;
	if (!v)
		goto nomem;
	for (int i = 0; i < rows; i++) {
		if (room_from_row(res, i, &v[i]) != 0) {
			chat_room_list_free(v, (size_t)i);
			goto nomem;
		}
	}
	PQclear(res);
	*out = v;
	*n = (size_t)rows;
	return 0;
nomem:
	PQclear(res);
	snprintf(err, errlen, "out of memory");
	return -ENOMEM;
}

static int room_query(struct chat_rooms *r, const char *what, const char *sql, int np,
		      const char *const *p, struct chat_room **out, size_t *n, char *err,
		      size_t errlen)
{
	PGresult *res;
	int rc = q(r, what, sql, np, p, &res, err, errlen);

	*out = NULL;
	*n = 0;
	return rc ? rc : rooms_from(res, out, n, err, errlen);
}

/* A random UUIDv4, lower-case: the room's guid. */
static int new_guid(char out[37])
{
	unsigned char b[16];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return -EIO;
	b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
	return 0;
}

int chat_room_add(struct chat_rooms *r, const struct chat_room_new *nr,
		  char uri_out[CHAT_ROOM_URI_MAX], char *err, size_t errlen)
{
	char guid[37], uri[CHAT_ROOM_URI_MAX];
	const char *p[8];
	int rc;

	if ((rc = check_str("room name", nr->name, 256, err, errlen)) != 0 ||
	    (rc = check_str("domain", nr->domain, 253, err, errlen)) != 0)
		return rc;
	if (strchr(nr->domain, '/') || strchr(nr->domain, ':')) {
		snprintf(err, errlen, "domain %s: must not contain '/' or ':'", nr->domain);
		return -EINVAL;
	}
	if (new_guid(guid) != 0) {
		snprintf(err, errlen, "getrandom failed");
		return -EIO;
	}
	snprintf(uri, sizeof(uri), "ma-chan://%s/%s", nr->domain, guid);
	p[0] = uri; p[1] = nr->domain; p[2] = guid; p[3] = nr->name;
	p[4] = nr->description ? nr->description : "";
	p[5] = nr->topic ? nr->topic : "";
	p[6] = nr->is_private ? "t" : "f";
	p[7] = nr->logged ? "t" : "f";
	rc = q(r, "add room",
	       "INSERT INTO pchat.rooms (uri, domain, guid, name, description, topic, private, logged) "
	       "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", 8, p, NULL, err, errlen);
	if (rc == -EEXIST)
		snprintf(err, errlen, "a room named \"%s\" exists in %s", nr->name, nr->domain);
	if (rc == 0)
		snprintf(uri_out, CHAT_ROOM_URI_MAX, "%s", uri);
	return rc;
}

int chat_room_get(struct chat_rooms *r, const char *uri, struct chat_room *out, char *err,
		  size_t errlen)
{
	const char *p[1] = { uri };
	struct chat_room *v;
	size_t n;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = room_query(r, "get room", "SELECT " ROOM_COLS " FROM pchat.rooms r WHERE r.uri = $1",
			     1, p, &v, &n, err, errlen)) != 0)
		return rc;
	if (n == 0) {
		free(v);
		snprintf(err, errlen, "no room %s", uri);
		return -ENOENT;
	}
	*out = v[0];
	free(v);
	return 0;
}

int chat_room_list(struct chat_rooms *r, struct chat_room **out, size_t *n, char *err,
		   size_t errlen)
{
	return room_query(r, "list rooms",
			  "SELECT " ROOM_COLS " FROM pchat.rooms r ORDER BY r.domain, lower(r.name), r.uri",
			  0, NULL, out, n, err, errlen);
}

/* True when $2 (user) may see room r (a column reference). */
#define VISIBLE_TO_USER2 \
	"(NOT r.private OR EXISTS (SELECT 1 FROM pchat.members m WHERE m.room = r.uri AND m.user_uri = $2) " \
	"OR EXISTS (SELECT 1 FROM pchat.managers g WHERE g.room = r.uri AND g.user_uri = $2))"

int chat_room_search(struct chat_rooms *r, const char *criteria, const char *user, int limit,
		     struct chat_room **out, size_t *n, char *err, size_t errlen)
{
	char lim[16];
	const char *p[3] = { criteria ? criteria : "", user ? user : "", lim };

	*out = NULL;
	*n = 0;
	if (limit <= 0 || strlen(p[0]) > 256) {
		snprintf(err, errlen, "search: limit must be > 0 and criteria at most 256 bytes");
		return -EINVAL;
	}
	snprintf(lim, sizeof(lim), "%d", limit);
	/* The criteria is matched literally: escape LIKE's \ % _ first. */
	return room_query(r, "search rooms",
			  "SELECT " ROOM_COLS " FROM pchat.rooms r "
			  "WHERE r.name ILIKE '%' || replace(replace(replace($1, '\\', '\\\\'), '%', '\\%'), "
			  "'_', '\\_') || '%' AND " VISIBLE_TO_USER2
			  " ORDER BY lower(r.name), r.uri LIMIT $3::int",
			  3, p, out, n, err, errlen);
}

int chat_room_can_access(struct chat_rooms *r, const char *room, const char *user, bool *ok,
			 char *err, size_t errlen)
{
	const char *p[2] = { room, user ? user : "" };
	PGresult *res;
	int rc;

	*ok = false;
	if ((rc = q(r, "room access",
		    "SELECT 1 FROM pchat.rooms r WHERE r.uri = $1 AND (" VISIBLE_TO_USER2
		    " OR EXISTS (SELECT 1 FROM pchat.invitations i "
		    "WHERE i.room = r.uri AND i.user_uri = $2))",
		    2, p, &res, err, errlen)) != 0)
		return rc;
	*ok = PQntuples(res) == 1;
	PQclear(res);
	return 0;
}

int chat_room_member_add(struct chat_rooms *r, const char *room, const char *user, bool manager,
			 char *err, size_t errlen)
{
	const char *p[2] = { room, user };
	int rc;

	if ((rc = check_str("user", user, 511, err, errlen)) != 0)
		return rc;
	rc = q(r, manager ? "add manager" : "add member",
	       manager ? "INSERT INTO pchat.managers (room, user_uri) VALUES ($1, $2) ON CONFLICT DO NOTHING"
		       : "INSERT INTO pchat.members (room, user_uri) VALUES ($1, $2) ON CONFLICT DO NOTHING",
	       2, p, NULL, err, errlen);
	if (rc == -ENOENT)
		snprintf(err, errlen, "no room %s", room);
	return rc;
}

int chat_room_member_remove(struct chat_rooms *r, const char *room, const char *user,
			    bool manager, char *err, size_t errlen)
{
	const char *p[2] = { room, user };
	PGresult *res;
	int rc, gone;

	if ((rc = q(r, manager ? "remove manager" : "remove member",
		    manager ? "DELETE FROM pchat.managers WHERE room = $1 AND user_uri = $2"
			    : "DELETE FROM pchat.members WHERE room = $1 AND user_uri = $2",
		    2, p, &res, err, errlen)) != 0)
		return rc;
	gone = atoi(PQcmdTuples(res));
	PQclear(res);
	if (gone == 0) {
		snprintf(err, errlen, "%s is not a %s of %s", user, manager ? "manager" : "member", room);
		return -ENOENT;
	}
	return 0;
}

int chat_room_member_list(struct chat_rooms *r, const char *room, struct chat_member **out,
			  size_t *n, char *err, size_t errlen)
{
	const char *p[1] = { room };
	struct chat_member *v;
	PGresult *res;
	int rc, rows;

	*out = NULL;
	*n = 0;
	if ((rc = q(r, "list members",
		    "SELECT user_uri, 'member', 0 AS k FROM pchat.members WHERE room = $1 "
		    "UNION ALL SELECT user_uri, 'manager', 1 FROM pchat.managers WHERE room = $1 "
		    "ORDER BY k, user_uri", 1, p, &res, err, errlen)) != 0)
		return rc;
	rows = PQntuples(res);
	if (!(v = calloc(rows ? (size_t)rows : 1, sizeof(*v))))
		goto nomem;
	for (int i = 0; i < rows; i++) {
		if (!(v[i].user = dupv(res, i, 0))) {
			chat_member_list_free(v, (size_t)i);
			goto nomem;
		}
		snprintf(v[i].role, sizeof(v[i].role), "%s", PQgetvalue(res, i, 1));
	}
	PQclear(res);
	*out = v;
	*n = (size_t)rows;
	return 0;
nomem:
	PQclear(res);
	snprintf(err, errlen, "out of memory");
	return -ENOMEM;
}

void chat_member_list_free(struct chat_member *m, size_t n)
{
	for (size_t i = 0; m && i < n; i++)
		free(m[i].user);
	free(m);
}

int chat_room_invite(struct chat_rooms *r, const char *room, const char *user, const char *by,
		     char *err, size_t errlen)
{
	const char *p[3] = { room, user, by };
	int rc;

	if ((rc = check_str("user", user, 511, err, errlen)) != 0)
		return rc;
	rc = q(r, "invite",
	       "INSERT INTO pchat.invitations (room, user_uri, invited_by) VALUES ($1, $2, $3) "
	       "ON CONFLICT (room, user_uri) DO UPDATE SET invited_by = EXCLUDED.invited_by, "
	       "created = now()", 3, p, NULL, err, errlen);
	if (rc == -ENOENT)
		snprintf(err, errlen, "no room %s", room);
	return rc;
}

int chat_room_invitations(struct chat_rooms *r, const char *user, struct chat_room **out,
			  size_t *n, char *err, size_t errlen)
{
	const char *p[1] = { user };

	return room_query(r, "invitations",
			  "SELECT " ROOM_COLS " FROM pchat.invitations i JOIN pchat.rooms r ON r.uri = i.room "
			  "WHERE i.user_uri = $1 ORDER BY i.created DESC, r.uri", 1, p, out, n, err, errlen);
}

int chat_rooms_associations(struct chat_rooms *r, const char *user, struct chat_room **out,
			    size_t *n, char *err, size_t errlen)
{
	const char *p[1] = { user };

	return room_query(r, "associations",
			  "SELECT * FROM ("
			  "SELECT " ROOM_COLS ", 'member' AS role, 0 AS k FROM pchat.members a "
			  "JOIN pchat.rooms r ON r.uri = a.room WHERE a.user_uri = $1 "
			  "UNION ALL SELECT " ROOM_COLS ", 'manager', 1 FROM pchat.managers a "
			  "JOIN pchat.rooms r ON r.uri = a.room WHERE a.user_uri = $1) x "
			  "ORDER BY k, lower(name), uri", 1, p, out, n, err, errlen);
}

int chat_room_msg_append(struct chat_rooms *r, const char *room, const char *author,
			 const char *ts, const char *text, int64_t *id, char *err, size_t errlen)
{
	const char *p[4] = { room, author, ts, text };
	PGresult *res;
	int rc;

	*id = 0;
	if ((rc = check_str("author", author, 511, err, errlen)) != 0)
		return rc;
	if (!text) {
		snprintf(err, errlen, "message: no text");
		return -EINVAL;
	}
	/* The room row's lock orders the posts of one room; a room that keeps
	 * no history stores nothing and answers id 0. */
	if ((rc = q(r, "append message",
		    "WITH n AS (UPDATE pchat.rooms SET last_msg_id = last_msg_id + "
		    "CASE WHEN logged THEN 1 ELSE 0 END WHERE uri = $1 RETURNING last_msg_id, logged), "
		    "i AS (INSERT INTO pchat.messages (room, id, author, ts, text) "
		    "SELECT $1, last_msg_id, $2, coalesce($3::timestamptz, now()), $4 FROM n "
		    "WHERE logged RETURNING id) "
		    "SELECT (SELECT id FROM i) FROM n", 4, p, &res, err, errlen)) != 0)
		return rc;
	if (PQntuples(res) == 0) {
		PQclear(res);
		snprintf(err, errlen, "no room %s", room);
		return -ENOENT;
	}
	if (!PQgetisnull(res, 0, 0))
		*id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

int chat_room_history(struct chat_rooms *r, const char *room, int last, struct chat_history_msg **out,
		      size_t *n, char *err, size_t errlen)
{
	char lim[16];
	const char *p[2] = { room, lim };
	struct chat_history_msg *v;
	PGresult *res;
	int rc, rows;

	*out = NULL;
	*n = 0;
	if (last <= 0) {
		snprintf(err, errlen, "history: count must be > 0");
		return -EINVAL;
	}
	snprintf(lim, sizeof(lim), "%d", last);
	if ((rc = q(r, "history",
		    "SELECT id, author, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "
		    "text FROM (SELECT * FROM pchat.messages WHERE room = $1 ORDER BY id DESC "
		    "LIMIT $2::int) t ORDER BY id", 2, p, &res, err, errlen)) != 0)
		return rc;
	rows = PQntuples(res);
	if (!(v = calloc(rows ? (size_t)rows : 1, sizeof(*v))))
		goto nomem;
	for (int i = 0; i < rows; i++) {
		v[i].id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		snprintf(v[i].ts, sizeof(v[i].ts), "%s", PQgetvalue(res, i, 2));
		v[i].author = dupv(res, i, 1);
		v[i].text = dupv(res, i, 3);
		if (!v[i].author || !v[i].text) {
			chat_history_free(v, (size_t)i + 1);
			goto nomem;
		}
	}
	PQclear(res);
	*out = v;
	*n = (size_t)rows;
	return 0;
nomem:
	PQclear(res);
	snprintf(err, errlen, "out of memory");
	return -ENOMEM;
}

void chat_history_free(struct chat_history_msg *m, size_t n)
{
	for (size_t i = 0; m && i < n; i++) {
		free(m[i].author);
		free(m[i].text);
	}
	free(m);
}

int chat_pref_get(struct chat_rooms *r, const char *user, const char *label, int64_t *seqid,
		  char **content, char *err, size_t errlen)
{
	const char *p[2] = { user, label };
	PGresult *res;
	int rc;

	*seqid = 0;
	*content = NULL;
	/* encode(…, 'base64') wraps lines at 76 characters; the wire has none. */
	if ((rc = q(r, "get preference",
		    "SELECT seqid, translate(encode(content, 'base64'), E'\\n', '') "
		    "FROM pchat.preferences WHERE user_uri = $1 AND label = $2", 2, p, &res, err,
		    errlen)) != 0)
		return rc;
	if (PQntuples(res) == 1) {
		*seqid = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		if (!(*content = dupv(res, 0, 1))) {
			PQclear(res);
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
	}
	PQclear(res);
	return 0;
}

int chat_pref_set(struct chat_rooms *r, const char *user, const char *label, const char *content,
		  int64_t *seqid, char *err, size_t errlen)
{
	const char *p[3] = { user, label, content };
	PGresult *res;
	int rc;

	*seqid = 0;
	if ((rc = check_str("user", user, 511, err, errlen)) != 0 ||
	    (rc = check_str("label", label, 256, err, errlen)) != 0)
		return rc;
	if (!content) {
		snprintf(err, errlen, "preference %s: no content", label);
		return -EINVAL;
	}
	if ((rc = q(r, "set preference",
		    "INSERT INTO pchat.preferences (user_uri, label, seqid, content) "
		    "VALUES ($1, $2, 1, decode($3, 'base64')) ON CONFLICT (user_uri, label) DO UPDATE "
		    "SET seqid = pchat.preferences.seqid + 1, content = EXCLUDED.content, updated = now() "
		    "RETURNING seqid", 3, p, &res, err, errlen)) != 0)
		return rc;
	*seqid = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

int chat_token_issue(struct chat_rooms *r, enum chat_token_kind kind, const char *user,
		     const char *room, const char *name, char token[CHAT_TOKEN_HEX], char *err,
		     size_t errlen)
{
	unsigned char b[16];
	char hex[CHAT_TOKEN_HEX];
	const char *p[4] = { hex, user, room, name };
	PGresult *res;
	int rc;

	token[0] = '\0';
	if ((rc = check_str("user", user, 511, err, errlen)) != 0 ||
	    (rc = check_str("file name", name, 255, err, errlen)) != 0)
		return rc;
	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
		snprintf(err, errlen, "getrandom failed");
		return -EIO;
	}
	for (size_t i = 0; i < sizeof(b); i++)
		snprintf(hex + 2 * i, 3, "%02x", b[i]);
	if (kind == CHAT_TOKEN_UPLOAD)
		rc = q(r, "issue upload token",
		       "INSERT INTO pchat.file_tokens (token, kind, user_uri, room, file_name) "
		       "VALUES ($1, 'upload', $2, $3, $4) RETURNING token", 4, p, &res, err, errlen);
	else
		rc = q(r, "issue download token",
		       "INSERT INTO pchat.file_tokens (token, kind, user_uri, room, file_name, sha256, size) "
		       "SELECT $1, 'download', $2, $3, $4, f.sha256, f.size FROM pchat.files f "
		       "WHERE f.room = $3 AND f.name = $4 RETURNING token", 4, p, &res, err, errlen);
	if (rc == -ENOENT)
		snprintf(err, errlen, "no room %s", room);
	if (rc)
		return rc;
	if (PQntuples(res) != 1) {
		PQclear(res);
		snprintf(err, errlen, "no file \"%s\" in %s", name, room);
		return -ENOENT;
	}
	PQclear(res);
	memcpy(token, hex, sizeof(hex));
	return 0;
}

int chat_token_consume(struct chat_rooms *r, enum chat_token_kind kind, const char *token,
		       struct chat_token *out, char *err, size_t errlen)
{
	const char *p[2] = { token, kind == CHAT_TOKEN_UPLOAD ? "upload" : "download" };
	PGresult *res;
	int rc;

	memset(out, 0, sizeof(*out));
	/* Not hex of the right length: refused without asking the database. */
	if (!token || strlen(token) != 32 || strspn(token, "0123456789abcdef") != 32) {
		snprintf(err, errlen, "token refused: malformed");
		return -EACCES;
	}
	if ((rc = q(r, "consume token",
		    "UPDATE pchat.file_tokens t SET used_at = now() FROM pchat.rooms r "
		    "WHERE t.token = $1 AND t.kind = $2 AND t.used_at IS NULL AND t.expires_at > now() "
		    "AND r.uri = t.room "
		    "RETURNING t.user_uri, t.room, r.guid, t.file_name, coalesce(t.sha256, '')",
		    2, p, &res, err, errlen)) != 0)
		return rc;
	if (PQntuples(res) != 1) {
		PQclear(res);
		snprintf(err, errlen, "token refused: unknown, already used, expired or not for %s",
			 p[1]);
		return -EACCES;
	}
	snprintf(out->user, sizeof(out->user), "%s", PQgetvalue(res, 0, 0));
	snprintf(out->room, sizeof(out->room), "%s", PQgetvalue(res, 0, 1));
	snprintf(out->guid, sizeof(out->guid), "%s", PQgetvalue(res, 0, 2));
	snprintf(out->name, sizeof(out->name), "%s", PQgetvalue(res, 0, 3));
	snprintf(out->sha256, sizeof(out->sha256), "%s", PQgetvalue(res, 0, 4));
	PQclear(res);
	return 0;
}

int chat_file_record(struct chat_rooms *r, const char *token, const char *room, const char *name,
		     const char *sha256, int64_t size, const char *user, char *err, size_t errlen)
{
	char sz[24];
	const char *p[6] = { room, name, sha256, sz, user, token };

	snprintf(sz, sizeof(sz), "%lld", (long long)size);
	return q(r, "record file",
		 "WITH f AS (INSERT INTO pchat.files (room, name, sha256, size, uploader) "
		 "VALUES ($1, $2, $3, $4::bigint, $5) ON CONFLICT (room, name) DO UPDATE "
		 "SET sha256 = EXCLUDED.sha256, size = EXCLUDED.size, uploader = EXCLUDED.uploader, "
		 "uploaded = now() RETURNING 1) "
		 "UPDATE pchat.file_tokens SET sha256 = $3, size = $4::bigint WHERE token = $6",
		 6, p, NULL, err, errlen);
}

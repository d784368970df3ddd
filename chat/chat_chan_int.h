/*
 * chat_chan_int — what chat_chan.c (sessions, rooms, transport),
 * chat_chan_cmd.c (the commands) and chat_chan_files.c (the file service)
 * share.  Loop thread only, except where a field says otherwise.
 */
#ifndef CHAT_CHAN_INT_H
#define CHAT_CHAN_INT_H

#include "chat_chan.h"
#include "chat_chan_db.h"
#include "chat_store.h"
#include "chat_xccos.h"
#include "cv_util.h"

struct chat_files;

struct chat_chan {
	struct chat_srv *s;
	const struct cfg *cfg;
	struct sipsess_sock *sock;
	struct chat_chan_db *db;
	struct chat_files *files;        /* its HTTP thread runs chat_chan_files.c's hook */
	struct ing_producer *prod;       /* = s->prod; the hook emits from the HTTP thread */
	char files_base[600];            /* "http://host:port/files" (immutable once started) */
	char lookup_uri[300];            /* sip:ocschat@<domain> */
	char root_uri[300];              /* ma-cat://<domain>/root */
	struct list sessions;            /* struct chan_sess */
	struct hash *rooms;              /* struct chan_room by URI: live participants */
	size_t *load;                    /* live sessions per chat.channel_uris[i] */
	size_t nsess;                    /* open sessions (c->sessions): the gauge */
	uint64_t next_id;
};

enum chan_kind { CHAN_LOOKUP = 0, CHAN_CHANNEL = 1 };

/* One INVITE dialog (session) of a user with a service. */
struct chan_sess {
	struct le le;                    /* in c->sessions while open */
	struct chat_chan *c;
	struct sipsess *sess;
	enum chan_kind kind;
	size_t idx;                      /* CHAN_CHANNEL: index in chat.channel_uris */
	char user[CHAT_URI_MAX];
	struct list joins;               /* struct chan_join */
	struct tmr idle;                 /* no INFO for im.inactivity_timeout: ended */
	int64_t envid;                   /* the server's next envelope id */
	uint64_t id;
	bool closed;
};

struct chan_room {
	struct le he;                    /* in c->rooms */
	char uri[CHAT_ROOM_URI_MAX];
	struct list joins;               /* struct chan_join */
};

enum chan_jstate {
	CHAN_J_JOINING = 0,              /* chat.join not durable yet: may post, gets no fan-out */
	CHAN_J_JOINED = 1,
};

/* A session in a room. */
struct chan_join {
	struct le le_s, le_r;
	struct chan_sess *cs;
	struct chan_room *r;
	enum chan_jstate state;
	bool manager;
};

/* ---- chat_chan.c ---------------------------------------------------- */

/* Send body (complete envelopes) to the session's client as one INFO. */
int chan_send(struct chan_sess *cs, const struct cv_buf *body);
/* One reply envelope: <rpl id="rpl:NAME"> for cmd with code; data(b, arg)
 * appends the <data> children (NULL: none).  A data writer failing turns
 * the reply into a 500 without data. */
typedef int (chan_data_h)(struct cv_buf *b, void *arg);
void chan_reply(struct chan_sess *cs, const struct chat_xccos_msg *cmd, int code,
		chan_data_h *data, void *arg);
/* The room's live entry (created when create). */
struct chan_room *chan_room_get(struct chat_chan *c, const char *uri, bool create);
/* The session's join of uri, or NULL. */
struct chan_join *chan_join_find(struct chan_sess *cs, const char *uri);
/* Participants of the room that have JOINED (distinct sessions). */
size_t chan_room_count(struct chat_chan *c, const char *uri);
/* Leave: unlink the join, ntc:part to the others, chat.part (reason in
 * text) fire-and-forget when emit (a part after the client's own cmd:part
 * was emitted before). */
void chan_leave(struct chan_join *jn, const char *reason, bool emit);
/* A compliance event about a room; done may be NULL.  ING_EMIT_* */
int chan_emit(struct chat_chan *c, enum ing_event_type type, const char *room, const char *user,
	      const char *text, chat_durable_h *done, void *arg);
/* ISO 8601 UTC now, ms. */
void chan_now_iso(char out[32]);

/* ---- chat_chan_cmd.c ------------------------------------------------ */

/* A parsed command from a session: queue it (0), or -EBUSY / -ENOMEM
 * (the INFO is answered 503).  Takes m's contents on success. */
int chan_cmd_submit(struct chan_sess *cs, struct chat_xccos_msg *m)
	__attribute__((warn_unused_result));
/* Free a job the loop still holds (its session reference, extra). */
void chan_job_release(struct chan_job *j);

/* ---- chat_chan_files.c ---------------------------------------------- */

int chan_files_start(struct chat_chan *c, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void chan_files_stop(struct chat_chan *c);

#endif

/*
 * chat_chan_db — the Channel service's store thread (docs/PCHAT.md
 * "Threading").
 *
 * Every XCCOS command the Channel service takes becomes one job.  Jobs go
 * into one FIFO served by one thread that owns the pchat connection
 * (chat_rooms): so the SIP loop never waits for PostgreSQL, and the
 * commands of a session are worked on in the order they arrived (one
 * queue, one worker: the order holds across sessions too).  A finished job
 * is handed back to the loop through libre's mqueue (id CHAT_MQ_CHAN) and
 * the loop calls job->done(job) there.
 *
 * A job that needs no data (CHAN_OP_PASS) still goes through the queue,
 * only to keep its place behind the commands before it.
 *
 * Ownership: chat_chan_db_submit() takes the job (on -EBUSY it does not);
 * the loop frees it once done() returns, unless done() set kept (a command
 * waiting for its compliance event keeps its job until then).  Everything
 * in a job is plain malloc'd memory: the thread never touches libre
 * objects; `owner` is the loop's and opaque here.
 */
#ifndef CHAT_CHAN_DB_H
#define CHAT_CHAN_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "chat_rooms.h"
#include "chat_xccos.h"

#define CHAT_MQ_CHAN 3           /* beside CHAT_MQ_USERS / CHAT_MQ_DURABLE (chat_users.h) */
#define CHAN_USER_MAX 336

enum chan_op {
	CHAN_OP_PASS = 0,         /* nothing to read: keeps the session's order */
	CHAN_OP_ASSOC,            /* getassociations: member rooms, then managed */
	CHAN_OP_SEARCH,           /* chansrch: cmd.qib.criteria, limit */
	CHAN_OP_ROOMS,            /* join/bjoin: each chanid: room, access, members */
	CHAN_OP_HISTORY,          /* bccontext: access to room, last `limit` messages */
	CHAN_OP_INVITES,          /* getinv */
	CHAN_OP_TOKEN,            /* getfutok/getfdtok: access to room, token for name */
	CHAN_OP_GETPREF,
	CHAN_OP_SETPREF,
	CHAN_OP_APPEND,           /* a durable post: room, text → msgid */
};

/* One room of a join / bjoin. */
struct chan_job_room {
	char uri[CHAT_ROOM_URI_MAX];
	int code;                 /* 200, 400 (bad chanid), 403, 404, 500, 503 */
	struct chat_room room;    /* code 200 */
	struct chat_member *members;   /* members and managers (code 200) */
	size_t nmembers;
};

struct chan_job {
	struct chan_job *next;    /* queue link (the thread's) */
	enum chan_op op;
	void (*done)(struct chan_job *j);   /* on the loop thread */
	void *owner;              /* the loop's: a session */
	struct chat_xccos_msg cmd;          /* the command (owned; cleared by chan_job_free) */
	char user[CHAN_USER_MAX];
	char room[CHAT_ROOM_URI_MAX];       /* HISTORY, TOKEN, APPEND */
	int limit;                          /* SEARCH, HISTORY */
	bool download;                      /* TOKEN: getfdtok */
	char *text;                         /* APPEND (owned) */

	/* results */
	int code;                 /* XCCOS code of the whole job: 200, 400, 403, 404, 500, 503 */
	char err[CHAT_ROOMS_ERRLEN];
	struct chan_job_room *rooms;        /* ROOMS: one per cmd.chanids */
	size_t nrooms;
	struct chat_room *list;             /* ASSOC, SEARCH, INVITES */
	size_t nlist;
	struct chat_history_msg *hist;      /* HISTORY */
	size_t nhist;
	int64_t *pref_seq;                  /* GETPREF, SETPREF: one per cmd.prefs */
	char **pref_content;                /* GETPREF */
	char token[CHAT_TOKEN_HEX];         /* TOKEN */
	char name[256];                     /* TOKEN: the file name */
	char guid[80];                      /* TOKEN: the room's guid */
	int64_t msgid;                      /* APPEND */
	bool kept;                          /* done() kept the job (it frees it later) */
};

struct chat_chan_db;
struct mqueue;

/* Start the thread; it connects on its own (a database that is down makes
 * jobs fail with 503 and is retried with the next job).  cap: jobs waiting
 * before submit says -EBUSY. */
int chat_chan_db_start(const struct cfg *cfg, struct mqueue *mq, size_t cap,
		       struct chat_chan_db **out, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* 0, or -EBUSY when cap jobs wait (the caller answers SIP 503), -ESHUTDOWN. */
int chat_chan_db_submit(struct chat_chan_db *d, struct chan_job *j)
	__attribute__((warn_unused_result));
/* Jobs waiting or running. */
size_t chat_chan_db_backlog(struct chat_chan_db *d);
/* Stop the thread after the job in hand; waiting jobs are freed unrun
 * through free_job (the loop's: it drops its references).  NULL-safe. */
void chat_chan_db_stop(struct chat_chan_db *d, void (*free_job)(struct chan_job *j));

struct chan_job *chan_job_new(enum chan_op op);
/* Frees the results, cmd and text; not owner.  NULL-safe. */
void chan_job_free(struct chan_job *j);

#endif

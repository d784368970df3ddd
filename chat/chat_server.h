/*
 * chat_server — `chatvault chatd`: the SIP chat/IM front end (issue 6,
 * docs/CHAT.md).
 *
 * One thread runs libre's event loop (re_main): SIP over UDP and TCP on
 * chat.listen, every request, every timer, every reply.  Two helper threads
 * never touch SIP state: the producer's writer thread (its "durable"
 * callbacks are handed to the loop through a libre mqueue) and the user
 * cache thread of chat_users.c (PostgreSQL; a fresh snapshot is handed over
 * the same way).  The push worker (chat_push.c) is fed by the loop.
 *
 * Modules (all share struct chat_srv, which only the loop thread touches):
 *   chat_reg.c   REGISTER, digest auth, registrations = IM sessions, limits
 *   chat_im.c    MESSAGE: compliance event, durable, then delivery or push
 *   chat_prov.c  SUBSCRIBE vnd-microsoft-provisioning-v2 + NOTIFY
 *   chat_sip.c   pure helpers (nonce, digest, limit decision, escaping)
 *   chat_users.c user cache + its PostgreSQL thread
 *   chat_chan*.c persistent chat Lookup/Channel services (INVITE/INFO/BYE),
 *                their store thread and the file service (docs/PCHAT.md)
 *
 * Shutdown (SIGTERM/SIGINT through the caller's signalfd): stop taking
 * requests, end every session (im.session.end, text "shutdown"), flush the
 * producer, answer the messages that became durable, close.
 */
#ifndef CHAT_SERVER_H
#define CHAT_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "event.h"

struct chat_srv;
struct cv_metrics;

/* What the caller hands the server besides the configuration; both stay
 * the caller's and must outlive the server. */
struct chat_server_opts {
	struct cv_metrics *metrics;     /* chat_metrics_new()'s families; NULL: none */
	_Atomic int64_t *heartbeat_ms;  /* NULL: none; else the loop stores
					 * cv_time_mono_ms() when it starts and about
					 * every second (a health check's "loop alive") */
};

/*
 * Create the server: bind UDP and TCP on cfg->chat.listen, open the user
 * store (first load synchronous: unknown users could not sign in otherwise),
 * the producer and the push worker.  o may be NULL (no metrics).  0, or a
 * negative errno with one line in err (-EADDRINUSE, -ECONNREFUSED…).
 */
int chat_server_new(const struct cfg *cfg, const struct chat_server_opts *o,
		    struct chat_srv **out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * Run the loop until stop_fd (a signalfd, or any fd) is readable and
 * should_stop(arg) says so; then shut down gracefully.  Returns 0 on a clean
 * shutdown, a negative errno otherwise.
 */
int chat_server_run(struct chat_srv *s, int stop_fd, bool (*should_stop)(void *arg), void *arg);

void chat_server_free(struct chat_srv *s);

/* ---- internal: shared by the chat_*.c modules (loop thread only) -------- */
#ifdef CHAT_INTERNAL
#include <re.h>

#include "chat_metrics.h"
#include "chat_msg.h"
#include "chat_sip.h"
#include "cv_metrics.h"

struct chat_users;
struct chat_push;
struct ing_producer;

/* Called on the loop thread once the event is durable (status 0) or not
 * (negative errno).  arg is a libre mem object the wait holds a reference to. */
typedef void (chat_durable_h)(int status, const char *id, void *arg);

struct chat_srv {
	const struct cfg *cfg;
	struct sip *sip;
	struct sipevent_sock *evsock;
	struct sip_lsnr *lsnr;
	struct mqueue *mq;
	struct ing_producer *prod;
	struct chat_push *push;
	struct chat_users *users;
	struct chat_chan *chan;            /* persistent chat services (chat_chan.c) */
	struct tmr sweep;
	uint8_t secret[CHAT_SECRET_LEN];   /* nonce MAC key, per process */
	struct chat_nc_table nc;           /* nonce-count replay window */
	char server_uri[300];              /* sip:chatd@<domain>: "to" of session events */

	struct hash *aors;                 /* struct chat_aor by URI */
	struct list sessions;              /* every struct chat_binding */
	size_t nsessions;                  /* bindings counted against the limits */
	struct list provs;                 /* provisioning subscriptions */
	bool stopping;
	int stop_fd;
	bool (*should_stop)(void *arg);
	void *stop_arg;
	uint64_t stats_messages, stats_pushes, stats_busy;
	struct cv_metrics *metrics;        /* not owned; NULL: none (chat_metrics.h) */
	_Atomic int64_t *beat;             /* not owned; NULL: none */
};

/* Current time for session bookkeeping (ms, monotonic). */
uint64_t chat_now_ms(void);

/* Emit a compliance event; done(status, arg) runs on the loop thread when
 * it is durable (0) or not.  done may be NULL (fire and forget: shutdown).
 * Returns ING_EMIT_* (enum ing_emit_result). */
int chat_emit(struct chat_srv *s, enum ing_event_type type, const char *user, const char *to,
	      const char *text, chat_durable_h *done, void *arg, char *err, size_t errlen);

/* The same for an event the caller built (room, files…): ev's strings stay
 * the caller's; emit stamps id, ts and source into it. */
int chat_emit_event(struct chat_srv *s, struct ing_event *ev, chat_durable_h *done, void *arg,
		    char *err, size_t errlen);

/* One log line for a refused request, never with secrets; a code >= 400
 * is counted in chatvault_chat_refusals_total{code}.  Every refusal goes
 * through here before its answer; the digest challenge (401 without a
 * replay) does not. */
void chat_log_refusal(struct chat_srv *s, const struct sip_msg *msg, uint16_t scode,
		      const char *why);

/* Answer msg with code and reason and no body, through *st when st is not
 * NULL; an answer >= 300 is logged first (chat_log_refusal, why). */
void chat_reply(struct chat_srv *s, struct sip_strans **st, const struct sip_msg *msg,
		uint16_t code, const char *reason, const char *why);
/* The same as a 503 with Retry-After: secs. */
void chat_reply_retry(struct chat_srv *s, struct sip_strans **st, const struct sip_msg *msg,
		      const char *reason, unsigned secs, const char *why);

/* chat_aor_of(): chat_msg.h */
#endif

#endif

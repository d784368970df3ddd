/*
 * chat_server — chatd's loop: sockets, request dispatch and limits, the
 * producer hand-off, timers, graceful shutdown (contract in chat_server.h).
 *
 * Threads: everything here runs on the thread that called
 * chat_server_new()/chat_server_run() (libre's loop), except prod_done(),
 * which runs on the producer's writer thread and only pushes to the mqueue.
 */
#define CHAT_INTERNAL
#include "chat_server.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "chat_chan.h"
#include "chat_chan_db.h"
#include "chat_im.h"
#include "chat_prov.h"
#include "chat_push.h"
#include "chat_reg.h"
#include "chat_users.h"
#include "cv_log.h"
#include "cv_time.h"
#include "producer.h"

#define COMP "chatd"
#define SWEEP_MS 1000
#define FLUSH_MS 10000
#define DRAIN_MS 500

/* A pending emit: malloc'd (crosses threads), freed on the loop. */
struct emit_wait {
	chat_durable_h *done;
	void *arg;
	struct chat_srv *s;
	int status;
	char id[ING_EVENT_ID_LEN + 1];
};

uint64_t chat_now_ms(void)
{
	return tmr_jiffies();
}

void chat_log_refusal(struct chat_srv *s, const struct sip_msg *msg, uint16_t scode,
		      const char *why)
{
	char line[600];

	if (scode >= 400) {
		char code[8];

		snprintf(code, sizeof(code), "%u", (unsigned)scode);
		cv_metrics_add(s->metrics, CHAT_M_REFUSALS, code, 1);
	}
	/* never the Authorization header or a body: only method, peer, From URI */
	re_snprintf(line, sizeof(line), "%r from %J (%s) %r: %u %s", &msg->met, &msg->src,
		    sip_transp_name(msg->tp), &msg->from.auri, scode, why ? why : "");
	cv_warn(COMP, "%s", line);
}

void chat_reply(struct chat_srv *s, struct sip_strans **st, const struct sip_msg *msg,
		uint16_t code, const char *reason, const char *why)
{
	if (code >= 300)
		chat_log_refusal(s, msg, code, why);
	(void)sip_treplyf(st, NULL, s->sip, msg, false, code, reason, "Content-Length: 0\r\n\r\n");
}

void chat_reply_retry(struct chat_srv *s, struct sip_strans **st, const struct sip_msg *msg,
		      const char *reason, unsigned secs, const char *why)
{
	chat_log_refusal(s, msg, 503, why);
	(void)sip_treplyf(st, NULL, s->sip, msg, false, 503, reason,
			  "Retry-After: %u\r\nContent-Length: 0\r\n\r\n", secs);
}

/* ---- producer hand-off ------------------------------------------------ */

static void prod_done(void *opaque, const char *id, int status)
{
	struct emit_wait *w = opaque;

	w->status = status;
	if (id)
		snprintf(w->id, sizeof(w->id), "%s", id);
	if (mqueue_push(w->s->mq, CHAT_MQ_DURABLE, w) != 0)
		cv_err(COMP, "event %s: cannot hand the outcome to the loop; the request stays unanswered",
		       w->id);
}

int chat_emit(struct chat_srv *s, enum ing_event_type type, const char *user, const char *to,
	      const char *text, chat_durable_h *done, void *arg, char *err, size_t errlen)
{
	struct ing_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.ts_ms = -1;
	ev.user = (char *)user;
	ev.to = (char *)to;
	ev.text = (char *)text;
	return chat_emit_event(s, &ev, done, arg, err, errlen);
}

int chat_emit_event(struct chat_srv *s, struct ing_event *ev, chat_durable_h *done, void *arg,
		    char *err, size_t errlen)
{
	struct emit_wait *w = NULL;
	enum ing_emit_result r;

	if (done) {
		w = calloc(1, sizeof(*w));
		if (!w) {
			snprintf(err, errlen, "out of memory");
			return ING_EMIT_ERROR;
		}
		w->done = done;
		w->arg = arg;
		w->s = s;
	}
	r = ing_producer_emit(s->prod, ev, w ? prod_done : NULL, w, err, errlen);
	if (r != ING_EMIT_OK)
		free(w);
	/* ev's strings are the caller's; emit stamped id/ts/source into ev only */
	free(ev->source_server);
	ev->source_server = NULL;
	return (int)r;
}

static void mq_handler(int id, void *data, void *arg)
{
	struct chat_srv *s = arg;

	if (id == CHAT_MQ_USERS) {
		chat_users_install(s->users, data);
	} else if (id == CHAT_MQ_DURABLE) {
		struct emit_wait *w = data;

		w->done(w->status, w->id[0] ? w->id : NULL, w->arg);
		free(w);
	} else if (id == CHAT_MQ_CHAN) {
		chat_chan_mq(s->chan, data);
	}
}

/* ---- requests ------------------------------------------------------------ */

/* The checks every request passes (chat_msg_check, docs/CHAT.md "Hardening"). */
static bool valid_request(struct chat_srv *s, const struct sip_msg *msg)
{
	struct chat_refusal r;

	if (chat_msg_check(msg, &s->cfg->chat, &r) == 0)
		return true;
	chat_reply(s, NULL, msg, r.code, r.reason, r.why);
	return false;
}

static bool request_h(const struct sip_msg *msg, void *arg)
{
	struct chat_srv *s = arg;

	if (!pl_strcmp(&msg->met, "ACK"))
		return false;         /* the persistent chat sessions' (libre sipsess) */
	if (!msg->via.sentby.l) {
		cv_warn(COMP, "request from %s without Via: dropped (no reply possible)", "peer");
		return true;
	}
	if (!valid_request(s, msg))
		return true;
	if (s->stopping) {
		chat_reply(s, NULL, msg, 503, "Service Unavailable", "shutting down");
		return true;
	}
	if (!pl_strcmp(&msg->met, "REGISTER"))
		return chat_reg_handle(s, msg);
	if (!pl_strcmp(&msg->met, "MESSAGE"))
		return chat_im_handle(s, msg);
	if (!pl_strcmp(&msg->met, "SUBSCRIBE") || !pl_strcmp(&msg->met, "NOTIFY") ||
	    !pl_strcmp(&msg->met, "CANCEL"))
		return false;         /* sipevent notifier / libre's transactions */
	/* persistent chat (chat_chan.c): INVITE dialogs; an INFO outside any
	 * dialog (no To tag) is not ours: 501 below, as before */
	if (s->chan && (!pl_strcmp(&msg->met, "INVITE") || !pl_strcmp(&msg->met, "BYE") ||
			(!pl_strcmp(&msg->met, "INFO") && pl_isset(&msg->to.tag))))
		return false;
	if (!pl_strcmp(&msg->met, "OPTIONS")) {
		(void)sip_treplyf(NULL, NULL, s->sip, msg, false, 200, "OK",
				  "Allow: REGISTER, MESSAGE, SUBSCRIBE, OPTIONS, INVITE, ACK, BYE, INFO\r\n"
				  "Allow-Events: " CHAT_PROV_EVENT "\r\nAccept: text/plain\r\n"
				  "Content-Length: 0\r\n\r\n");
		return true;
	}
	chat_log_refusal(s, msg, 501, "method not implemented");
	(void)sip_treplyf(NULL, NULL, s->sip, msg, false, 501, "Not Implemented",
			  "Allow: REGISTER, MESSAGE, SUBSCRIBE, OPTIONS\r\nContent-Length: 0\r\n\r\n");
	return true;
}

/* SUBSCRIBE reaches sipevent's listener after ours; an unknown in-dialog
 * one (no notifier) comes back to nobody: libre answers 481/501. */

/* The loop is alive: what /healthz of `chatd --metrics` reads. */
static void beat(struct chat_srv *s)
{
	if (s->beat)
		atomic_store(s->beat, cv_time_mono_ms());
}

static void sweep_h(void *arg)
{
	struct chat_srv *s = arg;

	beat(s);
	chat_reg_sweep(s);
	tmr_start(&s->sweep, SWEEP_MS, sweep_h, s);
}

static void stop_h(int flags, void *arg)
{
	struct chat_srv *s = arg;

	(void)flags;
	if (!s->should_stop || s->should_stop(s->stop_arg))
		re_cancel();
}

static void drain_h(void *arg)
{
	(void)arg;
	re_cancel();
}

/* ---- life cycle ---------------------------------------------------------- */

int chat_server_new(const struct cfg *cfg, const struct chat_server_opts *o,
		    struct chat_srv **out, char *err, size_t errlen)
{
	struct chat_srv *s;
	struct sa laddr;
	int rc;

	*out = NULL;
	rc = libre_init();
	if (rc) {
		snprintf(err, errlen, "libre_init: %s", strerror(rc));
		return -rc;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		libre_close();
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->cfg = cfg;
	s->stop_fd = -1;
	s->metrics = o ? o->metrics : NULL;
	s->beat = o ? o->heartbeat_ms : NULL;
	tmr_init(&s->sweep);
	snprintf(s->server_uri, sizeof(s->server_uri), "sip:chatd@%s", cfg->chat.domain);
	if (getrandom(s->secret, sizeof(s->secret), 0) != (ssize_t)sizeof(s->secret)) {
		rc = -EIO;
		snprintf(err, errlen, "getrandom: no nonce secret");
		goto fail;
	}
	if (sa_decode(&laddr, cfg->chat.listen, strlen(cfg->chat.listen)) != 0) {
		rc = -EINVAL;
		snprintf(err, errlen, "chat.listen: \"%s\" is not an IP address and port",
			 cfg->chat.listen);
		goto fail;
	}
	if ((rc = hash_alloc(&s->aors, 1024)) || (rc = mqueue_alloc(&s->mq, mq_handler, s)) ||
	    (rc = sip_alloc(&s->sip, NULL, 256, 256, 256, "chatvault-chatd", NULL, NULL))) {
		snprintf(err, errlen, "SIP stack: %s", strerror(rc));
		rc = -rc;
		goto fail;
	}
	if ((rc = sip_transp_add(s->sip, SIP_TRANSP_UDP, &laddr)) ||
	    (rc = sip_transp_add(s->sip, SIP_TRANSP_TCP, &laddr))) {
		snprintf(err, errlen, "chat.listen %s: %s", cfg->chat.listen, strerror(rc));
		rc = -rc;
		goto fail;
	}
	/* ours first: limits apply to every request, SUBSCRIBE included */
	if ((rc = sip_listen(&s->lsnr, s->sip, true, request_h, s)) ||
	    (rc = sipevent_listen(&s->evsock, s->sip, 64, 64, chat_prov_subscribe, s))) {
		snprintf(err, errlen, "SIP listener: %s", strerror(rc));
		rc = -rc;
		goto fail;
	}
	rc = chat_users_start(cfg, s->mq, &s->users, err, errlen);
	if (rc < 0)
		goto fail;
	s->prod = ing_producer_new(cfg, err, errlen);
	if (!s->prod) {
		rc = -EIO;
		goto fail;
	}
	err[0] = '\0';
	s->push = chat_push_new(cfg->chat.push_url, cfg->chat.push_max_attempts,
				cfg->chat.push_backoff_ms, err, errlen);
	if (!s->push && err[0]) {
		rc = -EINVAL;
		goto fail;
	}
	rc = chat_chan_new(s, &s->chan, err, errlen);
	if (rc < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	chat_server_free(s);
	return rc < 0 ? rc : -EIO;
}

int chat_server_run(struct chat_srv *s, int stop_fd, bool (*should_stop)(void *arg), void *arg)
{
	struct tmr drain;
	int rc = 0;

	s->stop_fd = stop_fd;
	s->should_stop = should_stop;
	s->stop_arg = arg;
	if (stop_fd >= 0 && fd_listen(stop_fd, FD_READ, stop_h, s) != 0)
		return -EIO;
	tmr_start(&s->sweep, SWEEP_MS, sweep_h, s);
	beat(s);
	cv_info(COMP, "listening on %s (UDP, TCP) for %s, %zu users", s->cfg->chat.listen,
		s->cfg->chat.domain, chat_users_count(s->users));
	rc = re_main(NULL);

	/* graceful: no new work, every session ends, everything accepted is durable */
	s->stopping = true;
	tmr_cancel(&s->sweep);
	if (stop_fd >= 0)
		fd_close(stop_fd);
	cv_info(COMP, "stopping: ending %zu sessions", s->nsessions);
	chat_reg_end_all(s, "shutdown");
	chat_prov_close_all(s);
	chat_chan_close_all(s->chan, "shutdown");
	chat_users_stop(s->users);
	s->users = NULL;
	if (ing_producer_flush(s->prod, FLUSH_MS) != 0) {
		cv_err(COMP, "producer flush timed out: %zu events not confirmed",
		       ing_producer_pending(s->prod));
		rc = -ETIMEDOUT;
	}
	/* answer what became durable meanwhile (its callbacks wait in the mqueue) */
	tmr_init(&drain);
	tmr_start(&drain, DRAIN_MS, drain_h, NULL);
	(void)re_main(NULL);
	tmr_cancel(&drain);
	cv_info(COMP, "stopped: %llu messages archived, %llu pushes, %llu refused busy",
		(unsigned long long)s->stats_messages, (unsigned long long)s->stats_pushes,
		(unsigned long long)s->stats_busy);
	return rc;
}

void chat_server_free(struct chat_srv *s)
{
	if (!s)
		return;
	tmr_cancel(&s->sweep);
	if (s->sessions.head)
		chat_reg_end_all(s, NULL);
	chat_prov_close_all(s);
	chat_chan_free(s->chan);       /* parts every session, stops its threads */
	s->chan = NULL;
	chat_users_stop(s->users);
	ing_producer_free(s->prod);    /* flushes what is pending */
	chat_push_free(s->push);       /* drains, bounded */
	s->evsock = mem_deref(s->evsock);
	s->lsnr = mem_deref(s->lsnr);
	if (s->sip)
		sip_close(s->sip, true);
	s->sip = mem_deref(s->sip);
	s->mq = mem_deref(s->mq);
	hash_flush(s->aors);
	s->aors = mem_deref(s->aors);
	explicit_bzero(s->secret, sizeof(s->secret));
	free(s);
	libre_close();
}

/*
 * chat_im — MESSAGE (contract in chat_im.h).
 *
 * Checks, each one answer:
 *   From not a user of chat.domain .................................... 403
 *   not from a registered flow: digest (chat_reg_authorize) ........... 401 / 403
 *   Request-URI not in chat.domain or unknown user ..................... 404
 *   recipient disabled or without IM .................................. 403
 *   Content-Type other than text/plain ................................ 415
 *   empty body ........................................................ 400
 *   body not UTF-8 (the event is refused) ............................. 400
 *   recipient without any registration ................................ 480
 *   queue BUSY / event not durable .................................... 503 + Retry-After
 * then 200 (delivered to every reachable registration) or 202 (push).
 */
#include "chat_im.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_push.h"
#include "chat_reg.h"
#include "chat_users.h"
#include "cv_log.h"

#define COMP "chatd"
#define RETRY_AFTER_QUEUE 5

struct im_wait {
	struct chat_srv *s;
	struct sip_strans *st;
	struct sip_msg *msg;       /* ref: the reply is built from it */
	char from[CHAT_URI_MAX];
	char to[CHAT_URI_MAX];
	char *text;                /* mem string */
	bool push;                 /* no reachable registration: push, 202 */
};

struct fwd {
	char to[CHAT_URI_MAX];
	char *contact;
};

static void im_wait_destructor(void *arg)
{
	struct im_wait *w = arg;

	mem_deref(w->st);
	mem_deref(w->msg);
	mem_deref(w->text);
}

static void fwd_destructor(void *arg)
{
	struct fwd *f = arg;

	mem_deref(f->contact);
}

static void fwd_resp(int err, const struct sip_msg *msg, void *arg)
{
	struct fwd *f = arg;

	if (!err && msg && msg->scode < 200)
		return;
	if (err)
		cv_warn(COMP, "delivery to %s at %s failed: %s", f->to, f->contact, strerror(err));
	else if (msg->scode >= 300)
		cv_warn(COMP, "delivery to %s at %s refused: %u %.*s", f->to, f->contact,
			msg->scode, (int)msg->reason.l, msg->reason.p);
	else
		cv_debug(COMP, "delivered to %s at %s", f->to, f->contact);
	mem_deref(f);
}

/*
 * The next hop of a forwarded MESSAGE is the flow the registration came in
 * on (its source address and transport), not the Contact's host: a TCP
 * client's Contact rarely says ;transport=tcp, and a client behind NAT
 * cannot be reached at the address it believes it has.  libre's TCP
 * transport reuses an open connection to that address, so a TCP client gets
 * the MESSAGE on the connection it registered over (RFC 5626's idea of a
 * flow, without its Outbound negotiation).  rbuf must outlive the send.
 */
static int flow_route(const struct chat_binding *b, char *rbuf, size_t rlen, struct uri *route)
{
	struct pl pl;
	int n;

	n = re_snprintf(rbuf, rlen, "sip:%J;transport=%s", &b->src, sip_transp_name(b->tp));
	if (n <= 0 || (size_t)n >= rlen)
		return -ENAMETOOLONG;
	pl_set_str(&pl, rbuf);
	return uri_decode(route, &pl) == 0 ? 0 : -EINVAL;
}

/* One new client transaction per registration of the recipient. */
static size_t deliver(struct chat_srv *s, const struct im_wait *w)
{
	struct chat_aor *a = chat_reg_find(s, w->to);
	char rbuf[128];
	struct uri route;
	size_t n = 0;

	for (struct le *le = a ? a->bindings.head : NULL; le; le = le->next) {
		const struct chat_binding *b = le->data;
		struct fwd *f;
		int err;

		if (b->state != CHAT_B_ACTIVE || !chat_reg_reachable(s, b))
			continue;
		f = mem_zalloc(sizeof(*f), fwd_destructor);
		if (!f || str_dup(&f->contact, b->contact) != 0) {
			mem_deref(f);
			continue;
		}
		snprintf(f->to, sizeof(f->to), "%s", w->to);
		if (flow_route(b, rbuf, sizeof(rbuf), &route) != 0) {
			cv_warn(COMP, "delivery to %s at %s: no route to its flow", w->to, b->contact);
			mem_deref(f);
			continue;
		}
		err = sip_requestf(NULL, s->sip, true, "MESSAGE", b->contact, &route, NULL, NULL,
				   fwd_resp, f,
				   "To: <%s>\r\nFrom: <%s>;tag=%016llx\r\nCall-ID: %016llx@chatd\r\n"
				   "CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n"
				   "Content-Type: text/plain;charset=UTF-8\r\n"
				   "Content-Length: %zu\r\n\r\n%s",
				   w->to, w->from, (unsigned long long)rand_u64(),
				   (unsigned long long)rand_u64(), strlen(w->text), w->text);
		if (err) {
			cv_warn(COMP, "delivery to %s at %s failed: %s", w->to, b->contact, strerror(err));
			mem_deref(f);
			continue;
		}
		n++;
	}
	return n;
}

static void push(struct chat_srv *s, const struct im_wait *w, const char *id)
{
	size_t tl = strlen(w->text), cap = tl * 6 + 1;
	char *esc = malloc(cap), *doc = NULL;
	int rc = -ENOMEM;

	if (esc && chat_json_escape(w->text, tl, esc, cap) &&
	    asprintf(&doc, "{\"type\":\"im\",\"id\":\"%s\",\"to\":\"%s\",\"from\":\"%s\",\"text\":\"%s\"}",
		     id ? id : "", w->to, w->from, esc) >= 0) {
		rc = s->push ? chat_push_send(s->push, doc) : -ENOTSUP;
	}
	if (rc == 0) {
		s->stats_pushes++;
		cv_info(COMP, "push queued for %s (message %s)", w->to, id ? id : "?");
	} else {
		cv_warn(COMP, "push for %s (message %s) not queued: %s", w->to, id ? id : "?",
			rc == -ENOTSUP ? "chat.push_url not set" : strerror(-rc));
	}
	free(esc);
	free(doc);
}

static void im_durable(int status, const char *id, void *arg)
{
	struct im_wait *w = arg;
	struct chat_srv *s = w->s;

	if (status != 0) {
		chat_reply_retry(s, &w->st, w->msg, "Service Unavailable", RETRY_AFTER_QUEUE,
				 "im.message not durable");
		mem_deref(w);
		return;
	}
	s->stats_messages++;
	cv_metrics_add(s->metrics, CHAT_M_MESSAGES, "im", 1);
	if (w->push) {
		chat_reply(s, &w->st, w->msg, 202, "Accepted", NULL);
		push(s, w, id);
	} else {
		chat_reply(s, &w->st, w->msg, 200, "OK", NULL);
		if (!s->stopping && deliver(s, w) == 0)
			cv_warn(COMP, "message %s for %s: no registration left to deliver to", id ? id : "?", w->to);
	}
	mem_deref(w);
}

static bool has_reachable(struct chat_srv *s, const struct chat_aor *a, bool *any)
{
	bool r = false;

	*any = false;
	for (struct le *le = a ? a->bindings.head : NULL; le; le = le->next) {
		const struct chat_binding *b = le->data;

		if (b->state != CHAT_B_ACTIVE)
			continue;
		*any = true;
		r = r || chat_reg_reachable(s, b);
	}
	return r;
}

bool chat_im_handle(struct chat_srv *s, const struct sip_msg *msg)
{
	const struct chat_user_rec *ru;
	struct im_wait *w = NULL;
	char from[CHAT_URI_MAX], to[CHAT_URI_MAX], err[ING_EVENT_ERRLEN];
	size_t blen = mbuf_get_left(msg->mb);
	bool any, reachable;
	int rc;

	if (chat_aor_of(&msg->from.uri, from, sizeof(from)) != 0) {
		chat_reply(s, NULL, msg, 403, "Not Registered", "From is not a SIP user");
		return true;
	}
	if (chat_reg_authorize(s, msg, from, true) != 0)
		return true;      /* answered: 401 challenge, 403 */
	if (chat_aor_of(&msg->uri, to, sizeof(to)) != 0 ||
	    pl_strcasecmp(&msg->uri.host, s->cfg->chat.domain) != 0 ||
	    !(ru = chat_users_find(s->users, to))) {
		chat_reply(s, NULL, msg, 404, "Not Found", "recipient unknown");
		return true;
	}
	if (ru->disabled || !ru->im_enabled) {
		chat_reply(s, NULL, msg, 403, "Recipient Not Permitted", "recipient disabled or without IM");
		return true;
	}
	if (pl_strcasecmp(&msg->ctyp.type, "text") != 0 ||
	    pl_strcasecmp(&msg->ctyp.subtype, "plain") != 0) {
		chat_log_refusal(s, msg, 415, "Content-Type is not text/plain");
		(void)sip_treplyf(NULL, NULL, s->sip, msg, false, 415, "Unsupported Media Type",
				  "Accept: text/plain\r\nContent-Length: 0\r\n\r\n");
		return true;
	}
	if (blen == 0 || memchr(mbuf_buf(msg->mb), '\0', blen)) {
		chat_reply(s, NULL, msg, 400, "Bad Message Body", "empty body or NUL byte in it");
		return true;
	}
	reachable = has_reachable(s, chat_reg_find(s, to), &any);
	if (!reachable && !any) {
		chat_reply(s, NULL, msg, 480, "Temporarily Unavailable", "recipient not registered");
		return true;
	}
	w = mem_zalloc(sizeof(*w), im_wait_destructor);
	if (!w || !(w->text = mem_alloc(blen + 1, NULL))) {
		chat_reply(s, NULL, msg, 500, "Server Internal Error", "out of memory");
		goto out;
	}
	memcpy(w->text, mbuf_buf(msg->mb), blen);
	w->text[blen] = '\0';
	w->s = s;
	w->push = !reachable;
	snprintf(w->from, sizeof(w->from), "%s", from);
	snprintf(w->to, sizeof(w->to), "%s", to);
	rc = chat_emit(s, ING_EV_IM_MESSAGE, from, to, w->text, im_durable, w, err, sizeof(err));
	if (rc == 1) {          /* ING_EMIT_BUSY */
		s->stats_busy++;
		cv_metrics_add(s->metrics, CHAT_M_PRODUCER_BUSY, NULL, 1);
		chat_reply_retry(s, NULL, msg, "Service Unavailable", RETRY_AFTER_QUEUE,
				 "compliance queue busy");
		goto out;
	}
	if (rc == 2) {          /* ING_EMIT_INVALID: e.g. not UTF-8 */
		chat_reply(s, NULL, msg, 400, "Bad Message Body", err);
		goto out;
	}
	if (rc != 0) {
		chat_reply(s, NULL, msg, 500, "Server Internal Error", err);
		goto out;
	}
	/* accepted: keep the transaction (absorbs retransmissions) until durable */
	w->msg = mem_ref((void *)msg);
	if (sip_strans_alloc(&w->st, s->sip, msg, NULL, NULL) != 0)
		w->st = NULL;     /* the reply then goes out without a transaction */
	return true;          /* w is owned by the pending emit now */
out:
	mem_deref(w);
	return true;
}

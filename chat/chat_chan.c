/*
 * chat_chan — Lookup and Channel service sessions, live rooms and the
 * XCCOS transport (contract in chat_chan.h; the commands are in
 * chat_chan_cmd.c).
 *
 * A session (struct chan_sess) is created by an INVITE to one of our
 * service URIs from a user registered from the same flow (as MESSAGE is
 * authorised, docs/CHAT.md) whose persistent chat is enabled.  It is one
 * libre sipsess: libre answers retransmissions, matches the ACK, answers
 * 481 to an INFO or BYE outside a live dialog and sends our BYE when we
 * end a session.  The session's references: c->sessions while open, and
 * one per store job in flight, so a job finishing after a BYE finds
 * cs->closed and drops its answer.
 *
 * Rooms (struct chan_room) hold the live participants: joins of open
 * sessions.  A BYE, an idle timeout or shutdown parts the session from
 * every room (ntc:part to the others, chat.part with the reason).
 *
 * Loop thread only.
 */
#include "chat_chan_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "chat_chan_rules.h"
#include "chat_reg.h"
#include "chat_users.h"
#include "cv_log.h"
#include "producer.h"

#define COMP "pchat"
#define RETRY_AFTER 5

/* ---- small helpers ------------------------------------------------------ */

void chan_now_iso(char out[32])
{
	struct timespec ts;
	struct tm tm;

	char date[24];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 32, "%.19s.%03dZ", date, (int)(ts.tv_nsec / 1000000L));
}

int chan_emit(struct chat_chan *c, enum ing_event_type type, const char *room, const char *user,
	      const char *text, chat_durable_h *done, void *arg)
{
	struct ing_event ev;
	char err[ING_EVENT_ERRLEN];
	int rc;

	ing_event_init(&ev);
	ev.type = type;
	ev.room = (char *)room;
	ev.user = (char *)user;
	ev.text = (char *)text;
	rc = chat_emit_event(c->s, &ev, done, arg, err, sizeof(err));
	if (rc != ING_EMIT_OK)
		cv_warn(COMP, "%s by %s in %s not accepted: %s", ing_event_type_name(type), user, room,
			rc == ING_EMIT_BUSY ? "queue busy" : err);
	return rc;
}

/* ---- rooms ----------------------------------------------------------- */

static void room_destructor(void *arg)
{
	struct chan_room *r = arg;

	hash_unlink(&r->he);
}

static bool room_cmp(struct le *le, void *arg)
{
	const struct chan_room *r = le->data;

	return strcmp(r->uri, arg) == 0;
}

struct chan_room *chan_room_get(struct chat_chan *c, const char *uri, bool create)
{
	struct chan_room *r = list_ledata(hash_lookup(c->rooms, hash_joaat_str(uri), room_cmp,
						      (void *)uri));

	if (r || !create)
		return r;
	if (strlen(uri) >= sizeof(r->uri) || !(r = mem_zalloc(sizeof(*r), room_destructor)))
		return NULL;
	snprintf(r->uri, sizeof(r->uri), "%s", uri);
	hash_append(c->rooms, hash_joaat_str(r->uri), &r->he, r);
	return r;
}

size_t chan_room_count(struct chat_chan *c, const char *uri)
{
	struct chan_room *r = chan_room_get(c, uri, false);
	size_t n = 0;

	for (struct le *le = r ? r->joins.head : NULL; le; le = le->next) {
		const struct chan_join *jn = le->data;

		n += jn->state == CHAN_J_JOINED;
	}
	return n;
}

struct chan_join *chan_join_find(struct chan_sess *cs, const char *uri)
{
	for (struct le *le = cs->joins.head; le; le = le->next) {
		struct chan_join *jn = le->data;

		if (!strcmp(jn->r->uri, uri))
			return jn;
	}
	return NULL;
}

static int part_data(struct cv_buf *b, const char *room, const char *user)
{
	int rc;

	if ((rc = chat_xccos_chanib_begin_uri(b, room)) != 0 ||
	    (rc = chat_xccos_put_uib(b, user)) != 0)
		return rc;
	return chat_xccos_chanib_end(b);
}

void chan_leave(struct chan_join *jn, const char *reason, bool emit)
{
	struct chan_room *r = jn->r;
	struct chan_sess *cs = jn->cs;
	bool was_joined = jn->state == CHAN_J_JOINED;

	list_unlink(&jn->le_s);
	list_unlink(&jn->le_r);
	/* JOINING too: its chat.join was accepted and precedes this in the queue */
	if (emit)
		(void)chan_emit(cs->c, ING_EV_CHAT_PART, r->uri, cs->user, reason, NULL, NULL);
	/* ntc:part to every other session still in the room */
	for (struct le *le = was_joined ? r->joins.head : NULL; le; le = le->next) {
		struct chan_join *o = le->data;
		struct cv_buf b = { 0 };

		if (o->state != CHAN_J_JOINED)
			continue;
		if (chat_xccos_env_begin(&b, o->cs->envid++) == 0 &&
		    chat_xccos_ntc_begin(&b, "part", 1) == 0 && part_data(&b, r->uri, cs->user) == 0 &&
		    chat_xccos_ntc_end(&b) == 0 && chat_xccos_env_end(&b) == 0)
			(void)chan_send(o->cs, &b);
		cv_buf_free(&b);
	}
	cv_info(COMP, "%s left %s (%s)", cs->user, r->uri, reason);
	mem_deref(jn);
	if (!r->joins.head)
		mem_deref(r);
}

/* ---- sending ----------------------------------------------------------- */

static void info_resp(int err, const struct sip_msg *msg, void *arg)
{
	(void)arg;
	if (err)
		cv_debug(COMP, "server INFO not answered: %s", strerror(err));
	else if (msg && msg->scode >= 300)
		cv_debug(COMP, "server INFO answered %u", msg->scode);
}

int chan_send(struct chan_sess *cs, const struct cv_buf *body)
{
	struct mbuf *mb;
	int err;

	if (cs->closed || !cs->sess || !body->len)
		return -ENOTCONN;
	mb = mbuf_alloc(body->len);
	if (!mb)
		return -ENOMEM;
	err = mbuf_write_mem(mb, (const uint8_t *)body->data, body->len);
	mb->pos = 0;
	err = err ? err : sipsess_info(cs->sess, "text/plain", mb, info_resp, NULL);
	mem_deref(mb);
	if (err)
		cv_warn(COMP, "INFO to %s not sent: %s", cs->user, strerror(err));
	return -err;
}

/* The reply's name: the codec's for a known command, else the command's
 * own "cmd:NAME" when NAME is plain, else "unknown". */
static const char *reply_name(const struct chat_xccos_msg *cmd, char *buf, size_t len)
{
	const char *n = cmd->cmd != CHAT_CMD_UNKNOWN ? chat_xccos_reply_name(cmd->cmd) : NULL;
	const char *id = cmd->id;

	if (n)
		return n;
	snprintf(buf, len, "unknown");
	if (id && !strncmp(id, "cmd:", 4) && strlen(id + 4) > 0 && strlen(id + 4) < len &&
	    strspn(id + 4, "abcdefghijklmnopqrstuvwxyz0123456789_-") == strlen(id + 4))
		snprintf(buf, len, "%s", id + 4);
	return buf;
}

static int build_reply(struct cv_buf *b, struct chan_sess *cs, const struct chat_xccos_msg *cmd,
		       int code, chan_data_h *data, void *arg)
{
	char nb[40];
	int rc;

	if ((rc = chat_xccos_env_begin(b, cs->envid++)) != 0 ||
	    (rc = chat_xccos_rpl_begin(b, reply_name(cmd, nb, sizeof(nb)), 1, cmd->seqid,
				       cmd->envid, code)) != 0 ||
	    (data && (rc = data(b, arg)) != 0) || (rc = chat_xccos_rpl_end(b)) != 0)
		return rc;
	return chat_xccos_env_end(b);
}

void chan_reply(struct chan_sess *cs, const struct chat_xccos_msg *cmd, int code,
		chan_data_h *data, void *arg)
{
	struct cv_buf b = { 0 };

	if (cs->closed)
		return;
	if (build_reply(&b, cs, cmd, code, code == 200 ? data : NULL, arg) != 0) {
		cv_warn(COMP, "reply to %s for envid %lld: data not encodable, 500", cs->user,
			(long long)cmd->envid);
		cv_buf_reset(&b);
		if (build_reply(&b, cs, cmd, 500, NULL, NULL) != 0) {
			cv_buf_free(&b);
			return;
		}
	}
	(void)chan_send(cs, &b);
	cv_buf_free(&b);
}

/* ---- sessions ------------------------------------------------------------ */

static void sess_destructor(void *arg)
{
	struct chan_sess *cs = arg;

	tmr_cancel(&cs->idle);
	mem_deref(cs->sess);
}

/* End a session: parts it from every room, frees its dialog (libre sends
 * BYE when the client did not), drops the list's reference. */
static void sess_end(struct chan_sess *cs, const char *reason)
{
	struct chat_chan *c = cs->c;

	if (cs->closed)
		return;
	cs->closed = true;
	tmr_cancel(&cs->idle);
	while (cs->joins.head)
		chan_leave(cs->joins.head->data, reason, true);
	if (cs->kind == CHAN_CHANNEL && c->load[cs->idx] > 0)
		c->load[cs->idx]--;
	cv_info(COMP, "%s session of %s ended (%s)", cs->kind == CHAN_LOOKUP ? "lookup" : "channel",
		cs->user, reason);
	cs->sess = mem_deref(cs->sess);
	list_unlink(&cs->le);
	if (c->nsess)
		c->nsess--;
	cv_metrics_set(c->s->metrics, CHAT_M_CHANNEL_SESSIONS, NULL, (double)c->nsess);
	mem_deref(cs);
}

static void idle_h(void *arg)
{
	sess_end(arg, "timeout");
}

static void idle_restart(struct chan_sess *cs)
{
	tmr_start(&cs->idle, (uint64_t)cs->c->cfg->im.inactivity_timeout_s * 1000, idle_h, cs);
}

static void close_h(int err, const struct sip_msg *msg, void *arg)
{
	(void)msg;
	sess_end(arg, err == ECONNRESET ? "bye" : err ? "failed" : "closed");
}

static void estab_h(const struct sip_msg *msg, void *arg)
{
	struct chan_sess *cs = arg;

	(void)msg;
	cv_debug(COMP, "session of %s established", cs->user);
}

/* Too much waiting already: the client is told to retry (SIP 503). */
static bool saturated(struct chat_chan *c)
{
	return chat_chan_db_backlog(c->db) >= (size_t)c->cfg->chat.channel_backlog ||
	       ing_producer_pending(c->prod) >= (size_t)c->cfg->producer.batch_max * 8;
}

static void info_h(struct sip *sip, const struct sip_msg *msg, void *arg)
{
	struct chan_sess *cs = arg;
	struct chat_chan *c = cs->c;
	struct chat_xccos_msg m;
	char err[CHAT_XCCOS_ERRLEN];
	size_t len = mbuf_get_left(msg->mb);
	int rc;

	(void)sip;
	if (cs->closed) {
		chat_reply(c->s, NULL, msg, 481, "Call Does Not Exist", "session ended");
		return;
	}
	idle_restart(cs);
	if (pl_strcasecmp(&msg->ctyp.type, "text") != 0 ||
	    pl_strcasecmp(&msg->ctyp.subtype, "plain") != 0) {
		chat_reply(c->s, NULL, msg, 415, "Unsupported Media Type",
			   "INFO body not text/plain");
		return;
	}
	if (c->s->stopping || saturated(c)) {
		if (!c->s->stopping)
			cv_metrics_add(c->s->metrics, CHAT_M_PRODUCER_BUSY, NULL, 1);
		chat_reply_retry(c->s, NULL, msg, "Service Unavailable", RETRY_AFTER,
			     c->s->stopping ? "shutting down" : "store queue or producer saturated");
		return;
	}
	(void)sip_treplyf(NULL, NULL, c->s->sip, msg, false, 200, "OK", "Content-Length: 0\r\n\r\n");
	rc = chat_xccos_parse((const char *)mbuf_buf(msg->mb), len, NULL, &m, err, sizeof(err));
	if (rc == 0 && m.kind != CHAT_XCCOS_CMD && m.kind != CHAT_XCCOS_GRPCHAT) {
		rc = 400;
		snprintf(err, sizeof(err), "a client sends cmd or grpchat, not %s", m.id ? m.id : "?");
	}
	if (rc == 0 && cs->kind == CHAN_LOOKUP && m.cmd != CHAT_CMD_REQURI) {
		rc = 501;
		snprintf(err, sizeof(err), "the Lookup service answers cmd:requri only");
	}
	if (rc == 0) {
		rc = chan_cmd_submit(cs, &m);
		if (rc == 0)
			return;
		snprintf(err, sizeof(err), "%s", rc == -EBUSY ? "store queue full" : strerror(-rc));
		rc = rc == -EBUSY ? 503 : 500;
	} else if (rc < 0) {
		snprintf(err, sizeof(err), "%s", strerror(-rc));
		rc = 500;
	}
	if (rc != 501 || !m.id) {
		/* the codec kept nothing: salvage the envid and name for the reply */
		char name[40];

		chat_xccos_msg_clear(&m);
		chat_chan_salvage((const char *)mbuf_buf(msg->mb), len, &m.envid, name, sizeof(name));
		m.kind = CHAT_XCCOS_CMD;
		m.seqid = 1;
		if (asprintf(&m.id, "cmd:%s", name) < 0)
			m.id = NULL;
	}
	cv_warn(COMP, "INFO from %s: XCCOS %d: %s", cs->user, rc, err);
	chan_reply(cs, &m, rc, NULL, NULL);
	chat_xccos_msg_clear(&m);
}

/* Server INFOs and our BYE go over the flow the INVITE came in on (its
 * source address and transport), as a forwarded MESSAGE does (chat_im.c
 * flow_route), not to the Contact: a TCP client whose Contact lacks
 * ;transport=tcp, or a client behind NAT, is reached on its connection.
 * libre 1.1.0 has no setter for a dialog's route set, so the remote target
 * is refreshed as a target-refresh request would (sip_dialog_update with a
 * Contact naming the flow): requests then carry
 * sip:<Contact user>@<source>;transport=<tp> as Request-URI.  A Contact
 * already naming the flow is left as it is. */
static bool contact_is_flow(const struct sip_addr *ca, const struct sip_msg *msg)
{
	struct sa csa;
	struct pl tp;
	enum sip_transp ctp = SIP_TRANSP_UDP;

	if (!msg_param_decode(&ca->uri.params, "transport", &tp)) {
		if (!pl_strcasecmp(&tp, "tcp"))
			ctp = SIP_TRANSP_TCP;
		else if (!pl_strcasecmp(&tp, "tls"))
			ctp = SIP_TRANSP_TLS;
		else if (pl_strcasecmp(&tp, "udp"))
			return false;
	}
	if (ctp != msg->tp || sa_set(&csa, &ca->uri.host, sip_transp_port(ctp, ca->uri.port)) != 0)
		return false;
	return sa_cmp(&csa, &msg->src, SA_ALL);
}

static int dialog_to_flow(struct sipsess *sess, const struct sip_msg *msg)
{
	const struct sip_hdr *h = sip_msg_hdr(msg, SIP_HDR_CONTACT);
	struct sip_msg *refresh = NULL;
	struct sip_addr ca;
	struct mbuf *mb;
	int err;

	if (!h || sip_addr_decode(&ca, &h->val) != 0)
		return EBADMSG;
	if (contact_is_flow(&ca, msg))
		return 0;
	if (!(mb = mbuf_alloc(256)))
		return ENOMEM;
	err = mbuf_printf(mb, "INFO sip:flow SIP/2.0\r\nContact: <sip:%r%s%J%s>\r\n\r\n",
			  &ca.uri.user, pl_isset(&ca.uri.user) ? "@" : "", &msg->src,
			  sip_transp_param(msg->tp));
	mb->pos = 0;
	if (!err)
		err = sip_msg_decode(&refresh, mb);
	if (!err)
		err = sip_dialog_update(sipsess_dialog(sess), refresh);
	mem_deref(refresh);
	mem_deref(mb);
	return err;
}

/* Which of our services does the Request-URI name?  0 lookup, 1 + i channel i, -1 none. */
static int service_of(struct chat_chan *c, const struct sip_msg *msg)
{
	char ruri[CHAT_URI_MAX];

	if (chat_aor_of(&msg->uri, ruri, sizeof(ruri)) != 0)
		return -1;
	if (!strcasecmp(ruri, c->lookup_uri))
		return 0;
	for (size_t i = 0; i < c->cfg->chat.nchannel_uris; i++)
		if (!strcasecmp(ruri, c->cfg->chat.channel_uris[i]))
			return 1 + (int)i;
	return -1;
}

static void conn_h(const struct sip_msg *msg, void *arg)
{
	struct chat_chan *c = arg;
	struct chat_srv *s = c->s;
	const struct chat_user_rec *u;
	struct chan_sess *cs = NULL;
	struct mbuf *sdp = NULL;
	char from[CHAT_URI_MAX], cuser[80];
	const char *svc;
	int which = service_of(c, msg), err;

	if (s->stopping) {
		chat_reply_retry(s, NULL, msg, "Service Unavailable", RETRY_AFTER, "shutting down");
		return;
	}
	if (which < 0) {
		chat_reply(s, NULL, msg, 404, "Not Found", "INVITE to no service of ours");
		return;
	}
	if (chat_aor_of(&msg->from.uri, from, sizeof(from)) != 0 || !chat_reg_flow_ok(s, from, msg)) {
		chat_reply(s, NULL, msg, 403, "Not Registered",
			   "caller not registered from this address");
		return;
	}
	u = chat_users_find(s->users, from);
	if (!u || u->disabled || !u->chat_enabled) {
		chat_reply(s, NULL, msg, 403, "Persistent Chat Not Enabled",
			   "caller may not use persistent chat");
		return;
	}
	svc = which ? c->cfg->chat.channel_uris[which - 1] : c->lookup_uri;
	snprintf(cuser, sizeof(cuser), "%.*s", (int)(strcspn(svc + 4, "@")), svc + 4);
	cs = mem_zalloc(sizeof(*cs), sess_destructor);
	sdp = mbuf_alloc(256);
	if (!cs || !sdp ||
	    mbuf_printf(sdp, "v=0\r\no=- 0 0 IN IP4 %j\r\ns=session\r\nc=IN IP4 %j\r\nt=0 0\r\n"
			"m=message %u sip null\r\n", &msg->dst, &msg->dst, sa_port(&msg->dst)) != 0) {
		chat_reply(s, NULL, msg, 500, "Server Internal Error", "out of memory");
		goto out;
	}
	sdp->pos = 0;
	cs->c = c;
	cs->kind = which ? CHAN_CHANNEL : CHAN_LOOKUP;
	cs->idx = which ? (size_t)(which - 1) : 0;
	cs->id = ++c->next_id;
	cs->envid = 1;
	snprintf(cs->user, sizeof(cs->user), "%s", from);
	tmr_init(&cs->idle);
	err = sipsess_accept(&cs->sess, c->sock, msg, 200, "OK", cuser, "application/sdp", sdp,
			     NULL, NULL, false, NULL, NULL, estab_h, info_h, NULL, close_h, cs,
			     "Allow: INVITE, ACK, BYE, CANCEL, INFO\r\n");
	if (err) {
		chat_reply(s, NULL, msg, 500, "Server Internal Error", "session not accepted");
		goto out;
	}
	if ((err = dialog_to_flow(cs->sess, msg)) != 0)
		cv_warn(COMP, "session of %s: server requests follow its Contact, not its flow: %s",
			from, strerror(err));
	list_append(&c->sessions, &cs->le, cs);
	c->nsess++;
	cv_metrics_set(s->metrics, CHAT_M_CHANNEL_SESSIONS, NULL, (double)c->nsess);
	if (cs->kind == CHAN_CHANNEL)
		c->load[cs->idx]++;
	idle_restart(cs);
	cv_info(COMP, "%s session of %s opened at %s", cs->kind == CHAN_LOOKUP ? "lookup" : "channel",
		from, svc);
	cs = NULL;          /* owned by c->sessions */
out:
	mem_deref(sdp);
	mem_deref(cs);
}

/* ---- life cycle ----------------------------------------------------------- */

void chat_chan_mq(struct chat_chan *c, void *data)
{
	struct chan_job *j = data;

	(void)c;
	j->done(j);
	if (!j->kept)
		chan_job_release(j);
}

void chat_chan_close_all(struct chat_chan *c, const char *reason)
{
	if (!c)
		return;
	while (c->sessions.head)
		sess_end(c->sessions.head->data, reason);
}

int chat_chan_new(struct chat_srv *s, struct chat_chan **out, char *err, size_t errlen)
{
	const struct cfg *cfg = s->cfg;
	struct chat_chan *c = calloc(1, sizeof(*c));
	int rc;

	*out = NULL;
	if (!c || !(c->load = calloc(cfg->chat.nchannel_uris + 1, sizeof(*c->load)))) {
		free(c);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->s = s;
	c->cfg = cfg;
	c->prod = s->prod;
	snprintf(c->lookup_uri, sizeof(c->lookup_uri), "sip:ocschat@%s", cfg->chat.domain);
	snprintf(c->root_uri, sizeof(c->root_uri), "ma-cat://%s/root", cfg->chat.domain);
	if ((rc = hash_alloc(&c->rooms, 256)) != 0 ||
	    (rc = sipsess_listen(&c->sock, s->sip, 256, conn_h, c)) != 0) {
		snprintf(err, errlen, "persistent chat services: %s", strerror(rc));
		chat_chan_free(c);
		return -rc;
	}
	rc = chat_chan_db_start(cfg, s->mq, (size_t)cfg->chat.channel_backlog, &c->db, err, errlen);
	if (rc == 0)
		rc = chan_files_start(c, err, errlen);
	if (rc) {
		chat_chan_free(c);
		return rc;
	}
	cv_info(COMP, "lookup %s, %zu channel services, files at %s", c->lookup_uri,
		cfg->chat.nchannel_uris, c->files_base);
	*out = c;
	return 0;
}

void chat_chan_free(struct chat_chan *c)
{
	if (!c)
		return;
	chat_chan_close_all(c, "shutdown");
	chan_files_stop(c);
	chat_chan_db_stop(c->db, chan_job_release);
	c->sock = mem_deref(c->sock);
	hash_flush(c->rooms);
	c->rooms = mem_deref(c->rooms);
	free(c->load);
	free(c);
}

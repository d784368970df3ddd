/*
 * chat_reg — REGISTER, registrations and IM sessions (contract in
 * chat_reg.h; behaviour in docs/CHAT.md).
 *
 * Sign-in order, each step one clear answer:
 *   To not a sip: URI of chat.domain ........................ 404 Not Found
 *   unknown user ............................................. 404 Not Found
 *   no Authorization, or a nonce not ours ................... 401 (challenge)
 *   our nonce but older than 5 minutes ...................... 401 stale=true
 *   username / realm / digest wrong ......................... 403 Bad Credentials
 *   digest right but nonce count not above the last one .... 401 stale=true (replay)
 *   disabled user ........................................... 403 User Disabled
 *   IM not enabled for the user ............................. 403 IM Not Enabled
 *   expires below chat.registration_min_expires ............. 423 + Min-Expires
 *   more than chat.max_registrations_per_user ............... 403 Too Many Registrations
 *   session limits (chat_admit_decide) ...................... 503 Server Busy / 503 Failed
 *   producer BUSY or failed for the start event ............. 503 + Retry-After
 */
#include "chat_reg.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "chat_users.h"
#include "cv_log.h"

#define COMP "chatd"
#define MAX_CONTACTS 16
#define RETRY_AFTER_BUSY 30
#define RETRY_AFTER_QUEUE 5

/* A REGISTER waiting for its new sessions' start events. */
struct reg_wait {
	struct chat_srv *s;
	struct sip_strans *st;
	struct sip_msg *msg;               /* ref */
	struct chat_binding *b[MAX_CONTACTS];  /* refs */
	size_t nb, outstanding;
	bool failed;
	bool busy;                         /* a start event refused: producer BUSY */
};

static void binding_destructor(void *arg)
{
	struct chat_binding *b = arg;

	mem_deref(b->contact);
}

static void aor_destructor(void *arg)
{
	struct chat_aor *a = arg;

	hash_unlink(&a->he);
}

static bool aor_cmp(struct le *le, void *arg)
{
	const struct chat_aor *a = le->data;

	return strcmp(a->uri, arg) == 0;
}

struct chat_aor *chat_reg_find(struct chat_srv *s, const char *uri)
{
	return list_ledata(hash_lookup(s->aors, hash_joaat_str(uri), aor_cmp, (void *)uri));
}

static struct chat_aor *aor_get(struct chat_srv *s, const char *uri)
{
	struct chat_aor *a = chat_reg_find(s, uri);

	if (a)
		return a;
	a = mem_zalloc(sizeof(*a), aor_destructor);
	if (!a)
		return NULL;
	snprintf(a->uri, sizeof(a->uri), "%s", uri);
	hash_append(s->aors, hash_joaat_str(a->uri), &a->he, a);
	return a;
}

/* Take b out of the tables; emit im.session.end (reason) if it had started. */
static void binding_end(struct chat_srv *s, struct chat_binding *b, const char *reason)
{
	char err[ING_EVENT_ERRLEN];
	struct chat_aor *a = b->aor;

	if (b->state == CHAT_B_ENDED)
		return;
	if (reason) {
		int rc = chat_emit(s, ING_EV_IM_SESSION_END, b->aor_uri, s->server_uri, reason, NULL,
				   NULL, err, sizeof(err));

		if (rc != 0)
			cv_err(COMP, "session end of %s (%s): compliance event not accepted (%s)",
			       b->aor_uri, reason, rc == 1 ? "queue busy" : err);
		cv_info(COMP, "session end: %s %s (%s)", b->aor_uri, b->contact, reason);
	}
	b->state = CHAT_B_ENDED;
	list_unlink(&b->le_aor);
	list_unlink(&b->le_all);
	b->aor = NULL;
	if (s->nsessions)
		s->nsessions--;
	cv_metrics_set(s->metrics, CHAT_M_SESSIONS, NULL, (double)s->nsessions);
	if (a && !a->pinned && list_isempty(&a->bindings))
		mem_deref(a);
	mem_deref(b);    /* the tables' reference */
}

bool chat_reg_reachable(const struct chat_srv *s, const struct chat_binding *b)
{
	if (!b->mobile)
		return true;
	return chat_now_ms() - b->refreshed_ms < (uint64_t)s->cfg->im.idle_timeout_s * 1000;
}

bool chat_reg_flow_ok(struct chat_srv *s, const char *aor_uri, const struct sip_msg *msg)
{
	struct chat_aor *a = chat_reg_find(s, aor_uri);

	if (!a)
		return false;
	for (struct le *le = a->bindings.head; le; le = le->next) {
		const struct chat_binding *b = le->data;

		if (b->state == CHAT_B_ACTIVE && b->tp == msg->tp && sa_cmp(&b->src, &msg->src, SA_ALL))
			return true;
	}
	return false;
}

void chat_reg_sweep(struct chat_srv *s)
{
	uint64_t now = chat_now_ms(), inact = (uint64_t)s->cfg->im.inactivity_timeout_s * 1000;
	struct le *le = s->sessions.head;

	while (le) {
		struct chat_binding *b = le->data;

		le = le->next;
		if (b->state != CHAT_B_ACTIVE)
			continue;
		if (now >= b->expires_ms)
			binding_end(s, b, "expired");
		else if (now - b->refreshed_ms >= inact)
			binding_end(s, b, "inactivity");
	}
}

void chat_reg_end_all(struct chat_srv *s, const char *reason)
{
	struct le *le = s->sessions.head;

	while (le) {
		struct chat_binding *b = le->data;

		le = le->next;
		binding_end(s, b, b->state == CHAT_B_ACTIVE ? reason : NULL);
	}
}

/* ---- replies ---------------------------------------------------------- */

/* Nonce time: wall clock (a nonce must mean the same after a restart's
 * secret change: it then fails its MAC, never its age), milliseconds. */
static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void challenge(struct chat_srv *s, const struct sip_msg *msg, bool stale)
{
	char nonce[CHAT_NONCE_LEN + 1];

	chat_nonce_make(s->secret, s->cfg->chat.realm, wall_ms(), rand_u64(), nonce);
	(void)sip_treplyf(NULL, NULL, s->sip, msg, false, 401, "Unauthorized",
			  "WWW-Authenticate: Digest realm=\"%s\", nonce=\"%s\", qop=\"auth\", "
			  "algorithm=MD5%s\r\nContent-Length: 0\r\n\r\n",
			  s->cfg->chat.realm, nonce, stale ? ", stale=true" : "");
}

/* 200 listing the AOR's bindings. */
static void reply_ok(struct chat_srv *s, struct sip_strans **st, const struct sip_msg *msg,
		     struct chat_aor *a)
{
	struct mbuf *mb = mbuf_alloc(512);
	uint64_t now = chat_now_ms();

	if (!mb) {
		chat_reply(s, st, msg, 500, "Server Internal Error", "out of memory");
		return;
	}
	for (struct le *le = a ? a->bindings.head : NULL; le; le = le->next) {
		const struct chat_binding *b = le->data;

		if (b->state == CHAT_B_ENDED)
			continue;
		(void)mbuf_printf(mb, "Contact: <%s>;expires=%llu\r\n", b->contact,
				  (unsigned long long)(b->expires_ms > now ? (b->expires_ms - now + 999) / 1000 : 0));
	}
	(void)sip_treplyf(st, NULL, s->sip, msg, false, 200, "OK", "%bContent-Length: 0\r\n\r\n",
			  mb->buf, mb->end);
	mem_deref(mb);
}

/* ---- authentication ---------------------------------------------------- */

static bool pl_eq_str(const struct pl *pl, const char *s)
{
	return pl->l == strlen(s) && memcmp(pl->p, s, pl->l) == 0;
}

/* 0 authenticated; otherwise answered (401/403) and -1. */
static int authenticate(struct chat_srv *s, const struct sip_msg *msg,
			const struct chat_user_rec *u, const char *aor)
{
	const struct sip_hdr *h = sip_msg_hdr(msg, SIP_HDR_AUTHORIZATION);
	struct httpauth_digest_resp r;
	char user[CHAT_USER_MAX + 1];
	enum chat_nonce_check nc;

	if (!h) {
		challenge(s, msg, false);
		return -1;
	}
	if (httpauth_digest_response_decode(&r, &h->val) != 0) {
		chat_reply(s, NULL, msg, 400, "Bad Authorization Header",
			   "Authorization header not a digest response");
		return -1;
	}
	nc = chat_nonce_check(s->secret, s->cfg->chat.realm, r.nonce.p, r.nonce.l,
			      wall_ms());
	if (nc != CHAT_NONCE_OK) {
		challenge(s, msg, nc == CHAT_NONCE_STALE);
		return -1;
	}
	if (chat_uri_user(aor, user, sizeof(user)) != 0 || !pl_eq_str(&r.username, user) ||
	    !pl_eq_str(&r.realm, s->cfg->chat.realm)) {
		chat_reply(s, NULL, msg, 403, "Bad Credentials",
			   "digest username or realm does not match");
		return -1;
	}
	{
		struct chat_str m = { msg->met.p, msg->met.l }, uri = { r.uri.p, r.uri.l },
				n = { r.nonce.p, r.nonce.l }, ncnt = { r.nc.p, r.nc.l },
				cn = { r.cnonce.p, r.cnonce.l }, q = { r.qop.p, r.qop.l },
				resp = { r.response.p, r.response.l };

		if (!chat_digest_ok(u->ha1, m, uri, n, ncnt, cn, q, resp)) {
			chat_reply(s, NULL, msg, 403, "Bad Credentials",
				   "digest response wrong (password)");
			return -1;
		}
		switch (chat_nc_accept(&s->nc, r.nonce.p, r.nonce.l, ncnt, wall_ms())) {
		case CHAT_NC_OK:
			break;
		case CHAT_NC_REPLAY:   /* a replay cannot answer a fresh nonce; a client can */
			chat_log_refusal(s, msg, 401, "nonce count not above the last one (replay?)");
			challenge(s, msg, true);
			return -1;
		default:
			chat_reply(s, NULL, msg, 400, "Bad Authorization Header",
				   "nonce count malformed");
			return -1;
		}
	}
	return 0;
}

int chat_reg_authorize(struct chat_srv *s, const struct sip_msg *msg, const char *aor, bool need_im)
{
	const struct chat_user_rec *u;

	if (chat_reg_flow_ok(s, aor, msg))
		return 0;
	u = pl_strcasecmp(&msg->from.uri.host, s->cfg->chat.domain) == 0
		    ? chat_users_find(s->users, aor) : NULL;
	if (!u) {
		chat_reply(s, NULL, msg, 403, "Not Registered", "sender not a user of chat.domain");
		return -1;
	}
	if (authenticate(s, msg, u, aor) != 0)
		return -1;
	if (u->disabled || (need_im && !u->im_enabled)) {
		chat_reply(s, NULL, msg, 403, u->disabled ? "User Disabled" : "IM Not Enabled",
		      u->disabled ? "user disabled" : "instant messaging not enabled for the user");
		return -1;
	}
	return 0;
}

/* ---- REGISTER ----------------------------------------------------------- */

static void reg_wait_destructor(void *arg)
{
	struct reg_wait *w = arg;

	for (size_t i = 0; i < w->nb; i++)
		mem_deref(w->b[i]);
	mem_deref(w->st);
	mem_deref(w->msg);
}

static void start_durable(int status, const char *id, void *arg)
{
	struct reg_wait *w = arg;
	struct chat_srv *s = w->s;

	(void)id;
	if (status != 0)
		w->failed = true;
	if (--w->outstanding > 0)
		return;
	for (size_t i = 0; i < w->nb; i++) {
		struct chat_binding *b = w->b[i];

		if (b->state != CHAT_B_STARTING)
			continue;
		if (w->failed) {
			binding_end(s, b, NULL);
		} else {
			b->state = CHAT_B_ACTIVE;
			cv_info(COMP, "session start: %s %s%s", b->aor_uri, b->contact,
				b->mobile ? " (mobile)" : "");
		}
	}
	if (w->failed) {
		if (w->busy)
			cv_metrics_add(s->metrics, CHAT_M_PRODUCER_BUSY, NULL, 1);
		chat_reply_retry(s, &w->st, w->msg, "Service Unavailable", RETRY_AFTER_QUEUE,
			    "session start event not durable");
	} else if (w->nb && w->b[0]->aor) {
		reply_ok(s, &w->st, w->msg, w->b[0]->aor);
	} else {
		chat_reply_retry(s, &w->st, w->msg, "Service Unavailable", RETRY_AFTER_QUEUE,
			    "server shutting down");
	}
	mem_deref(w);   /* the producer wait's reference */
}

static size_t count_idle(struct chat_srv *s, uint64_t now)
{
	uint64_t idle = (uint64_t)s->cfg->im.idle_timeout_s * 1000;
	size_t n = 0;

	for (struct le *le = s->sessions.head; le; le = le->next) {
		const struct chat_binding *b = le->data;

		if (b->state == CHAT_B_ACTIVE && now - b->refreshed_ms >= idle)
			n++;
	}
	return n;
}

/* Log out the `n` longest-idle sessions. */
static void evict_idle(struct chat_srv *s, size_t n, uint64_t now)
{
	uint64_t idle = (uint64_t)s->cfg->im.idle_timeout_s * 1000;

	while (n--) {
		struct chat_binding *oldest = NULL;

		for (struct le *le = s->sessions.head; le; le = le->next) {
			struct chat_binding *b = le->data;

			if (b->state == CHAT_B_ACTIVE && now - b->refreshed_ms >= idle &&
			    (!oldest || b->refreshed_ms < oldest->refreshed_ms))
				oldest = b;
		}
		if (!oldest)
			return;
		binding_end(s, oldest, "idle");
	}
}

struct contact_req {
	struct sip_addr addr;
	uint32_t expires;
	bool mobile;
	char *uri;              /* mem string */
};

struct contact_scan {
	struct contact_req c[MAX_CONTACTS];
	size_t n;
	bool star, bad, too_many;
	uint32_t dflt;
};

static bool contact_h(const struct sip_hdr *hdr, const struct sip_msg *msg, void *arg)
{
	struct contact_scan *cs = arg;
	struct contact_req *c;
	struct pl ex;

	(void)msg;
	if (pl_strcmp(&hdr->val, "*") == 0) {
		cs->star = true;
		return false;
	}
	if (cs->n >= MAX_CONTACTS) {
		cs->too_many = true;
		return true;
	}
	c = &cs->c[cs->n];
	if (sip_addr_decode(&c->addr, &hdr->val) != 0 || c->addr.auri.l == 0 || c->addr.auri.l > 512) {
		cs->bad = true;
		return true;
	}
	c->expires = cs->dflt;
	if (msg_param_decode(&c->addr.params, "expires", &ex) == 0)
		c->expires = pl_u32(&ex);
	c->mobile = chat_contact_is_mobile(c->addr.params.p, c->addr.params.l);
	if (pl_strdup(&c->uri, &c->addr.auri) != 0) {
		cs->bad = true;
		return true;
	}
	cs->n++;
	return false;
}

static struct chat_binding *find_binding(struct chat_aor *a, const char *contact)
{
	for (struct le *le = a ? a->bindings.head : NULL; le; le = le->next) {
		struct chat_binding *b = le->data;

		if (b->state != CHAT_B_ENDED && strcmp(b->contact, contact) == 0)
			return b;
	}
	return NULL;
}

static size_t binding_count(const struct chat_aor *a)
{
	return a ? list_count(&a->bindings) : 0;
}

static void do_register(struct chat_srv *s, const struct sip_msg *msg, const char *aor_uri)
{
	const struct cfg_chat *cc = &s->cfg->chat;
	struct contact_scan cs = { .dflt = (uint32_t)cc->registration_max_expires };
	struct reg_wait *w = NULL;
	struct chat_aor *a = NULL;
	uint64_t now = chat_now_ms();
	size_t nnew = 0;

	if (pl_isset(&msg->expires))
		cs.dflt = pl_u32(&msg->expires);
	(void)sip_msg_hdr_apply(msg, true, SIP_HDR_CONTACT, contact_h, &cs);
	if (cs.bad || cs.too_many) {
		chat_reply(s, NULL, msg, 400, cs.bad ? "Bad Contact" : "Too Many Contacts",
		      cs.bad ? "Contact header not understood" : "more than 16 Contact values");
		goto out;
	}
	a = aor_get(s, aor_uri);
	if (!a) {
		chat_reply(s, NULL, msg, 500, "Server Internal Error", "out of memory");
		goto out;
	}
	a->pinned = true;   /* kept while we work on it, even when emptied */
	if (cs.star) {
		/* "Contact: *" with Expires: 0 — sign out everywhere */
		if (cs.n || !pl_isset(&msg->expires) || pl_u32(&msg->expires) != 0) {
			chat_reply(s, NULL, msg, 400, "Bad Request",
				   "Contact: * needs Expires: 0 and no other contact");
			goto out;
		}
		while (a->bindings.head)
			binding_end(s, a->bindings.head->data, "logout");
		reply_ok(s, NULL, msg, NULL);
		goto out;
	}
	/* validate everything before changing anything */
	for (size_t i = 0; i < cs.n; i++) {
		if (cs.c[i].expires && cs.c[i].expires < (uint32_t)cc->registration_min_expires) {
			chat_log_refusal(s, msg, 423, "expires below chat.registration_min_expires");
			(void)sip_treplyf(NULL, NULL, s->sip, msg, false, 423, "Interval Too Brief",
					  "Min-Expires: %d\r\nContent-Length: 0\r\n\r\n",
					  cc->registration_min_expires);
			goto out;
		}
		if (cs.c[i].expires && !find_binding(a, cs.c[i].uri))
			nnew++;
	}
	if (nnew && binding_count(a) + nnew > (size_t)cc->max_registrations_per_user) {
		chat_reply(s, NULL, msg, 403, "Too Many Registrations",
			   "chat.max_registrations_per_user reached");
		goto out;
	}
	if (nnew) {
		size_t evict = 0;
		enum chat_admit d = chat_admit_decide(s->nsessions + nnew - 1,
						      (size_t)s->cfg->im.max_sessions,
						      (size_t)cc->max_connections,
						      count_idle(s, now), &evict);

		if (d == CHAT_BUSY) {
			s->stats_busy++;
			chat_reply_retry(s, NULL, msg, "Server Busy", RETRY_AFTER_BUSY,
					 "im.max_sessions reached, no idle session");
			goto out;
		}
		if (d == CHAT_FAILED) {
			chat_reply_retry(s, NULL, msg, "Failed", RETRY_AFTER_BUSY,
					 "server capacity (chat.max_connections) exhausted");
			goto out;
		}
		if (d == CHAT_ADMIT_EVICT)
			evict_idle(s, evict, now);
		w = mem_zalloc(sizeof(*w), reg_wait_destructor);
		if (!w) {
			chat_reply(s, NULL, msg, 500, "Server Internal Error", "out of memory");
			goto out;
		}
		w->s = s;
		w->msg = mem_ref((void *)msg);
		if (sip_strans_alloc(&w->st, s->sip, msg, NULL, NULL) != 0) {
			chat_reply(s, NULL, msg, 500, "Server Internal Error",
				   "no server transaction");
			goto out;
		}
	}
	for (size_t i = 0; i < cs.n; i++) {
		struct contact_req *c = &cs.c[i];
		struct chat_binding *b = find_binding(a, c->uri);
		uint32_t ex = c->expires > (uint32_t)cc->registration_max_expires
				      ? (uint32_t)cc->registration_max_expires : c->expires;

		if (!ex) {
			if (b)
				binding_end(s, b, "logout");
			continue;
		}
		if (b) {
			b->refreshed_ms = now;
			b->expires_ms = now + (uint64_t)ex * 1000;
			b->mobile = c->mobile;
			b->src = msg->src;
			b->tp = msg->tp;
			continue;
		}
		b = mem_zalloc(sizeof(*b), binding_destructor);
		if (!b || str_dup(&b->contact, c->uri) != 0) {
			mem_deref(b);
			w->failed = true;
			continue;
		}
		snprintf(b->aor_uri, sizeof(b->aor_uri), "%s", aor_uri);
		b->aor = a;
		b->mobile = c->mobile;
		b->state = CHAT_B_STARTING;
		b->refreshed_ms = now;
		b->expires_ms = now + (uint64_t)ex * 1000;
		b->src = msg->src;
		b->tp = msg->tp;
		list_append(&a->bindings, &b->le_aor, b);
		list_append(&s->sessions, &b->le_all, b);
		s->nsessions++;
		cv_metrics_set(s->metrics, CHAT_M_SESSIONS, NULL, (double)s->nsessions);
		w->b[w->nb++] = mem_ref(b);
	}
	if (!w) {
		reply_ok(s, NULL, msg, a);
		goto out;
	}
	/* one start event per new session; the reply waits for all of them */
	for (size_t i = 0; i < w->nb; i++) {
		char err[ING_EVENT_ERRLEN];
		int rc = chat_emit(s, ING_EV_IM_SESSION_START, aor_uri, s->server_uri, NULL,
				   start_durable, w, err, sizeof(err));

		if (rc == 0) {
			w->outstanding++;
			mem_ref(w);
		} else {
			w->failed = true;
			w->busy = w->busy || rc == 1;
			if (rc != 1)
				cv_err(COMP, "session start of %s: %s", aor_uri, err);
		}
	}
	if (w->outstanding == 0) {
		w->outstanding = 1;
		mem_ref(w);
		start_durable(-EBUSY, NULL, w);
	}
out:
	for (size_t i = 0; i < cs.n; i++)
		mem_deref(cs.c[i].uri);
	if (a) {
		a->pinned = false;
		if (list_isempty(&a->bindings))
			mem_deref(a);
	}
	mem_deref(w);
}

bool chat_reg_handle(struct chat_srv *s, const struct sip_msg *msg)
{
	const struct chat_user_rec *u;
	char aor[CHAT_URI_MAX];

	if (chat_aor_of(&msg->to.uri, aor, sizeof(aor)) != 0 ||
	    pl_strcasecmp(&msg->to.uri.host, s->cfg->chat.domain) != 0) {
		chat_reply(s, NULL, msg, 404, "Not Found", "To is not a user of chat.domain");
		return true;
	}
	u = chat_users_find(s->users, aor);
	if (!u) {
		chat_reply(s, NULL, msg, 404, "Not Found", "unknown user");
		return true;
	}
	if (authenticate(s, msg, u, aor) != 0)
		return true;
	if (u->disabled) {
		chat_reply(s, NULL, msg, 403, "User Disabled", "user disabled");
		return true;
	}
	if (!u->im_enabled) {
		chat_reply(s, NULL, msg, 403, "IM Not Enabled",
			   "instant messaging not enabled for the user");
		return true;
	}
	do_register(s, msg, aor);
	return true;
}

/*
 * chat_chan_cmd — the XCCOS commands of the Lookup and Channel services
 * (docs/PCHAT.md "Commands"); transport and sessions are chat_chan.c's.
 *
 * Each command is one store job (chat_chan_db.c), so one session's
 * commands are worked on in arrival order; its done() runs on the loop and
 * answers, or first emits the compliance event and answers when the event
 * is durable:
 *
 *   join/bjoin  access → chat.join per room → JOINED, ntc:join|bjoin, rpl
 *   part        chat.part → left, ntc:part, rpl
 *   bccontext   access + history → chat.backchat → rpl with the messages
 *   grpchat     413 / 403 checks → chat.post → history append (a second
 *               job) → grpchat to every other JOINED session, rpl 200
 *
 * An event the producer refuses (BUSY) answers resp 503 and changes
 * nothing; a join's session may post while its chat.join is in flight
 * (JOINING: the join precedes the post in the queue) but gets no fan-out
 * until it is durable.  Loop thread only.
 */
#include "chat_chan_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_chan_rules.h"
#include "cv_log.h"
#include "producer.h"

#define COMP "pchat"
#define HISTORY_DEFAULT 25
#define HISTORY_MAX 500

/* A command waiting for compliance events: holds the job (kept). */
struct cmd_wait {
	struct chan_job *j;
	struct chan_sess *cs;      /* ref */
	size_t outstanding;
	bool *ok;                  /* per room (join/bjoin): event durable */
};

static void wait_destructor(void *arg)
{
	struct cmd_wait *w = arg;

	chan_job_release(w->j);
	free(w->ok);
}

void chan_job_release(struct chan_job *j)
{
	if (!j)
		return;
	mem_deref(j->owner);
	chan_job_free(j);
}

/* Keep j beyond done(): the wait owns it now. */
static struct cmd_wait *wait_new(struct chan_job *j)
{
	struct cmd_wait *w = mem_zalloc(sizeof(*w), wait_destructor);

	if (!w)
		return NULL;
	w->j = j;
	w->cs = j->owner;        /* the job's reference, released with it */
	j->kept = true;
	return w;
}

static struct chan_sess *live(struct chan_job *j)
{
	struct chan_sess *cs = j->owner;

	return cs && !cs->closed ? cs : NULL;
}

static void reply_err(struct chan_sess *cs, struct chan_job *j, int code)
{
	if (code != 200)
		cv_info(COMP, "%s %s: %d%s%s", cs->user, j->cmd.id ? j->cmd.id : "?", code,
			j->err[0] ? ": " : "", j->err);
	chan_reply(cs, &j->cmd, code, NULL, NULL);
}

/* The session of a finished job when it is still live and the job
 * succeeded; a failed job is answered with its code here.  NULL: nothing
 * more to do. */
static struct chan_sess *live_ok(struct chan_job *j)
{
	struct chan_sess *cs = live(j);

	if (cs && j->code != 200) {
		reply_err(cs, j, j->code);
		return NULL;
	}
	return cs;
}

/* ---- commands without events ------------------------------------------- */

static int data_uib(struct cv_buf *b, void *arg)
{
	return chat_xccos_put_uib(b, arg);
}

static void done_requri(struct chan_job *j)
{
	struct chan_sess *cs = live(j);
	const struct cfg_chat *cc;
	size_t i;

	if (!cs)
		return;
	cc = &cs->c->cfg->chat;
	i = chat_chan_least_loaded(cs->c->load, cc->nchannel_uris);
	cv_info(COMP, "requri from %s: %s (%zu sessions)", cs->user, cc->channel_uris[i],
		cs->c->load[i]);
	chan_reply(cs, &j->cmd, 200, data_uib, cc->channel_uris[i]);
}

static int data_sib(struct cv_buf *b, void *arg)
{
	struct chan_sess *cs = arg;
	const struct cfg_chat *cc = &cs->c->cfg->chat;
	char now[32];
	struct chat_xccos_sib sib = {
		.server_time = now, .search_limit = cc->search_limit,
		.message_size_limit = cc->message_size_limit,
		.story_size_limit = cc->story_size_limit, .root_uri = cs->c->root_uri,
	};

	chan_now_iso(now);
	return chat_xccos_put_sib(b, &sib);
}

static void done_serverinfo(struct chan_job *j)
{
	struct chan_sess *cs = live(j);

	if (cs)
		chan_reply(cs, &j->cmd, 200, data_sib, cs);
}

static int data_prefs(struct cv_buf *b, void *arg)
{
	struct chan_job *j = arg;
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < j->cmd.nprefs; i++)
		rc = chat_xccos_put_pref(b, j->cmd.prefs[i].label, j->pref_seq[i],
					 j->op == CHAN_OP_GETPREF ? j->pref_content[i] : NULL);
	return rc;
}

static void done_prefs(struct chan_job *j)
{
	struct chan_sess *cs = live(j);

	if (cs)
		chan_reply(cs, &j->cmd, j->code, data_prefs, j);
}

static int put_room(struct cv_buf *b, struct chat_chan *c, const struct chat_room *r)
{
	struct chat_xccos_room xr = {
		.uri = r->uri, .name = r->name, .description = r->description, .topic = r->topic,
		.ucnt = (int64_t)chan_room_count(c, r->uri), .is_private = r->is_private,
		.logged = r->logged,
	};

	return chat_xccos_put_chanib(b, &xr);
}

static int data_rooms(struct cv_buf *b, void *arg)
{
	struct chan_job *j = arg;
	struct chat_chan *c = ((struct chan_sess *)j->owner)->c;
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < j->nlist; i++)
		rc = put_room(b, c, &j->list[i]);
	return rc;
}

static void done_list(struct chan_job *j)
{
	struct chan_sess *cs = live_ok(j);

	if (!cs)
		return;
	chan_reply(cs, &j->cmd, 200, data_rooms, j);
}

static int data_invites(struct cv_buf *b, void *arg)
{
	struct chan_job *j = arg;
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < j->nlist; i++)
		rc = chat_xccos_put_inv(b, j->list[i].uri, NULL, j->list[i].created);
	return rc;
}

static void done_invites(struct chan_job *j)
{
	struct chan_sess *cs = live_ok(j);

	if (cs)
		chan_reply(cs, &j->cmd, 200, data_invites, j);
}

/* Percent-encode a path segment (RFC 3986 unreserved kept). */
static int put_segment(struct cv_buf *b, const char *s)
{
	int rc = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p && rc == 0; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '.' || *p == '_' || *p == '~')
			rc = cv_buf_append(b, p, 1);
		else
			rc = cv_buf_printf(b, "%%%02X", *p);
	}
	return rc;
}

static int data_token(struct cv_buf *b, void *arg)
{
	struct chan_job *j = arg;
	struct chat_chan *c = ((struct chan_sess *)j->owner)->c;
	struct cv_buf url = { 0 };
	int rc;

	if ((rc = cv_buf_printf(&url, "%s/", c->files_base)) != 0 ||
	    (rc = put_segment(&url, j->guid)) != 0 || (rc = cv_buf_append(&url, "/", 1)) != 0 ||
	    (rc = put_segment(&url, j->name)) != 0 || (rc = cv_buf_append(&url, "", 1)) != 0) {
		cv_buf_free(&url);
		return rc;
	}
	rc = chat_xccos_put_token(b, j->token, url.data);
	cv_buf_free(&url);
	return rc;
}

static void done_token(struct chan_job *j)
{
	struct chan_sess *cs = live_ok(j);

	if (!cs)
		return;
	cv_info(COMP, "%s token for %s in %s issued to %s", j->download ? "download" : "upload",
		j->name, j->room, cs->user);
	chan_reply(cs, &j->cmd, 200, data_token, j);
}

static void done_code(struct chan_job *j)
{
	struct chan_sess *cs = live(j);

	if (cs)
		reply_err(cs, j, j->code);
}

/* ---- join / bjoin --------------------------------------------------------- */

/* uib ids of the reply: participants of every joined room, numbered. */
static int data_joined(struct cv_buf *b, void *arg)
{
	struct cmd_wait *w = arg;
	struct chan_job *j = w->j;
	struct chat_chan *c = w->cs->c;
	int64_t id = 0;
	int rc = 0;

	/* pass 1: <uib id uri/> of each JOINED session's user, per room */
	for (size_t i = 0; rc == 0 && i < j->nrooms; i++) {
		struct chan_room *r = w->ok[i] ? chan_room_get(c, j->rooms[i].uri, false) : NULL;

		for (struct le *le = r ? r->joins.head : NULL; rc == 0 && le; le = le->next) {
			const struct chan_join *jn = le->data;

			if (jn->state == CHAN_J_JOINED)
				rc = chat_xccos_put_uib_id(b, id++, jn->cs->user);
		}
	}
	/* pass 2: each chanib with its aib lists (the same numbering) */
	id = 0;
	for (size_t i = 0; rc == 0 && i < j->nrooms; i++) {
		const struct chan_job_room *jr = &j->rooms[i];
		struct chan_room *r = w->ok[i] ? chan_room_get(c, jr->uri, false) : NULL;
		struct chat_xccos_room xr = {
			.uri = jr->room.uri, .name = jr->room.name, .description = jr->room.description,
			.topic = jr->room.topic, .ucnt = (int64_t)chan_room_count(c, jr->uri),
			.is_private = jr->room.is_private, .logged = jr->room.logged,
		};
		struct cv_buf users = { 0 }, ops = { 0 };

		if (!r)
			continue;
		for (struct le *le = r->joins.head; rc == 0 && le; le = le->next) {
			const struct chan_join *jn = le->data;
			struct cv_buf *l;

			if (jn->state != CHAN_J_JOINED)
				continue;
			l = jn->manager ? &ops : &users;
			rc = cv_buf_printf(l, "%s%lld", l->len ? "," : "", (long long)id++);
		}
		if (rc == 0 && (rc = chat_xccos_chanib_begin(b, &xr)) == 0 &&
		    (!users.len || (rc = cv_buf_append(&users, "", 1)) != 0 ||
		     (rc = chat_xccos_put_aib(b, CHAT_XCCOS_AIB_USER, NULL, users.data)) == 0) &&
		    (!ops.len || (rc = cv_buf_append(&ops, "", 1)) != 0 ||
		     (rc = chat_xccos_put_aib(b, CHAT_XCCOS_AIB_CHANOP, NULL, ops.data)) == 0))
			rc = chat_xccos_chanib_end(b);
		cv_buf_free(&users);
		cv_buf_free(&ops);
	}
	return rc;
}

/* ntc:join|bjoin about cs in room jr to every other JOINED session. */
static void notice_join(struct chan_sess *cs, const struct chan_job_room *jr, bool manager,
			const char *name)
{
	struct chan_room *r = chan_room_get(cs->c, jr->uri, false);

	for (struct le *le = r ? r->joins.head : NULL; le; le = le->next) {
		struct chan_join *o = le->data;
		struct cv_buf b = { 0 };

		if (o->cs == cs || o->state != CHAN_J_JOINED)
			continue;
		if (chat_xccos_env_begin(&b, o->cs->envid++) == 0 &&
		    chat_xccos_ntc_begin(&b, name, 1) == 0 && chat_xccos_uib_begin(&b, cs->user) == 0 &&
		    chat_xccos_put_aib(&b, manager ? CHAT_XCCOS_AIB_CHANOP : CHAT_XCCOS_AIB_USER,
				       jr->room.domain, jr->room.guid ? jr->room.guid : "") == 0 &&
		    chat_xccos_uib_end(&b) == 0 && chat_xccos_ntc_end(&b) == 0 &&
		    chat_xccos_env_end(&b) == 0)
			(void)chan_send(o->cs, &b);
		cv_buf_free(&b);
	}
}

static void join_finish(struct cmd_wait *w)
{
	struct chan_job *j = w->j;
	struct chan_sess *cs = w->cs;
	bool bjoin = j->cmd.cmd == CHAT_CMD_BJOIN, any = false;
	int first = 0;

	if (cs->closed)
		return;
	for (size_t i = 0; i < j->nrooms; i++) {
		struct chan_join *jn = j->rooms[i].code == 200 ? chan_join_find(cs, j->rooms[i].uri)
							       : NULL;

		if (!w->ok[i] || !jn) {
			w->ok[i] = false;
			if (jn && jn->state == CHAN_J_JOINING)
				chan_leave(jn, "join failed", false);
			if (!first)
				first = j->rooms[i].code == 200 ? 503 : j->rooms[i].code;
			continue;
		}
		any = true;
		if (jn->state == CHAN_J_JOINING) {
			jn->state = CHAN_J_JOINED;
			cv_info(COMP, "%s joined %s", cs->user, jn->r->uri);
			notice_join(cs, &j->rooms[i], jn->manager, bjoin ? "bjoin" : "join");
		}
	}
	if (!any) {
		reply_err(cs, j, first ? first : 400);
		return;
	}
	chan_reply(cs, &j->cmd, 200, data_joined, w);
}

/* Drop one hold on w (a reference): an event's (ok[] set by slot_durable)
 * or the emitting's; the last one answers. */
static void join_put(struct cmd_wait *w)
{
	if (--w->outstanding == 0)
		join_finish(w);
	mem_deref(w);
}

/* Per-room durability: each event's callback gets its own slot. */
struct join_slot {
	struct cmd_wait *w;        /* ref */
	size_t i;
};

static void slot_destructor(void *arg)
{
	struct join_slot *sl = arg;

	mem_deref(sl->w);
}

static void slot_durable(int status, const char *id, void *arg)
{
	struct join_slot *sl = arg;
	struct cmd_wait *w = mem_ref(sl->w);

	(void)id;
	sl->w->ok[sl->i] = status == 0;
	mem_deref(sl);
	join_put(w);
}

static bool is_manager(const struct chan_job_room *jr, const char *user)
{
	for (size_t k = 0; k < jr->nmembers; k++)
		if (!strcmp(jr->members[k].role, "manager") && !strcmp(jr->members[k].user, user))
			return true;
	return false;
}

static void done_join(struct chan_job *j)
{
	struct chan_sess *cs = live_ok(j);
	struct cmd_wait *w;

	if (!cs)
		return;
	if (!(w = wait_new(j)) || !(w->ok = calloc(j->nrooms ? j->nrooms : 1, sizeof(*w->ok)))) {
		if (w)
			mem_deref(w);    /* releases j */
		else
			chan_reply(cs, &j->cmd, 500, NULL, NULL);
		return;
	}
	w->outstanding = 1;      /* held until every event is emitted */
	for (size_t i = 0; i < j->nrooms; i++) {
		struct chan_job_room *jr = &j->rooms[i];
		struct chan_join *jn;
		struct chan_room *r;
		struct join_slot *sl;

		if (jr->code != 200)
			continue;
		if ((jn = chan_join_find(cs, jr->uri))) {
			w->ok[i] = true;        /* already in: no second event */
			continue;
		}
		r = chan_room_get(cs->c, jr->uri, true);
		jn = r ? mem_zalloc(sizeof(*jn), NULL) : NULL;
		sl = jn ? mem_zalloc(sizeof(*sl), slot_destructor) : NULL;
		if (!sl) {
			mem_deref(jn);
			if (r && !r->joins.head)
				mem_deref(r);
			continue;
		}
		jn->cs = cs;
		jn->r = r;
		jn->state = CHAN_J_JOINING;
		jn->manager = is_manager(jr, cs->user);
		list_append(&cs->joins, &jn->le_s, jn);
		list_append(&r->joins, &jn->le_r, jn);
		sl->w = mem_ref(w);
		sl->i = i;
		w->outstanding++;
		if (chan_emit(cs->c, ING_EV_CHAT_JOIN, jr->uri, cs->user, NULL, slot_durable, sl) !=
		    ING_EMIT_OK) {
			w->outstanding--;
			mem_deref(sl);
			chan_leave(jn, "join refused", false);
			jr->code = 503;
		}
	}
	join_put(mem_ref(w));   /* drop the emit hold */
	mem_deref(w);
}

/* ---- part ---------------------------------------------------------------- */

static int data_part(struct cv_buf *b, void *arg)
{
	int rc = chat_xccos_chanib_begin_uri(b, arg);

	return rc ? rc : chat_xccos_chanib_end(b);
}

static void part_durable(int status, const char *id, void *arg)
{
	struct cmd_wait *w = arg;
	struct chan_job *j = w->j;
	struct chan_join *jn;

	(void)id;
	if (!w->cs->closed) {
		if (status != 0) {
			reply_err(w->cs, j, 503);
		} else {
			if ((jn = chan_join_find(w->cs, j->cmd.chanib.uri)))
				chan_leave(jn, "part", false);
			chan_reply(w->cs, &j->cmd, 200, data_part, j->cmd.chanib.uri);
		}
	}
	mem_deref(w);
}

static void done_part(struct chan_job *j)
{
	struct chan_sess *cs = live(j);
	struct cmd_wait *w;

	if (!cs)
		return;
	if (!chan_join_find(cs, j->cmd.chanib.uri)) {
		snprintf(j->err, sizeof(j->err), "not in %s", j->cmd.chanib.uri);
		reply_err(cs, j, 404);
		return;
	}
	if (!(w = wait_new(j))) {
		reply_err(cs, j, 500);
		return;
	}
	if (chan_emit(cs->c, ING_EV_CHAT_PART, j->cmd.chanib.uri, cs->user, "part", part_durable,
		      w) != ING_EMIT_OK) {
		reply_err(cs, j, 503);
		mem_deref(w);
	}
}

/* ---- bccontext --------------------------------------------------------- */

static int data_history(struct cv_buf *b, void *arg)
{
	struct chan_job *j = arg;
	int rc = chat_xccos_chanib_begin_uri(b, j->room);

	for (size_t i = 0; rc == 0 && i < j->nhist; i++) {
		struct chat_xccos_chat ch = {
			.chan_uri = j->room, .author = j->hist[i].author, .ts = j->hist[i].ts,
			.msgid = j->hist[i].id, .text = j->hist[i].text,
		};

		rc = chat_xccos_put_msg(b, &ch);
	}
	return rc ? rc : chat_xccos_chanib_end(b);
}

static void backchat_durable(int status, const char *id, void *arg)
{
	struct cmd_wait *w = arg;

	(void)id;
	if (!w->cs->closed) {
		if (status != 0)
			reply_err(w->cs, w->j, 503);
		else
			chan_reply(w->cs, &w->j->cmd, 200, data_history, w->j);
	}
	mem_deref(w);
}

static void done_history(struct chan_job *j)
{
	struct chan_sess *cs = live_ok(j);
	struct cmd_wait *w;

	if (!cs)
		return;
	if (!(w = wait_new(j))) {
		reply_err(cs, j, 500);
		return;
	}
	if (chan_emit(cs->c, ING_EV_CHAT_BACKCHAT, j->room, cs->user, NULL, backchat_durable, w) !=
	    ING_EMIT_OK) {
		reply_err(cs, j, 503);
		mem_deref(w);
	}
}

/* ---- grpchat --------------------------------------------------------------- */

/* The post is durable and (normally) in the history: fan out, then 200. */
static void done_append(struct chan_job *j)
{
	struct chan_sess *cs = j->owner;
	struct chan_room *r = chan_room_get(cs->c, j->room, false);
	char ts[32];
	struct chat_xccos_chat ch = {
		.chan_uri = j->room, .author = cs->user, .ts = ts,
		.msgid = j->code == 200 && j->msgid > 0 ? j->msgid : -1, .text = j->text,
	};

	if (j->code != 200)
		cv_err(COMP, "post by %s in %s is archived but not in the history: %s", cs->user,
		       j->room, j->err);
	chan_now_iso(ts);
	cv_metrics_add(cs->c->s->metrics, CHAT_M_MESSAGES, "post", 1);
	for (struct le *le = r ? r->joins.head : NULL; le; le = le->next) {
		struct chan_join *o = le->data;
		struct cv_buf b = { 0 };

		if (o->cs == cs || o->state != CHAN_J_JOINED)
			continue;
		if (chat_xccos_env_begin(&b, o->cs->envid++) == 0 &&
		    chat_xccos_put_grpchat(&b, 1, &ch) == 0 && chat_xccos_env_end(&b) == 0)
			(void)chan_send(o->cs, &b);
		cv_buf_free(&b);
	}
	if (!cs->closed)
		chan_reply(cs, &j->cmd, 200, NULL, NULL);
}

static void post_durable(int status, const char *id, void *arg)
{
	struct cmd_wait *w = arg;
	struct chan_job *j = w->j;
	struct chan_job *a;

	(void)id;
	if (status != 0) {
		if (!w->cs->closed)
			reply_err(w->cs, j, 503);
		mem_deref(w);
		return;
	}
	/* the history append is a second job: move the command over */
	a = chan_job_new(CHAN_OP_APPEND);
	if (a) {
		a->cmd = j->cmd;
		memset(&j->cmd, 0, sizeof(j->cmd));
		a->owner = mem_ref(w->cs);
		a->done = done_append;
		snprintf(a->user, sizeof(a->user), "%s", j->user);
		snprintf(a->room, sizeof(a->room), "%s", j->room);
		a->text = a->cmd.grpchat.text;
		a->cmd.grpchat.text = NULL;
		if (chat_chan_db_submit(w->cs->c->db, a) != 0) {
			a->code = 503;
			snprintf(a->err, sizeof(a->err), "store queue full");
			done_append(a);
			chan_job_release(a);
		}
	} else if (!w->cs->closed) {
		reply_err(w->cs, j, 500);
	}
	mem_deref(w);
}

static void done_post(struct chan_job *j)
{
	struct chan_sess *cs = live(j);
	const struct cfg_chat *cc;
	struct chan_join *jn;
	struct cmd_wait *w;
	int code, rc;

	if (!cs)
		return;
	cc = &cs->c->cfg->chat;
	jn = chan_join_find(cs, j->room);
	code = chat_chan_post_check(strlen(j->cmd.grpchat.text), false, cc->message_size_limit,
				    cc->story_size_limit, jn != NULL);
	if (code != 200) {
		snprintf(j->err, sizeof(j->err), "%s", code == 413 ? "post over messageSizeLimit"
								  : "not joined to the room");
		reply_err(cs, j, code);
		return;
	}
	if (!(w = wait_new(j))) {
		reply_err(cs, j, 500);
		return;
	}
	rc = chan_emit(cs->c, ING_EV_CHAT_POST, j->room, cs->user, j->cmd.grpchat.text,
		       post_durable, w);
	if (rc != ING_EMIT_OK) {
		reply_err(cs, j, rc == ING_EMIT_INVALID ? 400 : 503);
		mem_deref(w);
	}
}

/* ---- intake -------------------------------------------------------------- */

int chan_cmd_submit(struct chan_sess *cs, struct chat_xccos_msg *m)
{
	const struct cfg_chat *cc = &cs->c->cfg->chat;
	struct chan_job *j = chan_job_new(CHAN_OP_PASS);
	const char *room = NULL;
	int rc;

	if (!j)
		return -ENOMEM;
	j->cmd = *m;
	memset(m, 0, sizeof(*m));
	snprintf(j->user, sizeof(j->user), "%s", cs->user);
	switch (j->cmd.cmd) {
	case CHAT_CMD_REQURI: j->done = done_requri; break;
	case CHAT_CMD_GETSERVERINFO: j->done = done_serverinfo; break;
	case CHAT_CMD_GETPREF: j->op = CHAN_OP_GETPREF; j->done = done_prefs; break;
	case CHAT_CMD_SETPREF: j->op = CHAN_OP_SETPREF; j->done = done_prefs; break;
	case CHAT_CMD_GETASSOCIATIONS: j->op = CHAN_OP_ASSOC; j->done = done_list; break;
	case CHAT_CMD_CHANSRCH:
		j->done = done_list;
		if (!j->cmd.qib.qtype || strcmp(j->cmd.qib.qtype, "BYNAME") != 0) {
			j->code = 501;
			snprintf(j->err, sizeof(j->err), "qtype other than BYNAME");
			break;
		}
		j->op = CHAN_OP_SEARCH;
		j->limit = cc->search_limit;
		break;
	case CHAT_CMD_JOIN:
	case CHAT_CMD_BJOIN: j->op = CHAN_OP_ROOMS; j->done = done_join; break;
	case CHAT_CMD_PART: j->done = done_part; break;
	case CHAT_CMD_BCCONTEXT:
		j->op = CHAN_OP_HISTORY;
		j->done = done_history;
		room = j->cmd.chanib.uri;
		j->limit = j->cmd.bcq_last > 0 ? (int)(j->cmd.bcq_last < HISTORY_MAX ? j->cmd.bcq_last
										: HISTORY_MAX)
					       : HISTORY_DEFAULT;
		break;
	case CHAT_CMD_GETINV: j->op = CHAN_OP_INVITES; j->done = done_invites; break;
	case CHAT_CMD_GETFUTOK:
	case CHAT_CMD_GETFDTOK:
		j->op = CHAN_OP_TOKEN;
		j->done = done_token;
		j->download = j->cmd.cmd == CHAT_CMD_GETFDTOK;
		room = j->cmd.ftdb.channel_uri;
		break;
	case CHAT_CMD_GRPCHAT:
		j->done = done_post;
		room = j->cmd.grpchat.chan_uri;
		break;
	default:
		j->done = done_code;
		j->code = 501;
		break;
	}
	if (room && strlen(room) >= sizeof(j->room)) {
		j->op = CHAN_OP_PASS;
		j->done = done_code;
		j->code = 400;
		snprintf(j->err, sizeof(j->err), "room URI too long");
	} else if (room) {
		snprintf(j->room, sizeof(j->room), "%s", room);
	}
	if (j->code != 200 && j->done != done_code && j->done != done_list)
		j->done = done_code;
	if (j->code != 200)
		j->op = CHAN_OP_PASS;
	j->owner = mem_ref(cs);
	rc = chat_chan_db_submit(cs->c->db, j);
	if (rc) {
		*m = j->cmd;             /* give the command back for the error reply */
		memset(&j->cmd, 0, sizeof(j->cmd));
		chan_job_release(j);
	}
	return rc;
}

/*
 * chat_chan_db — the Channel service's store thread (contract in
 * chat_chan_db.h).
 *
 * Threads: chat_chan_db_start/submit/backlog/stop run on the SIP loop; the
 * worker runs run_job() on its own thread with its own PostgreSQL
 * connection (chat_rooms), and hands each finished job to the loop with
 * mqueue_push (libre's mqueue is a pipe plus a mutex: safe from any
 * thread).  The queue is a mutex-protected singly linked FIFO.
 */
#include "chat_chan_db.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <re.h>

#include "chat_chan_rules.h"
#include "cv_log.h"

#define COMP "pchat"
#define RECONNECT_S 2            /* per attempt: a dead database must not stall the queue */

struct chat_chan_db {
	const struct cfg *cfg;
	struct mqueue *mq;
	size_t cap;
	pthread_t thr;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct chan_job *head, *tail;
	size_t queued;                /* waiting + the one in hand */
	bool stop;
	struct chat_rooms *rooms;     /* the worker's */
};

struct chan_job *chan_job_new(enum chan_op op)
{
	struct chan_job *j = calloc(1, sizeof(*j));

	if (j) {
		j->op = op;
		j->code = 200;
	}
	return j;
}

void chan_job_free(struct chan_job *j)
{
	if (!j)
		return;
	chat_xccos_msg_clear(&j->cmd);
	free(j->text);
	for (size_t i = 0; i < j->nrooms; i++) {
		chat_room_free_fields(&j->rooms[i].room);
		chat_member_list_free(j->rooms[i].members, j->rooms[i].nmembers);
	}
	free(j->rooms);
	chat_room_list_free(j->list, j->nlist);
	chat_history_free(j->hist, j->nhist);
	for (size_t i = 0; j->pref_content && i < j->cmd.nprefs; i++)
		free(j->pref_content[i]);
	free(j->pref_content);
	free(j->pref_seq);
	free(j);
}

/* A store error as an XCCOS code: transient → 503 (the client retries). */
static int code_of(int rc)
{
	switch (rc) {
	case 0: return 200;
	case -ENOENT: return 404;
	case -EACCES: return 403;
	case -EINVAL: return 400;
	case -EAGAIN: return 503;
	default: return 500;
	}
}

static int ensure_open(struct chat_chan_db *d, char *err, size_t errlen)
{
	struct chat_rooms_opts o = {
		.cfg = d->cfg, .application = "chatvault-chatd-pchat", .retry_max_s = RECONNECT_S,
	};

	if (d->rooms)
		return 0;
	return chat_rooms_open(&o, &d->rooms, err, errlen);
}

/* chat_chan_access() with the facts read from the store; room filled when 200. */
static int access_room(struct chat_rooms *r, const char *user, const char *uri,
		       struct chat_room *room, char *err, size_t errlen)
{
	bool ok = false;      /* member, manager or invitee: the store answers all three */
	int rc = chat_room_get(r, uri, room, err, errlen);

	if (rc == -ENOENT)
		return 404;
	if (rc)
		return code_of(rc);
	if (room->is_private && (rc = chat_room_can_access(r, uri, user, &ok, err, errlen)) != 0) {
		chat_room_free_fields(room);
		return code_of(rc);
	}
	rc = chat_chan_access(true, room->is_private, ok, ok, ok);
	if (rc != 200) {
		snprintf(err, errlen, "%s may not enter %s", user, uri);
		chat_room_free_fields(room);
		memset(room, 0, sizeof(*room));
	}
	return rc;
}

static void op_rooms(struct chat_chan_db *d, struct chan_job *j)
{
	size_t n = j->cmd.nchanids;

	j->rooms = calloc(n ? n : 1, sizeof(*j->rooms));
	if (!j->rooms) {
		j->code = 500;
		return;
	}
	j->nrooms = n;
	for (size_t i = 0; i < n; i++) {
		struct chan_job_room *jr = &j->rooms[i];
		int rc;

		if (chat_xccos_chanid_uri(&j->cmd.chanids[i], jr->uri, sizeof(jr->uri)) != 0) {
			jr->code = 400;
			continue;
		}
		jr->code = access_room(d->rooms, j->user, jr->uri, &jr->room, j->err, sizeof(j->err));
		if (jr->code != 200)
			continue;
		rc = chat_room_member_list(d->rooms, jr->uri, &jr->members, &jr->nmembers, j->err,
					   sizeof(j->err));
		if (rc) {
			jr->code = code_of(rc);
			chat_room_free_fields(&jr->room);
			memset(&jr->room, 0, sizeof(jr->room));
		}
	}
}

static void op_prefs(struct chat_chan_db *d, struct chan_job *j, bool set)
{
	size_t n = j->cmd.nprefs;

	j->pref_seq = calloc(n ? n : 1, sizeof(*j->pref_seq));
	j->pref_content = calloc(n ? n : 1, sizeof(*j->pref_content));
	if (!j->pref_seq || !j->pref_content) {
		j->code = 500;
		return;
	}
	for (size_t i = 0; i < n && j->code == 200; i++) {
		const struct chat_xccos_pref *p = &j->cmd.prefs[i];
		int rc = set ? chat_pref_set(d->rooms, j->user, p->label, p->content, &j->pref_seq[i],
					     j->err, sizeof(j->err))
			     : chat_pref_get(d->rooms, j->user, p->label, &j->pref_seq[i],
					     &j->pref_content[i], j->err, sizeof(j->err));

		j->code = code_of(rc);
	}
}

static void op_token(struct chat_chan_db *d, struct chan_job *j)
{
	struct chat_room room;
	int rc;

	memset(&room, 0, sizeof(room));
	if (chat_chan_file_name(j->cmd.ftdb.file_url, j->name, sizeof(j->name)) != 0) {
		snprintf(j->err, sizeof(j->err), "fileUrl has no usable file name");
		j->code = 400;
		return;
	}
	j->code = access_room(d->rooms, j->user, j->room, &room, j->err, sizeof(j->err));
	if (j->code != 200)
		return;
	snprintf(j->guid, sizeof(j->guid), "%s", room.guid ? room.guid : "");
	chat_room_free_fields(&room);
	rc = chat_token_issue(d->rooms, j->download ? CHAT_TOKEN_DOWNLOAD : CHAT_TOKEN_UPLOAD,
			      j->user, j->room, j->name, j->token, j->err, sizeof(j->err));
	j->code = code_of(rc);
}

static void run_job(struct chat_chan_db *d, struct chan_job *j)
{
	struct chat_room room;
	int rc = 0;

	if (j->op == CHAN_OP_PASS)
		return;
	if (ensure_open(d, j->err, sizeof(j->err)) != 0) {
		j->code = 503;
		return;
	}
	memset(&room, 0, sizeof(room));
	switch (j->op) {
	case CHAN_OP_ASSOC:
		rc = chat_rooms_associations(d->rooms, j->user, &j->list, &j->nlist, j->err,
					     sizeof(j->err));
		break;
	case CHAN_OP_SEARCH:
		rc = chat_room_search(d->rooms, j->cmd.qib.criteria ? j->cmd.qib.criteria : "",
				      j->user, j->limit, &j->list, &j->nlist, j->err, sizeof(j->err));
		break;
	case CHAN_OP_ROOMS:
		op_rooms(d, j);
		return;
	case CHAN_OP_HISTORY:
		j->code = access_room(d->rooms, j->user, j->room, &room, j->err, sizeof(j->err));
		chat_room_free_fields(&room);
		if (j->code == 200)
			rc = chat_room_history(d->rooms, j->room, j->limit, &j->hist, &j->nhist, j->err,
					       sizeof(j->err));
		break;
	case CHAN_OP_INVITES:
		rc = chat_room_invitations(d->rooms, j->user, &j->list, &j->nlist, j->err,
					   sizeof(j->err));
		break;
	case CHAN_OP_TOKEN:
		op_token(d, j);
		return;
	case CHAN_OP_GETPREF:
	case CHAN_OP_SETPREF:
		op_prefs(d, j, j->op == CHAN_OP_SETPREF);
		return;
	case CHAN_OP_APPEND:
		rc = chat_room_msg_append(d->rooms, j->room, j->user, NULL, j->text, &j->msgid,
					  j->err, sizeof(j->err));
		break;
	case CHAN_OP_PASS:
		break;
	}
	if (rc)
		j->code = code_of(rc);
}

static void *worker(void *arg)
{
	struct chat_chan_db *d = arg;

	pthread_mutex_lock(&d->mu);
	for (;;) {
		struct chan_job *j;

		while (!d->head && !d->stop)
			pthread_cond_wait(&d->cv, &d->mu);
		if (d->stop)
			break;
		j = d->head;
		d->head = j->next;
		if (!d->head)
			d->tail = NULL;
		j->next = NULL;
		pthread_mutex_unlock(&d->mu);

		run_job(d, j);
		if (j->code >= 500 && j->err[0])
			cv_warn(COMP, "store: %s", j->err);
		if (mqueue_push(d->mq, CHAT_MQ_CHAN, j) != 0) {
			cv_err(COMP, "cannot hand a finished job to the loop; it stays unanswered");
			chan_job_free(j);    /* owner's reference is the loop's: leaked, not freed twice */
		}
		pthread_mutex_lock(&d->mu);
		d->queued--;
	}
	pthread_mutex_unlock(&d->mu);
	chat_rooms_close(d->rooms);
	d->rooms = NULL;
	return NULL;
}

int chat_chan_db_start(const struct cfg *cfg, struct mqueue *mq, size_t cap,
		       struct chat_chan_db **out, char *err, size_t errlen)
{
	struct chat_chan_db *d = calloc(1, sizeof(*d));
	int rc;

	*out = NULL;
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	d->cfg = cfg;
	d->mq = mq;
	d->cap = cap ? cap : 1;
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	rc = pthread_create(&d->thr, NULL, worker, d);
	if (rc) {
		snprintf(err, errlen, "pchat store thread: %s", strerror(rc));
		pthread_cond_destroy(&d->cv);
		pthread_mutex_destroy(&d->mu);
		free(d);
		return -rc;
	}
	d->started = true;
	*out = d;
	return 0;
}

int chat_chan_db_submit(struct chat_chan_db *d, struct chan_job *j)
{
	int rc = 0;

	pthread_mutex_lock(&d->mu);
	if (d->stop) {
		rc = -ESHUTDOWN;
	} else if (d->queued >= d->cap) {
		rc = -EBUSY;
	} else {
		j->next = NULL;
		if (d->tail)
			d->tail->next = j;
		else
			d->head = j;
		d->tail = j;
		d->queued++;
		pthread_cond_signal(&d->cv);
	}
	pthread_mutex_unlock(&d->mu);
	return rc;
}

size_t chat_chan_db_backlog(struct chat_chan_db *d)
{
	size_t n;

	pthread_mutex_lock(&d->mu);
	n = d->queued;
	pthread_mutex_unlock(&d->mu);
	return n;
}

void chat_chan_db_stop(struct chat_chan_db *d, void (*free_job)(struct chan_job *j))
{
	struct chan_job *j;

	if (!d)
		return;
	pthread_mutex_lock(&d->mu);
	d->stop = true;
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mu);
	if (d->started)
		pthread_join(d->thr, NULL);
	while ((j = d->head)) {
		d->head = j->next;
		if (free_job)
			free_job(j);
		else
			chan_job_free(j);
	}
	pthread_cond_destroy(&d->cv);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

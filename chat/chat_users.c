/*
 * chat_users — user cache and its PostgreSQL thread (contract in
 * chat_users.h).
 */
#include "chat_users.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <re.h>

#include "cfg.h"
#include "cv_log.h"

#define COMP "chatd"

struct snap {
	size_t n, cap;
	struct chat_user_rec *v;
};

struct chat_users {
	const struct cfg *cfg;
	struct mqueue *mq;
	struct chat_store *st;    /* the thread's after start */
	struct snap *cur;         /* loop thread's */
	pthread_t thr;
	bool thr_live;
	int stop_pipe[2];
};

static void snap_free(struct snap *s)
{
	if (!s)
		return;
	if (s->v)
		explicit_bzero(s->v, s->cap * sizeof(*s->v));
	free(s->v);
	free(s);
}

void chat_users_snapshot_free(void *snapshot)
{
	snap_free(snapshot);
}

static void load_cb(void *arg, const struct chat_user *u)
{
	struct snap *s = arg;
	struct chat_user_rec *r;

	if (!s->v && s->n == 0 && s->cap == SIZE_MAX)
		return;   /* earlier allocation failure */
	if (!u->uri || strlen(u->uri) >= CHAT_URI_MAX || !u->ha1 || strlen(u->ha1) != 32)
		return;   /* cannot be signed in with; chat_store keeps these out anyway */
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 64;
		struct chat_user_rec *nv = realloc(s->v, nc * sizeof(*nv));

		if (!nv) {
			explicit_bzero(s->v, s->cap * sizeof(*s->v));
			free(s->v);
			s->v = NULL;
			s->n = 0;
			s->cap = SIZE_MAX;
			return;
		}
		s->v = nv;
		s->cap = nc;
	}
	r = &s->v[s->n++];
	memset(r, 0, sizeof(*r));
	memcpy(r->uri, u->uri, strlen(u->uri) + 1);
	memcpy(r->ha1, u->ha1, 33);
	r->disabled = u->disabled;
	r->chat_enabled = u->chat_enabled;
	r->im_enabled = u->im_enabled;
}

static int rec_cmp(const void *a, const void *b)
{
	return strcmp(((const struct chat_user_rec *)a)->uri, ((const struct chat_user_rec *)b)->uri);
}

static int load(struct chat_store *st, struct snap **out, char *err, size_t errlen)
{
	struct snap *s = calloc(1, sizeof(*s));
	int rc;

	if (!s)
		return -ENOMEM;
	rc = chat_store_users_load(st, load_cb, s, err, errlen);
	if (rc >= 0 && s->cap == SIZE_MAX) {
		s->cap = 0;
		rc = -ENOMEM;
		snprintf(err, errlen, "loading chat users: out of memory");
	}
	if (rc < 0) {
		snap_free(s);
		return rc;
	}
	if (s->n > 1)
		qsort(s->v, s->n, sizeof(*s->v), rec_cmp);
	*out = s;
	return 0;
}

/* Sleep ms unless stopped; true when asked to stop. */
static bool wait_stop(struct chat_users *u, int fd, int ms, bool *readable)
{
	struct pollfd p[2] = { { .fd = u->stop_pipe[0], .events = POLLIN },
			       { .fd = fd, .events = POLLIN } };
	int n = poll(p, fd >= 0 ? 2 : 1, ms);

	if (readable)
		*readable = n > 0 && fd >= 0 && (p[1].revents & (POLLIN | POLLERR | POLLHUP));
	return n > 0 && (p[0].revents & POLLIN);
}

static void *thread_main(void *arg)
{
	struct chat_users *u = arg;
	char err[512];
	bool need_reload = false;
	int backoff_ms = 1000;
	int fd;

	fd = chat_store_listen(u->st, err, sizeof(err));
	if (fd < 0) {
		cv_warn(COMP, "user store: %s (retrying; serving the users loaded at start)", err);
		need_reload = true;
	}
	for (;;) {
		bool readable = false;
		int n;

		if (fd < 0) {
			if (wait_stop(u, -1, backoff_ms, NULL))
				break;
			backoff_ms = backoff_ms * 2 > 30000 ? 30000 : backoff_ms * 2;
			fd = chat_store_listen(u->st, err, sizeof(err));
			if (fd < 0) {
				cv_warn(COMP, "user store: %s (retrying in %d ms)", err, backoff_ms);
				continue;
			}
			cv_info(COMP, "user store: reconnected");
			backoff_ms = 1000;
			need_reload = true;
		}
		if (need_reload) {
			struct snap *s = NULL;

			if (load(u->st, &s, err, sizeof(err)) != 0) {
				cv_warn(COMP, "user store: %s (keeping the previous users)", err);
				fd = -1;
				continue;
			}
			if (mqueue_push(u->mq, CHAT_MQ_USERS, s) != 0) {
				snap_free(s);
				continue;
			}
			need_reload = false;
			cv_info(COMP, "user store: %zu users loaded", s->n);
		}
		if (wait_stop(u, fd, -1, &readable))
			break;
		if (!readable)
			continue;
		n = chat_store_poll_changes(u->st);
		if (n < 0) {
			cv_warn(COMP, "user store: connection lost; serving the cached users, reconnecting");
			fd = -1;
			need_reload = true;
		} else if (n > 0) {
			need_reload = true;
		}
	}
	return NULL;
}

int chat_users_start(const struct cfg *cfg, struct mqueue *mq, struct chat_users **out,
		     char *err, size_t errlen)
{
	struct chat_users *u = calloc(1, sizeof(*u));
	int rc;

	*out = NULL;
	if (!u) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	u->cfg = cfg;
	u->mq = mq;
	u->stop_pipe[0] = u->stop_pipe[1] = -1;
	if (pipe2(u->stop_pipe, O_CLOEXEC) != 0) {
		rc = -errno;
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	rc = chat_store_open(cfg, &u->st, err, errlen);
	if (rc < 0)
		goto fail;
	rc = load(u->st, &u->cur, err, errlen);
	if (rc < 0)
		goto fail;
	rc = -pthread_create(&u->thr, NULL, thread_main, u);
	if (rc < 0) {
		snprintf(err, errlen, "cannot start the user store thread");
		goto fail;
	}
	u->thr_live = true;
	*out = u;
	return 0;
fail:
	chat_users_stop(u);
	return rc;
}

void chat_users_install(struct chat_users *u, void *snapshot)
{
	snap_free(u->cur);
	u->cur = snapshot;
}

const struct chat_user_rec *chat_users_find(const struct chat_users *u, const char *uri)
{
	struct chat_user_rec key;
	size_t l;

	if (!u || !u->cur || !uri || (l = strlen(uri)) >= sizeof(key.uri))
		return NULL;
	memcpy(key.uri, uri, l + 1);
	return bsearch(&key, u->cur->v, u->cur->n, sizeof(key), rec_cmp);
}

size_t chat_users_count(const struct chat_users *u)
{
	return u && u->cur ? u->cur->n : 0;
}

void chat_users_stop(struct chat_users *u)
{
	if (!u)
		return;
	if (u->thr_live) {
		ssize_t w = write(u->stop_pipe[1], "x", 1);

		(void)w;
		pthread_join(u->thr, NULL);
	}
	chat_store_close(u->st);
	if (u->stop_pipe[0] >= 0)
		close(u->stop_pipe[0]);
	if (u->stop_pipe[1] >= 0)
		close(u->stop_pipe[1]);
	snap_free(u->cur);
	free(u);
}

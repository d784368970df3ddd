/*
 * chat_chan_files — the file service inside chatd: chat_files (HTTP PUT/GET
 * with the tokens getfutok/getfdtok hand out) started with chatd's config,
 * and its on_transfer hook, which emits chat.file.upload /
 * chat.file.download (files[] = name, size, sha256) and answers only once
 * the event is durable (docs/PCHAT.md "File transfer").
 *
 * Threads: chan_files_start/stop on the loop; the hook on libmicrohttpd's
 * thread, where it blocks (that thread only) until the producer's writer
 * thread reports the event durable.  It touches nothing of the loop: only
 * the producer (thread-safe) and its own wait object.
 */
#include "chat_chan_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_files.h"
#include "cv_log.h"
#include "producer.h"

#define COMP "pchat"
#define HOOK_WAIT_S 30

/* Shared by the hook (waiting) and the producer callback: the last one frees. */
struct file_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs;
	bool done;
	int status;
};

static void fw_put(struct file_wait *w)
{
	bool last;

	pthread_mutex_lock(&w->mu);
	last = --w->refs == 0;
	pthread_mutex_unlock(&w->mu);
	if (!last)
		return;
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

static void file_durable(void *opaque, const char *id, int status)
{
	struct file_wait *w = opaque;

	(void)id;
	pthread_mutex_lock(&w->mu);
	w->done = true;
	w->status = status;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	fw_put(w);
}

static int on_transfer(void *arg, enum chat_file_dir dir, const char *user, const char *room,
		       const char *name, int64_t size, const char *sha256)
{
	struct chat_chan *c = arg;
	struct ing_event ev;
	struct ing_event_file f;
	struct file_wait *w = calloc(1, sizeof(*w));
	struct timespec until;
	char err[ING_EVENT_ERRLEN];
	enum ing_emit_result r;
	int status = -ETIMEDOUT;

	if (!w)
		return -ENOMEM;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->refs = 2;
	memset(&f, 0, sizeof(f));
	f.name = (char *)name;
	f.size = size;
	snprintf(f.sha256, sizeof(f.sha256), "%s", sha256);
	ing_event_init(&ev);
	ev.type = dir == CHAT_FILE_UPLOAD ? ING_EV_CHAT_FILE_UPLOAD : ING_EV_CHAT_FILE_DOWNLOAD;
	ev.room = (char *)room;
	ev.user = (char *)user;
	ev.files = &f;
	ev.nfiles = 1;
	ev.has_files = true;
	r = ing_producer_emit(c->prod, &ev, file_durable, w, err, sizeof(err));
	free(ev.source_server);      /* stamped by emit; the rest is borrowed */
	if (r != ING_EMIT_OK) {
		cv_warn(COMP, "%s of %s in %s by %s: event not accepted: %s",
			dir == CHAT_FILE_UPLOAD ? "upload" : "download", name, room, user,
			r == ING_EMIT_BUSY ? "queue busy" : err);
		w->refs = 1;         /* the callback will not run */
		fw_put(w);
		return -EBUSY;
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += HOOK_WAIT_S;
	pthread_mutex_lock(&w->mu);
	while (!w->done && pthread_cond_timedwait(&w->cv, &w->mu, &until) == 0)
		;
	if (w->done)
		status = w->status;
	pthread_mutex_unlock(&w->mu);
	fw_put(w);
	if (status == 0)
		cv_info(COMP, "%s of %s (%lld bytes, %s) in %s by %s archived",
			dir == CHAT_FILE_UPLOAD ? "upload" : "download", name, (long long)size, sha256,
			room, user);
	return status;
}

int chan_files_start(struct chat_chan *c, char *err, size_t errlen)
{
	const struct cfg_chat *cc = &c->cfg->chat;
	struct chat_files_opts o;
	char addr[64];
	unsigned port = 0;
	const char *colon = strrchr(cc->files_listen, ':');
	size_t ul;
	int rc;

	if (!colon || (size_t)(colon - cc->files_listen) >= sizeof(addr) ||
	    sscanf(colon + 1, "%u", &port) != 1 || port > 65535) {
		snprintf(err, errlen, "chat.files_listen: \"%s\" is not IPv4:PORT", cc->files_listen);
		return -EINVAL;
	}
	snprintf(addr, sizeof(addr), "%.*s", (int)(colon - cc->files_listen), cc->files_listen);
	memset(&o, 0, sizeof(o));
	o.cfg = c->cfg;
	o.bind_addr = addr;
	o.port = (uint16_t)port;
	o.max_upload = (int64_t)cc->files_max_upload_mb * 1024 * 1024;
	o.on_transfer = on_transfer;
	o.hook_arg = c;
	rc = chat_files_start(&o, &c->files, err, errlen);
	if (rc)
		return rc;
	ul = strlen(cc->files_url);
	while (ul > 0 && cc->files_url[ul - 1] == '/')
		ul--;
	if (ul)
		snprintf(c->files_base, sizeof(c->files_base), "%.*s", (int)ul, cc->files_url);
	else
		snprintf(c->files_base, sizeof(c->files_base), "http://%s:%u/files", addr,
			 (unsigned)chat_files_port(c->files));
	return 0;
}

void chan_files_stop(struct chat_chan *c)
{
	chat_files_stop(c->files);
	c->files = NULL;
}

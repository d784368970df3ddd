/*
 * chat_push — see chat_push.h.
 *
 * Ownership and threads: the struct is shared by the owner's threads
 * (send, stats) and one worker thread; everything mutable in it is under
 * mu, except the CURL handle, which only the worker touches.  Queued items
 * are owned by the queue until the worker takes one out; from then on the
 * worker owns it until it is delivered or given up (and freed).
 *
 * Scheduling: the queue is an array in arrival order; each item carries the
 * time it is due.  The worker sends the oldest due item, so one
 * notification in backoff does not hold back the others.
 */
#include "chat_push.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cv_log.h"
#include "cv_time.h"

#define PUSH_ID_MAX 64
#define PUSH_USER_MAX 330

struct push_item {
	char *body;
	size_t len;
	char id[PUSH_ID_MAX];
	char user[PUSH_USER_MAX];
	int attempts;
	int64_t due_ms;          /* monotonic */
	long last_status;        /* last HTTP status, 0 none */
	int last_curl;           /* last CURLcode, 0 none */
};

struct chat_push {
	/* immutable after new */
	char *url;
	char host[256];          /* for the log: the URL without path and query */
	int max_attempts, backoff_base_ms, backoff_max_ms, queue_max, timeout_ms, drain_ms;
	void (*on_outcome)(void *arg, const char *id, bool delivered, int attempts, long status);
	void *outcome_arg;

	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;     /* CLOCK_MONOTONIC */

	/* under mu */
	struct push_item **q;
	int n;
	bool stopping;
	int64_t deadline_ms;     /* when stopping: give up at */
	uint64_t sent, failed, retries, seq;
	unsigned int rng;        /* rand_r state for the jitter */

	/* worker only */
	CURL *curl;
	struct curl_slist *headers;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int chat_push_classify(int curl_code, long http_status)
{
	switch ((CURLcode)curl_code) {
	case CURLE_OK:
		break;
	/* The request can never succeed as configured. */
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_NOT_BUILT_IN:
	case CURLE_LOGIN_DENIED:
	case CURLE_TOO_MANY_REDIRECTS:
		return -1;
	/* Connection, DNS, TLS, timeouts, resets, a short answer: transient. */
	default:
		return 0;
	}
	if (http_status >= 200 && http_status < 300)
		return 1;
	if (http_status == 408 || http_status == 429 || (http_status >= 500 && http_status < 600))
		return 0;
	return -1;   /* other 4xx; 1xx/3xx: redirects are not followed */
}

static void item_free(struct push_item *it)
{
	if (!it)
		return;
	if (it->body) {
		explicit_bzero(it->body, it->len);   /* may hold message text */
		free(it->body);
	}
	free(it);
}

/* id and target user of a document, for the log; -EINVAL if not an object. */
static int describe(uint64_t seq, const char *json, size_t len, struct push_item *it)
{
	json_error_t jerr;
	json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr), *v;

	if (!root || !json_is_object(root)) {
		json_decref(root);
		return -EINVAL;
	}
	v = json_object_get(root, "id");
	if (json_is_string(v))
		snprintf(it->id, sizeof(it->id), "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(it->id, sizeof(it->id), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else
		snprintf(it->id, sizeof(it->id), "#%" PRIu64, seq);
	v = json_object_get(root, "to");
	if (!json_is_string(v))
		v = json_object_get(root, "user");
	snprintf(it->user, sizeof(it->user), "%s", json_is_string(v) ? json_string_value(v) : "?");
	/* The log is one line per notification: no control characters. */
	for (char *s = it->id; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
	for (char *s = it->user; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
	json_decref(root);
	return 0;
}

int chat_push_send(struct chat_push *p, const char *json)
{
	struct push_item *it;
	uint64_t seq;
	size_t len;
	int rc = 0;

	if (!p || !json)
		return -EINVAL;
	len = strnlen(json, CHAT_PUSH_BODY_MAX + 1);
	if (len == 0 || len > CHAT_PUSH_BODY_MAX)
		return -EINVAL;
	it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	pthread_mutex_lock(&p->mu);
	seq = ++p->seq;
	pthread_mutex_unlock(&p->mu);
	if (describe(seq, json, len, it) != 0) {
		free(it);
		return -EINVAL;
	}
	it->body = malloc(len + 1);
	if (!it->body) {
		free(it);
		return -ENOMEM;
	}
	memcpy(it->body, json, len + 1);
	it->len = len;
	it->due_ms = cv_time_mono_ms();
	pthread_mutex_lock(&p->mu);
	if (p->stopping || p->n >= p->queue_max) {
		rc = -EBUSY;
	} else {
		p->q[p->n++] = it;
		it = NULL;
		pthread_cond_signal(&p->cond);
	}
	pthread_mutex_unlock(&p->mu);
	item_free(it);
	return rc;
}

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	(void)ptr;
	(void)arg;
	return size * nmemb;   /* the gateway's answer is not needed, nor logged */
}

/* Abort a POST in flight once a stopping drain has run out of time. */
static int progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		    curl_off_t ulnow)
{
	struct chat_push *p = arg;
	int stop;

	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	pthread_mutex_lock(&p->mu);
	stop = p->stopping && cv_time_mono_ms() >= p->deadline_ms;
	pthread_mutex_unlock(&p->mu);
	return stop;
}

static int curl_setup(struct chat_push *p, char *err, size_t errlen)
{
	p->curl = curl_easy_init();
	p->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (p->headers) {
		/* No "Expect: 100-continue" round trip for bodies over 1 KiB. */
		struct curl_slist *h = curl_slist_append(p->headers, "Expect:");

		if (h)
			p->headers = h;
		else
			curl_slist_free_all(p->headers), p->headers = NULL;
	}
	if (!p->curl || !p->headers) {
		snprintf(err, errlen, "push: out of memory");
		return -ENOMEM;
	}
	if (curl_easy_setopt(p->curl, CURLOPT_URL, p->url) != CURLE_OK ||
#if LIBCURL_VERSION_NUM >= 0x075500
	    curl_easy_setopt(p->curl, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
#else
	    curl_easy_setopt(p->curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK ||
#endif
	    curl_easy_setopt(p->curl, CURLOPT_HTTPHEADER, p->headers) != CURLE_OK ||
	    curl_easy_setopt(p->curl, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(p->curl, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(p->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)p->timeout_ms) != CURLE_OK ||
	    curl_easy_setopt(p->curl, CURLOPT_WRITEFUNCTION, discard_body) != CURLE_OK ||
	    curl_easy_setopt(p->curl, CURLOPT_NOPROGRESS, 0L) != CURLE_OK ||
	    curl_easy_setopt(p->curl, CURLOPT_XFERINFOFUNCTION, progress) != CURLE_OK ||
	    curl_easy_setopt(p->curl, CURLOPT_XFERINFODATA, p) != CURLE_OK ||
	    curl_easy_setopt(p->curl, CURLOPT_USERAGENT, "chatvault-chatd") != CURLE_OK) {
		snprintf(err, errlen, "push: libcurl refused an option (http/https support missing?)");
		return -EINVAL;
	}
	return 0;
}

/* One POST.  Returns chat_push_classify()'s verdict; records status/code. */
static int post_once(struct chat_push *p, struct push_item *it, int64_t limit_ms)
{
	long status = 0;
	CURLcode c;

	curl_easy_setopt(p->curl, CURLOPT_POSTFIELDS, it->body);
	curl_easy_setopt(p->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)it->len);
	curl_easy_setopt(p->curl, CURLOPT_TIMEOUT_MS, (long)(limit_ms > 0 ? limit_ms : 1));
	c = curl_easy_perform(p->curl);
	if (c == CURLE_OK)
		curl_easy_getinfo(p->curl, CURLINFO_RESPONSE_CODE, &status);
	it->attempts++;
	it->last_curl = (int)c;
	it->last_status = status;
	return chat_push_classify((int)c, status);
}

static void why_text(const struct push_item *it, char *out, size_t outlen)
{
	if (it->last_curl != CURLE_OK)
		snprintf(out, outlen, "curl: %s", curl_easy_strerror((CURLcode)it->last_curl));
	else if (it->last_status)
		snprintf(out, outlen, "HTTP %ld", it->last_status);
	else
		snprintf(out, outlen, "not attempted");
}

/* Final outcome of an item: log, count, report, free.  Called without mu. */
static void finish(struct chat_push *p, struct push_item *it, bool delivered, const char *extra)
{
	char why[160];

	if (delivered) {
		cv_info("push", "push %s to %s: delivered after %d attempt%s", it->id, it->user,
			it->attempts, it->attempts == 1 ? "" : "s");
	} else {
		why_text(it, why, sizeof(why));
		cv_warn("push", "push %s to %s: gave up after %d attempt%s: %s%s", it->id, it->user,
			it->attempts, it->attempts == 1 ? "" : "s", why, extra ? extra : "");
	}
	pthread_mutex_lock(&p->mu);
	if (delivered)
		p->sent++;
	else
		p->failed++;
	pthread_mutex_unlock(&p->mu);
	if (p->on_outcome)
		p->on_outcome(p->outcome_arg, it->id, delivered, it->attempts, it->last_status);
	item_free(it);
}

/* base · 2^(attempts-1), capped, then "equal jitter": half fixed, half
 * random, so clients that failed together do not retry together. */
static int64_t backoff_ms(struct chat_push *p, int attempts)
{
	int64_t d = p->backoff_base_ms;

	for (int i = 1; i < attempts && d < p->backoff_max_ms; i++)
		d *= 2;
	if (d > p->backoff_max_ms)
		d = p->backoff_max_ms;
	return d / 2 + (int64_t)(rand_r(&p->rng) % (unsigned)(d / 2 + 1));
}

static void cond_wait_until(struct chat_push *p, int64_t until_mono_ms)
{
	struct timespec ts;

	ts.tv_sec = until_mono_ms / 1000;
	ts.tv_nsec = (until_mono_ms % 1000) * 1000000L;
	pthread_cond_timedwait(&p->cond, &p->mu, &ts);
}

static void *worker(void *arg)
{
	struct chat_push *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		int64_t now = cv_time_mono_ms(), next = INT64_MAX, limit;
		struct push_item *it = NULL;
		int pick = -1, verdict;

		if (p->stopping && (p->n == 0 || now >= p->deadline_ms))
			break;
		for (int i = 0; i < p->n; i++) {
			if (p->q[i]->due_ms <= now) {
				pick = i;
				break;
			}
			if (p->q[i]->due_ms < next)
				next = p->q[i]->due_ms;
		}
		if (pick < 0) {
			if (p->stopping && next > p->deadline_ms)
				next = p->deadline_ms;
			if (next == INT64_MAX)
				pthread_cond_wait(&p->cond, &p->mu);
			else
				cond_wait_until(p, next);
			continue;
		}
		it = p->q[pick];
		memmove(&p->q[pick], &p->q[pick + 1], (size_t)(p->n - pick - 1) * sizeof(p->q[0]));
		p->n--;
		limit = p->timeout_ms;
		if (p->stopping && p->deadline_ms - now < limit)
			limit = p->deadline_ms - now;
		pthread_mutex_unlock(&p->mu);

		verdict = post_once(p, it, limit);
		if (verdict == 1) {
			finish(p, it, true, NULL);
		} else if (verdict < 0 || it->attempts >= p->max_attempts) {
			finish(p, it, false, NULL);
		} else {
			int64_t d = backoff_ms(p, it->attempts);

			cv_debug("push", "push %s to %s: attempt %d failed, retrying in %" PRId64 " ms",
				 it->id, it->user, it->attempts, d);
			it->due_ms = cv_time_mono_ms() + d;
			pthread_mutex_lock(&p->mu);
			p->retries++;
			/* Back at its place in arrival order is not needed: due
			 * times order the retries, arrival order the rest. */
			p->q[p->n++] = it;   /* room: the spare slot (see new) */
			pthread_mutex_unlock(&p->mu);
		}
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* "https://user:pw@host:443/path?token" → "host:443" (never logged whole). */
static void url_host(const char *url, char *out, size_t outlen)
{
	const char *s = strstr(url, "://"), *e, *at;
	size_t n;

	s = s ? s + 3 : url;
	e = s + strcspn(s, "/?#");
	at = memchr(s, '@', (size_t)(e - s));
	if (at)
		s = at + 1;
	n = (size_t)(e - s);
	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, s, n);
	out[n] = '\0';
}

struct chat_push *chat_push_new_opts(const struct chat_push_opts *o, char *err, size_t errlen)
{
	struct chat_push *p;
	pthread_condattr_t ca;
	char why[160];

	if (err && errlen)
		err[0] = '\0';
	if (!o || !o->url || !o->url[0])
		return NULL;   /* push disabled */
	if (strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0) {
		snprintf(err, errlen, "push: the gateway URL must be http:// or https://");
		return NULL;
	}
	if (o->max_attempts < 1 || o->max_attempts > 100 || o->backoff_base_ms < 1 ||
	    o->backoff_base_ms > 600000 || o->backoff_max_ms < 0 || o->queue_max < 0 ||
	    o->timeout_ms < 0 || o->drain_ms < 0) {
		snprintf(err, errlen, "push: max_attempts must be 1..100 and backoff 1..600000 ms");
		return NULL;
	}
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK) {
		snprintf(err, errlen, "push: curl_global_init: %s", curl_easy_strerror(curl_init_rc));
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "push: out of memory");
		return NULL;
	}
	p->max_attempts = o->max_attempts;
	p->backoff_base_ms = o->backoff_base_ms;
	p->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : 60000;
	if (p->backoff_max_ms < p->backoff_base_ms)
		p->backoff_max_ms = p->backoff_base_ms;
	p->queue_max = o->queue_max ? o->queue_max : CHAT_PUSH_QUEUE_MAX;
	p->timeout_ms = o->timeout_ms ? o->timeout_ms : 10000;
	p->drain_ms = o->drain_ms ? o->drain_ms : 2000;
	p->on_outcome = o->on_outcome;
	p->outcome_arg = o->outcome_arg;
	p->rng = (unsigned int)cv_time_now_ms() ^ (unsigned int)(uintptr_t)p;
	url_host(o->url, p->host, sizeof(p->host));
	p->url = strdup(o->url);
	/* One slot more than the bound: the item in flight goes back into the
	 * queue for its retry even when senders filled it meanwhile. */
	p->q = calloc((size_t)p->queue_max + 1, sizeof(p->q[0]));
	if (!p->url || !p->q) {
		snprintf(err, errlen, "push: out of memory");
		goto fail_mem;
	}
	if (curl_setup(p, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "%s", why);
		goto fail_mem;
	}
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&p->mu, NULL);
	if (pthread_create(&p->thread, NULL, worker, p) != 0) {
		snprintf(err, errlen, "push: cannot start the worker thread");
		pthread_cond_destroy(&p->cond);
		pthread_mutex_destroy(&p->mu);
		goto fail_mem;
	}
	cv_info("push", "push notifications to %s (up to %d attempts, backoff from %d ms)",
		p->host, p->max_attempts, p->backoff_base_ms);
	return p;
fail_mem:
	curl_slist_free_all(p->headers);
	curl_easy_cleanup(p->curl);
	free(p->q);
	free(p->url);
	free(p);
	return NULL;
}

struct chat_push *chat_push_new(const char *url, int max_attempts, int backoff_base_ms,
				char *err, size_t errlen)
{
	struct chat_push_opts o = {
		.url = url, .max_attempts = max_attempts, .backoff_base_ms = backoff_base_ms,
	};

	return chat_push_new_opts(&o, err, errlen);
}

void chat_push_free(struct chat_push *p)
{
	int dropped;

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	p->deadline_ms = cv_time_mono_ms() + p->drain_ms;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);

	/* The worker is gone: what is left was not delivered in time. */
	dropped = p->n;
	for (int i = 0; i < p->n; i++)
		finish(p, p->q[i], false, " (dropped at shutdown)");
	p->n = 0;
	if (dropped)
		cv_warn("push", "shutdown: %d push notification%s dropped after %d ms of draining",
			dropped, dropped == 1 ? "" : "s", p->drain_ms);
	curl_slist_free_all(p->headers);
	curl_easy_cleanup(p->curl);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->mu);
	free(p->q);
	explicit_bzero(p->url, strlen(p->url));   /* may hold a token */
	free(p->url);
	free(p);
}

void chat_push_stats(struct chat_push *p, uint64_t *sent, uint64_t *failed, uint64_t *retries)
{
	uint64_t s = 0, f = 0, r = 0;

	if (p) {
		pthread_mutex_lock(&p->mu);
		s = p->sent;
		f = p->failed;
		r = p->retries;
		pthread_mutex_unlock(&p->mu);
	}
	if (sent)
		*sent = s;
	if (failed)
		*failed = f;
	if (retries)
		*retries = r;
}

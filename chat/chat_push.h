/*
 * chat_push — push notifications to mobile clients (the Lync mobility flow:
 * the server hands a small notification to a push gateway, which reaches
 * the phone).  chatd builds a JSON document per notification and calls
 * chat_push_send(); one worker thread POSTs it to the configured gateway
 * (chat.push_url) with libcurl.
 *
 * Outcome per notification, decided by the gateway's answer:
 *   2xx                                  → delivered
 *   408, 429, 5xx, timeouts, connection
 *   and TLS errors, a reset              → retried with exponential backoff
 *                                          (base · 2^(n-1), capped, with
 *                                          jitter) up to max_attempts
 *   other 4xx, 1xx/3xx (redirects are
 *   not followed), a malformed URL       → given up at once (retrying cannot
 *                                          change the answer)
 * Each outcome is logged once: "push ID to USER: delivered after N
 * attempt(s)" (info) or "push ID to USER: gave up after N attempt(s): HTTP
 * 400 | curl: <error>" (warning).  The body may hold message text, so it is
 * never logged, and neither is the gateway URL's path or query (it may hold
 * a token): only its host.
 *
 * The document must be a JSON object; its "id" (string or integer) and its
 * target user ("to", else "user") name it in the log.  Both are optional
 * (a missing id is logged as "#<sequence number>").
 *
 * Threading: chat_push_send() and chat_push_stats() may be called from any
 * thread; chat_push_new()/chat_push_free() from the owner.  No globals of
 * our own; curl_global_init() runs once per process (pthread_once).
 */
#ifndef CHAT_PUSH_H
#define CHAT_PUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct chat_push;

#define CHAT_PUSH_QUEUE_MAX 1024          /* default bound of the queue */
#define CHAT_PUSH_BODY_MAX (64 * 1024)    /* bytes of one document */

/*
 * url NULL or "" → push disabled: returns NULL with err empty.  Otherwise
 * a http:// or https:// URL; max_attempts 1..100; backoff_base_ms
 * 1..600000.  Returns the client with its worker running, or NULL with the
 * reason in err.
 */
struct chat_push *chat_push_new(const char *url, int max_attempts, int backoff_base_ms,
				char *err, size_t errlen);

/* Everything chat_push_new() takes, and what it defaults (0 = default). */
struct chat_push_opts {
	const char *url;
	int max_attempts;
	int backoff_base_ms;
	int backoff_max_ms;      /* cap of one backoff; default 60000 */
	int queue_max;           /* queued documents; default CHAT_PUSH_QUEUE_MAX */
	int timeout_ms;          /* one POST, connect included; default 10000 */
	int drain_ms;            /* chat_push_free() drains this long; default 2000 */
	/* Called on the worker thread once per notification with its outcome
	 * (metrics, tests); may be NULL.  http_status is 0 when there was no
	 * answer. */
	void (*on_outcome)(void *arg, const char *id, bool delivered, int attempts,
			   long http_status);
	void *outcome_arg;
};
struct chat_push *chat_push_new_opts(const struct chat_push_opts *o, char *err, size_t errlen);

/*
 * Queue a copy of json (non-blocking).  0; -EBUSY when the queue is full
 * (the caller decides: drop, or tell the client); -EINVAL when p is NULL,
 * json is not a JSON object or is larger than CHAT_PUSH_BODY_MAX; -ENOMEM.
 */
int chat_push_send(struct chat_push *p, const char *json) __attribute__((warn_unused_result));

/*
 * Stop: keep delivering what is queued for up to drain_ms (2 s by default;
 * a POST in flight is aborted at the deadline), then give up on the rest,
 * logging each dropped notification (id and user) and counting it as
 * failed.  NULL-safe.
 */
void chat_push_free(struct chat_push *p);

/* Counters since chat_push_new: delivered notifications, given up (or
 * dropped) ones, and retry attempts.  Any pointer may be NULL; p NULL → 0s. */
void chat_push_stats(struct chat_push *p, uint64_t *sent, uint64_t *failed, uint64_t *retries);

/* The decision above for one answer, exposed for the unit test:
 * 1 delivered, 0 retry, -1 give up.  http_status is used when curl_code is
 * 0 (CURLE_OK). */
int chat_push_classify(int curl_code, long http_status);

#endif

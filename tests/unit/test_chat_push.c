/*
 * test_chat_push — chat/chat_push against a real HTTP listener: a small
 * server thread on 127.0.0.1 (port 0, plain sockets) that answers each POST
 * with the next status of a script, records what arrived, and can hold
 * answers back.  Asserts what a gateway and an operator see: the document
 * arrives byte for byte with Content-Type application/json; 503 then 200 is
 * delivered after 2 attempts; 400 gives up at once; a dead gateway gives up
 * after max_attempts; a full queue says -EBUSY; shutdown drains for a
 * bounded time; the log names id and user and never the body.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "chat_push.h"
#include "cv_log.h"
#include "cv_time.h"

#define MAX_REQ 64

struct srv {
	int lfd, port;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	bool hold;                 /* accept and read, but do not answer yet */
	int script[16], nscript;   /* statuses in order; the last one repeats */
	int nreq;
	char *bodies[MAX_REQ];
	char ctype[MAX_REQ][64];
};

struct outcome {
	pthread_mutex_t mu;
	int n, delivered, gave_up, last_attempts;
	long last_status;
	char last_id[64];
};

static void on_outcome(void *arg, const char *id, bool delivered, int attempts, long status)
{
	struct outcome *o = arg;

	pthread_mutex_lock(&o->mu);
	o->n++;
	if (delivered)
		o->delivered++;
	else
		o->gave_up++;
	o->last_attempts = attempts;
	o->last_status = status;
	snprintf(o->last_id, sizeof(o->last_id), "%s", id);
	pthread_mutex_unlock(&o->mu);
}

static int outcomes(struct outcome *o)
{
	int n;

	pthread_mutex_lock(&o->mu);
	n = o->n;
	pthread_mutex_unlock(&o->mu);
	return n;
}

/* Wait up to 10 s for n outcomes. */
static void wait_outcomes(struct outcome *o, int n)
{
	int64_t end = cv_time_mono_ms() + 10000;

	while (outcomes(o) < n && cv_time_mono_ms() < end)
		usleep(5000);
	assert_int_equal(outcomes(o), n);
}

static int srv_requests(struct srv *s)
{
	int n;

	pthread_mutex_lock(&s->mu);
	n = s->nreq;
	pthread_mutex_unlock(&s->mu);
	return n;
}

static void wait_requests(struct srv *s, int n)
{
	int64_t end = cv_time_mono_ms() + 10000;

	while (srv_requests(s) < n && cv_time_mono_ms() < end)
		usleep(5000);
	assert_true(srv_requests(s) >= n);
}

/* One connection: read the request, record it, answer the next status. */
static void serve(struct srv *s, int fd)
{
	char buf[128 * 1024];
	size_t got = 0, clen = 0;
	char *eoh = NULL, *cl, *ct;
	int status, idx;

	while (!eoh && got < sizeof(buf) - 1) {
		ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);

		if (r <= 0)
			return;
		got += (size_t)r;
		buf[got] = '\0';
		eoh = strstr(buf, "\r\n\r\n");
	}
	if (!eoh)
		return;
	*eoh = '\0';
	cl = strcasestr(buf, "\r\nContent-Length:");
	if (cl)
		clen = strtoul(cl + 17, NULL, 10);
	while (got - (size_t)(eoh + 4 - buf) < clen && got < sizeof(buf) - 1) {
		ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);

		if (r <= 0)
			return;
		got += (size_t)r;
	}
	pthread_mutex_lock(&s->mu);
	idx = s->nreq < MAX_REQ ? s->nreq : MAX_REQ - 1;
	free(s->bodies[idx]);
	s->bodies[idx] = strndup(eoh + 4, clen);
	ct = strcasestr(buf, "\r\nContent-Type:");
	snprintf(s->ctype[idx], sizeof(s->ctype[idx]), "%.*s", ct ? (int)strcspn(ct + 15, "\r") : 0,
		 ct ? ct + 15 : "");
	status = s->script[s->nreq < s->nscript ? s->nreq : s->nscript - 1];
	s->nreq++;
	pthread_cond_broadcast(&s->cv);
	while (s->hold && !s->stop)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	{
		char resp[256];
		int n = snprintf(resp, sizeof(resp),
				 "HTTP/1.1 %d Scripted\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno",
				 status);

		if (write(fd, resp, (size_t)n) != n)
			return;
	}
}

static void *srv_main(void *arg)
{
	struct srv *s = arg;

	for (;;) {
		struct pollfd p = { .fd = s->lfd, .events = POLLIN };
		bool stop;
		int fd;

		pthread_mutex_lock(&s->mu);
		stop = s->stop;
		pthread_mutex_unlock(&s->mu);
		if (stop)
			break;
		if (poll(&p, 1, 50) <= 0)
			continue;
		fd = accept(s->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		serve(s, fd);
		close(fd);
	}
	return NULL;
}

static struct srv *srv_start(const int *script, int n)
{
	struct srv *s = calloc(1, sizeof(*s));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);

	assert_non_null(s);
	memcpy(s->script, script, (size_t)n * sizeof(int));
	s->nscript = n;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->lfd >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->lfd, 64), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &alen), 0);
	s->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
	return s;
}

static void srv_release(struct srv *s)
{
	pthread_mutex_lock(&s->mu);
	s->hold = false;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void srv_stop(struct srv *s)
{
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	s->hold = false;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->th, NULL);
	close(s->lfd);
	for (int i = 0; i < MAX_REQ; i++)
		free(s->bodies[i]);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static struct chat_push *client(struct srv *s, struct outcome *o, int attempts, int queue_max,
				int drain_ms)
{
	char url[128], err[256];
	struct chat_push_opts opts = {
		.url = url, .max_attempts = attempts, .backoff_base_ms = 10, .backoff_max_ms = 40,
		.queue_max = queue_max, .timeout_ms = 5000, .drain_ms = drain_ms,
		.on_outcome = on_outcome, .outcome_arg = o,
	};
	struct chat_push *p;

	/* A path and query that must never reach the log. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/push/v1?token=tok-SECRET", s ? s->port : 1);
	p = chat_push_new_opts(&opts, err, sizeof(err));
	if (!p)
		fail_msg("chat_push_new_opts: %s", err);
	return p;
}

/* stderr into a file while a test runs, to read what was logged. */
struct capture {
	int saved;
	char path[64];
};

static void capture_start(struct capture *c)
{
	int fd;

	snprintf(c->path, sizeof(c->path), "/tmp/test_chat_push.XXXXXX");
	fd = mkstemp(c->path);
	assert_true(fd >= 0);
	fflush(stderr);
	c->saved = dup(2);
	dup2(fd, 2);
	close(fd);
}

static char *capture_end(struct capture *c)
{
	static char text[16384];
	FILE *f;
	size_t n;

	fflush(stderr);
	dup2(c->saved, 2);
	close(c->saved);
	f = fopen(c->path, "r");
	assert_non_null(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	unlink(c->path);
	fputs(text, stderr);   /* still visible in the test output */
	return text;
}

static void test_classify(void **state)
{
	(void)state;
	assert_int_equal(chat_push_classify(0, 200), 1);
	assert_int_equal(chat_push_classify(0, 202), 1);
	assert_int_equal(chat_push_classify(0, 204), 1);
	assert_int_equal(chat_push_classify(0, 500), 0);
	assert_int_equal(chat_push_classify(0, 503), 0);
	assert_int_equal(chat_push_classify(0, 408), 0);
	assert_int_equal(chat_push_classify(0, 429), 0);
	assert_int_equal(chat_push_classify(0, 400), -1);
	assert_int_equal(chat_push_classify(0, 401), -1);
	assert_int_equal(chat_push_classify(0, 404), -1);
	assert_int_equal(chat_push_classify(0, 413), -1);
	assert_int_equal(chat_push_classify(0, 301), -1);   /* redirects not followed */
	assert_int_equal(chat_push_classify(7, 0), 0);      /* CURLE_COULDNT_CONNECT */
	assert_int_equal(chat_push_classify(28, 0), 0);     /* CURLE_OPERATION_TIMEDOUT */
	assert_int_equal(chat_push_classify(6, 0), 0);      /* CURLE_COULDNT_RESOLVE_HOST */
	assert_int_equal(chat_push_classify(3, 0), -1);     /* CURLE_URL_MALFORMAT */
	assert_int_equal(chat_push_classify(1, 0), -1);     /* CURLE_UNSUPPORTED_PROTOCOL */
}

static void test_new_args(void **state)
{
	char err[256];

	(void)state;
	strcpy(err, "x");
	assert_null(chat_push_new(NULL, 5, 500, err, sizeof(err)));
	assert_string_equal(err, "");
	strcpy(err, "x");
	assert_null(chat_push_new("", 5, 500, err, sizeof(err)));
	assert_string_equal(err, "");
	assert_null(chat_push_new("ftp://gw/x", 5, 500, err, sizeof(err)));
	assert_non_null(strstr(err, "http"));
	assert_null(chat_push_new("http://gw/x", 0, 500, err, sizeof(err)));
	assert_true(err[0] != '\0');
	assert_null(chat_push_new("http://gw/x", 5, 0, err, sizeof(err)));
	assert_int_equal(chat_push_send(NULL, "{}"), -EINVAL);
	chat_push_free(NULL);
	{
		uint64_t a = 9, b = 9, c = 9;

		chat_push_stats(NULL, &a, &b, &c);
		assert_true(a == 0 && b == 0 && c == 0);
	}
}

/* 503, then 200: delivered after 2 attempts; the body arrived intact both
 * times; the log names id and user, not the body nor the URL's token. */
static void test_retry_then_ok(void **state)
{
	static const int script[] = { 503, 200 };
	static const char doc[] = "{\"id\":\"n-42\",\"to\":\"sip:bob@contoso.com\","
				  "\"text\":\"secret message text \\u00e9 \\\"q\\\"\",\"n\":[1,2,3]}";
	struct outcome o = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct srv *s = srv_start(script, 2);
	struct capture cap;
	struct chat_push *p;
	uint64_t sent, failed, retries;
	char *log;

	(void)state;
	cv_log_set_level(CV_LOG_DEBUG);
	capture_start(&cap);
	p = client(s, &o, 5, 0, 0);
	assert_int_equal(chat_push_send(p, doc), 0);
	wait_outcomes(&o, 1);
	assert_int_equal(o.delivered, 1);
	assert_int_equal(o.last_attempts, 2);
	assert_int_equal(o.last_status, 200);
	assert_string_equal(o.last_id, "n-42");
	chat_push_stats(p, &sent, &failed, &retries);
	assert_true(sent == 1 && failed == 0 && retries == 1);
	chat_push_free(p);
	log = capture_end(&cap);
	cv_log_set_level(CV_LOG_WARN);

	assert_int_equal(srv_requests(s), 2);
	assert_string_equal(s->bodies[0], doc);
	assert_string_equal(s->bodies[1], doc);
	assert_string_equal(s->ctype[0], " application/json");
	assert_non_null(strstr(log, "push n-42 to sip:bob@contoso.com: delivered after 2 attempts"));
	assert_null(strstr(log, "secret message"));
	assert_null(strstr(log, "tok-SECRET"));
	assert_null(strstr(log, "/push/v1"));
	srv_stop(s);
}

/* 400: given up at once, never retried. */
static void test_400_gives_up(void **state)
{
	static const int script[] = { 400, 200 };
	struct outcome o = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct srv *s = srv_start(script, 2);
	struct chat_push *p = client(s, &o, 5, 0, 0);
	struct capture cap;
	uint64_t sent, failed, retries;
	char *log;

	(void)state;
	capture_start(&cap);
	assert_int_equal(chat_push_send(p, "{\"id\":7,\"user\":\"sip:carol@contoso.com\",\"text\":\"x\"}"), 0);
	wait_outcomes(&o, 1);
	usleep(100 * 1000);   /* a retry (10-40 ms backoff) would have happened */
	assert_int_equal(o.gave_up, 1);
	assert_int_equal(o.last_attempts, 1);
	assert_int_equal(o.last_status, 400);
	chat_push_stats(p, &sent, &failed, &retries);
	assert_true(sent == 0 && failed == 1 && retries == 0);
	assert_int_equal(srv_requests(s), 1);
	chat_push_free(p);
	log = capture_end(&cap);
	assert_non_null(strstr(log, "push 7 to sip:carol@contoso.com: gave up after 1 attempt: HTTP 400"));
	srv_stop(s);
}

/* Always 503, and no gateway at all: gave up after max_attempts. */
static void test_exhausted(void **state)
{
	static const int script[] = { 503 };
	struct outcome o = { .mu = PTHREAD_MUTEX_INITIALIZER }, o2 = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct srv *s = srv_start(script, 1);
	struct chat_push *p = client(s, &o, 3, 0, 0), *dead;
	uint64_t sent, failed, retries;

	(void)state;
	assert_int_equal(chat_push_send(p, "{\"id\":\"a\"}"), 0);
	wait_outcomes(&o, 1);
	assert_int_equal(o.gave_up, 1);
	assert_int_equal(o.last_attempts, 3);
	assert_int_equal(o.last_status, 503);
	assert_int_equal(srv_requests(s), 3);
	chat_push_stats(p, &sent, &failed, &retries);
	assert_true(sent == 0 && failed == 1 && retries == 2);
	chat_push_free(p);
	srv_stop(s);

	dead = client(NULL, &o2, 3, 0, 0);   /* port 1: connection refused */
	assert_int_equal(chat_push_send(dead, "{\"id\":\"b\"}"), 0);
	wait_outcomes(&o2, 1);
	assert_int_equal(o2.gave_up, 1);
	assert_int_equal(o2.last_attempts, 3);
	assert_int_equal(o2.last_status, 0);
	chat_push_free(dead);
}

static void test_invalid_documents(void **state)
{
	struct outcome o = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct chat_push *p = client(NULL, &o, 1, 0, 0);
	char *big = malloc(CHAT_PUSH_BODY_MAX + 16);

	(void)state;
	assert_int_equal(chat_push_send(p, "not json"), -EINVAL);
	assert_int_equal(chat_push_send(p, "[1,2]"), -EINVAL);
	assert_int_equal(chat_push_send(p, ""), -EINVAL);
	assert_int_equal(chat_push_send(p, "{\"a\":1,\"a\":2}"), -EINVAL);
	assert_int_equal(chat_push_send(p, NULL), -EINVAL);
	memset(big, ' ', CHAT_PUSH_BODY_MAX + 15);
	big[0] = '{';
	big[CHAT_PUSH_BODY_MAX + 14] = '}';
	big[CHAT_PUSH_BODY_MAX + 15] = '\0';
	assert_int_equal(chat_push_send(p, big), -EINVAL);
	free(big);
	chat_push_free(p);
	assert_int_equal(outcomes(&o), 0);
}

/* The worker is stuck on a held answer: the bounded queue fills, the next
 * send is -EBUSY at once; released, everything queued is delivered. */
static void test_queue_full(void **state)
{
	static const int script[] = { 200 };
	struct outcome o = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct srv *s = srv_start(script, 1);
	struct chat_push *p;
	int64_t t0;

	(void)state;
	s->hold = true;
	p = client(s, &o, 3, 4, 0);
	assert_int_equal(chat_push_send(p, "{\"id\":\"first\"}"), 0);
	wait_requests(s, 1);   /* in flight: out of the queue */
	for (int i = 0; i < 4; i++)
		assert_int_equal(chat_push_send(p, "{\"id\":\"q\"}"), 0);
	t0 = cv_time_mono_ms();
	assert_int_equal(chat_push_send(p, "{\"id\":\"overflow\"}"), -EBUSY);
	assert_true(cv_time_mono_ms() - t0 < 100);   /* non-blocking */
	srv_release(s);
	wait_outcomes(&o, 5);
	assert_int_equal(o.delivered, 5);
	chat_push_free(p);
	srv_stop(s);
}

/* Shutdown with the gateway hanging: free() returns after about drain_ms,
 * the in-flight POST aborted, everything counted and logged as dropped. */
static void test_shutdown_bounded(void **state)
{
	static const int script[] = { 200 };
	struct outcome o = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct srv *s = srv_start(script, 1);
	struct chat_push *p;
	struct capture cap;
	int64_t t0, took;
	char *log;

	(void)state;
	s->hold = true;
	p = client(s, &o, 3, 0, 300);
	assert_int_equal(chat_push_send(p, "{\"id\":\"h1\",\"to\":\"sip:x@y\"}"), 0);
	wait_requests(s, 1);
	assert_int_equal(chat_push_send(p, "{\"id\":\"h2\",\"to\":\"sip:x@y\"}"), 0);
	capture_start(&cap);
	t0 = cv_time_mono_ms();
	chat_push_free(p);
	took = cv_time_mono_ms() - t0;
	log = capture_end(&cap);
	assert_true(took >= 250 && took < 2000);
	assert_int_equal(o.n, 2);
	assert_int_equal(o.gave_up, 2);
	assert_non_null(strstr(log, "push h2 to sip:x@y: gave up after 0 attempts"));
	assert_non_null(strstr(log, "dropped at shutdown"));
	srv_stop(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_new_args),
		cmocka_unit_test(test_retry_then_ok),
		cmocka_unit_test(test_400_gives_up),
		cmocka_unit_test(test_exhausted),
		cmocka_unit_test(test_invalid_documents),
		cmocka_unit_test(test_queue_full),
		cmocka_unit_test(test_shutdown_bounded),
	};

	cv_log_set_level(CV_LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

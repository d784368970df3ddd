/*
 * cli_metrics — see cli_metrics.h.  Runs on libmicrohttpd's internal
 * polling thread; every request holds srv->lock from start to answer.
 */
#include "cli_metrics.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "cli.h"
#include "cv_log.h"
#include "cv_metrics.h"
#include "cv_time.h"
#include "queue.h"
#include "ret_export.h"   /* CV_VERSION */
#include "sto_db.h"

struct cli_metrics_srv {
	struct MHD_Daemon *mhd;
	struct cv_metrics *m;        /* owned */
	struct cli_health *health;   /* not owned */
	struct cli_metrics_opts o;   /* which components, which gauges */
	pthread_mutex_t lock;        /* everything below; held for a whole request */
	const struct cfg *cfg;       /* not owned; replaced on reload */
	struct sto_db *db;           /* the scrape's own connection; NULL when closed */
	int64_t last_db_ok;          /* mono ms of the last successful query; 0 never */
	bool db_down;                /* for logging the transitions once */
	char db_err[STO_ERRLEN];     /* why the last attempt failed */
};

/* ---- the database side ----------------------------------------------------- */

static void db_note(struct cli_metrics_srv *s, bool ok, const char *err)
{
	if (ok) {
		s->last_db_ok = cv_time_mono_ms();
		if (s->db_down)
			cv_logkv(CV_LOG_INFO, "metrics", "database reachable again");
		s->db_down = false;
		return;
	}
	snprintf(s->db_err, sizeof(s->db_err), "%s", err);
	sto_db_close(s->db);   /* reconnect on the next request */
	s->db = NULL;
	if (!s->db_down)
		cv_logkv(CV_LOG_WARN, "metrics", "database unreachable for /metrics and /healthz",
			 CV_KS("error", err));
	s->db_down = true;
}

/* One connection attempt when there is none: no retry loop, so a request
 * waits at most connect_timeout (2 s) plus the statement timeout. */
static bool db_ready(struct cli_metrics_srv *s)
{
	struct sto_db_opts o = {
		.conninfo = s->cfg->db.conninfo,
		.connect_timeout_s = 2,
		.retry_max_s = -1,
		.statement_timeout_ms = CLI_METRICS_STMT_TIMEOUT_MS,
		.application = "chatvault-metrics",
	};
	char err[STO_ERRLEN];

	if (s->db)
		return true;
	if (sto_db_open(&o, &s->db, err, sizeof(err)) != 0) {
		s->db = NULL;
		db_note(s, false, err);
		return false;
	}
	return true;
}

/* What a scrape reads from PostgreSQL. */
struct db_numbers {
	bool ok;
	int64_t staged, quarantined, gaps;
	int64_t *backlog, *oldest_s;   /* per configured adapter; oldest -1: none */
};

/* SELECT 1 on the server's connection; notes the outcome.  A connection
 * that fails its query may only be stale (the server ended it while nobody
 * asked): one fresh attempt then, so the reason given is today's. */
static bool db_ping(struct cli_metrics_srv *s)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		PGresult *res = NULL;
		char err[STO_ERRLEN];
		bool fresh = s->db == NULL, ok;

		if (!db_ready(s))
			return false;
		ok = sto_exec(s->db, "health check", "SELECT 1", 0, NULL, &res, err,
			      sizeof(err)) == CV_OK;
		PQclear(res);
		db_note(s, ok, ok ? NULL : err);   /* a failure closes the connection */
		if (ok || fresh)
			return ok;
	}
	return false;
}

static void db_read(struct cli_metrics_srv *s, struct db_numbers *d)
{
	const struct cfg *cfg = s->cfg;
	struct cv_buf names = { 0 };
	PGresult *res = NULL;
	char err[STO_ERRLEN];

	d->ok = false;
	if (!(s->o.components & CLI_C_DB))
		return;
	if (!s->o.pipeline_gauges) {
		d->ok = db_ping(s);
		return;
	}
	if (!db_ready(s))
		return;
	if (sto_exec(s->db, "count staged", cli_status_counts_sql, 0, NULL, &res, err,
		     sizeof(err)) != CV_OK) {
		db_note(s, false, err);
		return;
	}
	d->staged = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	d->quarantined = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	d->gaps = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	PQclear(res);
	res = NULL;
	if (cli_adapter_names(cfg, &names) != 0) {
		cv_buf_free(&names);
		return;
	}
	{
		const char *p[1] = { names.data };

		if (sto_exec(s->db, "adapter status", cli_status_adapters_sql, 1, p, &res, err,
			     sizeof(err)) != CV_OK) {
			cv_buf_free(&names);
			db_note(s, false, err);
			return;
		}
	}
	cv_buf_free(&names);
	for (size_t i = 0; i < cfg->nadapters; i++) {
		/* Never run (no state row): everything staged is its backlog. */
		d->backlog[i] = d->staged;
		d->oldest_s[i] = -1;
		for (int r = 0; r < PQntuples(res); r++) {
			const char *age = PQgetvalue(res, r, 4);

			if (strcmp(PQgetvalue(res, r, 0), cfg->adapters[i].name) != 0)
				continue;
			d->backlog[i] = strtoll(PQgetvalue(res, r, 3), NULL, 10);
			d->oldest_s[i] = *age ? strtoll(age, NULL, 10) : -1;
		}
	}
	PQclear(res);
	db_note(s, true, NULL);
	d->ok = true;
}

/* ---- /metrics ------------------------------------------------------------------ */

#define ADD(expr) do { if ((expr) != 0) goto oom; } while (0)

/* chatd's loop beat within CLI_HEALTH_DB_S: how long ago (ms), -1 never. */
static int64_t chat_beat_age(const struct cli_metrics_srv *s, int64_t now)
{
	int64_t beat = atomic_load(&s->health->chat_beat_ms);

	return beat ? now - beat : -1;
}

static bool chat_alive(const struct cli_metrics_srv *s, int64_t now)
{
	int64_t age = chat_beat_age(s, now);

	return age >= 0 && age <= CLI_HEALTH_DB_S * 1000;
}

static int scrape(struct cli_metrics_srv *s, struct cv_buf *b)
{
	const struct cfg *cfg = s->cfg;
	unsigned have = s->o.components;
	int64_t t0 = cv_time_mono_ms(), depth = -1;
	struct db_numbers d = { 0 };
	char err[256];
	int rc = -ENOMEM;
	static const struct { unsigned bit; const char *name; } comps[] = {
		{ CLI_C_INGEST, "ingest" }, { CLI_C_DELIVER, "deliver" },
		{ CLI_C_RETENTION, "retention" },
	};
	bool alive[3] = { atomic_load(&s->health->ingest), atomic_load(&s->health->deliver),
			  atomic_load(&s->health->retention) };

	d.backlog = calloc(cfg->nadapters + 1, sizeof(*d.backlog));
	d.oldest_s = calloc(cfg->nadapters + 1, sizeof(*d.oldest_s));
	if (!d.backlog || !d.oldest_s)
		goto oom;
	db_read(s, &d);
	/* The queue is ingest's: a deliver process leaves it alone.  Kafka:
	 * the lag against the positions in PostgreSQL, so only with the db. */
	if (s->o.pipeline_gauges && (have & CLI_C_INGEST) &&
	    (cfg->queue.backend == CFG_QUEUE_SPOOL || d.ok))
		depth = ing_queue_depth(cfg, s->db, err, sizeof(err));

	ADD(cv_metrics_render(s->m, b));
	ADD(cv_metrics_render_header(b, "chatvault_build_info", "Always 1; the version as a label.",
				     CV_METRIC_GAUGE));
	ADD(cv_metrics_render_sample(b, "chatvault_build_info", "version", CV_VERSION, 1));
	ADD(cv_metrics_render_header(b, "chatvault_up", (have & CLI_C_CHATD)
				     ? "1 when the component works: chatd = its SIP loop ran "
				       "within the last 15 s."
				     : "1 when the component works: db = the "
				     "scrape's query succeeded; ingest, deliver, retention = the "
				     "worker thread runs.", CV_METRIC_GAUGE));
	if (have & CLI_C_DB)
		ADD(cv_metrics_render_sample(b, "chatvault_up", "component", "db", d.ok));
	for (size_t i = 0; i < 3; i++)
		if (have & comps[i].bit)
			ADD(cv_metrics_render_sample(b, "chatvault_up", "component", comps[i].name,
						     alive[i] || atomic_load(&s->health->reloading)));
	if (have & CLI_C_CHATD)
		ADD(cv_metrics_render_sample(b, "chatvault_up", "component", "chatd",
					     chat_alive(s, cv_time_mono_ms())));
	if (depth >= 0) {
		ADD(cv_metrics_render_header(b, "chatvault_queue_depth", "Events waiting for "
					     "ingest: spool entries, or Kafka consumer lag.",
					     CV_METRIC_GAUGE));
		ADD(cv_metrics_render_sample(b, "chatvault_queue_depth", NULL, NULL, (double)depth));
	}
	if (d.ok && s->o.pipeline_gauges) {
		ADD(cv_metrics_render_header(b, "chatvault_staged_events", "Events in staging "
					     "(not yet delivered to every required adapter).",
					     CV_METRIC_GAUGE));
		ADD(cv_metrics_render_sample(b, "chatvault_staged_events", NULL, NULL, (double)d.staged));
		ADD(cv_metrics_render_header(b, "chatvault_quarantined_events", "Quarantined events "
					     "not replayed.", CV_METRIC_GAUGE));
		ADD(cv_metrics_render_sample(b, "chatvault_quarantined_events", NULL, NULL,
					     (double)d.quarantined));
		ADD(cv_metrics_render_header(b, "chatvault_sequence_gaps_open", "Recorded source.seq "
					     "gaps no late event has filled.", CV_METRIC_GAUGE));
		ADD(cv_metrics_render_sample(b, "chatvault_sequence_gaps_open", NULL, NULL,
					     (double)d.gaps));
		ADD(cv_metrics_render_header(b, "chatvault_backlog_events", "Staged events an "
					     "adapter has not acknowledged yet.", CV_METRIC_GAUGE));
		for (size_t i = 0; i < cfg->nadapters; i++)
			ADD(cv_metrics_render_sample(b, "chatvault_backlog_events", "adapter",
						     cfg->adapters[i].name, (double)d.backlog[i]));
		ADD(cv_metrics_render_header(b, "chatvault_oldest_undelivered_age_seconds", "Age of "
					     "the oldest staged event an adapter has not acknowledged "
					     "(0 when none).", CV_METRIC_GAUGE));
		for (size_t i = 0; i < cfg->nadapters; i++)
			ADD(cv_metrics_render_sample(b, "chatvault_oldest_undelivered_age_seconds",
						     "adapter", cfg->adapters[i].name,
						     d.oldest_s[i] < 0 ? 0 : (double)d.oldest_s[i]));
	}
	ADD(cv_metrics_render_header(b, "chatvault_scrape_duration_seconds", "Time this scrape "
				     "took, database queries included.", CV_METRIC_GAUGE));
	ADD(cv_metrics_render_sample(b, "chatvault_scrape_duration_seconds", NULL, NULL,
				     (double)(cv_time_mono_ms() - t0) / 1000.0));
	rc = 0;
oom:
	free(d.backlog);
	free(d.oldest_s);
	return rc;
}

/* ---- /healthz ------------------------------------------------------------------ */

/* "" when healthy, else the one-line reason. */
static void health(struct cli_metrics_srv *s, char *why, size_t len)
{
	bool reloading = atomic_load(&s->health->reloading);
	unsigned have = s->o.components;
	int64_t now = cv_time_mono_ms();

	why[0] = '\0';
	if ((have & CLI_C_INGEST) && !reloading && !atomic_load(&s->health->ingest))
		snprintf(why, len, "ingest worker is not running");
	else if ((have & CLI_C_DELIVER) && !reloading && !atomic_load(&s->health->deliver))
		snprintf(why, len, "deliver worker is not running");
	else if ((have & CLI_C_RETENTION) && !reloading && !atomic_load(&s->health->retention))
		snprintf(why, len, "retention worker is not running");
	else if ((have & CLI_C_CHATD) && chat_beat_age(s, now) < 0)
		snprintf(why, len, "chat loop not running");
	else if ((have & CLI_C_CHATD) && !chat_alive(s, now))
		snprintf(why, len, "chat loop stalled: no heartbeat for %lld s",
			 (long long)(chat_beat_age(s, now) / 1000));
	if (why[0] || !(have & CLI_C_DB))
		return;
	if (now - s->last_db_ok > 1000)
		(void)db_ping(s);
	if (s->last_db_ok == 0)
		snprintf(why, len, "database: never reached: %s", s->db_err);
	else if (now - s->last_db_ok > CLI_HEALTH_DB_S * 1000)
		snprintf(why, len, "database: no successful contact for %lld s: %s",
			 (long long)((now - s->last_db_ok) / 1000), s->db_err);
}

/* ---- HTTP ------------------------------------------------------------------------ */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned int status, char *body,
			     size_t len, const char *type, const char *allow)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	/* MUST_FREE: libmicrohttpd owns body from here (free() when sent). */
	r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned int status,
				  const char *text, const char *allow)
{
	char *body = strdup(text);

	if (!body)
		return MHD_NO;
	return reply(c, status, body, strlen(body), "text/plain; charset=utf-8", allow);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **con_cls)
{
	struct cli_metrics_srv *s = cls;
	bool is_metrics = strcmp(url, "/metrics") == 0;
	enum MHD_Result ret;

	(void)version, (void)upload, (void)upload_size, (void)con_cls;
	if (!is_metrics && strcmp(url, "/healthz") != 0)
		return reply_text(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics or /healthz\n",
				  NULL);
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n",
				  "GET, HEAD");
	pthread_mutex_lock(&s->lock);
	if (is_metrics) {
		struct cv_buf b = { 0 };

		if (scrape(s, &b) != 0) {
			cv_buf_free(&b);
			ret = reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n", NULL);
		} else {
			/* reply() owns b.data now. */
			ret = reply(c, MHD_HTTP_OK, b.data ? b.data : strdup(""), b.len,
				    "text/plain; version=0.0.4; charset=utf-8", NULL);
		}
	} else {
		char why[STO_ERRLEN + 96], line[STO_ERRLEN + 100];

		health(s, why, sizeof(why));
		if (why[0]) {
			/* One line, whatever the database said. */
			for (char *p = why; *p; p++)
				if (*p == '\n' || *p == '\r')
					*p = ' ';
			snprintf(line, sizeof(line), "%s\n", why);
			ret = reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, line, NULL);
		} else {
			ret = reply_text(c, MHD_HTTP_OK, "ok\n", NULL);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	cv_logkv(CV_LOG_WARN, "metrics", "http server", CV_KS("error", msg));
}

/* ---- life cycle ------------------------------------------------------------------ */

/* Split "HOST:PORT" / "[V6]:PORT"; host "" or "*" means every address. */
static int parse_addr(const char *addr, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon = strrchr(addr, ':');
	const char *h = addr;
	size_t n;
	char *end;
	long p;

	if (!colon || !colon[1] || strlen(colon + 1) >= plen)
		return -EINVAL;
	p = strtol(colon + 1, &end, 10);
	if (*end || p < 1 || p > 65535)
		return -EINVAL;
	snprintf(port, plen, "%s", colon + 1);
	n = (size_t)(colon - addr);
	if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']')
		h = addr + 1, n -= 2;
	else if (memchr(addr, ':', n))
		return -EINVAL;   /* a bare IPv6 address needs brackets */
	if (n >= hlen)
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	if (strcmp(host, "*") == 0)
		host[0] = '\0';
	return 0;
}

/* Bound and listening, so a busy port is reported with its reason. */
static int listen_on(const char *addr, int *fd, bool *v6, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	char host[256], port[8];
	int one = 1, rc, e;

	if (parse_addr(addr, host, sizeof(host), port, sizeof(port)) != 0) {
		snprintf(err, errlen, "--metrics %s: want HOST:PORT (e.g. 127.0.0.1:9187, "
			 "[::1]:9187, *:9187)", addr);
		return -EINVAL;
	}
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
	if (rc != 0) {
		snprintf(err, errlen, "--metrics %s: %s", addr, gai_strerror(rc));
		return -EINVAL;
	}
	*fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	if (*fd < 0)
		goto fail;
	setsockopt(*fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	*v6 = ai->ai_family == AF_INET6;
	if (bind(*fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(*fd, 16) != 0)
		goto fail;
	freeaddrinfo(ai);
	return 0;
fail:
	e = errno;
	snprintf(err, errlen, "--metrics %s: cannot listen: %s", addr, strerror(e));
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
	freeaddrinfo(ai);
	return -e;
}

int cli_metrics_arg(int argc, char **argv, int *i, const char **addr)
{
	if (strcmp(argv[*i], "--metrics") == 0 && *i + 1 < argc) {
		*addr = argv[++*i];
		return 1;
	}
	if (strncmp(argv[*i], "--metrics=", 10) == 0) {
		*addr = argv[*i] + 10;
		return 1;
	}
	return 0;
}

/* cli_metrics_serve's work, without taking m: 0, -EINVAL for a malformed
 * address or options, or negative errno (err holds one line: what and why). */
static int cli_metrics_start(const char *addr, const struct cfg *cfg, struct cv_metrics *m,
			     struct cli_health *h, const struct cli_metrics_opts *o,
			     struct cli_metrics_srv **out, char *err, size_t errlen)
{
	struct cli_metrics_srv *s;
	bool v6 = false;
	int fd = -1, rc;

	*out = NULL;
	if (!o || !o->components || (o->pipeline_gauges && !(o->components & CLI_C_DB))) {
		snprintf(err, errlen, "metrics: no components, or pipeline gauges without the database");
		return -EINVAL;
	}
	if ((rc = listen_on(addr, &fd, &v6, err, errlen)) != 0)
		return rc;
	s = calloc(1, sizeof(*s));
	if (!s) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	s->cfg = cfg;
	s->m = m;
	s->health = h;
	s->o = *o;
	snprintf(s->db_err, sizeof(s->db_err), "no attempt yet");
	/* The listening socket belongs to libmicrohttpd from here on. */
	s->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
				  MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0),
				  0, NULL, NULL, handle, s,
				  MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				  MHD_OPTION_LISTEN_SOCKET, fd,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CLI_METRICS_MAX_CONN,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
				  MHD_OPTION_END);
	if (!s->mhd) {
		close(fd);
		pthread_mutex_destroy(&s->lock);
		free(s);
		snprintf(err, errlen, "--metrics %s: cannot start the HTTP server", addr);
		return -EIO;
	}
	cv_logkv(CV_LOG_INFO, "metrics", "serving /metrics and /healthz", CV_KS("listen", addr));
	*out = s;
	return 0;
}

int cli_metrics_serve(struct cli_ctx *ctx, const char *addr, struct cv_metrics *m,
		      struct cli_health *h, const struct cli_metrics_opts *o,
		      struct cli_metrics_srv **out)
{
	char err[512];
	int rc;

	*out = NULL;
	if (!m) {
		cli_error(ctx, "metrics: out of memory");
		return CLI_RUNTIME;
	}
	rc = cli_metrics_start(addr, ctx->cfg, m, h, o, out, err, sizeof(err));
	if (rc != 0) {
		cv_metrics_free(m);
		cli_error(ctx, "%s", err);
		return rc == -EINVAL ? CLI_USAGE : CLI_RUNTIME;
	}
	return CLI_OK;
}

int cli_metrics_reload(struct cli_metrics_srv *s, struct cli_ctx *ctx, const char *application,
		       struct sto_db **db)
{
	int rc;

	if (s)
		pthread_mutex_lock(&s->lock);   /* waits for a request in progress */
	rc = cli_reload_config(ctx);
	if (s) {
		s->cfg = ctx->cfg;
		sto_db_close(s->db);   /* the conninfo may have changed */
		s->db = NULL;
		pthread_mutex_unlock(&s->lock);
	}
	if (rc != 0 || !db)
		return CLI_OK;
	sto_db_close(*db);
	*db = NULL;
	return cli_open_db(ctx, application, db);
}

void cli_metrics_stop(struct cli_metrics_srv *s)
{
	if (!s)
		return;
	MHD_stop_daemon(s->mhd);
	sto_db_close(s->db);
	cv_metrics_free(s->m);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

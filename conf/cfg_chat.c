/*
 * cfg_chat — parse, default, print and free the `chat {}` and `im {}`
 * sections (contract in cfg_chat.h; keys in conf/chatvault.conf).
 *
 * Same rules as cfg.c: unknown keys, wrong types and out-of-range values
 * fail with "FILE:LINE: KEY: reason"; every string is copied, nothing of
 * libconfig's tree survives the load.
 */
#include "cfg_chat.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libconfig.h>

#define KEYLEN 128

static const char *const chat_keys[] = {
	"listen", "domain", "realm", "max_message_size", "max_headers",
	"max_registrations_per_user", "max_connections", "registration_min_expires",
	"registration_max_expires", "pool_uris", "push_url", "push_max_attempts",
	"push_backoff_ms", "channel_uris", "search_limit", "message_size_limit",
	"story_size_limit", "channel_backlog", "files_listen", "files_url", "files_max_upload_mb",
	NULL
};
static const char *const im_keys[] = { "max_sessions", "idle_timeout", "inactivity_timeout", NULL };

struct ld {
	cfg_chat_src_fn src;
	void *arg;
	char *err;
	size_t errlen;
};

static int fail(struct ld *ld, const config_setting_t *s, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(struct ld *ld, const config_setting_t *s, const char *key, const char *fmt, ...)
{
	char msg[256];
	const char *file = ld->src ? ld->src(ld->arg, s) : NULL;
	unsigned line = s ? config_setting_source_line(s) : 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ld->err && ld->errlen) {
		if (file && line)
			snprintf(ld->err, ld->errlen, "%s:%u: %s: %s", file, line, key, msg);
		else
			snprintf(ld->err, ld->errlen, "%s%s%s: %s", file ? file : "",
				 file ? ": " : "", key, msg);
	}
	return -EINVAL;
}

static int oom(struct ld *ld)
{
	if (ld->err && ld->errlen)
		snprintf(ld->err, ld->errlen, "config: out of memory");
	return -ENOMEM;
}

static int check_keys(struct ld *ld, const config_setting_t *g, const char *sect,
		      const char *const *known)
{
	int n = config_setting_length(g);

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(s);
		char key[KEYLEN], hint[512];
		size_t o = 0;
		bool ok = false;

		for (const char *const *k = known; name && *k; k++)
			ok = ok || strcmp(*k, name) == 0;
		if (ok)
			continue;
		hint[0] = '\0';
		for (const char *const *k = known; *k && o < sizeof(hint); k++)
			o += (size_t)snprintf(hint + o, sizeof(hint) - o, "%s%s",
					      k == known ? "" : ", ", *k);
		snprintf(key, sizeof(key), "%s.%s", sect, name ? name : "?");
		return fail(ld, s, key, "unknown key (known here: %s)", hint);
	}
	return 0;
}

static int get_int(struct ld *ld, const config_setting_t *g, const char *sect, const char *name,
		   long long lo, long long hi, int *dst)
{
	const config_setting_t *s = config_setting_get_member(g, name);
	char key[KEYLEN];
	long long v;

	if (!s)
		return 0;
	snprintf(key, sizeof(key), "%s.%s", sect, name);
	if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64)
		return fail(ld, s, key, "must be an integer");
	v = config_setting_get_int64(s);
	if (v < lo || v > hi)
		return fail(ld, s, key, "must be %lld..%lld (got %lld)", lo, hi, v);
	*dst = (int)v;
	return 0;
}

static int get_str(struct ld *ld, const config_setting_t *g, const char *sect, const char *name,
		   bool nonempty, char **dst, const config_setting_t **pos)
{
	const config_setting_t *s = config_setting_get_member(g, name);
	char key[KEYLEN];
	const char *v;
	char *copy;

	if (pos)
		*pos = s;
	if (!s)
		return 0;
	snprintf(key, sizeof(key), "%s.%s", sect, name);
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return fail(ld, s, key, "must be a string");
	v = config_setting_get_string(s);
	if (nonempty && (!v || !*v))
		return fail(ld, s, key, "must not be empty");
	if (v && strlen(v) > 1024)
		return fail(ld, s, key, "longer than 1024 bytes");
	copy = strdup(v ? v : "");
	if (!copy)
		return oom(ld);
	free(*dst);
	*dst = copy;
	return 0;
}

/* A domain / realm: host name characters only (it goes into SIP headers). */
static bool valid_token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_'))
			return false;
	}
	return true;
}

/* "sip:" followed by printable characters without space, quote or angle. */
static bool valid_sip_uri(const char *s)
{
	if (strncmp(s, "sip:", 4) != 0 || !s[4])
		return false;
	for (s += 4; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f || *s == '"' ||
		    *s == '<' || *s == '>')
			return false;
	return true;
}

/* "sip:USER@HOST" with USER of [a-z0-9._-] (a Channel service we serve). */
static bool valid_service_uri(const char *s)
{
	const char *at;

	if (!valid_sip_uri(s) || !(at = strchr(s + 4, '@')) || at == s + 4 || !valid_token(at + 1))
		return false;
	for (const char *p = s + 4; p < at; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' ||
		      *p == '_' || *p == '-'))
			return false;
	return true;
}

/* An array of SIP URIs (key chat.NAME, at most max); service: each must
 * be a valid_service_uri and all distinct. */
static int get_uri_list(struct ld *ld, const config_setting_t *g, const char *name, int max,
			bool service, char ***list, size_t *n)
{
	const config_setting_t *s = config_setting_get_member(g, name);
	char key[KEYLEN];
	int len;

	if (!s)
		return 0;
	snprintf(key, sizeof(key), "chat.%s", name);
	if (config_setting_type(s) != CONFIG_TYPE_ARRAY && config_setting_type(s) != CONFIG_TYPE_LIST)
		return fail(ld, s, key, "must be an array of SIP URIs [ \"sip:...\" ]");
	len = config_setting_length(s);
	if (len > max)
		return fail(ld, s, key, "at most %d URIs (got %d)", max, len);
	if (service && len < 1)
		return fail(ld, s, key, "at least one URI");
	for (size_t i = 0; i < *n; i++)
		free((*list)[i]);
	free(*list);
	*n = 0;
	*list = calloc((size_t)len + 1, sizeof(**list));
	if (!*list)
		return oom(ld);
	for (int i = 0; i < len; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *v = config_setting_type(e) == CONFIG_TYPE_STRING
					? config_setting_get_string(e) : NULL;

		if (!v || !valid_sip_uri(v) || strlen(v) > 256)
			return fail(ld, e, key, "element %d must be a sip: URI of at most 256 bytes", i);
		if (service && !valid_service_uri(v))
			return fail(ld, e, key, "element %d must be sip:USER@HOST, USER of a-z 0-9 . _ -", i);
		for (int j = 0; service && j < i; j++)
			if (strcmp((*list)[j], v) == 0)
				return fail(ld, e, key, "element %d repeats \"%s\"", i, v);
		(*list)[i] = strdup(v);
		if (!(*list)[i])
			return oom(ld);
		(*n)++;
	}
	return 0;
}

/* "host:port" or "[v6]:port", port 1..65535. */
static bool valid_listen(const char *s)
{
	const char *colon = strrchr(s, ':');
	char *end;
	long port;

	if (!colon || colon == s)
		return false;
	port = strtol(colon + 1, &end, 10);
	return *end == '\0' && colon[1] && port >= 1 && port <= 65535;
}

/* "a.b.c.d:port", port 0..65535 (0: any free port). */
static bool valid_files_listen(const char *s)
{
	unsigned a, b, c, d, port;
	char tail;

	return sscanf(s, "%3u.%3u.%3u.%3u:%5u%c", &a, &b, &c, &d, &port, &tail) == 5 && a < 256 &&
	       b < 256 && c < 256 && d < 256 && port <= 65535;
}

/* Goes into an XML attribute and a log line: printable ASCII, no quote, space or angle. */
static bool valid_url_chars(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f || *s == '"' || *s == '<' ||
		    *s == '>' || *s == '\'')
			return false;
	return true;
}

void cfg_chat_defaults(struct cfg_chat *c, struct cfg_im *im)
{
	memset(c, 0, sizeof(*c));
	memset(im, 0, sizeof(*im));
	c->max_message_size = 65536;
	c->max_headers = 64;
	c->max_registrations_per_user = 8;
	c->max_connections = 1024;
	c->registration_min_expires = 60;
	c->registration_max_expires = 3600;
	c->push_max_attempts = 5;
	c->push_backoff_ms = 500;
	c->search_limit = 999;
	c->message_size_limit = 512;
	c->story_size_limit = 4096;
	c->channel_backlog = 4096;
	c->files_max_upload_mb = 100;
	im->max_sessions = 0;
	im->idle_timeout_s = 600;
	im->inactivity_timeout_s = 3600;
}

int cfg_chat_load(const config_setting_t *root, cfg_chat_src_fn src, void *arg,
		  struct cfg_chat *c, struct cfg_im *im, char *err, size_t errlen)
{
	struct ld ld = { .src = src, .arg = arg, .err = err, .errlen = errlen };
	const config_setting_t *g, *pos;
	int rc;

	g = config_setting_get_member(root, "chat");
	if (g) {
		if (config_setting_type(g) != CONFIG_TYPE_GROUP)
			return fail(&ld, g, "chat", "must be a group { ... }");
		if ((rc = check_keys(&ld, g, "chat", chat_keys)) ||
		    (rc = get_str(&ld, g, "chat", "listen", true, &c->listen, &pos)))
			return rc;
		if (c->listen && !valid_listen(c->listen))
			return fail(&ld, pos, "chat.listen", "must be \"HOST:PORT\" (got \"%s\")",
				    c->listen);
		if ((rc = get_str(&ld, g, "chat", "domain", true, &c->domain, &pos)))
			return rc;
		if (c->domain && (!valid_token(c->domain) || strlen(c->domain) > 253))
			return fail(&ld, pos, "chat.domain", "must be a host name (got \"%s\")",
				    c->domain);
		if ((rc = get_str(&ld, g, "chat", "realm", true, &c->realm, &pos)))
			return rc;
		if (c->realm && (strchr(c->realm, '"') || strchr(c->realm, '\\') ||
				 strlen(c->realm) > 253))
			return fail(&ld, pos, "chat.realm", "must not contain quotes or backslashes");
		if ((rc = get_int(&ld, g, "chat", "max_message_size", 1024, 1048576,
				  &c->max_message_size)) ||
		    (rc = get_int(&ld, g, "chat", "max_headers", 8, 1024, &c->max_headers)) ||
		    (rc = get_int(&ld, g, "chat", "max_registrations_per_user", 1, 1024,
				  &c->max_registrations_per_user)) ||
		    (rc = get_int(&ld, g, "chat", "max_connections", 1, 1000000,
				  &c->max_connections)) ||
		    (rc = get_int(&ld, g, "chat", "registration_min_expires", 10, 86400,
				  &c->registration_min_expires)) ||
		    (rc = get_int(&ld, g, "chat", "registration_max_expires", 10, 604800,
				  &c->registration_max_expires)) ||
		    (rc = get_uri_list(&ld, g, "pool_uris", 64, false, &c->pool_uris,
				       &c->npool_uris)) ||
		    (rc = get_uri_list(&ld, g, "channel_uris", 16, true, &c->channel_uris,
				       &c->nchannel_uris)) ||
		    (rc = get_str(&ld, g, "chat", "push_url", false, &c->push_url, &pos)))
			return rc;
		if (c->push_url && *c->push_url && strncmp(c->push_url, "http://", 7) != 0 &&
		    strncmp(c->push_url, "https://", 8) != 0)
			return fail(&ld, pos, "chat.push_url", "must be an http:// or https:// URL");
		if ((rc = get_int(&ld, g, "chat", "push_max_attempts", 1, 100,
				  &c->push_max_attempts)) ||
		    (rc = get_int(&ld, g, "chat", "push_backoff_ms", 1, 600000, &c->push_backoff_ms)) ||
		    (rc = get_int(&ld, g, "chat", "search_limit", 1, 100000, &c->search_limit)) ||
		    (rc = get_int(&ld, g, "chat", "message_size_limit", 1, 32768,
				  &c->message_size_limit)) ||
		    (rc = get_int(&ld, g, "chat", "story_size_limit", 1, 32768,
				  &c->story_size_limit)) ||
		    (rc = get_int(&ld, g, "chat", "channel_backlog", 1, 1000000,
				  &c->channel_backlog)) ||
		    (rc = get_int(&ld, g, "chat", "files_max_upload_mb", 1, 102400,
				  &c->files_max_upload_mb)) ||
		    (rc = get_str(&ld, g, "chat", "files_listen", true, &c->files_listen, &pos)))
			return rc;
		if (c->files_listen && !valid_files_listen(c->files_listen))
			return fail(&ld, pos, "chat.files_listen",
				    "must be \"IPv4:PORT\", PORT 0..65535 (got \"%s\")", c->files_listen);
		if ((rc = get_str(&ld, g, "chat", "files_url", false, &c->files_url, &pos)))
			return rc;
		if (c->files_url && *c->files_url &&
		    ((strncmp(c->files_url, "http://", 7) != 0 &&
		      strncmp(c->files_url, "https://", 8) != 0) || !valid_url_chars(c->files_url)))
			return fail(&ld, pos, "chat.files_url",
				    "must be an http:// or https:// URL without spaces or quotes");
		if (c->story_size_limit < c->message_size_limit)
			return fail(&ld, config_setting_get_member(g, "story_size_limit")
					     ? config_setting_get_member(g, "story_size_limit") : g,
				    "chat.story_size_limit", "must be >= message_size_limit (%d)",
				    c->message_size_limit);
		if (c->registration_max_expires < c->registration_min_expires)
			return fail(&ld, config_setting_get_member(g, "registration_max_expires")
					     ? config_setting_get_member(g, "registration_max_expires")
					     : g,
				    "chat.registration_max_expires",
				    "must be >= registration_min_expires (%d)",
				    c->registration_min_expires);
	}
	g = config_setting_get_member(root, "im");
	if (g) {
		if (config_setting_type(g) != CONFIG_TYPE_GROUP)
			return fail(&ld, g, "im", "must be a group { ... }");
		if ((rc = check_keys(&ld, g, "im", im_keys)) ||
		    (rc = get_int(&ld, g, "im", "max_sessions", 0, 10000000, &im->max_sessions)) ||
		    (rc = get_int(&ld, g, "im", "idle_timeout", 1, 604800, &im->idle_timeout_s)) ||
		    (rc = get_int(&ld, g, "im", "inactivity_timeout", 1, 2592000,
				  &im->inactivity_timeout_s)))
			return rc;
	}
	return 0;
}

int cfg_chat_finish(struct cfg_chat *c, struct cfg_im *im, char *err, size_t errlen)
{
	(void)im;
	if (!c->listen && !(c->listen = strdup("127.0.0.1:5060")))
		goto nomem;
	if (!c->domain && !(c->domain = strdup("example.test")))
		goto nomem;
	if (!c->realm && !(c->realm = strdup(c->domain)))
		goto nomem;
	if (!c->push_url && !(c->push_url = strdup("")))
		goto nomem;
	if (!c->files_listen && !(c->files_listen = strdup("127.0.0.1:0")))
		goto nomem;
	if (!c->files_url && !(c->files_url = strdup("")))
		goto nomem;
	if (c->nchannel_uris == 0 && !c->channel_uris) {
		c->channel_uris = calloc(3, sizeof(*c->channel_uris));
		if (!c->channel_uris)
			goto nomem;
		for (int i = 0; i < 2; i++) {
			if (asprintf(&c->channel_uris[i], "sip:chan%d@%s", i + 1, c->domain) < 0) {
				c->channel_uris[i] = NULL;
				goto nomem;
			}
			c->nchannel_uris++;
		}
	}
	for (size_t i = 0; i < c->nchannel_uris; i++) {
		const char *host = strchr(c->channel_uris[i], '@');

		if (!host || strcasecmp(host + 1, c->domain) != 0 ||
		    strncasecmp(c->channel_uris[i], "sip:ocschat@", 12) == 0) {
			if (err && errlen)
				snprintf(err, errlen, "chat.channel_uris: \"%s\" must be in chat.domain "
					 "\"%s\" and not the Lookup service sip:ocschat@",
					 c->channel_uris[i], c->domain);
			return -EINVAL;
		}
	}
	if (c->npool_uris == 0 && !c->pool_uris) {
		c->pool_uris = calloc(2, sizeof(*c->pool_uris));
		if (!c->pool_uris || asprintf(&c->pool_uris[0], "sip:ocschat@%s", c->domain) < 0) {
			free(c->pool_uris);
			c->pool_uris = NULL;
			goto nomem;
		}
		c->npool_uris = 1;
	}
	return 0;
nomem:
	if (err && errlen)
		snprintf(err, errlen, "config: out of memory");
	return -ENOMEM;
}

void cfg_chat_free(struct cfg_chat *c)
{
	if (!c)
		return;
	free(c->listen);
	free(c->domain);
	free(c->realm);
	free(c->push_url);
	for (size_t i = 0; i < c->npool_uris; i++)
		free(c->pool_uris[i]);
	free(c->pool_uris);
	for (size_t i = 0; i < c->nchannel_uris; i++)
		free(c->channel_uris[i]);
	free(c->channel_uris);
	free(c->files_listen);
	free(c->files_url);
	memset(c, 0, sizeof(*c));
}

/* Strings here are validated (no quotes except in push_url), but escape anyway. */
static void put_kv(FILE *out, const char *k, const char *v)
{
	fprintf(out, "\t%s = \"", k);
	for (const char *p = v ? v : ""; *p; p++) {
		if (*p == '"' || *p == '\\')
			fputc('\\', out);
		fputc(*p, out);
	}
	fputs("\";\n", out);
}

void cfg_chat_print(const struct cfg_chat *c, const struct cfg_im *im, FILE *out)
{
	fputs("chat = {\n", out);
	put_kv(out, "listen", c->listen);
	put_kv(out, "domain", c->domain);
	put_kv(out, "realm", c->realm);
	fprintf(out, "\tmax_message_size = %d;\n\tmax_headers = %d;\n"
		"\tmax_registrations_per_user = %d;\n\tmax_connections = %d;\n"
		"\tregistration_min_expires = %d;\n\tregistration_max_expires = %d;\n"
		"\tpool_uris = [",
		c->max_message_size, c->max_headers, c->max_registrations_per_user,
		c->max_connections, c->registration_min_expires, c->registration_max_expires);
	for (size_t i = 0; i < c->npool_uris; i++)
		fprintf(out, "%s\"%s\"", i ? ", " : " ", c->pool_uris[i]);
	fputs(c->npool_uris ? " ];\n" : "];\n", out);
	put_kv(out, "push_url", c->push_url);
	fprintf(out, "\tpush_max_attempts = %d;\n\tpush_backoff_ms = %d;\n\tchannel_uris = [",
		c->push_max_attempts, c->push_backoff_ms);
	for (size_t i = 0; i < c->nchannel_uris; i++)
		fprintf(out, "%s\"%s\"", i ? ", " : " ", c->channel_uris[i]);
	fputs(c->nchannel_uris ? " ];\n" : "];\n", out);
	fprintf(out, "\tsearch_limit = %d;\n\tmessage_size_limit = %d;\n\tstory_size_limit = %d;\n"
		"\tchannel_backlog = %d;\n", c->search_limit, c->message_size_limit,
		c->story_size_limit, c->channel_backlog);
	put_kv(out, "files_listen", c->files_listen);
	put_kv(out, "files_url", c->files_url);
	fprintf(out, "\tfiles_max_upload_mb = %d;\n};\n", c->files_max_upload_mb);
	fprintf(out, "im = {\n\tmax_sessions = %d;\n\tidle_timeout = %d;\n"
		"\tinactivity_timeout = %d;\n};\n",
		im->max_sessions, im->idle_timeout_s, im->inactivity_timeout_s);
}

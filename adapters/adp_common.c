/*
 * adp_common — see adp_common.h.
 */
#include "adp_common.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cv_time.h"
#include "cv_util.h"

static const struct adp_type_info type_infos[] = {
	{ "chat.join", ADP_K_JOIN, false, "JOIN" },
	{ "chat.part", ADP_K_PART, false, "PART" },
	{ "chat.post", ADP_K_POST, false, "CHAT" },
	{ "chat.backchat", ADP_K_BACKCHAT, false, "BACKCHAT" },
	{ "chat.file.upload", ADP_K_UPLOAD, false, "FILEUPLOAD" },
	{ "chat.file.download", ADP_K_DOWNLOAD, false, "FILEDOWNLOAD" },
	{ "chat.delete", ADP_K_DELETE, false, "DELETE" },
	{ "im.message", ADP_K_IM, true, "CHAT" },
	{ "im.session.start", ADP_K_IM_START, true, "JOIN" },
	{ "im.session.end", ADP_K_IM_END, true, "PART" },
};

const struct adp_type_info *adp_type_info(const char *type)
{
	if (!type)
		return NULL;
	for (size_t i = 0; i < sizeof(type_infos) / sizeof(type_infos[0]); i++)
		if (strcmp(type_infos[i].type, type) == 0)
			return &type_infos[i];
	return NULL;
}

enum adp_result adp_check_events(struct adp_batch *b, const char *adapter, bool need_json)
{
	for (size_t i = 0; i < b->nevents; i++) {
		const struct adp_event *e = &b->events[i];
		const struct adp_type_info *m = adp_type_info(e->type);
		const char *why = NULL;

		if (!m)
			why = "unknown event type";
		else if (!e->user || !*e->user)
			why = "event has no user";
		else if (!m->im && (!e->room || !*e->room))
			why = "chat event has no room";
		else if (m->im && (!e->to || !*e->to))
			why = "im event has no to";
		else if (e->nfiles && !e->files)
			why = "event file list missing";
		else if (need_json && (!e->json || e->json_len == 0))
			why = "event has no canonical json";
		else if (e->ts_ms < CV_TIME_MIN_MS || e->ts_ms > CV_TIME_MAX_MS)
			why = "timestamp out of range";
		if (why) {
			snprintf(b->reason, sizeof(b->reason), "%s: staging id %" PRId64 ": %s (%s)",
				 adapter, e->staging_id, why, e->type ? e->type : "no type");
			b->fail_staging_id = e->staging_id;
			return ADP_FAIL;
		}
	}
	return ADP_OK;
}

const char *adp_sip_strip(const char *uri)
{
	if (strncasecmp(uri, "sip:", 4) == 0)
		return uri + 4;
	if (strncasecmp(uri, "sips:", 5) == 0)
		return uri + 5;
	return uri;
}

char *adp_sip_addr(const char *uri)
{
	const char *s = adp_sip_strip(uri);

	return strndup(s, strcspn(s, ";?"));
}

char *adp_room_name(const char *uri)
{
	size_t len = strlen(uri);
	const char *end, *start;

	while (len > 0 && uri[len - 1] == '/')
		len--;
	end = uri + len;
	start = end;
	while (start > uri && start[-1] != '/')
		start--;
	if (start == end)
		return strdup(uri);
	return strndup(start, (size_t)(end - start));
}

/* ---- conversations ---------------------------------------------------------- */

void adp_convs_free(struct adp_conv_set *cs)
{
	for (size_t i = 0; i < cs->n; i++) {
		free(cs->v[i].key);
		free(cs->v[i].name);
		free(cs->v[i].ev);
	}
	free(cs->v);
	free(cs->slots);
	memset(cs, 0, sizeof(*cs));
}

static int conv_identity(const struct adp_event *e, bool im, char **key, char **name)
{
	char *a = NULL, *b = NULL;
	int rc = 0;

	*key = *name = NULL;
	if (!im) {
		*key = strdup(e->room);
		*name = adp_room_name(e->room);
		goto out;
	}
	a = adp_sip_addr(e->user);
	b = adp_sip_addr(e->to);
	if (!a || !b) {
		rc = -ENOMEM;
		goto out;
	}
	if (strcmp(a, b) > 0) {
		char *t = a;

		a = b;
		b = t;
	}
	if (asprintf(key, "im:%s;%s", a, b) < 0)
		*key = NULL;
	if (asprintf(name, "%s, %s", a, b) < 0)
		*name = NULL;
out:
	free(a);
	free(b);
	if (rc == 0 && (!*key || !*name))
		rc = -ENOMEM;
	if (rc) {
		free(*key);
		free(*name);
		*key = *name = NULL;
	}
	return rc;
}

static int conv_push(struct adp_conv *c, size_t idx)
{
	if (c->nev == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		size_t *p = reallocarray(c->ev, cap, sizeof(*p));

		if (!p)
			return -ENOMEM;
		c->ev = p;
		c->cap = cap;
	}
	c->ev[c->nev++] = idx;
	return 0;
}

/* FNV-1a: the index only needs a cheap, well-spread hash of the key. */
static size_t key_hash(const char *s)
{
	uint64_t h = UINT64_C(1469598103934665603);

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
	return (size_t)h;
}

/* Slot of key in the index: where it is, or the empty slot it would take. */
static size_t slot_of(const struct adp_conv_set *cs, const char *key)
{
	size_t mask = cs->nslots - 1, s = key_hash(key) & mask;

	while (cs->slots[s] && strcmp(cs->v[cs->slots[s] - 1].key, key) != 0)
		s = (s + 1) & mask;
	return s;
}

/* Keep the index under half full (a batch can hold thousands of IM pairs). */
static int index_grow(struct adp_conv_set *cs)
{
	size_t n = cs->nslots ? cs->nslots * 2 : 64;
	size_t *old = cs->slots, oldn = cs->nslots;

	cs->slots = calloc(n, sizeof(*cs->slots));
	if (!cs->slots) {
		cs->slots = old;
		return -ENOMEM;
	}
	cs->nslots = n;
	for (size_t i = 0; i < oldn; i++)
		if (old[i])
			cs->slots[slot_of(cs, cs->v[old[i] - 1].key)] = old[i];
	free(old);
	return 0;
}

int adp_convs_build(const struct adp_batch *b, struct adp_conv_set *cs)
{
	for (size_t i = 0; i < b->nevents; i++) {
		const struct adp_type_info *m = adp_type_info(b->events[i].type);
		char *key, *name;
		size_t c, s;
		int rc;

		if (!m)
			return -EINVAL;
		if ((cs->n + 1) * 2 >= cs->nslots && (rc = index_grow(cs)) != 0)
			return rc;
		if ((rc = conv_identity(&b->events[i], m->im, &key, &name)) != 0)
			return rc;
		s = slot_of(cs, key);
		if (cs->slots[s]) {
			c = cs->slots[s] - 1;
			free(key);
			free(name);
		} else {
			if (cs->n == cs->cap) {
				size_t cap = cs->cap ? cs->cap * 2 : 8;
				struct adp_conv *p = reallocarray(cs->v, cap, sizeof(*p));

				if (!p) {
					free(key);
					free(name);
					return -ENOMEM;
				}
				cs->v = p;
				cs->cap = cap;
			}
			c = cs->n++;
			memset(&cs->v[c], 0, sizeof(cs->v[c]));
			cs->v[c].key = key;
			cs->v[c].name = name;
			cs->v[c].im = m->im;
			cs->slots[s] = c + 1;
		}
		if ((rc = conv_push(&cs->v[c], i)) != 0)
			return rc;
	}
	return 0;
}

/* ---- output layout ---------------------------------------------------------- */

int adp_day_dir(const char *base, int64_t ms, char *out, size_t outlen)
{
	int64_t secs = ms / 1000 - (ms % 1000 < 0);
	time_t t = (time_t)secs;
	struct tm tm;
	int n;

	if (!gmtime_r(&t, &tm))
		return -EINVAL;
	n = snprintf(out, outlen, "%s/%04d/%02d/%02d", base, tm.tm_year + 1900,
		     tm.tm_mon + 1, tm.tm_mday);
	if (n < 0 || (size_t)n >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

int adp_make_day_dir(const char *base, const char *day, char *failed, size_t failedlen)
{
	char p[PATH_MAX];
	size_t baselen = strlen(base);
	int rc;

	snprintf(failed, failedlen, "%s", day);
	rc = cv_mkdir_p(day, 0750);
	if (rc)
		return rc;
	snprintf(p, sizeof(p), "%s", day);
	for (;;) {
		char *slash = strrchr(p, '/');
		size_t len = strlen(p);

		if (len < baselen)
			break;
		if (!slash)
			snprintf(p, sizeof(p), ".");
		else if (slash == p)
			p[1] = '\0';
		else
			*slash = '\0';
		snprintf(failed, failedlen, "%s", p);
		rc = cv_fsync_dir(p);
		if (rc)
			return rc;
		if (len == baselen || strcmp(p, ".") == 0 || strcmp(p, "/") == 0)
			break;
	}
	return 0;
}

char *adp_safe_name(const char *name, const char *dflt)
{
	char *s = strdup(name && *name ? name : dflt);

	for (char *p = s; p && *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
			*p = '_';
	return s;
}

char *adp_resolve_dir(const struct adp_env *env, const char *type)
{
	const char *d = adp_env_opt(env, "dir");
	char *s = NULL;

	if (d && *d)
		return strdup(d);
	if (asprintf(&s, "%s/%s", env->data_dir && *env->data_dir ? env->data_dir : ".",
		     type) < 0)
		return NULL;
	return s;
}

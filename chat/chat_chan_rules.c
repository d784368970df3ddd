/*
 * chat_chan_rules — see chat_chan_rules.h.
 */
#include "chat_chan_rules.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

size_t chat_chan_least_loaded(const size_t *load, size_t n)
{
	size_t best = 0;

	for (size_t i = 1; i < n; i++)
		if (load[i] < load[best])
			best = i;
	return best;
}

int chat_chan_access(bool exists, bool is_private, bool member, bool manager, bool invited)
{
	if (!exists)
		return 404;
	if (!is_private || member || manager || invited)
		return 200;
	return 403;
}

int chat_chan_post_check(size_t len, bool story, int message_size_limit, int story_size_limit,
			 bool joined)
{
	size_t lim = (size_t)(story ? story_size_limit : message_size_limit);

	if (len > lim)
		return 413;
	return joined ? 200 : 403;
}

int chat_chan_file_name(const char *file_url, char *out, size_t outlen)
{
	const char *slash = file_url ? strrchr(file_url, '/') : NULL;
	const char *name = slash ? slash + 1 : file_url;
	size_t n;

	if (!name)
		return -EINVAL;
	n = strlen(name);
	if (n == 0 || n > 255 || n >= outlen || !strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	for (const char *p = name; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\' || *p == '?')
			return -EINVAL;
	memcpy(out, name, n + 1);
	return 0;
}

/* The value after the first `key="` in s[0..len): its start and length. */
static const char *attr_value(const char *s, size_t len, const char *key, size_t *vlen)
{
	size_t kl = strlen(key);

	for (size_t i = 0; i + kl < len; i++) {
		if (memcmp(s + i, key, kl) != 0)
			continue;
		if (i > 0 && s[i - 1] != ' ' && s[i - 1] != '\t' && s[i - 1] != '\n' &&
		    s[i - 1] != '\r')
			continue;
		for (size_t j = i + kl; j < len; j++)
			if (s[j] == '"') {
				*vlen = j - (i + kl);
				return s + i + kl;
			}
		return NULL;
	}
	return NULL;
}

void chat_chan_salvage(const char *buf, size_t len, int64_t *envid, char *name, size_t namelen)
{
	const char *v;
	size_t vl = 0;

	if (len > 4096)
		len = 4096;
	*envid = 0;
	if (namelen)
		snprintf(name, namelen, "unknown");
	if (!buf)
		return;
	v = attr_value(buf, len, "envid=\"", &vl);
	if (v && vl > 0 && vl <= 18) {
		int64_t e = 0;
		size_t i;

		for (i = 0; i < vl && v[i] >= '0' && v[i] <= '9'; i++)
			e = e * 10 + (v[i] - '0');
		if (i == vl)
			*envid = e;
	}
	v = attr_value(buf, len, "id=\"cmd:", &vl);
	if (v && vl > 0 && vl < namelen && vl <= 32) {
		size_t i;

		for (i = 0; i < vl && v[i] >= 'a' && v[i] <= 'z'; i++)
			;
		if (i == vl) {
			memcpy(name, v, vl);
			name[vl] = '\0';
		}
	}
}

/*
 * cfg — load, validate, print and free the chatvault configuration
 * (contract in cfg.h; every key documented in conf/chatvault.conf).
 *
 * Loading is single-threaded and happens once (or on SIGHUP into a fresh
 * struct cfg); the result is immutable and self-contained: every string is
 * copied and libconfig's config_t is destroyed before cfg_load returns, so
 * any thread may read a struct cfg without locks.
 *
 * How a file is read (libconfig 1.5, Debian 12):
 *   1. parse with libconfig; the include directory is the directory of the
 *      main file, so `@include "regulations/finra-4511.conf"` works from any
 *      cwd.  libconfig 1.5 prefixes that directory to EVERY include path
 *      (absolute ones too) and nested includes resolve against the same
 *      directory, not the including fragment's;
 *   2. record every file read (config_t.filenames: main file first, then
 *      includes, resolved to the path libconfig actually opened);
 *   3. re-scan those files for integer literals that libconfig 1.5 would
 *      silently truncate to 32 bits (`max_size = 5000000000;` becomes
 *      705032704): such a literal is an error asking for the L suffix;
 *   4. walk the tree section by section: unknown keys, wrong types and
 *      out-of-range values fail with "FILE:LINE: KEY: reason";
 *   5. fill the defaults that hang off data_dir (after the -D override),
 *      the hostname, the default adapters, and cross-check (kafka brokers,
 *      retry bounds, profiles' required adapters).
 * Errors stop at the first problem: one line, as the CLI prints it.
 */
#include "cfg.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>

#include "cv_log.h"
#include "cv_util.h"

#define CFG_KEYLEN 256
#define CFG_BUILTIN "(built-in)"
#define CFG_MAX_FILE_BYTES (16 * 1024 * 1024)
#define CFG_MASK "****"

/* libconfig < 1.6 stores include names as written (we add include_dir);
 * 1.6+ stores the path it opened.  1.7 dropped num_filenames (NULL-ended). */
#if LIBCONFIG_VER_MAJOR == 1 && LIBCONFIG_VER_MINOR < 6
#define CFG_LC_PREFIX_INCLUDES 1
#else
#define CFG_LC_PREFIX_INCLUDES 0
#endif

/* Defaults of cfg.h / design.md §2. */
#define DEF_DATA_DIR "./var"
#define DEF_TOPIC "chatvault.events"
#define DEF_GROUP "chatvault-ingest"

static const char *const adapter_types[] = { "archive", "xml", "jsonl", "eml", "so", NULL };

/* Everything the loader needs while libconfig's tree is alive. */
struct loader {
	struct cfg *cfg;
	config_t lc;
	bool lc_live;
	char *include_dir;        /* directory of the main file */
	const char **lc_names;    /* libconfig's names, parallel to cfg->files */
	char *err;
	size_t errlen;
};

/* ------------------------------------------------------------------------ */
/* errors                                                                   */

static int fail_at(struct loader *ld, const char *file, unsigned line, const char *key,
		   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail_at(struct loader *ld, const char *file, unsigned line, const char *key,
		   const char *fmt, ...)
{
	char msg[CFG_ERRLEN];
	char pos[CFG_ERRLEN];
	va_list ap;

	if (!ld->err || ld->errlen == 0)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (file && line > 0)
		snprintf(pos, sizeof(pos), "%s:%u: ", file, line);
	else if (file)
		snprintf(pos, sizeof(pos), "%s: ", file);
	else
		pos[0] = '\0';
	snprintf(ld->err, ld->errlen, "%s%s%s%s", pos, key ? key : "", key ? ": " : "", msg);
	return -EINVAL;
}

/* The entry of cfg->files a setting came from (pointer into cfg->files). */
static const char *src_file(const struct loader *ld, const config_setting_t *s)
{
	const char *f = s ? config_setting_source_file(s) : NULL;

	if (!f)
		return ld->cfg->nfiles ? ld->cfg->files[0] : ld->cfg->source;
	for (size_t i = 0; i < ld->cfg->nfiles; i++)
		if (ld->lc_names[i] == f || strcmp(ld->lc_names[i], f) == 0)
			return ld->cfg->files[i];
	return ld->cfg->nfiles ? ld->cfg->files[0] : ld->cfg->source;
}

static int fail(struct loader *ld, const config_setting_t *s, const char *key,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int fail(struct loader *ld, const config_setting_t *s, const char *key,
		const char *fmt, ...)
{
	char msg[CFG_ERRLEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return fail_at(ld, src_file(ld, s), s ? config_setting_source_line(s) : 0, key, "%s", msg);
}

static int oom(struct loader *ld)
{
	if (ld->err && ld->errlen)
		snprintf(ld->err, ld->errlen, "%s: out of memory",
			 ld->cfg && ld->cfg->source ? ld->cfg->source : "config");
	return -ENOMEM;
}

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */

/* "prefix.name" into buf (cut to fit: the text only names a key).  Copied
 * by hand: snprintf here makes gcc -O2 warn about the possible cut. */
static void join_key(char *buf, size_t n, const char *prefix, const char *name)
{
	size_t o = 0;

	if (n == 0)
		return;
	for (const char *p = prefix ? prefix : ""; *p && o + 1 < n; p++)
		buf[o++] = *p;
	if (o > 0 && o + 1 < n)
		buf[o++] = '.';
	for (const char *p = name ? name : "?"; *p && o + 1 < n; p++)
		buf[o++] = *p;
	buf[o] = '\0';
}

/* "dir" + "/" + "name", without doubling a trailing slash of dir. */
static char *path_join(const char *dir, const char *name)
{
	size_t dl = strlen(dir);
	char *p;

	while (dl > 1 && dir[dl - 1] == '/')
		dl--;
	if (asprintf(&p, "%.*s/%s", (int)dl, dir, name) < 0)
		return NULL;
	return p;
}

static bool in_list(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

/* Instance and profile names: [a-z0-9_-]{1,32}, first character [a-z0-9]. */
static bool valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 32 || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!(islower(c) || isdigit(c) || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Shortest "%g" text that reads back as the same double, always with a
 * '.' or exponent so libconfig parses it as a float again.  Assumes the "C"
 * LC_NUMERIC locale (chatvault never calls setlocale). */
static void fmt_double(double d, char *buf, size_t n)
{
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, n, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	if (!strpbrk(buf, ".eEn")) {
		size_t l = strlen(buf);

		if (l + 3 <= n)
			memcpy(buf + l, ".0", 3);
	}
}

static bool is_secret_key(const char *key)
{
	return strcasestr(key, "password") || strcasestr(key, "secret") || strcasestr(key, "key");
}

/* Read a whole (small) file; NUL-terminated.  0, -errno or -EFBIG. */
static int slurp(const char *path, char **buf, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *b = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	*buf = NULL;
	*len = 0;
	if (!f)
		return -errno;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			size_t ncap = cap ? cap * 2 : 8192;
			char *nb;

			if (ncap > CFG_MAX_FILE_BYTES + 8192) {
				rc = -EFBIG;
				goto out;
			}
			nb = realloc(b, ncap);
			if (!nb) {
				rc = -ENOMEM;
				goto out;
			}
			b = nb;
			cap = ncap;
		}
		size_t got = fread(b + n, 1, cap - n - 1, f);

		n += got;
		if (got == 0) {
			if (ferror(f))
				rc = -EIO;
			break;
		}
	}
out:
	fclose(f);
	if (rc) {
		free(b);
		return rc;
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* typed getters: absent keys leave *dst alone                              */

static int want_int(struct loader *ld, const config_setting_t *s, const char *key,
		    long long lo, long long hi, long long *v)
{
	int t = config_setting_type(s);

	if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
		return fail(ld, s, key, "must be an integer");
	*v = config_setting_get_int64(s);
	if (*v < lo || *v > hi)
		return fail(ld, s, key, "must be %lld..%lld (got %lld)", lo, hi, *v);
	return 0;
}

static int get_int(struct loader *ld, const config_setting_t *grp, const char *prefix,
		   const char *name, long long lo, long long hi, int *dst)
{
	const config_setting_t *s = config_setting_get_member(grp, name);
	char key[CFG_KEYLEN];
	long long v = 0;
	int rc;

	if (!s)
		return 0;
	join_key(key, sizeof(key), prefix, name);
	rc = want_int(ld, s, key, lo, hi, &v);
	if (rc == 0)
		*dst = (int)v;
	return rc;
}

static int get_i64(struct loader *ld, const config_setting_t *grp, const char *prefix,
		   const char *name, long long lo, long long hi, int64_t *dst)
{
	const config_setting_t *s = config_setting_get_member(grp, name);
	char key[CFG_KEYLEN];
	long long v = 0;
	int rc;

	if (!s)
		return 0;
	join_key(key, sizeof(key), prefix, name);
	rc = want_int(ld, s, key, lo, hi, &v);
	if (rc == 0)
		*dst = (int64_t)v;
	return rc;
}

static int get_bool(struct loader *ld, const config_setting_t *grp, const char *prefix,
		    const char *name, bool *dst)
{
	const config_setting_t *s = config_setting_get_member(grp, name);
	char key[CFG_KEYLEN];

	if (!s)
		return 0;
	join_key(key, sizeof(key), prefix, name);
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return fail(ld, s, key, "must be a boolean (true or false)");
	*dst = config_setting_get_bool(s) != 0;
	return 0;
}

/* String member; replaces *dst with a copy.  *pos gets the setting. */
static int get_str(struct loader *ld, const config_setting_t *grp, const char *prefix,
		   const char *name, bool nonempty, char **dst, const config_setting_t **pos)
{
	const config_setting_t *s = config_setting_get_member(grp, name);
	char key[CFG_KEYLEN];
	const char *v;
	char *copy;

	if (pos)
		*pos = s;
	if (!s)
		return 0;
	join_key(key, sizeof(key), prefix, name);
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return fail(ld, s, key, "must be a string");
	v = config_setting_get_string(s);
	if (nonempty && (!v || !*v))
		return fail(ld, s, key, "must not be empty");
	copy = strdup(v ? v : "");
	if (!copy)
		return oom(ld);
	free(*dst);
	*dst = copy;
	return 0;
}

/* Sub-group (may be absent: *sub = NULL). */
static int get_group(struct loader *ld, const config_setting_t *grp, const char *prefix,
		     const char *name, const config_setting_t **sub)
{
	const config_setting_t *s = config_setting_get_member(grp, name);
	char key[CFG_KEYLEN];

	*sub = NULL;
	if (!s)
		return 0;
	join_key(key, sizeof(key), prefix, name);
	if (config_setting_type(s) != CONFIG_TYPE_GROUP)
		return fail(ld, s, key, "must be a group { ... }");
	*sub = s;
	return 0;
}

/* Every member of grp must be one of known[]. */
static int check_keys(struct loader *ld, const config_setting_t *grp, const char *prefix,
		      const char *const *known)
{
	int n = config_setting_length(grp);

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(grp, (unsigned)i);
		const char *name = config_setting_name(s);
		char key[CFG_KEYLEN];
		char hint[CFG_KEYLEN];
		size_t o = 0;

		if (name && in_list(name, known))
			continue;
		join_key(key, sizeof(key), prefix, name ? name : "?");
		hint[0] = '\0';
		for (const char *const *k = known; *k && o < sizeof(hint); k++)
			o += (size_t)snprintf(hint + o, sizeof(hint) - o, "%s%s",
					      k == known ? "" : ", ", *k);
		return fail(ld, s, key, "unknown key (known here: %s)", hint);
	}
	return 0;
}

/* One scalar setting → cfg_opt (key copied from the setting's name or kname). */
static int make_opt(struct loader *ld, const config_setting_t *s, const char *key,
		    const char *kname, struct cfg_opt *o)
{
	char num[64];
	const char *text;

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_STRING:
		o->type = CFG_OPT_STRING;
		text = config_setting_get_string(s);
		break;
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		o->type = CFG_OPT_INT;
		o->i = config_setting_get_int64(s);
		snprintf(num, sizeof(num), "%lld", (long long)o->i);
		text = num;
		break;
	case CONFIG_TYPE_BOOL:
		o->type = CFG_OPT_BOOL;
		o->i = config_setting_get_bool(s) ? 1 : 0;
		text = o->i ? "true" : "false";
		break;
	case CONFIG_TYPE_FLOAT:
		o->type = CFG_OPT_FLOAT;
		o->f = config_setting_get_float(s);
		fmt_double(o->f, num, sizeof(num));
		text = num;
		break;
	default:
		return fail(ld, s, key, "must be a string, integer, boolean or float");
	}
	o->key = strdup(kname);
	o->str = strdup(text ? text : "");
	if (!o->key || !o->str)
		return oom(ld);
	o->file = src_file(ld, s);
	o->line = (int)config_setting_source_line(s);
	return 0;
}

/* Array or list of non-empty strings → char **. */
static int get_strv(struct loader *ld, const config_setting_t *grp, const char *prefix,
		    const char *name, char ***v, size_t *n, const config_setting_t **pos)
{
	const config_setting_t *s = config_setting_get_member(grp, name);
	char key[CFG_KEYLEN];
	int len;

	*pos = s;
	if (!s)
		return 0;
	join_key(key, sizeof(key), prefix, name);
	if (config_setting_type(s) != CONFIG_TYPE_ARRAY && config_setting_type(s) != CONFIG_TYPE_LIST)
		return fail(ld, s, key, "must be an array of strings [ \"...\", ... ]");
	len = config_setting_length(s);
	if (len == 0)
		return 0;
	*v = calloc((size_t)len, sizeof(**v));
	if (!*v)
		return oom(ld);
	*n = (size_t)len;
	for (int i = 0; i < len; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *str;

		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			return fail(ld, e, key, "must be an array of strings [ \"...\", ... ]");
		str = config_setting_get_string(e);
		if (!str || !*str)
			return fail(ld, e, key, "element %d must not be empty", i);
		(*v)[i] = strdup(str);
		if (!(*v)[i])
			return oom(ld);
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* reading the file                                                         */

/*
 * libconfig 1.5 reads a decimal literal that does not fit in an int (and
 * has no L suffix) as a truncated int, silently.  Scan the text ourselves:
 * comments and strings are skipped exactly as libconfig's scanner does, a
 * number is a maximal run starting with a digit (or a sign then a digit).
 */
static int check_literal(struct loader *ld, const char *file, unsigned line, const char *key,
			 const char *tok, size_t n)
{
	char t[80];
	const char *d;
	bool hex, suffix = false;
	size_t nd;
	char *end;

	if (n >= sizeof(t)) {
		if (memchr(tok, '.', n) || memchr(tok, 'e', n) || memchr(tok, 'E', n))
			return 0;
		return fail_at(ld, file, line, key, "integer literal is out of range");
	}
	memcpy(t, tok, n);
	t[n] = '\0';
	if (n && t[n - 1] == 'L') {
		suffix = true;
		t[--n] = '\0';
		if (n && t[n - 1] == 'L')
			t[--n] = '\0';
	}
	d = t + (t[0] == '-' || t[0] == '+');
	hex = d[0] == '0' && (d[1] == 'x' || d[1] == 'X');
	if (hex) {
		nd = strspn(d + 2, "0123456789abcdefABCDEF");
		if (nd == 0 || d[2 + nd] != '\0')
			return 0;     /* not an integer token (libconfig parsed it) */
		errno = 0;
		unsigned long long u = strtoull(d + 2, &end, 16);

		if (errno == ERANGE)
			return fail_at(ld, file, line, key, "integer %s is out of 64-bit range", t);
		if (!suffix && u > 0xffffffffULL)
			return fail_at(ld, file, line, key,
				       "integer %s does not fit in 32 bits; write %sL "
				       "(libconfig would truncate it)", t, t);
		return 0;
	}
	nd = strspn(d, "0123456789");
	if (nd == 0 || d[nd] != '\0')
		return 0;             /* a float */
	errno = 0;
	long long v = strtoll(t, &end, 10);

	if (errno == ERANGE)
		return fail_at(ld, file, line, key, "integer %s is out of 64-bit range", t);
	if (!suffix && (v < INT_MIN || v > INT_MAX))
		return fail_at(ld, file, line, key,
			       "integer %s does not fit in 32 bits; write %sL "
			       "(libconfig would truncate it)", t, t);
	return 0;
}

/* Nesting of the text scan, for naming the key of a bad literal. */
#define SCAN_DEPTH 16
struct scan_keys {
	char stack[SCAN_DEPTH][64];   /* group/list/array names, "" for anonymous */
	int depth;
	char name[64];                /* last name token */
	char pending[64];             /* name of the setting being assigned */
};

static void scan_key(const struct scan_keys *k, char *buf, size_t n)
{
	size_t o = 0;

	buf[0] = '\0';
	for (int i = 0; i < k->depth && i < SCAN_DEPTH && o < n; i++)
		if (k->stack[i][0])
			o += (size_t)snprintf(buf + o, n - o, "%s%s", o ? "." : "", k->stack[i]);
	if (k->pending[0] && o < n)
		o += (size_t)snprintf(buf + o, n - o, "%s%s", o ? "." : "", k->pending);
	if (o == 0)
		snprintf(buf, n, "?");
}

static int scan_literals(struct loader *ld, const char *file)
{
	struct scan_keys k = { .depth = 0 };
	char key[CFG_KEYLEN];
	unsigned line = 1;
	const char *p, *end;
	char *buf = NULL;
	size_t len;
	int rc;

	rc = slurp(file, &buf, &len);
	if (rc == -ENOMEM)
		return oom(ld);
	if (rc)
		return fail_at(ld, file, 0, NULL, "cannot read: %s", strerror(-rc));
	p = buf;
	end = buf + len;
	while (p < end) {
		unsigned char c = (unsigned char)*p;

		if (c == '\n') {
			line++;
			p++;
		} else if (c == '#' || (c == '/' && p + 1 < end && p[1] == '/')) {
			while (p < end && *p != '\n')
				p++;
		} else if (c == '/' && p + 1 < end && p[1] == '*') {
			p += 2;
			while (p < end && !(p[0] == '*' && p + 1 < end && p[1] == '/')) {
				if (*p == '\n')
					line++;
				p++;
			}
			p = p < end ? p + 2 : end;
		} else if (c == '"') {
			for (p++; p < end && *p != '"'; p++) {
				if (*p == '\\' && p + 1 < end)
					p++;
				if (*p == '\n')
					line++;
			}
			if (p < end)
				p++;
		} else if (isalpha(c) || c == '*') {
			const char *t = p;

			while (p < end && (isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '*'))
				p++;
			snprintf(k.name, sizeof(k.name), "%.*s", (int)(p - t), t);
		} else if (c == '=' || c == ':') {
			memcpy(k.pending, k.name, sizeof(k.pending));
			p++;
		} else if (c == '{' || c == '(' || c == '[') {
			if (k.depth < SCAN_DEPTH)
				memcpy(k.stack[k.depth], k.pending, sizeof(k.stack[0]));
			k.depth++;
			k.pending[0] = '\0';
			p++;
		} else if (c == '}' || c == ')' || c == ']') {
			if (k.depth > 0)
				k.depth--;
			k.pending[0] = '\0';
			p++;
		} else if (c == ';' || c == ',') {
			k.pending[0] = '\0';
			p++;
		} else if (isdigit(c) || ((c == '-' || c == '+') && p + 1 < end &&
					  isdigit((unsigned char)p[1]))) {
			const char *t = p++;

			while (p < end && (isalnum((unsigned char)*p) || *p == '.' || *p == '+' ||
					   *p == '-' || *p == '_'))
				p++;
			scan_key(&k, key, sizeof(key));
			rc = check_literal(ld, file, line, key, t, (size_t)(p - t));
			if (rc)
				goto out;
		} else {
			p++;
		}
	}
out:
	free(buf);
	return rc;
}

static size_t lc_nfiles(const config_t *c)
{
#if LIBCONFIG_VER_MAJOR == 1 && LIBCONFIG_VER_MINOR < 7
	return c->filenames ? c->num_filenames : 0;
#else
	size_t n = 0;

	if (c->filenames)
		while (c->filenames[n])
			n++;
	return n;
#endif
}

/* The path libconfig opened for one of its file names (malloc'd). */
static char *resolve_lc_name(const struct loader *ld, const char *path, const char *name)
{
	if (!name || (lc_nfiles(&ld->lc) > 0 && strcmp(name, ld->lc.filenames[0]) == 0))
		return strdup(path);
	if (CFG_LC_PREFIX_INCLUDES && ld->include_dir)
		return path_join(ld->include_dir, name);
	return strdup(name);
}

/* The target of `@include "x"` on line `line` of file, or NULL. */
static char *include_target(const char *file, int line)
{
	char *buf = NULL, *res = NULL;
	const char *p, *q;
	size_t len;

	if (line <= 0 || slurp(file, &buf, &len) != 0)
		return NULL;
	p = buf;
	for (int l = 1; l < line && p; l++) {
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	if (!p)
		goto out;
	p += strspn(p, " \t");
	if (strncmp(p, "@include", 8) != 0)
		goto out;
	p += 8;
	p += strspn(p, " \t");
	if (*p != '"')
		goto out;
	q = strchr(++p, '"');
	if (q)
		res = strndup(p, (size_t)(q - p));
out:
	free(buf);
	return res;
}

static int parse_error(struct loader *ld, const char *path)
{
	const config_t *c = &ld->lc;
	const char *text = config_error_text(c) ? config_error_text(c) : "parse error";
	int line = config_error_line(c);
	char *efile = NULL, *inc = NULL, *full = NULL;
	int rc;

	if (config_error_type(c) == CONFIG_ERR_FILE_IO)
		return fail_at(ld, path, 0, NULL, "cannot read: %s", text);
	efile = resolve_lc_name(ld, path, config_error_file(c));
	if (!efile)
		return oom(ld);
	if (strstr(text, "include"))
		inc = include_target(efile, line);
	if (inc) {
		char key[CFG_KEYLEN];

		full = CFG_LC_PREFIX_INCLUDES && ld->include_dir ? path_join(ld->include_dir, inc)
								: strdup(inc);
		snprintf(key, sizeof(key), "@include \"%s\"", inc);
		rc = fail_at(ld, efile, line > 0 ? (unsigned)line : 0, key, "%s (%s)", text,
			     full ? full : inc);
	} else {
		rc = fail_at(ld, efile, line > 0 ? (unsigned)line : 0, NULL, "%s", text);
	}
	free(full);
	free(inc);
	free(efile);
	return rc;
}

/*
 * libconfig hands an @include target it could fopen() to its flex scanner,
 * which exit()s the whole process ("input in flex scanner failed") when
 * the read fails: a directory does that, and a FIFO or a device would
 * block or never end.  A SIGHUP reload must not kill a worker, so before
 * libconfig runs, every line it would take for an include
 * (^[ \t]*@include[ \t]+"name", judged line by line: one inside a block
 * comment counts too) must name a regular file or nothing (libconfig then
 * says "cannot open include file"), in the main file and, once each, in
 * every file included.  Found by tests/fuzz/fuzz_config.c.
 */
struct inc_seen {
	char **paths;
	size_t n;
};

static int check_includes(struct loader *ld, const char *file, struct inc_seen *seen)
{
	char *buf = NULL, *name = NULL, *full = NULL, **grown, key[CFG_KEYLEN];
	const char *p, *q, *end, *eol, *close;
	unsigned line = 0;
	struct stat st;
	size_t len;
	int rc;

	for (size_t i = 0; i < seen->n; i++)
		if (strcmp(seen->paths[i], file) == 0)
			return 0;
	grown = realloc(seen->paths, (seen->n + 1) * sizeof(*grown));
	if (!grown)
		return oom(ld);
	seen->paths = grown;
	if (!(seen->paths[seen->n] = strdup(file)))
		return oom(ld);
	seen->n++;
	rc = slurp(file, &buf, &len);
	if (rc)
		return rc == -ENOMEM ? oom(ld) : 0;   /* libconfig says what it cannot read */
	end = buf + len;
	for (p = buf; p < end && rc == 0; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		line++;
		for (q = p; q < eol && (*q == ' ' || *q == '\t'); q++)
			;
		if (eol - q < 10 || memcmp(q, "@include", 8) != 0 || (q[8] != ' ' && q[8] != '\t'))
			continue;
		for (q += 8; q < eol && (*q == ' ' || *q == '\t'); q++)
			;
		if (q >= eol || *q != '"' || !(close = memchr(q + 1, '"', (size_t)(eol - q - 1))) ||
		    close == q + 1)
			continue;
		name = strndup(q + 1, (size_t)(close - q - 1));
		if (name)
			full = CFG_LC_PREFIX_INCLUDES || name[0] != '/'
				? path_join(ld->include_dir, name) : strdup(name);
		if (!name || !full) {
			rc = oom(ld);
		} else if (stat(full, &st) == 0) {
			snprintf(key, sizeof(key), "@include \"%s\"", name);
			rc = S_ISREG(st.st_mode) ? check_includes(ld, full, seen)
						 : fail_at(ld, file, line, key,
							   "not a regular file (%s)", full);
		}
		free(full);
		free(name);
		full = name = NULL;
	}
	free(buf);
	return rc;
}

/* Parse path with libconfig and record every file it read. */
static int read_file(struct loader *ld, const char *path)
{
	const char *slash = strrchr(path, '/');
	struct stat st;
	size_t n;
	FILE *f;
	int rc;

	f = fopen(path, "r");
	if (!f)
		return fail_at(ld, path, 0, NULL, "cannot read: %s", strerror(errno));
	rc = fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode) ? EISDIR : 0;
	fclose(f);
	if (rc)
		return fail_at(ld, path, 0, NULL, "cannot read: %s", strerror(rc));

	if (!slash)
		ld->include_dir = strdup(".");
	else if (slash == path)
		ld->include_dir = strdup("/");
	else
		ld->include_dir = strndup(path, (size_t)(slash - path));
	if (!ld->include_dir)
		return oom(ld);

	config_init(&ld->lc);
	ld->lc_live = true;
	config_set_include_dir(&ld->lc, ld->include_dir);
	{
		struct inc_seen seen = { 0 };

		rc = check_includes(ld, path, &seen);
		for (size_t i = 0; i < seen.n; i++)
			free(seen.paths[i]);
		free(seen.paths);
		if (rc)
			return rc;
	}
	if (!config_read_file(&ld->lc, path))
		return parse_error(ld, path);

	n = lc_nfiles(&ld->lc);
	if (n == 0)
		n = 1; /* cannot happen with config_read_file; keep files[0] = path */
	ld->cfg->files = calloc(n, sizeof(*ld->cfg->files));
	ld->lc_names = calloc(n, sizeof(*ld->lc_names));
	if (!ld->cfg->files || !ld->lc_names)
		return oom(ld);
	for (size_t i = 0; i < n; i++) {
		const char *name = i < lc_nfiles(&ld->lc) ? ld->lc.filenames[i] : path;

		ld->lc_names[i] = name;
		ld->cfg->files[i] = i == 0 ? strdup(path) : resolve_lc_name(ld, path, name);
		if (!ld->cfg->files[i])
			return oom(ld);
		ld->cfg->nfiles = i + 1;
	}
	for (size_t i = 0; i < ld->cfg->nfiles; i++) {
		rc = scan_literals(ld, ld->cfg->files[i]);
		if (rc)
			return rc;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* sections                                                                 */

static const char *const root_keys[] = { "data_dir", "log_level", "database", "queue", "producer",
					 "ingest", "deliver", "adapters", "retention", "metrics", "chat",
					 "im", NULL };
static const char *const metrics_keys[] = { "listen", NULL };
static const char *const database_keys[] = { "conninfo", "connect_timeout", "retry_max", NULL };
static const char *const queue_keys[] = { "backend", "spool", "kafka", NULL };
static const char *const spool_keys[] = { "path", "max_size", NULL };
static const char *const kafka_keys[] = { "brokers", "topic", "group", "properties", NULL };
static const char *const producer_keys[] = { "server", "batch_max", "linger_ms", "busy_timeout_ms",
					     NULL };
static const char *const ingest_keys[] = { "batch_size", "max_wait_ms", "max_event_size", NULL };
static const char *const deliver_keys[] = { "lease", "retry_base_ms", "retry_max_ms", "file_store",
					    NULL };
static const char *const adapter_keys[] = { "name", "type", "path", "required", "run_interval",
					    "batch_size", "options", NULL };
static const char *const retention_keys[] = { "schedule", "stale_staging_days", "profiles", NULL };
static const char *const profile_keys[] = { "retention_days", "extend_days", "worm", "erasure",
					    "required_adapters", "rooms", "users", NULL };
/* Set through queue.kafka.brokers / group, never twice. */
static const char *const kafka_reserved[] = { "bootstrap.servers", "metadata.broker.list",
					      "group.id", NULL };

static int load_database(struct loader *ld, const config_setting_t *root)
{
	const config_setting_t *g;
	struct cfg *cfg = ld->cfg;
	int rc;

	rc = get_group(ld, root, "", "database", &g);
	if (rc || !g)
		return rc;
	if ((rc = check_keys(ld, g, "database", database_keys)) ||
	    (rc = get_str(ld, g, "database", "conninfo", false, &cfg->db.conninfo, NULL)) ||
	    (rc = get_int(ld, g, "database", "connect_timeout", 1, 3600, &cfg->db.connect_timeout_s)) ||
	    (rc = get_int(ld, g, "database", "retry_max", 0, 86400, &cfg->db.retry_max_s)))
		return rc;
	return 0;
}

/* Kafka properties: a list of ("name", value) pairs (libconfig setting
 * names cannot contain '.', so a group cannot hold librdkafka names). */
static int load_kafka_props(struct loader *ld, const config_setting_t *s)
{
	const char *key = "queue.kafka.properties";
	struct cfg *cfg = ld->cfg;
	int n, rc;

	if (config_setting_type(s) == CONFIG_TYPE_GROUP)
		return fail(ld, s, key, "must be a list of (\"name\", value) pairs, e.g. "
			    "( (\"socket.timeout.ms\", 3000) ): libconfig names cannot contain '.'");
	if (config_setting_type(s) != CONFIG_TYPE_LIST)
		return fail(ld, s, key, "must be a list ( (\"name\", value), ... )");
	n = config_setting_length(s);
	if (n == 0)
		return 0;
	cfg->queue.kafka_props = calloc((size_t)n, sizeof(*cfg->queue.kafka_props));
	if (!cfg->queue.kafka_props)
		return oom(ld);
	cfg->queue.nkafka_props = (size_t)n;
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const config_setting_t *k, *v;
		char ekey[CFG_KEYLEN];
		const char *kname;

		snprintf(ekey, sizeof(ekey), "%s[%d]", key, i);
		if ((config_setting_type(e) != CONFIG_TYPE_LIST &&
		     config_setting_type(e) != CONFIG_TYPE_ARRAY) || config_setting_length(e) != 2)
			return fail(ld, e, ekey, "must be a (\"name\", value) pair");
		k = config_setting_get_elem(e, 0);
		v = config_setting_get_elem(e, 1);
		kname = config_setting_type(k) == CONFIG_TYPE_STRING ? config_setting_get_string(k)
								     : NULL;
		if (!kname || !*kname)
			return fail(ld, e, ekey, "the property name must be a non-empty string");
		if (in_list(kname, kafka_reserved))
			return fail(ld, e, ekey, "\"%s\" is set from queue.kafka.brokers and "
				    "queue.kafka.group, not here", kname);
		for (int j = 0; j < i; j++)
			if (strcmp(cfg->queue.kafka_props[j].key, kname) == 0)
				return fail(ld, e, ekey, "duplicate property \"%s\" (first at line %d)",
					    kname, cfg->queue.kafka_props[j].line);
		rc = make_opt(ld, v, ekey, kname, &cfg->queue.kafka_props[i]);
		if (rc)
			return rc;
	}
	return 0;
}

static int load_queue(struct loader *ld, const config_setting_t *root)
{
	const config_setting_t *g, *spool, *kafka, *backend, *brokers = NULL, *props;
	struct cfg *cfg = ld->cfg;
	int rc;

	rc = get_group(ld, root, "", "queue", &g);
	if (rc || !g)
		return rc;
	if ((rc = check_keys(ld, g, "queue", queue_keys)))
		return rc;
	backend = config_setting_get_member(g, "backend");
	if (backend) {
		const char *b = config_setting_type(backend) == CONFIG_TYPE_STRING
					? config_setting_get_string(backend) : NULL;

		if (!b)
			return fail(ld, backend, "queue.backend", "must be a string");
		if (strcmp(b, "spool") == 0)
			cfg->queue.backend = CFG_QUEUE_SPOOL;
		else if (strcmp(b, "kafka") == 0)
			cfg->queue.backend = CFG_QUEUE_KAFKA;
		else
			return fail(ld, backend, "queue.backend",
				    "must be \"spool\" or \"kafka\" (got \"%s\")", b);
	}
	if ((rc = get_group(ld, g, "queue", "spool", &spool)))
		return rc;
	if (spool &&
	    ((rc = check_keys(ld, spool, "queue.spool", spool_keys)) ||
	     (rc = get_str(ld, spool, "queue.spool", "path", false, &cfg->queue.spool_path, NULL)) ||
	     (rc = get_i64(ld, spool, "queue.spool", "max_size", 4096, 1LL << 40,
			   &cfg->queue.spool_max_bytes))))
		return rc;
	if ((rc = get_group(ld, g, "queue", "kafka", &kafka)))
		return rc;
	if (kafka) {
		if ((rc = check_keys(ld, kafka, "queue.kafka", kafka_keys)) ||
		    (rc = get_str(ld, kafka, "queue.kafka", "brokers", false, &cfg->queue.kafka_brokers,
				  &brokers)) ||
		    (rc = get_str(ld, kafka, "queue.kafka", "topic", true, &cfg->queue.kafka_topic,
				  NULL)) ||
		    (rc = get_str(ld, kafka, "queue.kafka", "group", true, &cfg->queue.kafka_group,
				  NULL)))
			return rc;
		props = config_setting_get_member(kafka, "properties");
		if (props && (rc = load_kafka_props(ld, props)))
			return rc;
	}
	if (cfg->queue.backend == CFG_QUEUE_KAFKA &&
	    (!cfg->queue.kafka_brokers || !*cfg->queue.kafka_brokers)) {
		const config_setting_t *at = brokers ? brokers : kafka ? kafka : backend;

		return fail(ld, at, "queue.kafka.brokers",
			    "required with backend = \"kafka\" (host:port[,host:port…])");
	}
	return 0;
}

static int load_producer(struct loader *ld, const config_setting_t *root)
{
	const config_setting_t *g;
	struct cfg *cfg = ld->cfg;
	int rc;

	rc = get_group(ld, root, "", "producer", &g);
	if (rc || !g)
		return rc;
	if ((rc = check_keys(ld, g, "producer", producer_keys)) ||
	    (rc = get_str(ld, g, "producer", "server", false, &cfg->producer.server, NULL)) ||
	    (rc = get_int(ld, g, "producer", "batch_max", 1, 100000, &cfg->producer.batch_max)) ||
	    (rc = get_int(ld, g, "producer", "linger_ms", 0, 10000, &cfg->producer.linger_ms)) ||
	    (rc = get_int(ld, g, "producer", "busy_timeout_ms", 0, 600000,
			  &cfg->producer.busy_timeout_ms)))
		return rc;
	return 0;
}

/* metrics = { listen = "HOST:PORT"; } — `run` serves /metrics there (checked
 * when `run` starts listening: cli/cli_metrics.c). */
static int load_metrics(struct loader *ld, const config_setting_t *root)
{
	const config_setting_t *g;
	int rc;

	rc = get_group(ld, root, "", "metrics", &g);
	if (rc || !g)
		return rc;
	if ((rc = check_keys(ld, g, "metrics", metrics_keys)) ||
	    (rc = get_str(ld, g, "metrics", "listen", true, &ld->cfg->metrics_listen, NULL)))
		return rc;
	return 0;
}

static int load_ingest(struct loader *ld, const config_setting_t *root)
{
	const config_setting_t *g;
	struct cfg *cfg = ld->cfg;
	int rc;

	rc = get_group(ld, root, "", "ingest", &g);
	if (rc || !g)
		return rc;
	if ((rc = check_keys(ld, g, "ingest", ingest_keys)) ||
	    (rc = get_int(ld, g, "ingest", "batch_size", 1, 1000000, &cfg->ingest.batch_size)) ||
	    (rc = get_int(ld, g, "ingest", "max_wait_ms", 0, 60000, &cfg->ingest.max_wait_ms)) ||
	    (rc = get_i64(ld, g, "ingest", "max_event_size", 256, 67108864,
			  &cfg->ingest.max_event_size)))
		return rc;
	return 0;
}

static int load_deliver(struct loader *ld, const config_setting_t *root)
{
	const config_setting_t *g, *smax;
	struct cfg *cfg = ld->cfg;
	int rc;

	rc = get_group(ld, root, "", "deliver", &g);
	if (rc || !g)
		return rc;
	if ((rc = check_keys(ld, g, "deliver", deliver_keys)) ||
	    (rc = get_int(ld, g, "deliver", "lease", 5, 3600, &cfg->deliver.lease_s)) ||
	    (rc = get_int(ld, g, "deliver", "retry_base_ms", 1, 600000,
			  &cfg->deliver.retry_base_ms)) ||
	    (rc = get_str(ld, g, "deliver", "file_store", false, &cfg->deliver.file_store, NULL)))
		return rc;
	/* retry_max_ms is bounded below by retry_base_ms, whichever comes first */
	smax = config_setting_get_member(g, "retry_max_ms");
	if (smax)
		return get_int(ld, g, "deliver", "retry_max_ms", cfg->deliver.retry_base_ms, 3600000,
			       &cfg->deliver.retry_max_ms);
	if (cfg->deliver.retry_base_ms > cfg->deliver.retry_max_ms)
		return fail(ld, config_setting_get_member(g, "retry_base_ms"), "deliver.retry_base_ms",
			    "must not exceed retry_max_ms (%d)", cfg->deliver.retry_max_ms);
	return 0;
}

static int load_opts(struct loader *ld, const config_setting_t *g, const char *prefix,
		     struct cfg_opt **opts, size_t *nopts)
{
	int n = config_setting_length(g);

	if (n == 0)
		return 0;
	*opts = calloc((size_t)n, sizeof(**opts));
	if (!*opts)
		return oom(ld);
	*nopts = (size_t)n;
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		char key[CFG_KEYLEN];
		int rc;

		join_key(key, sizeof(key), prefix, config_setting_name(s));
		rc = make_opt(ld, s, key, config_setting_name(s), &(*opts)[i]);
		if (rc)
			return rc;
	}
	return 0;
}

static int load_adapter(struct loader *ld, const config_setting_t *e, size_t idx)
{
	struct cfg_adapter *a = &ld->cfg->adapters[idx];
	const config_setting_t *sname, *stype, *spath, *sopts;
	char prefix[64], key[CFG_KEYLEN];
	int rc;

	snprintf(prefix, sizeof(prefix), "adapters[%zu]", idx);
	a->file = src_file(ld, e);
	a->line = (int)config_setting_source_line(e);
	a->required = true;
	a->run_interval_s = 10;
	a->batch_size = 10000;
	if (config_setting_type(e) != CONFIG_TYPE_GROUP)
		return fail(ld, e, prefix, "must be a group { name = \"...\"; type = \"...\"; }");
	if ((rc = check_keys(ld, e, prefix, adapter_keys)))
		return rc;

	join_key(key, sizeof(key), prefix, "name");
	if ((rc = get_str(ld, e, prefix, "name", true, &a->name, &sname)))
		return rc;
	if (!sname)
		return fail(ld, e, key, "missing (every adapter needs a unique name)");
	if (!valid_name(a->name))
		return fail(ld, sname, key, "must be 1-32 of [a-z0-9_-], starting with a letter "
			    "or digit (got \"%s\")", a->name);
	for (size_t j = 0; j < idx; j++)
		if (strcmp(ld->cfg->adapters[j].name, a->name) == 0)
			return fail(ld, sname, key, "duplicate adapter name \"%s\" (first at %s:%d)",
				    a->name, ld->cfg->adapters[j].file, ld->cfg->adapters[j].line);

	join_key(key, sizeof(key), prefix, "type");
	if ((rc = get_str(ld, e, prefix, "type", true, &a->type, &stype)))
		return rc;
	if (!stype)
		return fail(ld, e, key, "missing (archive, xml, jsonl, eml or so)");
	if (!in_list(a->type, adapter_types))
		return fail(ld, stype, key, "must be archive, xml, jsonl, eml or so (got \"%s\")",
			    a->type);

	join_key(key, sizeof(key), prefix, "path");
	if ((rc = get_str(ld, e, prefix, "path", true, &a->path, &spath)))
		return rc;
	if (spath && strcmp(a->type, "so") != 0)
		return fail(ld, spath, key, "only valid with type = \"so\" (this adapter has "
			    "type = \"%s\")", a->type);
	if (!spath && strcmp(a->type, "so") == 0)
		return fail(ld, e, key, "required with type = \"so\" (the shared object to load)");

	if ((rc = get_bool(ld, e, prefix, "required", &a->required)) ||
	    (rc = get_int(ld, e, prefix, "run_interval", 1, 86400, &a->run_interval_s)) ||
	    (rc = get_int(ld, e, prefix, "batch_size", 1, 1000000, &a->batch_size)) ||
	    (rc = get_group(ld, e, prefix, "options", &sopts)))
		return rc;
	if (sopts) {
		join_key(key, sizeof(key), prefix, "options");
		if ((rc = load_opts(ld, sopts, key, &a->opts, &a->nopts)))
			return rc;
	}
	return 0;
}

/*
 * The archive and xml adapters write under options.dir; when a configured
 * instance leaves it out it defaults to <data_dir>/<name> (as the built-in
 * pair does), so -D moves it too.  Runs after data_dir is final.
 */
static int default_dirs(struct loader *ld)
{
	for (size_t i = 0; i < ld->cfg->nadapters; i++) {
		struct cfg_adapter *a = &ld->cfg->adapters[i];
		struct cfg_opt *opts, *o;

		if ((strcmp(a->type, "archive") != 0 && strcmp(a->type, "xml") != 0) ||
		    cfg_adapter_opt(a, "dir"))
			continue;
		opts = realloc(a->opts, (a->nopts + 1) * sizeof(*opts));
		if (!opts)
			return oom(ld);
		a->opts = opts;
		o = &opts[a->nopts++];
		memset(o, 0, sizeof(*o));
		o->type = CFG_OPT_STRING;
		o->file = CFG_BUILTIN;
		o->key = strdup("dir");
		o->str = path_join(ld->cfg->data_dir, a->name);
		if (!o->key || !o->str)
			return oom(ld);
	}
	return 0;
}

static int load_adapters(struct loader *ld, const config_setting_t *list)
{
	struct cfg *cfg = ld->cfg;
	bool any_required = false;
	int n, rc;

	if (config_setting_type(list) != CONFIG_TYPE_LIST)
		return fail(ld, list, "adapters", "must be a list ( { name = ...; type = ...; }, ... )");
	n = config_setting_length(list);
	if (n == 0)
		return fail(ld, list, "adapters", "must name at least one adapter "
			    "(leave the list out for the built-in archive and xml)");
	cfg->adapters = calloc((size_t)n, sizeof(*cfg->adapters));
	if (!cfg->adapters)
		return oom(ld);
	cfg->nadapters = (size_t)n;
	for (int i = 0; i < n; i++) {
		rc = load_adapter(ld, config_setting_get_elem(list, (unsigned)i), (size_t)i);
		if (rc)
			return rc;
		any_required |= cfg->adapters[i].required;
	}
	if (!any_required)
		return fail(ld, list, "adapters", "at least one adapter must have required = true "
			    "(staged events are deleted once every required adapter has them)");
	return 0;
}

/* The built-in pair, archive and xml (their dirs come from default_dirs). */
static int default_adapters(struct loader *ld)
{
	static const char *const names[] = { "archive", "xml" };
	struct cfg *cfg = ld->cfg;

	cfg->adapters = calloc(2, sizeof(*cfg->adapters));
	if (!cfg->adapters)
		return oom(ld);
	cfg->nadapters = 2;
	for (size_t i = 0; i < 2; i++) {
		struct cfg_adapter *a = &cfg->adapters[i];

		a->name = strdup(names[i]);
		a->type = strdup(names[i]);
		a->required = true;
		a->run_interval_s = 10;
		a->batch_size = 10000;
		a->file = CFG_BUILTIN;
		a->line = 0;
		if (!a->name || !a->type)
			return oom(ld);
	}
	return 0;
}

static int load_profile(struct loader *ld, const config_setting_t *g, struct cfg_profile *p)
{
	const char *name = config_setting_name(g);
	const config_setting_t *sreq, *sext, *pos;
	char prefix[CFG_KEYLEN], key[CFG_KEYLEN];
	int rc;

	join_key(prefix, sizeof(prefix), "retention.profiles", name ? name : "?");
	p->name = strdup(name ? name : "");
	if (!p->name)
		return oom(ld);
	if (config_setting_type(g) != CONFIG_TYPE_GROUP)
		return fail(ld, g, prefix, "must be a group { retention_days = ...; ... }");
	if (!valid_name(p->name))
		return fail(ld, g, prefix, "profile names are 1-32 of [a-z0-9_-]");
	if ((rc = check_keys(ld, g, prefix, profile_keys)) ||
	    (rc = get_int(ld, g, prefix, "retention_days", 0, 36500, &p->retention_days)) ||
	    (rc = get_bool(ld, g, prefix, "worm", &p->worm)) ||
	    (rc = get_bool(ld, g, prefix, "erasure", &p->erasure)) ||
	    (rc = get_strv(ld, g, prefix, "required_adapters", &p->required_adapters,
			   &p->nrequired_adapters, &sreq)) ||
	    (rc = get_strv(ld, g, prefix, "rooms", &p->rooms, &p->nrooms, &pos)) ||
	    (rc = get_strv(ld, g, prefix, "users", &p->users, &p->nusers, &pos)))
		return rc;
	sext = config_setting_get_member(g, "extend_days");
	if (sext) {
		join_key(key, sizeof(key), prefix, "extend_days");
		if ((rc = get_int(ld, g, prefix, "extend_days", 0, 36500, &p->extend_days)))
			return rc;
		if (p->extend_days != 0 && p->extend_days < p->retention_days)
			return fail(ld, sext, key, "must be 0 or %d..36500 (got %d)",
				    p->retention_days, p->extend_days);
	}
	/* A profile's required adapters must exist and gate deletion. */
	join_key(key, sizeof(key), prefix, "required_adapters");
	for (size_t i = 0; i < p->nrequired_adapters; i++) {
		const struct cfg_adapter *a = cfg_find_adapter(ld->cfg, p->required_adapters[i]);

		if (!a)
			return fail(ld, sreq, key, "adapter \"%s\" is not configured",
				    p->required_adapters[i]);
		if (!a->required)
			return fail(ld, sreq, key, "adapter \"%s\" (%s:%d) must have required = true "
				    "for this profile", a->name, a->file, a->line);
	}
	return 0;
}

static int load_retention(struct loader *ld, const config_setting_t *root)
{
	const config_setting_t *g, *profiles;
	struct cfg *cfg = ld->cfg;
	int n, rc;

	rc = get_group(ld, root, "", "retention", &g);
	if (rc || !g)
		return rc;
	if ((rc = check_keys(ld, g, "retention", retention_keys)) ||
	    (rc = get_int(ld, g, "retention", "schedule", 60, 604800, &cfg->retention.schedule_s)) ||
	    (rc = get_int(ld, g, "retention", "stale_staging_days", 1, 3650,
			  &cfg->retention.stale_staging_days)) ||
	    (rc = get_group(ld, g, "retention", "profiles", &profiles)))
		return rc;
	if (!profiles)
		return 0;
	n = config_setting_length(profiles);
	if (n == 0)
		return 0;
	cfg->retention.profiles = calloc((size_t)n, sizeof(*cfg->retention.profiles));
	if (!cfg->retention.profiles)
		return oom(ld);
	cfg->retention.nprofiles = (size_t)n;
	for (int i = 0; i < n; i++) {
		rc = load_profile(ld, config_setting_get_elem(profiles, (unsigned)i),
				  &cfg->retention.profiles[i]);
		if (rc)
			return rc;
	}
	return 0;
}

static int set_data_dir(struct loader *ld, const char *override)
{
	char *d;

	if (override && !*override)
		return fail_at(ld, NULL, 0, "-D", "the data directory must not be empty");
	if (!override && ld->cfg->data_dir)
		return 0;
	d = strdup(override ? override : DEF_DATA_DIR);
	if (!d)
		return oom(ld);
	free(ld->cfg->data_dir);
	ld->cfg->data_dir = d;
	return 0;
}

static const char *chat_src(void *arg, const struct config_setting_t *s)
{
	return src_file(arg, s);
}

static int load_tree(struct loader *ld, const char *override)
{
	const config_setting_t *root = config_root_setting(&ld->lc);
	const config_setting_t *adapters, *s;
	struct cfg *cfg = ld->cfg;
	char *level = NULL;
	int rc;

	if ((rc = check_keys(ld, root, "", root_keys)) ||
	    (rc = get_str(ld, root, "", "data_dir", true, &cfg->data_dir, NULL)) ||
	    (rc = set_data_dir(ld, override)) ||
	    (rc = get_str(ld, root, "", "log_level", false, &level, &s)))
		return rc;
	if (level) {
		int l = cv_log_level_parse(level);

		if (l < 0)
			rc = fail(ld, s, "log_level", "must be error, warn, info or debug (got \"%s\")",
				  level);
		else
			cfg->log_level = l;
		free(level);
		if (rc)
			return rc;
	}
	if ((rc = load_database(ld, root)) || (rc = load_queue(ld, root)) ||
	    (rc = load_producer(ld, root)) || (rc = load_ingest(ld, root)) ||
	    (rc = load_deliver(ld, root)) || (rc = load_metrics(ld, root)))
		return rc;
	adapters = config_setting_get_member(root, "adapters");
	rc = adapters ? load_adapters(ld, adapters) : default_adapters(ld);
	if (rc || (rc = default_dirs(ld)))
		return rc;
	if ((rc = load_retention(ld, root)))
		return rc;
	/* chat {} and im {} (conf/cfg_chat.c) */
	return cfg_chat_load(root, chat_src, ld, &cfg->chat, &cfg->im, ld->err, ld->errlen);
}

/* Defaults that depend on data_dir or the host; strings never NULL after. */
static int finish(struct loader *ld)
{
	struct cfg *cfg = ld->cfg;
	struct {
		char **dst;
		const char *under;   /* join under data_dir, or NULL */
		const char *dflt;
	} fill[] = {
		{ &cfg->db.conninfo, NULL, "" },
		{ &cfg->queue.spool_path, "spool", NULL },
		{ &cfg->queue.kafka_brokers, NULL, "" },
		{ &cfg->queue.kafka_topic, NULL, DEF_TOPIC },
		{ &cfg->queue.kafka_group, NULL, DEF_GROUP },
		{ &cfg->deliver.file_store, "files", NULL },
	};

	for (size_t i = 0; i < sizeof(fill) / sizeof(fill[0]); i++) {
		if (*fill[i].dst && (**fill[i].dst || !fill[i].under))
			continue;
		free(*fill[i].dst);
		*fill[i].dst = fill[i].under ? path_join(cfg->data_dir, fill[i].under)
					     : strdup(fill[i].dflt);
		if (!*fill[i].dst)
			return oom(ld);
	}
	if (!cfg->producer.server || !*cfg->producer.server) {
		char host[HOST_NAME_MAX + 1];

		if (gethostname(host, sizeof(host)) != 0 || !host[0])
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		free(cfg->producer.server);
		cfg->producer.server = strdup(host);
		if (!cfg->producer.server)
			return oom(ld);
	}
	return cfg_chat_finish(&cfg->chat, &cfg->im, ld->err, ld->errlen);
}

static struct cfg *cfg_new(const char *source)
{
	struct cfg *cfg = calloc(1, sizeof(*cfg));

	if (!cfg)
		return NULL;
	cfg->source = strdup(source);
	if (!cfg->source) {
		free(cfg);
		return NULL;
	}
	cfg->log_level = CV_LOG_WARN;
	cfg->db.connect_timeout_s = 10;
	cfg->db.retry_max_s = 0;
	cfg->queue.backend = CFG_QUEUE_SPOOL;
	cfg->queue.spool_max_bytes = INT64_C(1) << 30;
	cfg->producer.batch_max = 1000;
	cfg->producer.linger_ms = 2;
	cfg->producer.busy_timeout_ms = 1000;
	cfg->ingest.batch_size = 5000;
	cfg->ingest.max_wait_ms = 200;
	cfg->ingest.max_event_size = INT64_C(1) << 20;
	cfg->deliver.lease_s = 60;
	cfg->deliver.retry_base_ms = 500;
	cfg->deliver.retry_max_ms = 60000;
	cfg->retention.schedule_s = 3600;
	cfg->retention.stale_staging_days = 7;
	cfg_chat_defaults(&cfg->chat, &cfg->im);
	return cfg;
}

int cfg_load(const char *path, const char *data_dir_override, struct cfg **out,
	     char *err, size_t errlen)
{
	struct loader ld = { .err = err, .errlen = errlen };
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (!out)
		return -EINVAL;
	*out = NULL;
	ld.cfg = cfg_new(path ? path : "(built-in defaults)");
	if (!ld.cfg)
		return oom(&ld);
	if (path) {
		if ((rc = read_file(&ld, path)) || (rc = load_tree(&ld, data_dir_override)))
			goto out;
	} else {
		if ((rc = set_data_dir(&ld, data_dir_override)) || (rc = default_adapters(&ld)) ||
		    (rc = default_dirs(&ld)))
			goto out;
	}
	rc = finish(&ld);
out:
	/* Nothing of libconfig's survives: every string above was copied. */
	if (ld.lc_live)
		config_destroy(&ld.lc);
	free(ld.lc_names);
	free(ld.include_dir);
	if (rc) {
		cfg_free(ld.cfg);
		return rc;
	}
	*out = ld.cfg;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* free, lookup                                                             */

static void free_opts(struct cfg_opt *opts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(opts[i].key);
		free(opts[i].str);
	}
	free(opts);
}

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void cfg_free(struct cfg *cfg)
{
	if (!cfg)
		return;
	free(cfg->source);
	free_strv(cfg->files, cfg->nfiles);
	free(cfg->data_dir);
	free(cfg->db.conninfo);
	free(cfg->metrics_listen);
	free(cfg->queue.spool_path);
	free(cfg->queue.kafka_brokers);
	free(cfg->queue.kafka_topic);
	free(cfg->queue.kafka_group);
	free_opts(cfg->queue.kafka_props, cfg->queue.nkafka_props);
	free(cfg->producer.server);
	free(cfg->deliver.file_store);
	for (size_t i = 0; i < cfg->nadapters; i++) {
		struct cfg_adapter *a = &cfg->adapters[i];

		free(a->name);
		free(a->type);
		free(a->path);
		free_opts(a->opts, a->nopts);
	}
	free(cfg->adapters);
	for (size_t i = 0; i < cfg->retention.nprofiles; i++) {
		struct cfg_profile *p = &cfg->retention.profiles[i];

		free(p->name);
		free_strv(p->required_adapters, p->nrequired_adapters);
		free_strv(p->rooms, p->nrooms);
		free_strv(p->users, p->nusers);
	}
	free(cfg->retention.profiles);
	cfg_chat_free(&cfg->chat);
	free(cfg);
}

const struct cfg_opt *cfg_adapter_opt(const struct cfg_adapter *a, const char *key)
{
	if (!a || !key)
		return NULL;
	for (size_t i = 0; i < a->nopts; i++)
		if (a->opts[i].key && strcmp(a->opts[i].key, key) == 0)
			return &a->opts[i];
	return NULL;
}

const struct cfg_adapter *cfg_find_adapter(const struct cfg *cfg, const char *name)
{
	if (!cfg || !name)
		return NULL;
	for (size_t i = 0; i < cfg->nadapters; i++)
		if (cfg->adapters[i].name && strcmp(cfg->adapters[i].name, name) == 0)
			return &cfg->adapters[i];
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* print                                                                    */

/* A libconfig string literal (the escapes libconfig 1.5 reads back). */
static void put_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		switch (*p) {
		case '"': fputs("\\\"", out); break;
		case '\\': fputs("\\\\", out); break;
		case '\n': fputs("\\n", out); break;
		case '\r': fputs("\\r", out); break;
		case '\t': fputs("\\t", out); break;
		case '\f': fputs("\\f", out); break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				fprintf(out, "\\x%02X", *p);
			else
				fputc(*p, out);
		}
	}
	fputc('"', out);
}

/* File names in comments: no line breaks. */
static void put_comment_text(FILE *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, out);
}

static void put_int64(FILE *out, int64_t v)
{
	fprintf(out, "%lld%s", (long long)v, v < INT_MIN || v > INT_MAX ? "L" : "");
}

static void put_opt_value(FILE *out, const struct cfg_opt *o, bool mask)
{
	char num[64];

	if (mask) {
		put_str(out, CFG_MASK);
		return;
	}
	switch (o->type) {
	case CFG_OPT_STRING:
		put_str(out, o->str);
		break;
	case CFG_OPT_INT:
		put_int64(out, o->i);
		break;
	case CFG_OPT_BOOL:
		fputs(o->i ? "true" : "false", out);
		break;
	case CFG_OPT_FLOAT:
		fmt_double(o->f, num, sizeof(num));
		fputs(num, out);
		break;
	}
}

static void put_strv(FILE *out, const char *name, char *const *v, size_t n)
{
	fprintf(out, "\t\t\t%s = [", name);
	for (size_t i = 0; i < n; i++) {
		fputs(i ? ", " : " ", out);
		put_str(out, v[i]);
	}
	fputs(n ? " ];\n" : "];\n", out);
}

static void put_kv_str(FILE *out, const char *indent, const char *name, const char *v)
{
	fprintf(out, "%s%s = ", indent, name);
	put_str(out, v);
	fputs(";\n", out);
}

void cfg_print(const struct cfg *cfg, FILE *out)
{
	const char *conninfo;
	char *masked = NULL;
	size_t mlen;

	if (!cfg || !out)
		return;
	fputs("# chatvault effective configuration (secrets masked)\n# source: ", out);
	put_comment_text(out, cfg->source ? cfg->source : "?");
	fputc('\n', out);
	for (size_t i = 0; i < cfg->nfiles; i++) {
		fputs("# read: ", out);
		put_comment_text(out, cfg->files[i]);
		fputc('\n', out);
	}
	put_kv_str(out, "", "data_dir", cfg->data_dir);
	put_kv_str(out, "", "log_level", cv_log_level_name((enum cv_log_level)cfg->log_level));

	/* masking may lengthen ("password=x" → "password=****"), never doubles */
	conninfo = cfg->db.conninfo ? cfg->db.conninfo : "";
	mlen = strlen(conninfo) * 2 + 32;
	masked = malloc(mlen);
	if (masked)
		cv_mask_conninfo(conninfo, masked, mlen);
	fputs("database = {\n", out);
	put_kv_str(out, "\t", "conninfo", masked ? masked : (*conninfo ? CFG_MASK : ""));
	fprintf(out, "\tconnect_timeout = %d;\n\tretry_max = %d;\n};\n", cfg->db.connect_timeout_s,
		cfg->db.retry_max_s);
	free(masked);

	fputs("queue = {\n", out);
	put_kv_str(out, "\t", "backend", cfg->queue.backend == CFG_QUEUE_KAFKA ? "kafka" : "spool");
	fputs("\tspool = {\n", out);
	put_kv_str(out, "\t\t", "path", cfg->queue.spool_path);
	fputs("\t\tmax_size = ", out);
	put_int64(out, cfg->queue.spool_max_bytes);
	fputs(";\n\t};\n\tkafka = {\n", out);
	put_kv_str(out, "\t\t", "brokers", cfg->queue.kafka_brokers);
	put_kv_str(out, "\t\t", "topic", cfg->queue.kafka_topic);
	put_kv_str(out, "\t\t", "group", cfg->queue.kafka_group);
	fputs("\t\tproperties = (", out);
	for (size_t i = 0; i < cfg->queue.nkafka_props; i++) {
		const struct cfg_opt *o = &cfg->queue.kafka_props[i];

		fputs(i ? ",\n\t\t\t(" : "\n\t\t\t(", out);
		put_str(out, o->key);
		fputs(", ", out);
		put_opt_value(out, o, is_secret_key(o->key));
		fputc(')', out);
	}
	fputs(cfg->queue.nkafka_props ? "\n\t\t);\n\t};\n};\n" : ");\n\t};\n};\n", out);

	fputs("producer = {\n", out);
	put_kv_str(out, "\t", "server", cfg->producer.server);
	fprintf(out, "\tbatch_max = %d;\n\tlinger_ms = %d;\n\tbusy_timeout_ms = %d;\n};\n",
		cfg->producer.batch_max, cfg->producer.linger_ms, cfg->producer.busy_timeout_ms);

	fprintf(out, "ingest = {\n\tbatch_size = %d;\n\tmax_wait_ms = %d;\n\tmax_event_size = ",
		cfg->ingest.batch_size, cfg->ingest.max_wait_ms);
	put_int64(out, cfg->ingest.max_event_size);
	fputs(";\n};\n", out);

	fprintf(out, "deliver = {\n\tlease = %d;\n\tretry_base_ms = %d;\n\tretry_max_ms = %d;\n",
		cfg->deliver.lease_s, cfg->deliver.retry_base_ms, cfg->deliver.retry_max_ms);
	put_kv_str(out, "\t", "file_store", cfg->deliver.file_store);
	fputs("};\n", out);

	fputs("adapters = (", out);
	for (size_t i = 0; i < cfg->nadapters; i++) {
		const struct cfg_adapter *a = &cfg->adapters[i];

		fputs(i ? ",\n\t{\n" : "\n\t{\n", out);
		put_kv_str(out, "\t\t", "name", a->name);
		put_kv_str(out, "\t\t", "type", a->type);
		if (a->path)
			put_kv_str(out, "\t\t", "path", a->path);
		fprintf(out, "\t\trequired = %s;\n\t\trun_interval = %d;\n\t\tbatch_size = %d;\n",
			a->required ? "true" : "false", a->run_interval_s, a->batch_size);
		fputs("\t\toptions = {\n", out);
		for (size_t j = 0; j < a->nopts; j++) {
			const struct cfg_opt *o = &a->opts[j];

			fprintf(out, "\t\t\t%s = ", o->key);
			put_opt_value(out, o, o->type == CFG_OPT_STRING && is_secret_key(o->key));
			fputs(";\n", out);
		}
		fputs("\t\t};\n\t}", out);
	}
	fputs(cfg->nadapters ? "\n);\n" : ");\n", out);

	if (cfg->metrics_listen) {
		fputs("metrics = {\n", out);
		put_kv_str(out, "\t", "listen", cfg->metrics_listen);
		fputs("};\n", out);
	}
	fprintf(out, "retention = {\n\tschedule = %d;\n\tstale_staging_days = %d;\n\tprofiles = {\n",
		cfg->retention.schedule_s, cfg->retention.stale_staging_days);
	for (size_t i = 0; i < cfg->retention.nprofiles; i++) {
		const struct cfg_profile *p = &cfg->retention.profiles[i];

		fprintf(out, "\t\t%s = {\n\t\t\tretention_days = %d;\n\t\t\textend_days = %d;\n"
			"\t\t\tworm = %s;\n\t\t\terasure = %s;\n", p->name, p->retention_days,
			p->extend_days, p->worm ? "true" : "false", p->erasure ? "true" : "false");
		put_strv(out, "required_adapters", p->required_adapters, p->nrequired_adapters);
		put_strv(out, "rooms", p->rooms, p->nrooms);
		put_strv(out, "users", p->users, p->nusers);
		fputs("\t\t};\n", out);
	}
	fputs("\t};\n};\n", out);
	cfg_chat_print(&cfg->chat, &cfg->im, out);
}

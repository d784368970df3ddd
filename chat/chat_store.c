/*
 * chat_store — see chat_store.h.  Runs on its caller's thread; the store
 * owns one sto_db (one PGconn) and a copy of the configured realm.  Every
 * statement goes through sto_exec (PQexecParams with parameters).
 */
#include "chat_store.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "cfg.h"
#include "cv_log.h"
#include "sto_db.h"

struct chat_store {
	struct sto_db *db;
	char *realm;        /* cfg->chat.realm at open; "" when unset */
};

/* ---- pure helpers --------------------------------------------------------- */

int chat_ha1_hex(const char *username, const char *realm, const char *password,
		 char out[CHAT_HA1_HEX])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx;
	int ok;

	out[0] = '\0';
	if (!username || !realm || !password || !username[0] || !realm[0] || !password[0] ||
	    strlen(password) > CHAT_PASSWORD_MAX)
		return -EINVAL;
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	ok = EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, username, strlen(username)) == 1 &&
	     EVP_DigestUpdate(ctx, ":", 1) == 1 &&
	     EVP_DigestUpdate(ctx, realm, strlen(realm)) == 1 &&
	     EVP_DigestUpdate(ctx, ":", 1) == 1 &&
	     EVP_DigestUpdate(ctx, password, strlen(password)) == 1 &&
	     EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 16;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		explicit_bzero(md, sizeof(md));
		return -EIO;
	}
	for (unsigned int i = 0; i < 16; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[32] = '\0';
	explicit_bzero(md, sizeof(md));
	return 0;
}

static bool user_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
	       c == '+' || c == '-';
}

/* domain: DNS labels of [a-z0-9-], 1..63 each, not starting or ending with
 * '-', separated by single dots, 1..253 in all. */
static int check_domain(const char *d, char *why, size_t whylen)
{
	size_t n = strlen(d), label = 0;

	if (n == 0) {
		snprintf(why, whylen, "empty domain");
		return -EINVAL;
	}
	if (n > 253) {
		snprintf(why, whylen, "domain longer than 253 characters");
		return -EINVAL;
	}
	for (size_t i = 0; i <= n; i++) {
		char c = d[i];

		if (c == '.' || c == '\0') {
			if (label == 0) {
				snprintf(why, whylen, "empty label in the domain");
				return -EINVAL;
			}
			if (d[i - 1] == '-') {
				snprintf(why, whylen, "a domain label ends with '-'");
				return -EINVAL;
			}
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
			snprintf(why, whylen, "character 0x%02x not allowed in the domain "
				 "(letters, digits, '-', '.')", (unsigned char)c);
			return -EINVAL;
		}
		if (label == 0 && c == '-') {
			snprintf(why, whylen, "a domain label starts with '-'");
			return -EINVAL;
		}
		if (++label > 63) {
			snprintf(why, whylen, "a domain label is longer than 63 characters");
			return -EINVAL;
		}
	}
	return 0;
}

int chat_uri_normalize(const char *in, char *out, size_t outlen, char *why, size_t whylen)
{
	char buf[CHAT_URI_MAX];
	const char *at;
	size_t n, ulen;

	if (why && whylen)
		why[0] = '\0';
	if (!in || !out || outlen < CHAT_URI_MAX) {
		snprintf(why, whylen, "no URI");
		return -EINVAL;
	}
	out[0] = '\0';
	n = strnlen(in, CHAT_URI_MAX);
	if (n >= CHAT_URI_MAX) {
		snprintf(why, whylen, "longer than %d characters", CHAT_URI_MAX - 1);
		return -EINVAL;
	}
	for (size_t i = 0; i <= n; i++)
		buf[i] = (char)tolower((unsigned char)in[i]);
	if (strncmp(buf, "sip:", 4) != 0) {
		snprintf(why, whylen, "not a SIP URI (must be sip:user@domain)");
		return -EINVAL;
	}
	at = strchr(buf + 4, '@');
	if (!at || strchr(at + 1, '@')) {
		snprintf(why, whylen, "must be sip:user@domain with exactly one '@'");
		return -EINVAL;
	}
	ulen = (size_t)(at - (buf + 4));
	if (ulen == 0) {
		snprintf(why, whylen, "empty user part");
		return -EINVAL;
	}
	if (ulen > CHAT_USER_MAX) {
		snprintf(why, whylen, "user part longer than %d characters", CHAT_USER_MAX);
		return -EINVAL;
	}
	for (size_t i = 4; i < 4 + ulen; i++)
		if (!user_char(buf[i])) {
			snprintf(why, whylen, "character 0x%02x not allowed in the user part "
				 "(letters, digits, '.', '_', '+', '-')", (unsigned char)buf[i]);
			return -EINVAL;
		}
	if (check_domain(at + 1, why, whylen) != 0)
		return -EINVAL;
	memcpy(out, buf, n + 1);
	return 0;
}

int chat_uri_user(const char *uri, char *out, size_t outlen)
{
	const char *at;
	size_t n;

	if (!uri || strncmp(uri, "sip:", 4) != 0 || !(at = strchr(uri + 4, '@')))
		return -EINVAL;
	n = (size_t)(at - (uri + 4));
	if (n == 0 || n > CHAT_USER_MAX || n >= outlen)
		return -EINVAL;
	memcpy(out, uri + 4, n);
	out[n] = '\0';
	return 0;
}

int chat_password_read(const char *path, char *buf, size_t buflen, char *why, size_t whylen)
{
	char raw[CHAT_PASSWORD_MAX + 3];   /* the line, "\r\n", one more to see overflow */
	size_t got = 0, len;
	struct stat sb;
	int fd, rc = 0;

	if (why && whylen)
		why[0] = '\0';
	if (!path || !buf || buflen < 2)
		return -EINVAL;
	buf[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		snprintf(why, whylen, "%s", strerror(errno));
		return rc;
	}
	if (fstat(fd, &sb) != 0) {
		rc = -errno;
		snprintf(why, whylen, "%s", strerror(errno));
		goto out;
	}
	if (S_ISREG(sb.st_mode)) {
		if (sb.st_mode & 077) {
			snprintf(why, whylen, "readable or writable by group or others (mode %04o); "
				 "chmod 600 it", (unsigned)(sb.st_mode & 07777));
			rc = -EPERM;
			goto out;
		}
	} else if (!S_ISFIFO(sb.st_mode)) {
		snprintf(why, whylen, "not a regular file or a pipe");
		rc = -EINVAL;
		goto out;
	}
	/* Blocking reads from here (a pipe's writer may be slow). */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
		rc = -errno;
		snprintf(why, whylen, "%s", strerror(errno));
		goto out;
	}
	/* Read until the first newline or the limit; the rest is not read. */
	while (got < sizeof(raw) && !memchr(raw, '\n', got)) {
		ssize_t r = read(fd, raw + got, sizeof(raw) - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			snprintf(why, whylen, "%s", strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	{
		char *nl = memchr(raw, '\n', got);

		len = nl ? (size_t)(nl - raw) : got;
		if (!nl && got == sizeof(raw)) {
			snprintf(why, whylen, "the first line is longer than %d bytes",
				 CHAT_PASSWORD_MAX);
			rc = -EINVAL;
			goto out;
		}
	}
	if (len > 0 && raw[len - 1] == '\r')
		len--;
	if (len == 0) {
		snprintf(why, whylen, "the first line (the password) is empty");
		rc = -EINVAL;
		goto out;
	}
	if (len > CHAT_PASSWORD_MAX || len >= buflen) {
		snprintf(why, whylen, "the password is longer than %zu bytes",
			 buflen - 1 < CHAT_PASSWORD_MAX ? buflen - 1 : (size_t)CHAT_PASSWORD_MAX);
		rc = -EINVAL;
		goto out;
	}
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)raw[i] < 0x20 || raw[i] == 0x7f) {
			/* Position only: the password itself is never shown. */
			snprintf(why, whylen, "the password holds a control character (byte %zu)",
				 i + 1);
			rc = -EINVAL;
			goto out;
		}
	memcpy(buf, raw, len);
	buf[len] = '\0';
out:
	explicit_bzero(raw, sizeof(raw));
	close(fd);
	return rc;
}

/* ---- the store ------------------------------------------------------------ */

/* A failed statement: the connection gone, or anything else. */
static int db_errno(struct chat_store *st)
{
	PGconn *c = sto_db_conn(st->db);

	return (!c || PQstatus(c) != CONNECTION_OK) ? -ENOTCONN : -EIO;
}

int chat_store_open(const struct cfg *cfg, struct chat_store **out, char *err, size_t errlen)
{
	struct sto_db_opts o = {
		.conninfo = cfg->db.conninfo,
		.connect_timeout_s = cfg->db.connect_timeout_s,
		.retry_max_s = cfg->db.retry_max_s ? cfg->db.retry_max_s : 10,
		.application = "chatvault-chat",
	};
	struct chat_store *st;
	PGresult *res = NULL;
	int rc;

	*out = NULL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->realm = strdup(cfg->chat.realm ? cfg->chat.realm : "");
	if (!st->realm) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = sto_db_open(&o, &st->db, err, errlen);
	if (rc != 0) {
		rc = rc == -ENOMEM ? -ENOMEM : -ECONNREFUSED;
		goto fail;
	}
	if (sto_exec(st->db, "chat schema check", "SELECT to_regclass('chat.users') IS NOT NULL",
		     0, NULL, &res, err, errlen) != CV_OK) {
		rc = db_errno(st);
		goto fail;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		snprintf(err, errlen, "the database has no chat.users table (migration 004); "
			 "run chatvault migrate");
		rc = -ENOENT;
		goto fail;
	}
	PQclear(res);
	*out = st;
	return 0;
fail:
	PQclear(res);
	chat_store_close(st);
	return rc;
}

void chat_store_close(struct chat_store *st)
{
	if (!st)
		return;
	sto_db_close(st->db);
	free(st->realm);
	free(st);
}

int chat_store_users_load(struct chat_store *st, void (*cb)(void *arg, const struct chat_user *u),
			  void *arg, char *err, size_t errlen)
{
	PGresult *res = NULL;
	int n;

	if (!st || !cb)
		return -EINVAL;
	if (sto_exec(st->db, "load chat users",
		     "SELECT uri, ha1, realm, disabled, chat_enabled, im_enabled, "
		     "(extract(epoch FROM created_at) * 1000)::bigint, "
		     "(extract(epoch FROM updated_at) * 1000)::bigint "
		     "FROM chat.users ORDER BY uri", 0, NULL, &res, err, errlen) != CV_OK)
		return db_errno(st);
	n = PQntuples(res);
	for (int i = 0; i < n; i++) {
		struct chat_user u = {
			.uri = PQgetvalue(res, i, 0),
			.ha1 = PQgetvalue(res, i, 1),
			.realm = PQgetvalue(res, i, 2),
			.disabled = PQgetvalue(res, i, 3)[0] == 't',
			.chat_enabled = PQgetvalue(res, i, 4)[0] == 't',
			.im_enabled = PQgetvalue(res, i, 5)[0] == 't',
			.created_ms = strtoll(PQgetvalue(res, i, 6), NULL, 10),
			.updated_ms = strtoll(PQgetvalue(res, i, 7), NULL, 10),
		};

		if (st->realm[0] && strcmp(u.realm, st->realm) != 0) {
			cv_warn("chat", "user %s cannot sign in: its credential was set for realm "
				"\"%s\" but chat.realm is \"%s\"; set a new password (chatvault "
				"user passwd) or configure the old realm", u.uri, u.realm, st->realm);
			u.realm_mismatch = true;
			u.disabled = true;
		}
		cb(arg, &u);
	}
	/* The result held every HA1: wipe it before giving the memory back. */
	for (int i = 0; i < n; i++) {
		char *h = PQgetvalue(res, i, 1);

		explicit_bzero(h, strlen(h));
	}
	PQclear(res);
	return n;
}

int chat_store_listen(struct chat_store *st, char *err, size_t errlen)
{
	int fd;

	if (!st)
		return -EINVAL;
	if (sto_db_ensure(st->db, err, errlen) != 0)
		return -ENOTCONN;
	if (sto_exec(st->db, "listen", "LISTEN chat_users", 0, NULL, NULL, err, errlen) != CV_OK)
		return db_errno(st);
	fd = PQsocket(sto_db_conn(st->db));
	if (fd < 0) {
		snprintf(err, errlen, "listen: no socket");
		return -ENOTCONN;
	}
	return fd;
}

int chat_store_poll_changes(struct chat_store *st)
{
	PGconn *c;
	PGnotify *nf;
	int n = 0;

	if (!st)
		return -EINVAL;
	c = sto_db_conn(st->db);
	if (!c || PQstatus(c) != CONNECTION_OK)
		return -ENOTCONN;
	if (PQconsumeInput(c) == 0 || PQstatus(c) != CONNECTION_OK) {
		cv_warn("chat", "user change notifications: connection lost: %.*s",
			(int)strcspn(PQerrorMessage(c), "\n"), PQerrorMessage(c));
		return -ENOTCONN;
	}
	while ((nf = PQnotifies(c)) != NULL) {
		if (strcmp(nf->relname, "chat_users") == 0) {
			cv_debug("chat", "user changed: %s", nf->extra);
			n++;
		}
		PQfreemem(nf);
	}
	return n;
}

/* uri canonical?  Writes the reason into err. */
static int check_uri(const char *uri, char *err, size_t errlen)
{
	char canon[CHAT_URI_MAX], why[160];

	if (chat_uri_normalize(uri, canon, sizeof(canon), why, sizeof(why)) != 0) {
		snprintf(err, errlen, "%s: %s", uri ? uri : "(null)", why);
		return -EINVAL;
	}
	if (strcmp(canon, uri) != 0) {
		snprintf(err, errlen, "%s: not canonical (use %s)", uri, canon);
		return -EINVAL;
	}
	return 0;
}

static int make_ha1(const char *uri, const char *realm, const char *password,
		    char ha1[CHAT_HA1_HEX], char *err, size_t errlen)
{
	char user[CHAT_USER_MAX + 1];
	int rc;

	if (!realm || !realm[0]) {
		snprintf(err, errlen, "no realm (set chat.realm or chat.domain)");
		return -EINVAL;
	}
	if (!password || !password[0]) {
		snprintf(err, errlen, "empty password");
		return -EINVAL;
	}
	if (chat_uri_user(uri, user, sizeof(user)) != 0) {
		snprintf(err, errlen, "%s: no user part", uri);
		return -EINVAL;
	}
	rc = chat_ha1_hex(user, realm, password, ha1);
	if (rc == -EINVAL)
		snprintf(err, errlen, "password longer than %d bytes", CHAT_PASSWORD_MAX);
	else if (rc != 0)
		snprintf(err, errlen, "cannot compute the digest credential (MD5 unavailable)");
	return rc;
}

int chat_store_user_add(struct chat_store *st, const char *uri, const char *realm,
			const char *password, bool chat_enabled, bool im_enabled,
			char *err, size_t errlen)
{
	char ha1[CHAT_HA1_HEX];
	const char *params[5];
	PGresult *res = NULL;
	int rc;

	if (!st)
		return -EINVAL;
	if ((rc = check_uri(uri, err, errlen)) != 0)
		return rc;
	if ((rc = make_ha1(uri, realm, password, ha1, err, errlen)) != 0)
		return rc;
	params[0] = uri;
	params[1] = ha1;
	params[2] = realm;
	params[3] = chat_enabled ? "t" : "f";
	params[4] = im_enabled ? "t" : "f";
	if (sto_exec(st->db, "add user",
		     "INSERT INTO chat.users (uri, ha1, realm, chat_enabled, im_enabled) "
		     "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (uri) DO NOTHING RETURNING uri",
		     5, params, &res, err, errlen) != CV_OK) {
		rc = db_errno(st);
		goto out;
	}
	if (PQntuples(res) == 0) {
		snprintf(err, errlen, "%s: already exists", uri);
		rc = -EEXIST;
	}
out:
	explicit_bzero(ha1, sizeof(ha1));
	PQclear(res);
	return rc;
}

static int set_disabled(struct chat_store *st, const char *uri, bool disabled, char *err,
			size_t errlen)
{
	const char *params[2] = { uri, disabled ? "t" : "f" };
	PGresult *res = NULL;
	int rc = 0;

	if (!st)
		return -EINVAL;
	if ((rc = check_uri(uri, err, errlen)) != 0)
		return rc;
	/* IS DISTINCT FROM: no row update (and no notification) when nothing
	 * changes; the SELECT tells "no such user" from "already so". */
	if (sto_exec(st->db, disabled ? "disable user" : "enable user",
		     "WITH u AS (UPDATE chat.users SET disabled = $2 "
		     "           WHERE uri = $1 AND disabled IS DISTINCT FROM $2 RETURNING uri) "
		     "SELECT (SELECT count(*) FROM u), "
		     "       EXISTS (SELECT 1 FROM chat.users WHERE uri = $1)",
		     2, params, &res, err, errlen) != CV_OK)
		return db_errno(st);
	if (PQgetvalue(res, 0, 1)[0] != 't') {
		snprintf(err, errlen, "%s: no such user", uri);
		rc = -ENOENT;
	}
	PQclear(res);
	return rc;
}

int chat_store_user_disable(struct chat_store *st, const char *uri, char *err, size_t errlen)
{
	return set_disabled(st, uri, true, err, errlen);
}

int chat_store_user_enable(struct chat_store *st, const char *uri, char *err, size_t errlen)
{
	return set_disabled(st, uri, false, err, errlen);
}

int chat_store_user_set_password(struct chat_store *st, const char *uri, const char *realm,
				 const char *password, char *err, size_t errlen)
{
	char ha1[CHAT_HA1_HEX];
	const char *params[3];
	PGresult *res = NULL;
	int rc;

	if (!st)
		return -EINVAL;
	if ((rc = check_uri(uri, err, errlen)) != 0)
		return rc;
	if ((rc = make_ha1(uri, realm, password, ha1, err, errlen)) != 0)
		return rc;
	params[0] = uri;
	params[1] = ha1;
	params[2] = realm;
	if (sto_exec(st->db, "set password",
		     "UPDATE chat.users SET ha1 = $2, realm = $3 WHERE uri = $1 RETURNING uri",
		     3, params, &res, err, errlen) != CV_OK) {
		rc = db_errno(st);
		goto out;
	}
	if (PQntuples(res) == 0) {
		snprintf(err, errlen, "%s: no such user", uri);
		rc = -ENOENT;
	}
out:
	explicit_bzero(ha1, sizeof(ha1));
	PQclear(res);
	return rc;
}

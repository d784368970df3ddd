/*
 * chat_store — the users of the chat and IM server and their permissions,
 * in PostgreSQL schema "chat" (schema/004_chat_users.sql), apart from the
 * compliance staging tables of schema "chatvault".
 *
 * Credentials: no password is ever stored, logged or kept in memory longer
 * than the call that hashes it.  A user's credential is the digest HA1 of
 * RFC 2617 §3.2.2.2 / RFC 7616, hex MD5(username ":" realm ":" password),
 * where username is the user part of the SIP URI ("alice" for
 * sip:alice@contoso.com) — the username a SIP client puts in its
 * Authorization header.  HA1 is password-equivalent for its realm, so it is
 * treated as a secret too (never printed by the CLI, never logged), and it
 * is bound to the realm it was computed for: the realm is stored with it,
 * and a user whose stored realm differs from the configured chat.realm
 * cannot sign in (chat_store_users_load warns and presents the user as
 * disabled) until a new password is set.
 *
 * URIs are canonical: "sip:" user "@" domain, all lower case, the user part
 * 1..64 of [a-z0-9._+-], the domain DNS labels of [a-z0-9-] (not starting
 * or ending with '-'), at most 253 characters.  chat_uri_normalize() turns
 * "SIP:Alice@Contoso.COM" into "sip:alice@contoso.com" and refuses the rest
 * with a reason; the table's CHECK constraint holds the same rule.
 *
 * Schema: chat_store_open() does not migrate, like every other command but
 * `migrate`: it refuses, naming `chatvault migrate`, a database without
 * migration 004.
 *
 * Change notification: every insert, update and delete of chat.users sends
 * NOTIFY chat_users with the URI as payload (at commit).  A server calls
 * chat_store_listen() once, watches the returned fd for POLLIN, calls
 * chat_store_poll_changes() when it is readable and reloads the users with
 * chat_store_users_load() when that returns > 0.  When poll_changes returns a
 * negative errno the connection is gone: call chat_store_listen() again
 * (it reconnects) and reload everything, since changes made meanwhile were
 * not notified.
 *
 * Threading: a struct chat_store owns one PostgreSQL connection and is used
 * by one thread at a time.  The pure helpers (chat_ha1_hex,
 * chat_uri_normalize, chat_password_read) are thread-safe.
 */
#ifndef CHAT_STORE_H
#define CHAT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfg;
struct chat_store;

#define CHAT_HA1_HEX 33              /* 32 hex digits + NUL */
#define CHAT_URI_MAX 322             /* "sip:" + 64 + "@" + 253, + NUL */
#define CHAT_USER_MAX 64             /* user part of a URI */
#define CHAT_PASSWORD_MAX 1024       /* bytes of a password (its file's first line) */

/*
 * One user as handed to a chat_store_users_load() callback.  The pointers
 * are valid only during the callback: copy what you keep.
 */
struct chat_user {
	char *uri;           /* canonical sip:user@domain */
	char *ha1;           /* hex MD5(user:realm:password), 32 chars; a secret */
	bool disabled;       /* disabled by an administrator, or realm mismatch */
	bool chat_enabled;   /* may use persistent chat */
	bool im_enabled;     /* may use instant messaging */
	/* Additions beyond the first version of this API: */
	char *realm;         /* the realm ha1 was computed for */
	int64_t created_ms;  /* Unix ms */
	int64_t updated_ms;  /* Unix ms */
	bool realm_mismatch; /* realm != the configured chat.realm (then also disabled) */
};

/*
 * Connect with cfg->db.conninfo (or the PG* environment) with the
 * configuration's retry policy (cfg->db.retry_max_s, 10 s when it is 0),
 * and check that migration 004 is applied.  The configured chat.realm is
 * remembered for the realm check of chat_store_users_load().
 * Returns 0, or a negative errno with one line in err: -ECONNREFUSED could
 * not connect, -ENOENT schema missing (run `chatvault migrate`), -ENOMEM,
 * -EIO other database errors.
 */
int chat_store_open(const struct cfg *cfg, struct chat_store **out, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void chat_store_close(struct chat_store *st);   /* NULL-safe */

/*
 * Call cb once per user, disabled ones included, in URI order.  A user whose
 * stored realm differs from the configured one is logged (a warning naming
 * the user and both realms) and passed with disabled = realm_mismatch = true.
 * Returns the number of users (>= 0) or a negative errno (-EIO, -ENOTCONN
 * when the connection is lost).
 */
int chat_store_users_load(struct chat_store *st, void (*cb)(void *arg, const struct chat_user *u),
			  void *arg, char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * LISTEN chat_users (reconnecting first if the connection is bad).  Returns
 * the socket to watch for POLLIN (owned by the store: do not close it; it
 * changes after a reconnect), or a negative errno.  May block while
 * reconnecting, for up to the open's retry policy.
 */
int chat_store_listen(struct chat_store *st, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * After the fd is readable: read what arrived and consume the pending
 * notifications.  Returns how many there were (>= 0; 0 is normal: the
 * socket may carry other traffic) or -ENOTCONN when the connection is lost.
 */
int chat_store_poll_changes(struct chat_store *st) __attribute__((warn_unused_result));

/*
 * Administration (the `chatvault user` command).  uri must be canonical
 * (chat_uri_normalize); -EINVAL with the reason otherwise.  The password is
 * hashed here with the user part of uri and realm, and not kept.
 */
int chat_store_user_add(struct chat_store *st, const char *uri, const char *realm,
			const char *password, bool chat_enabled, bool im_enabled,
			char *err, size_t errlen) __attribute__((warn_unused_result)); /* -EEXIST */
int chat_store_user_disable(struct chat_store *st, const char *uri, char *err, size_t errlen)
	__attribute__((warn_unused_result));                                   /* -ENOENT */
int chat_store_user_enable(struct chat_store *st, const char *uri, char *err, size_t errlen)
	__attribute__((warn_unused_result));                                   /* -ENOENT */
/* New password (and realm: this is how a user moves to a new realm). */
int chat_store_user_set_password(struct chat_store *st, const char *uri, const char *realm,
				 const char *password, char *err, size_t errlen)
	__attribute__((warn_unused_result));                                   /* -ENOENT */

/* ---- pure helpers (no database) ---------------------------------------- */

/* out = hex MD5(username ":" realm ":" password).  0, or -EINVAL (an empty
 * or over-long argument), -EIO (libcrypto refused MD5, e.g. FIPS mode). */
int chat_ha1_hex(const char *username, const char *realm, const char *password,
		 char out[CHAT_HA1_HEX]) __attribute__((warn_unused_result));

/* Canonicalise a SIP URI into out (CHAT_URI_MAX bytes): scheme and all
 * letters to lower case; check the rules above.  0, or -EINVAL with the
 * reason in why. */
int chat_uri_normalize(const char *in, char *out, size_t outlen, char *why, size_t whylen)
	__attribute__((warn_unused_result));

/* The user part of a canonical URI into out (CHAT_USER_MAX + 1 bytes); 0 or
 * -EINVAL. */
int chat_uri_user(const char *uri, char *out, size_t outlen) __attribute__((warn_unused_result));

/*
 * Read a password from a file: its first line without the line end ("\n"
 * or "\r\n"), 1..CHAT_PASSWORD_MAX bytes, no NUL or other control bytes.
 * A regular file must not be readable or writable by group or others
 * (-EPERM: "chmod 600 FILE"); a pipe (/dev/stdin, <(…)) is accepted as it
 * is.  Directories, terminals and devices are refused (-EINVAL).  The
 * password never appears in why.  0, or a negative errno.
 * The caller wipes buf (explicit_bzero) when done.
 */
int chat_password_read(const char *path, char *buf, size_t buflen, char *why, size_t whylen)
	__attribute__((warn_unused_result));

#endif

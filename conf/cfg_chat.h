/*
 * cfg_chat — the `chat {}` and `im {}` sections of the configuration
 * (`chatvault chatd`, docs/CHAT.md).  Parsed by cfg_load through a small
 * hook in cfg.c; the structures live inside struct cfg (cfg->chat, cfg->im)
 * and are immutable after loading like the rest of it.
 *
 * Every key is documented in conf/chatvault.conf and docs/CHAT.md.  Errors
 * have the format of every other section: "FILE:LINE: chat.KEY: reason".
 */
#ifndef CFG_CHAT_H
#define CFG_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct cfg_chat {
	char *listen;                   /* "host:port", UDP and TCP; default "127.0.0.1:5060" */
	char *domain;                   /* SIP domain served; default "example.test" */
	char *realm;                    /* digest realm; default = domain */
	int max_message_size;           /* bytes of one SIP message, 1024..1048576, default 65536 */
	int max_headers;                /* header fields per message, 8..1024, default 64 */
	int max_registrations_per_user; /* contacts per user, 1..1024, default 8 */
	int max_connections;            /* TCP connections, 1..1000000, default 1024 */
	int registration_min_expires;   /* s, 10..86400, default 60 (423 below) */
	int registration_max_expires;   /* s, min..604800, default 3600 (capped) */
	char **pool_uris;               /* persistent chat pools in provisioning;
					 * default { "sip:ocschat@<domain>" } */
	size_t npool_uris;
	char *push_url;                 /* push gateway; "" = push disabled */
	int push_max_attempts;          /* 1..100, default 5 */
	int push_backoff_ms;            /* first retry delay, 1..600000, default 500 */

	/* persistent chat: Lookup (sip:ocschat@<domain>) and Channel services
	 * (chat/chat_chan.c, docs/PCHAT.md) */
	char **channel_uris;            /* Channel service URIs, sip:USER@<domain>, 1..16;
					 * default { "sip:chan1@<domain>", "sip:chan2@<domain>" } */
	size_t nchannel_uris;
	int search_limit;               /* chansrch results, 1..100000, default 999 */
	int message_size_limit;         /* bytes of a post, 1..32768, default 512 (413) */
	int story_size_limit;           /* bytes of a story, message_size_limit..32768, default 4096 */
	int channel_backlog;            /* store jobs waiting before INFO gets 503, 1..1000000,
					 * default 4096 */
	char *files_listen;             /* file service "IPv4:port" (0 = any); default "127.0.0.1:0" */
	char *files_url;                /* public base URL of /files; "" = http://<files_listen>/files */
	int files_max_upload_mb;        /* 1..102400, default 100 */
};

struct cfg_im {
	int max_sessions;               /* 0 = no maximum; 0..10000000 */
	int idle_timeout_s;             /* no refresh within → may be logged out at the max;
					 * 1..604800, default 600 */
	int inactivity_timeout_s;       /* no refresh within → always logged out;
					 * 1..2592000, default 3600 */
};

struct config_setting_t;   /* libconfig */

/* Callback giving the file a setting came from (cfg.c's src_file). */
typedef const char *(*cfg_chat_src_fn)(void *arg, const struct config_setting_t *s);

/* Built-in defaults (strings left NULL until cfg_chat_finish). */
void cfg_chat_defaults(struct cfg_chat *c, struct cfg_im *im);

/* Parse root's "chat" and "im" groups (both optional).  0, -EINVAL with one
 * error line in err, or -ENOMEM. */
int cfg_chat_load(const struct config_setting_t *root, cfg_chat_src_fn src, void *arg,
		  struct cfg_chat *c, struct cfg_im *im, char *err, size_t errlen);

/* Defaults that depend on other keys (realm = domain, the default pool).
 * 0 or -ENOMEM. */
int cfg_chat_finish(struct cfg_chat *c, struct cfg_im *im, char *err, size_t errlen);

void cfg_chat_free(struct cfg_chat *c);
void cfg_chat_print(const struct cfg_chat *c, const struct cfg_im *im, FILE *out);

#endif

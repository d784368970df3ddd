/*
 * chat_reg — REGISTER with digest authentication, the registration table,
 * and IM sessions with their limits (docs/CHAT.md).
 *
 * One registration (an address-of-record's Contact binding) is one IM
 * session: its start and end are compliance events (im.session.start,
 * im.session.end with the reason in "text": logout, expired, inactivity,
 * idle, shutdown).  A new session is answered 200 only once its start event
 * is durable.  Loop thread only.
 */
#ifndef CHAT_REG_H
#define CHAT_REG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat_store.h"

#define CHAT_INTERNAL
#include "chat_server.h"

enum chat_bstate {
	CHAT_B_STARTING = 0,   /* start event not durable yet */
	CHAT_B_ACTIVE = 1,
	CHAT_B_ENDED = 2,      /* out of the tables; freed when the last wait lets go */
};

struct chat_aor {
	struct le he;              /* in s->aors */
	char uri[CHAT_URI_MAX];
	struct list bindings;      /* struct chat_binding */
	bool pinned;               /* a REGISTER is working on it: not freed when empty */
};

struct chat_binding {
	struct le le_aor;
	struct le le_all;          /* in s->sessions */
	struct chat_aor *aor;      /* NULL once ended */
	char aor_uri[CHAT_URI_MAX];
	char *contact;             /* the Contact URI messages are sent to */
	bool mobile;               /* Contact parameter mobility="mobile" */
	enum chat_bstate state;
	uint64_t refreshed_ms;     /* last REGISTER (activity) */
	uint64_t expires_ms;
	struct sa src;             /* the flow it registered from */
	enum sip_transp tp;
};

/* REGISTER (returns true: handled, always answered). */
bool chat_reg_handle(struct chat_srv *s, const struct sip_msg *msg);
/* Every second: expired and inactive sessions end. */
void chat_reg_sweep(struct chat_srv *s);
struct chat_aor *chat_reg_find(struct chat_srv *s, const char *uri);
/* Does msg come from a flow with a live registration of aor_uri? */
bool chat_reg_flow_ok(struct chat_srv *s, const char *aor_uri, const struct sip_msg *msg);
/*
 * May msg (MESSAGE, SUBSCRIBE) act for aor (its From)?  Yes when it comes
 * from a flow with a live registration of aor; otherwise the sender must
 * authenticate with digest like a REGISTER (401 challenge, 403 wrong
 * credentials, nc window), be a user of chat.domain, enabled and, with
 * need_im, allowed IM.  0 authorised; -1 refused, and already answered.
 */
int chat_reg_authorize(struct chat_srv *s, const struct sip_msg *msg, const char *aor, bool need_im);
/* Is a mobile binding reachable (it refreshed within im.idle_timeout)? */
bool chat_reg_reachable(const struct chat_srv *s, const struct chat_binding *b);
/* End every session with reason (shutdown) and drop the tables. */
void chat_reg_end_all(struct chat_srv *s, const char *reason);

#endif

/*
 * chat_prov — in-band provisioning (Lync Persistent Chat sign-in, seed 004
 * step 1): SUBSCRIBE with Event: vnd-microsoft-provisioning-v2 is accepted
 * (200) for a registered user, and a NOTIFY carries an XML document saying
 * whether persistent chat is enabled for the user and listing the chat pool
 * URIs (chat.pool_uris).  Dialog, refresh and un-SUBSCRIBE are libre's
 * sipevent notifier.  Other event packages: 489 Bad Event.  Loop thread.
 */
#ifndef CHAT_PROV_H
#define CHAT_PROV_H

#include <stdbool.h>
#include <stddef.h>

#define CHAT_INTERNAL
#include "chat_server.h"

#define CHAT_PROV_EVENT "vnd-microsoft-provisioning-v2"
#define CHAT_PROV_CTYPE "application/vnd-microsoft-roaming-provisioning-v2+xml"

/* sipevent_listen's SUBSCRIBE handler (arg: struct chat_srv). */
bool chat_prov_subscribe(const struct sip_msg *msg, void *arg);

/* The provisioning document for uri into a new mem string (or NULL). */
char *chat_prov_document(const struct cfg_chat *cc, const char *uri, bool chat_enabled);

/* Terminate every subscription (shutdown). */
void chat_prov_close_all(struct chat_srv *s);

#endif

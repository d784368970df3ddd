/*
 * chat_im — SIP MESSAGE between registered users (docs/CHAT.md).
 *
 * A MESSAGE becomes one im.message compliance event (user = sender, to =
 * recipient, text = body); the sender is answered only when the event is
 * durable: 200 when it is then forwarded to every reachable registration of
 * the recipient, 202 when the recipient has only mobile registrations that
 * are not reachable and a push notification is queued instead.  BUSY: 503
 * with Retry-After and nothing is delivered.  Loop thread only.
 */
#ifndef CHAT_IM_H
#define CHAT_IM_H

#include <stdbool.h>

#define CHAT_INTERNAL
#include "chat_server.h"

bool chat_im_handle(struct chat_srv *s, const struct sip_msg *msg);

#endif

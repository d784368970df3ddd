/*
 * chat_chan — the persistent chat Lookup and Channel services on chatd's
 * SIP loop (issue 7; docs/PCHAT.md).
 *
 *   INVITE sip:ocschat@<domain>          the Lookup service: cmd:requri →
 *                                        the least loaded Channel service
 *   INVITE <chat.channel_uris[i]>        a Channel service session: every
 *                                        XCCOS command, posts and fan-out
 *
 * A session is the INVITE dialog (libre sipsess): 200 with a minimal SDP,
 * ACK, then INFOs either way, then BYE.  Every client INFO is answered SIP
 * 200 at once (SIP 503 + Retry-After when the store queue or the producer
 * is saturated; 481 outside a live dialog, by libre); the XCCOS answer
 * follows in a separate INFO from the server naming the command's envid.
 *
 * Threads: the loop (all of this), the store thread (chat_chan_db.c) and
 * the file service's HTTP thread (chat_chan_files.c), which emits its own
 * events and never touches loop state.
 */
#ifndef CHAT_CHAN_H
#define CHAT_CHAN_H

#include <stdbool.h>
#include <stddef.h>

#define CHAT_INTERNAL
#include "chat_server.h"

struct chat_chan;

/* Listen for the services on s's SIP stack, start the store thread and
 * the file service.  0 or a negative errno with one line in err. */
int chat_chan_new(struct chat_srv *s, struct chat_chan **out, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* A finished store job (mqueue id CHAT_MQ_CHAN). */
void chat_chan_mq(struct chat_chan *c, void *data);
/* End every session (ntc:part to nobody left, chat.part with reason). */
void chat_chan_close_all(struct chat_chan *c, const char *reason);
void chat_chan_free(struct chat_chan *c);

#endif

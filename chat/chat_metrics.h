/*
 * chat_metrics — chatd's metric families (`chatvault chatd --metrics`),
 * a cv_metrics registry of their own, rendered by cli_metrics.
 *
 * The loop thread updates them through cv_metrics (atomics; any thread
 * would do); NULL registry = no metrics, every update a no-op.  What each
 * one counts, and where, is in docs/OPERATIONS.md:
 *   chatvault_chat_sessions               gauge: registered IM sessions
 *   chatvault_chat_channel_sessions       gauge: live persistent-chat INVITE dialogs
 *   chatvault_chat_messages_total{kind}   counter: im | post, once durable and answered
 *   chatvault_chat_refusals_total{code}   counter: SIP final answers >= 400 to refused
 *                                         requests (the digest challenge is not one)
 *   chatvault_chat_producer_busy_total    counter: SIP 503s because the producer or
 *                                         the store queue was saturated
 */
#ifndef CHAT_METRICS_H
#define CHAT_METRICS_H

struct cv_metrics;

/* Family ids, in registration order. */
enum chat_mid {
	CHAT_M_SESSIONS,
	CHAT_M_CHANNEL_SESSIONS,
	CHAT_M_MESSAGES,
	CHAT_M_REFUSALS,
	CHAT_M_PRODUCER_BUSY,
	CHAT_M__COUNT
};

/* A registry holding chatd's families (the gauges, messages{kind=im|post}
 * and producer_busy present at 0 from the start); NULL when out of memory. */
struct cv_metrics *chat_metrics_new(void);

#endif

/*
 * chat_metrics — see chat_metrics.h.  Built once by `chatd --metrics`
 * before the loop starts; never changed afterwards except through the
 * cv_metrics update functions.
 */
#include "chat_metrics.h"

#include <stddef.h>

#include "cv_metrics.h"

struct cv_metrics *chat_metrics_new(void)
{
	static const struct {
		enum chat_mid id;
		enum cv_metric_type type;
		const char *name, *label, *help;
	} cat[] = {
		{ CHAT_M_SESSIONS, CV_METRIC_GAUGE, "chatvault_chat_sessions", NULL,
		  "Registered IM sessions (registration bindings), a sign-in waiting for its "
		  "session start event included." },
		{ CHAT_M_CHANNEL_SESSIONS, CV_METRIC_GAUGE, "chatvault_chat_channel_sessions", NULL,
		  "Live persistent-chat INVITE dialogs (Lookup and Channel services)." },
		{ CHAT_M_MESSAGES, CV_METRIC_COUNTER, "chatvault_chat_messages_total", "kind",
		  "Messages answered after their compliance event was durable: im = MESSAGE "
		  "(200, or 202 when pushed), post = persistent chat post." },
		{ CHAT_M_REFUSALS, CV_METRIC_COUNTER, "chatvault_chat_refusals_total", "code",
		  "SIP final responses >= 400 chatd sent for requests it refused (the 401 "
		  "digest challenge of a sign-in is not counted; a replayed nonce count is)." },
		{ CHAT_M_PRODUCER_BUSY, CV_METRIC_COUNTER, "chatvault_chat_producer_busy_total",
		  NULL, "Requests answered 503 because the producer or the persistent chat "
		  "store queue was saturated." },
	};
	struct cv_metrics *m = cv_metrics_new();

	if (!m)
		return NULL;
	for (size_t i = 0; i < sizeof(cat) / sizeof(cat[0]); i++) {
		if (cv_metrics_register(m, cat[i].type, cat[i].name, cat[i].help, cat[i].label,
					NULL, 0) != (int)cat[i].id) {
			cv_metrics_free(m);
			return NULL;
		}
	}
	cv_metrics_touch(m, CHAT_M_SESSIONS, NULL);
	cv_metrics_touch(m, CHAT_M_CHANNEL_SESSIONS, NULL);
	cv_metrics_touch(m, CHAT_M_MESSAGES, "im");
	cv_metrics_touch(m, CHAT_M_MESSAGES, "post");
	cv_metrics_touch(m, CHAT_M_PRODUCER_BUSY, NULL);
	return m;
}

/*
 * cv_result — the one outcome type of every operation that can be retried
 * (rsyslog's SUSPENDED vs DATAFAIL made a type).  Same values as the adapter
 * ABI's enum adp_result, checked at compile time in adapters/registry.c.
 *
 *   CV_OK     done and durable
 *   CV_RETRY  transient: back off and try the identical thing again
 *   CV_FAIL   permanent for this data: quarantine it with the reason
 */
#ifndef CV_RESULT_H
#define CV_RESULT_H

enum cv_result {
	CV_OK = 0,
	CV_RETRY = 1,
	CV_FAIL = 2,
};

static inline const char *cv_result_name(enum cv_result r)
{
	switch (r) {
	case CV_OK: return "ok";
	case CV_RETRY: return "retry";
	case CV_FAIL: return "fail";
	}
	return "?";
}

#endif

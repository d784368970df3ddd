/*
 * kafka_int — what ingest/kafka.c shares with kafka_lag.c; not an API (see
 * kafka.h for the contract): the configuration builder, so the lag probe
 * reaches the cluster exactly as the reader does.
 */
#ifndef ING_KAFKA_INT_H
#define ING_KAFKA_INT_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "cfg.h"

enum ing_kafka_role {
	ING_KAFKA_PRODUCER,
	ING_KAFKA_CONSUMER,
};

/*
 * Build the configuration for one role: defaults, then the deployment's
 * properties (refused with err naming the key when they would break a
 * guarantee; see kafka.c).  On success *out owns a conf the caller must
 * hand to rd_kafka_new() or destroy.  0 or negative errno.
 */
int ing_kafka_build_conf(const struct cfg *cfg, enum ing_kafka_role role, rd_kafka_conf_t **out,
			 char *err, size_t errlen) __attribute__((warn_unused_result));

#endif

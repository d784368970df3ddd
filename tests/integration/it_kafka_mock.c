/*
 * it_kafka_mock TOPIC PARTITIONS — run librdkafka's built-in mock cluster
 * (3 brokers, real Kafka protocol on localhost TCP ports) until stdin closes
 * or SIGTERM, printing its bootstrap servers on the first line.  Lets
 * separate chatvault processes (emit, ingest) talk Kafka in tests.
 *
 * Lines on stdin control the cluster while it runs:
 *   down    take every broker down (connections dropped, new ones refused)
 *   up      let every broker accept connections again
 * Each command is answered with the same word on stdout once it is done, so
 * a test can wait for it.  EOF on stdin stops the cluster.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MOCK_BROKERS 3

/* Apply set_down or set_up to every broker; returns 0 or -1. */
static int all_brokers(rd_kafka_mock_cluster_t *mc,
		       rd_kafka_resp_err_t (*fn)(rd_kafka_mock_cluster_t *, int32_t))
{
	for (int32_t id = 1; id <= MOCK_BROKERS; id++) {
		rd_kafka_resp_err_t e = fn(mc, id);

		if (e) {
			fprintf(stderr, "it_kafka_mock: broker %d: %s\n", (int)id,
				rd_kafka_err2str(e));
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	char errstr[512], line[128];
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	rd_kafka_mock_cluster_t *mc;

	if (argc != 3) {
		fprintf(stderr, "usage: it_kafka_mock TOPIC PARTITIONS\n");
		return 2;
	}
	conf = rd_kafka_conf_new();
	/* The handle only hosts the cluster; keep it quiet while the brokers
	 * it would talk to are down. */
	if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "%s\n", errstr);
		return 1;
	}
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk) {
		fprintf(stderr, "%s\n", errstr);
		return 1;
	}
	mc = rd_kafka_mock_cluster_new(rk, MOCK_BROKERS);
	if (!mc || rd_kafka_mock_topic_create(mc, argv[1], atoi(argv[2]), 3) != 0) {
		fprintf(stderr, "cannot create the mock cluster\n");
		return 1;
	}
	printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
	fflush(stdout);
	/* Until the test closes our stdin (or kills us). */
	while (fgets(line, sizeof(line), stdin)) {
		int rc;

		line[strcspn(line, "\r\n")] = '\0';
		if (strcmp(line, "down") == 0)
			rc = all_brokers(mc, rd_kafka_mock_broker_set_down);
		else if (strcmp(line, "up") == 0)
			rc = all_brokers(mc, rd_kafka_mock_broker_set_up);
		else if (line[0] == '\0')
			continue;
		else {
			fprintf(stderr, "it_kafka_mock: unknown command \"%s\" (down, up)\n", line);
			continue;
		}
		if (rc == 0) {
			printf("%s\n", line);
			fflush(stdout);
		}
	}
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	return 0;
}

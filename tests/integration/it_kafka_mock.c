/*
 * it_kafka_mock TOPIC PARTITIONS — run librdkafka's built-in mock cluster
 * (3 brokers, real Kafka protocol on localhost TCP ports) until stdin closes
 * or SIGTERM, printing its bootstrap servers on the first line.  Lets
 * separate chatvault processes (emit, ingest) talk Kafka in tests.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

int main(int argc, char **argv)
{
	char errstr[512], buf[64];
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	rd_kafka_mock_cluster_t *mc;

	if (argc != 3) {
		fprintf(stderr, "usage: it_kafka_mock TOPIC PARTITIONS\n");
		return 2;
	}
	conf = rd_kafka_conf_new();
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk) {
		fprintf(stderr, "%s\n", errstr);
		return 1;
	}
	mc = rd_kafka_mock_cluster_new(rk, 3);
	if (!mc || rd_kafka_mock_topic_create(mc, argv[1], atoi(argv[2]), 3) != 0) {
		fprintf(stderr, "cannot create the mock cluster\n");
		return 1;
	}
	printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
	fflush(stdout);
	/* Until the test closes our stdin (or kills us). */
	while (read(0, buf, sizeof(buf)) > 0)
		;
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	return 0;
}

# The same commands over Kafka (librdkafka's mock cluster: real protocol, in
# a separate process): emit → ingest, kill -9 of the consumer in the middle,
# exactly the emitted ids staged, positions stored in PostgreSQL.
. "$REPO/tests/integration/lib.sh"
N=${CV_IT_EVENTS:-100000}
[ "$N" -gt 20000 ] && N=20000   # the mock keeps ~5 MiB per partition
mkfifo mock.in
"$IT_KAFKA_MOCK" chatvault.events 4 < mock.in > mock.out &
mock=$!
exec 3> mock.in
i=0; while [ ! -s mock.out ]; do i=$((i+1)); [ $i -lt 100 ] || die "mock did not start"; sleep 0.1; done
brokers=$(head -1 mock.out)
cat > cv.conf <<CONF
data_dir = "$WORK/var";
queue = { backend = "kafka"; kafka = { brokers = "$brokers"; topic = "chatvault.events";
  properties = ( ("session.timeout.ms", 6000), ("heartbeat.interval.ms", 500) ); }; };
ingest = { batch_size = 1000; max_wait_ms = 100; };
CONF
cv -c cv.conf migrate
gen --count "$N" --seed 31 > events.jsonl
cv -c cv.conf emit events.jsonl
"$CHATVAULT" -c cv.conf ingest > ingest1.log 2>&1 &
pid=$!
sleep 3
kill -9 $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
echo "staged before kill: $(q 'SELECT count(*) FROM chatvault.staged_events')"
cv -c cv.conf ingest --once
expect_eq "$(q 'SELECT count(*) FROM chatvault.staged_events')" "$N" "staged rows over kafka"
q "SELECT event_id FROM chatvault.staged_events ORDER BY 1" > got.ids
ids_of events.jsonl > want.ids
cmp want.ids got.ids || die "kafka: staged ids differ from emitted ids"
[ "$(q "SELECT count(*) FROM chatvault.ingest_positions WHERE source = 'kafka:chatvault.events'")" -ge 1 ] ||
	die "no kafka positions stored"
# room order holds per room (keyed by room → one partition)
bad=$(q "SELECT count(*) FROM (SELECT ts < lag(ts) OVER (PARTITION BY room ORDER BY staging_id) AS back FROM chatvault.staged_events WHERE room IS NOT NULL) x WHERE back")
expect_eq "$bad" 0 "room order over kafka"
exec 3>&-
wait $mock || true

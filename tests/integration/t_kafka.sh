# The same commands over Kafka (librdkafka's mock cluster: real protocol, in
# a separate process): emit → ingest, kill -9 of the consumer in the middle,
# exactly the emitted ids staged, positions stored in PostgreSQL.  The queue
# depth is the consumer lag against those positions: status --json and
# /metrics say N before ingest, 0 after, M after M more; with the brokers
# unreachable status still answers within a few seconds and says why.
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
# queue depth from status --json (null → "null")
depth() { cv -c cv.conf status --json | jq -r .queue_depth; }
expect_eq "$(depth)" "$N" "queue depth (consumer lag) before ingest"
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

# The lag follows the positions in PostgreSQL (ingest never commits to Kafka).
expect_eq "$(depth)" 0 "queue depth after ingest"
M=500
gen --count "$M" --seed 32 --start 2026-11-21T08:00:00Z > more.jsonl
cv -c cv.conf emit more.jsonl
expect_eq "$(depth)" "$M" "queue depth after $M more"
cv -c cv.conf status > status.txt
grep -q "^queue (kafka): $M waiting (consumer lag)$" status.txt ||
	die "status human output: $(head -1 status.txt)"

# /metrics of run reports the same gauge; the scrape's probe never joins the
# group, so the running ingest is not rebalanced by it.
port=$(free_port)
"$CHATVAULT" -v -c cv.conf run --metrics "127.0.0.1:$port" > run.log 2>&1 &
run=$!
# (seen_events: run's deliver purges staged rows once archived)
i=0; until [ "$(q 'SELECT count(*) FROM chatvault.seen_events')" = $((N + M)) ]; do
	i=$((i+1)); [ $i -lt 240 ] || { tail -20 run.log; die "run did not ingest the $M more"; }; sleep 0.25
done
for _ in 1 2 3; do
	curl -fsS "http://127.0.0.1:$port/metrics" > metrics.txt || die "scrape failed"
done
grep -q "^# HELP chatvault_queue_depth .*Kafka consumer lag" metrics.txt || die "no queue depth HELP"
expect_eq "$(sed -n 's/^chatvault_queue_depth //p' metrics.txt)" 0 "chatvault_queue_depth over kafka"
expect_eq "$(grep -c 'assigned .* partition' run.log)" 1 "assignments of run's consumer (scrapes must not rebalance)"
kill -TERM $run; wait $run || die "run exit status $?"
expect_eq "$(depth)" 0 "queue depth after run"

# Brokers unreachable (a closed port): status answers within a few seconds,
# exit 0 as for any unknown depth, and says why.
sed "s|brokers = \"$brokers\"|brokers = \"127.0.0.1:1\"|" cv.conf > down.conf
grep -q '127.0.0.1:1' down.conf || die "down.conf not written"
t0=$(date +%s%N)
cv -c down.conf status > down.txt 2> down.err || die "status exit status $? with brokers down"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "status with the brokers down: $ms ms"
[ "$ms" -lt 5000 ] || die "status took $ms ms with the brokers down"
grep -q "^queue (kafka): depth unknown: kafka: metadata of topic chatvault.events" down.txt ||
	die "unknown depth not explained: $(head -1 down.txt)"
expect_eq "$(cv -c down.conf status --json | jq -r .queue_depth)" null "queue_depth with brokers down"
exec 3>&-
wait $mock || true

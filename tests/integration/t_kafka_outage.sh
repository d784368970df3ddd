# Every broker down and up again under the CLI (librdkafka's mock cluster in
# its own process, driven through its stdin: "down" / "up").
#
#  A. emit during the outage with a short producer.busy_timeout_ms: emit must
#     not exit 0 while nothing can be durable; it keeps running or fails with
#     exit 1 and says which events are not durable.  Afterwards every id in
#     its --acks file is staged exactly once (and if it did exit 0, everything).
#  B. a running `ingest` worker rides through the outage while an emit with a
#     long busy timeout waits it out: the emit exits 0, the worker stages
#     everything, and SIGTERM ends it with 0.
#
# Timing: the mock drops connections at once, so librdkafka notices a down
# broker immediately (no socket timeout to wait for).  What sets the pace is
# reconnect.backoff.max.ms (default 10 s; 200 ms here, so work resumes well
# under a second after "up"), the producer's message.timeout.ms (chatvault
# sets it to producer.busy_timeout_ms: 1 s in A, 20 s in B), and the group
# session (6 s, longer than the 3 s outages, so no rebalance is needed and
# the first join's 3 s hold is the only wait of the consumer).
. "$REPO/tests/integration/lib.sh"
OUTAGE=3
staged() { q 'SELECT count(*) FROM chatvault.staged_events'; }
# mock_cmd down|up: send, then wait until the mock has applied it
mock_cmd() {
	n=$(grep -c "^$1\$" mock.out || true)
	echo "$1" >&3
	i=0
	while [ "$(grep -c "^$1\$" mock.out || true)" -le "$n" ]; do
		i=$((i+1)); [ $i -lt 100 ] || die "mock did not apply \"$1\""; sleep 0.1
	done
}
# wait_staged N SECONDS
wait_staged() {
	i=0
	while [ "$(staged)" -lt "$1" ]; do
		i=$((i+1)); [ $i -le $(($2 * 10)) ] || die "staged $(staged) after $2 s, want $1"
		sleep 0.1
	done
}
no_duplicates() {
	expect_eq "$(q 'SELECT count(*) FROM (SELECT event_id, count(*) FROM chatvault.staged_events
		GROUP BY event_id HAVING count(*) > 1) d')" 0 "$1: duplicated event ids"
}
# every id of file $1 (one per line) is staged
all_staged() {
	q 'SELECT event_id FROM chatvault.staged_events ORDER BY 1' > got.ids
	sort -u "$1" > want.ids
	[ -z "$(comm -23 want.ids got.ids)" ] ||
		die "$2: $(comm -23 want.ids got.ids | wc -l) ids not staged, e.g. $(comm -23 want.ids got.ids | head -1)"
}

mkfifo mock.in
"$IT_KAFKA_MOCK" chatvault.events 4 < mock.in > mock.out &
mock=$!
exec 3> mock.in
i=0; while [ ! -s mock.out ]; do i=$((i+1)); [ $i -lt 100 ] || die "mock did not start"; sleep 0.1; done
brokers=$(head -1 mock.out)
conf() {
	cat <<CONF
data_dir = "$WORK/var";
queue = { backend = "kafka"; kafka = { brokers = "$brokers"; topic = "chatvault.events";
  properties = ( ("consumer.session.timeout.ms", 6000), ("consumer.heartbeat.interval.ms", 500),
    ("reconnect.backoff.ms", 20), ("reconnect.backoff.max.ms", 200) ); }; };
producer = { busy_timeout_ms = $1; };
ingest = { batch_size = 1000; max_wait_ms = 100; };
CONF
}
conf 1000 > short.conf
conf 20000 > long.conf
cv -c short.conf migrate
gen --count 12000 --seed 41 > all.jsonl
sed -n '1,3000p' all.jsonl > a.jsonl
sed -n '3001,6000p' all.jsonl > b.jsonl
sed -n '6001,8000p' all.jsonl > c.jsonl
sed -n '8001,12000p' all.jsonl > d.jsonl

# ---- A: emit during the outage, short busy timeout --------------------------
cv -c short.conf emit --acks acks.a a.jsonl
expect_eq "$(wc -l < acks.a)" 3000 "acks before the outage"
mock_cmd down
"$CHATVAULT" -c short.conf emit --acks acks.a b.jsonl > emit_b.out 2> emit_b.err &
emit=$!
sleep $OUTAGE
if kill -0 $emit 2>/dev/null; then
	echo "emit still running after ${OUTAGE}s of outage"
	mock_cmd up
	rc=0; wait $emit || rc=$?
else
	rc=0; wait $emit || rc=$?
	[ "$rc" -ne 0 ] || die "emit exited 0 while every broker was down"
	mock_cmd up
fi
echo "emit during the outage: exit $rc, $(wc -l < acks.a) acks"; tail -n 1 emit_b.err
case $rc in
0) ;;
1) grep -q "not durable: queue full or unreachable" emit_b.err ||
	die "emit exit 1 without naming the events that are not durable"
   grep -q "events durable, [1-9][0-9]* not durable" emit_b.err ||
	die "emit exit 1 without a summary of what is not durable" ;;
*) die "emit during the outage: exit $rc, want 0 or 1" ;;
esac
cv -c short.conf ingest --once
no_duplicates "after outage A"
all_staged acks.a "acknowledged during outage A"
if [ "$rc" -eq 0 ]; then
	cat a.jsonl b.jsonl > ab.jsonl
	ids_of ab.jsonl > ab.ids
	q 'SELECT event_id FROM chatvault.staged_events ORDER BY 1' > got.ids
	cmp ab.ids got.ids || die "emit exited 0: staged ids differ from emitted ids"
fi
base=$(staged)
echo "after A: $base staged"

# ---- B: ingest worker through the outage, emit waits it out ------------------
"$CHATVAULT" -c long.conf ingest > ingest.log 2>&1 &
ing=$!
cv -c long.conf emit --acks acks.b c.jsonl
wait_staged $((base + 2000)) 20
mock_cmd down
"$CHATVAULT" -c long.conf emit --acks acks.b d.jsonl > emit_d.out 2> emit_d.err &
emit=$!
sleep $OUTAGE
kill -0 $emit 2>/dev/null || { wait $emit || true; cat emit_d.err >&2;
	die "emit with a 20 s busy timeout ended during a ${OUTAGE} s outage"; }
kill -0 $ing 2>/dev/null || { cat ingest.log >&2; die "ingest worker died during the outage"; }
mock_cmd up
rc=0; wait $emit || rc=$?
[ "$rc" -eq 0 ] || { cat emit_d.err >&2; die "emit across the outage exited $rc"; }
expect_eq "$(wc -l < acks.b)" 6000 "acks across outage B"
wait_staged $((base + 6000)) 20
kill -TERM $ing
rc=0; wait $ing || rc=$?
expect_eq "$rc" 0 "ingest worker exit status after SIGTERM"
expect_eq "$(staged)" $((base + 6000)) "staged after outage B"
no_duplicates "after outage B"
all_staged acks.b "acknowledged around outage B"
cat c.jsonl d.jsonl > cd.jsonl
ids_of cd.jsonl > cd.ids
all_staged cd.ids "emitted (exit 0) around outage B"
all_staged acks.a "acknowledged during outage A, after B"

exec 3>&-
wait $mock || true

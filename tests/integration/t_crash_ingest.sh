# kill -9 the consumer at random moments (20+ cycles) while events flow, and
# kill -9 a producer mid-stream: staged ids == acknowledged ids, no duplicates.
. "$REPO/tests/integration/lib.sh"
N=${CV_IT_EVENTS:-200000}
cat > cv.conf <<CONF
data_dir = "$WORK/var";
ingest = { batch_size = 2000; max_wait_ms = 20; };
CONF
cv -c cv.conf migrate
gen --count "$N" --seed 7 > events.jsonl
"$CHATVAULT" -c cv.conf emit events.jsonl &
emit_pid=$!
cycles=0
while [ $cycles -lt 22 ]; do
	"$CHATVAULT" -c cv.conf ingest > /dev/null 2>&1 &
	pid=$!
	sleep "0.$(shuf -i 5-40 -n 1)"
	kill -9 $pid 2>/dev/null || true
	wait $pid 2>/dev/null || true
	cycles=$((cycles + 1))
done
wait $emit_pid || die "emit failed"
cv -c cv.conf ingest --once
expect_eq "$(q 'SELECT count(*) FROM chatvault.staged_events')" "$N" "staged rows after $cycles kills"
expect_eq "$(q 'SELECT count(DISTINCT event_id) FROM chatvault.staged_events')" "$N" "distinct ids"
# Staging ids stay dense through the kills (a rolled-back staging transaction
# must not leave a hole that verify would report as a lost event).
expect_eq "$(q 'SELECT min(staging_id) || '"' '"' || max(staging_id) FROM chatvault.staged_events')" "1 $N" "dense staging ids"
q "SELECT event_id FROM chatvault.staged_events ORDER BY 1" > got.ids
ids_of events.jsonl > want.ids
cmp want.ids got.ids || die "staged ids differ from emitted ids"
expect_eq "$(q 'SELECT count(*) FROM chatvault.sequence_gaps')" 0 "sequence gaps"

# Producer side: kill -9 emit while it writes; every id it acknowledged is staged.
gen --count 50000 --seed 8 > more.jsonl
"$CHATVAULT" -c cv.conf emit --acks acks.txt more.jsonl 2>/dev/null &
emit_pid=$!
sleep 0.3
kill -9 $emit_pid 2>/dev/null || true
wait $emit_pid 2>/dev/null || true
acked=$(wc -l < acks.txt)
echo "producer acknowledged $acked of 50000 before kill -9"
cv -c cv.conf ingest --once
sort acks.txt > acks.sorted
q "SELECT event_id FROM chatvault.staged_events ORDER BY 1" > staged.ids
missing=$(comm -23 acks.sorted staged.ids | wc -l)
expect_eq "$missing" 0 "acknowledged events lost"
expect_eq "$(q 'SELECT count(*) - count(DISTINCT event_id) FROM chatvault.staged_events')" 0 "duplicates"

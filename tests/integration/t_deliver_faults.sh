# Delivery under faults, with a third-party adapter loaded from a shared object:
#  - wrong ABI version refused clearly (exit 2);
#  - an adapter answering RETRY for ~30% of batches and FAILing one chosen event:
#    everything else delivered, nothing deleted early, the failed one quarantined;
#  - kill -9 of deliver at random moments (20+ cycles): each id exactly once in
#    the archive, hash chain unbroken;
#  - two deliver processes at once: outputs not doubled.
. "$REPO/tests/integration/lib.sh"
N=${CV_IT_EVENTS:-100000}
[ "$N" -gt 30000 ] && N=30000
cat > wrong.conf <<CONF
data_dir = "$WORK/var";
adapters = ( { name = "archive"; type = "archive"; },
             { name = "bad"; type = "so"; path = "$WRONG_ABI_SO"; options = { file = "$WORK/x-"; }; } );
CONF
cv -c wrong.conf migrate
set +e; cv -c wrong.conf deliver --once 2>err; rc=$?; set -e
cat err
expect_eq "$rc" 2 "wrong ABI exit status"
grep -q "ABI" err || die "wrong ABI message unclear"

gen --count "$N" --seed 11 > events.jsonl
fail_id=$(sed -n '777p' events.jsonl | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
mkdir -p ex
cat > cv.conf <<CONF
data_dir = "$WORK/var";
deliver = { retry_base_ms = 5; retry_max_ms = 40; lease = 5; };
adapters = (
  { name = "archive"; type = "archive"; batch_size = 500; },
  { name = "ex"; type = "so"; path = "$EXAMPLE_SO"; batch_size = 500;
    options = { file = "$WORK/ex/batch-"; retry_percent = 30; fail_event = "$fail_id"; }; }
);
CONF
cv -c cv.conf emit events.jsonl
cv -c cv.conf ingest --once
# kill -9 deliver repeatedly
cycles=0
while [ $cycles -lt 20 ]; do
	"$CHATVAULT" -c cv.conf deliver > /dev/null 2>&1 &
	pid=$!
	sleep "0.$(shuf -i 10-60 -n 1)"
	kill -9 $pid 2>/dev/null || true
	wait $pid 2>/dev/null || true
	cycles=$((cycles + 1))
	# Nothing deleted before both required adapters passed it.
	left=$(q "SELECT count(*) FROM chatvault.staged_events")
	minc=$(q "SELECT min(cursor) FROM chatvault.adapter_state WHERE adapter IN ('archive','ex')")
	[ "$left" -ge $((N - ${minc:-0})) ] || die "deleted early: $left left, min cursor $minc"
done
# two workers at once finish the job
"$CHATVAULT" -c cv.conf deliver --once > d1.out 2>&1 &
p1=$!
cv -c cv.conf deliver --once > d2.out 2>&1 || true
wait $p1 || true
# whatever is left (a worker may have yielded the lease to the other)
cv -c cv.conf deliver --once
expect_eq "$(q 'SELECT count(*) FROM chatvault.staged_events')" 0 "staging empty"
ids_of events.jsonl > want.ids
archive_ids var/archive > got.ids
cmp want.ids got.ids || die "archive ids differ (lost or doubled) after $cycles kills"
check_chain var/archive
# the example adapter got every id but the failed one, each once
cat ex/batch-*.txt | sort > ex.ids
grep -v "$fail_id" want.ids > want_ex.ids
cmp want_ex.ids ex.ids || die "example adapter output differs"
expect_eq "$(q "SELECT count(*) FROM chatvault.quarantine WHERE adapter = 'ex' AND event_id = '$fail_id'")" 1 "quarantined event"
q "SELECT reason FROM chatvault.quarantine WHERE adapter='ex'" | grep -q "refused by example adapter" || die "quarantine reason"
[ "$(q "SELECT consecutive_failures FROM chatvault.adapter_state WHERE adapter='ex'")" -eq 0 ] || die "failures not reset"

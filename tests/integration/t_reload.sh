# SIGHUP reloads the configuration of a running worker: an invalid file is
# rejected (the worker keeps running on the old one), a valid one takes
# effect (an adapter added on the fly receives every event); SIGTERM still
# exits 0.  Checked for `deliver` and for `run`.
. "$REPO/tests/integration/lib.sh"
conf() { # $1 = extra adapter lines
	cat > cv.conf <<CONF
data_dir = "$WORK/var";
adapters = ( { name = "archive"; type = "archive"; run_interval = 1; }$1 );
CONF
}
wait_for() { # $1 = description, $2 = shell condition
	i=0
	until eval "$2"; do
		i=$((i + 1)); [ $i -lt 120 ] || { cat worker.log; die "timeout waiting for $1"; }
		sleep 0.25
	done
}
jsonl_count() { find var/jsonl -name '*.jsonl' -exec cat {} + 2>/dev/null | wc -l; }

base=$PGDATABASE
for mode in deliver run; do
	export PGDATABASE="${base}_$mode"
	createdb "$PGDATABASE"
	rm -rf var; conf ""
	cv -c cv.conf migrate > /dev/null
	gen --count 3000 --seed 21 > events.jsonl
	cv -c cv.conf emit events.jsonl > /dev/null
	[ $mode = deliver ] && cv -c cv.conf ingest --once > /dev/null
	"$CHATVAULT" -v -c cv.conf $mode > worker.log 2>&1 &
	pid=$!
	wait_for "the archive" '[ "$(q "SELECT coalesce(sum(event_count),0) FROM chatvault.batches WHERE adapter = '"'archive'"' AND state = '"'done'"'")" = 3000 ]'
	# An invalid configuration is refused and the worker keeps going.
	printf 'adapters = ( { name = "bad"; type = "nosuch"; } );\n' >> cv.conf
	kill -HUP $pid
	wait_for "the refusal" 'grep -q "new configuration is invalid, keeping the current one" worker.log'
	kill -0 $pid || die "$mode died on an invalid configuration"
	# A valid one adds the jsonl adapter, which then receives every event.
	conf ', { name = "jsonl"; type = "jsonl"; run_interval = 1; }'
	kill -HUP $pid
	wait_for "the reload" 'grep -q "configuration reloaded" worker.log'
	cv -c cv.conf emit events.jsonl > /dev/null   # duplicates: staged once, never twice
	gen --count 500 --seed 22 > more.jsonl
	cv -c cv.conf emit more.jsonl > /dev/null
	[ $mode = deliver ] && cv -c cv.conf ingest --once > /dev/null
	wait_for "the new adapter" '[ "$(jsonl_count)" -ge 500 ]'
	kill -TERM $pid
	set +e; wait $pid; rc=$?; set -e
	expect_eq "$rc" 0 "$mode exit status after SIGTERM"
	# The archive has every event exactly once across the reload.
	cat events.jsonl more.jsonl > all.jsonl
	ids_of all.jsonl > want.ids
	archive_ids var/archive > got.ids
	cmp want.ids got.ids || die "$mode: archive ids differ across the reload"
	echo "$mode: reload ok ($(jsonl_count) events in the added jsonl adapter)"
done

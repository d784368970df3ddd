# `ingest --metrics` and `deliver --metrics` as the separate processes the
# systemd units run: each serves its own /metrics with its own counters
# (ingest's ingested total is what was emitted, deliver's delivered total
# is what was archived), chatvault_up lists db and only the process's own
# worker, /healthz is 200; counters survive a SIGHUP reload; with the
# database unreachable both /healthz answer 503 naming it and recover.
. "$REPO/tests/integration/lib.sh"
N=1200
M=300
PI=$(free_port); PD=$(free_port)
while [ "$PD" = "$PI" ]; do PD=$(free_port); done
cat > cv.conf <<CONF
data_dir = "$WORK/var";
ingest = { batch_size = 200; max_wait_ms = 20; };
adapters = ( { name = "archive"; type = "archive"; batch_size = 250; run_interval = 1; } );
CONF
cv -c cv.conf migrate > /dev/null

wait_for() { # $1 = description, $2 = shell condition, $3 = tries of 0.25 s
	i=0
	until eval "$2"; do
		i=$((i + 1)); [ $i -lt "${3:-240}" ] || { tail -n 20 ingest.log deliver.log h.txt; die "timeout waiting for $1"; }
		sleep 0.25
	done
}
archived() { q "SELECT coalesce(sum(event_count),0) FROM chatvault.batches WHERE state = 'done'"; }

# the flag's errors: a malformed address is a usage error (2) naming it
set +e; cv -c cv.conf ingest --metrics nonsense 2>err; rc=$?; set -e
expect_eq "$rc" 2 "ingest --metrics nonsense exit status"
grep -q "nonsense: want HOST:PORT" err || die "bad address not explained: $(cat err)"
set +e; cv -c cv.conf deliver --metrics=127.0.0.1:0x 2>err; rc=$?; set -e
expect_eq "$rc" 2 "deliver --metrics=bad exit status"

"$CHATVAULT" -c cv.conf ingest --metrics "127.0.0.1:$PI" > ingest.log 2>&1 &
ipid=$!
"$CHATVAULT" -c cv.conf deliver "--metrics=127.0.0.1:$PD" > deliver.log 2>&1 &
dpid=$!
wait_for "both endpoints" '[ "$(fetch "http://127.0.0.1:$PI/healthz" h.txt)" = 200 ] && [ "$(fetch "http://127.0.0.1:$PD/healthz" h.txt)" = 200 ]'

gen --count "$N" --seed 41 > events.jsonl
cv -c cv.conf emit events.jsonl > /dev/null
wait_for "the archive" '[ "$(archived)" = "$N" ] && [ "$(q "SELECT count(*) FROM chatvault.staged_events")" = 0 ]'

cat > check.py <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import promtext
role, path, want, db_up = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
m = promtext.Scrape(path)
ups = sorted(s[1]["component"] for s in m.samples if s[0] == "chatvault_up")
assert ups == sorted(["db", role]), "chatvault_up components %r" % ups
assert m.get("chatvault_up", component="db") == (1 if db_up else 0)
assert m.get("chatvault_up", component=role) == 1
if role == "ingest":
    assert m.get("chatvault_events_ingested_total") == want, m.get("chatvault_events_ingested_total")
    assert not m.has("chatvault_events_delivered_total", adapter="archive"), "deliver's counter in ingest"
    assert m.get("chatvault_batch_duration_seconds_count", stage="ingest") > 0
    if db_up:
        assert m.get("chatvault_queue_depth") == 0
else:
    assert m.get("chatvault_events_delivered_total", adapter="archive") == want
    assert m.get("chatvault_events_ingested_total") == 0, "ingest's counter moved in deliver"
    assert m.get("chatvault_batch_duration_seconds_count", stage="deliver") > 0
    assert not m.has("chatvault_queue_depth"), "deliver reads the spool"
if db_up:
    assert m.get("chatvault_staged_events") == 0
    assert m.get("chatvault_backlog_events", adapter="archive") == 0
else:
    assert not m.has("chatvault_staged_events"), "stale database figures"
print("%s metrics ok: %d samples" % (role, len(m.samples)))
PY
scrape_check() { # ROLE PORT WANT DB_UP
	expect_eq "$(fetch "http://127.0.0.1:$2/metrics" "$1.txt")" 200 "$1 /metrics status"
	python3 check.py "$REPO/tests/integration" "$1" "$1.txt" "$3" "$4" || die "$1 metrics"
	if command -v promtool > /dev/null; then
		promtool check metrics < "$1.txt" || die "promtool rejects $1's /metrics"
	fi
}
scrape_check ingest "$PI" "$N" 1
scrape_check deliver "$PD" "$N" 1
command -v promtool > /dev/null || echo "(promtool not installed: checked by the python parser only)"
for p in "$PI" "$PD"; do
	expect_eq "$(fetch "http://127.0.0.1:$p/healthz" h.txt)" 200 "/healthz on $p"
	expect_eq "$(cat h.txt)" "ok" "/healthz body on $p"
done

# SIGHUP: both reload (the server held meanwhile) and keep counting
kill -HUP $ipid $dpid
sleep 1
kill -0 $ipid && kill -0 $dpid || die "a worker died on SIGHUP"
gen --count "$M" --seed 42 > more.jsonl
cv -c cv.conf emit more.jsonl > /dev/null
wait_for "the second archive round" '[ "$(archived)" = "$((N + M))" ]'
scrape_check ingest "$PI" "$((N + M))" 1
scrape_check deliver "$PD" "$((N + M))" 1

# The database goes away (connections refused, open ones ended: see
# t_metrics.sh for why not a stopped cluster): both say so, both recover.
db=$PGDATABASE
psql -XAtq -d postgres -c "ALTER DATABASE \"$db\" ALLOW_CONNECTIONS false" \
	-c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '$db'" > /dev/null
for p in "$PI" "$PD"; do
	wait_for "/healthz 503 on $p" '[ "$(fetch "http://127.0.0.1:$p/healthz" h.txt)" = 503 ]' 120
	grep -q "^database: .*not currently accepting connections" h.txt ||
		die "503 reason on $p does not name the database: $(cat h.txt)"
done
scrape_check ingest "$PI" "$((N + M))" 0
scrape_check deliver "$PD" "$((N + M))" 0
psql -XAtq -d postgres -c "ALTER DATABASE \"$db\" ALLOW_CONNECTIONS true"
for p in "$PI" "$PD"; do
	wait_for "/healthz 200 again on $p" '[ "$(fetch "http://127.0.0.1:$p/healthz" h.txt)" = 200 ]' 120
done

kill -TERM $ipid $dpid
set +e; wait $ipid; irc=$?; wait $dpid; drc=$?; set -e
expect_eq "$irc" 0 "ingest exit status after SIGTERM"
expect_eq "$drc" 0 "deliver exit status after SIGTERM"
expect_eq "$(fetch "http://127.0.0.1:$PI/healthz" h.txt)" 0 "ingest's endpoint gone after exit"
echo "ingest/deliver metrics: ok"

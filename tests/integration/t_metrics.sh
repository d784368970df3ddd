# `run --metrics`: /metrics in the Prometheus text format (parsed here, and
# by promtool when installed) with counters that match exactly what was
# emitted and delivered, /healthz, 404/405; the worker's stderr as logfmt
# records; then the database unreachable: /healthz turns 503 naming it,
# /metrics still answers with chatvault_up{component="db"} 0, and both
# recover when it is back.
. "$REPO/tests/integration/lib.sh"
N=3000
port=$(free_port)
base="http://127.0.0.1:$port"
cat > cv.conf <<CONF
data_dir = "$WORK/var";
ingest = { batch_size = 500; max_wait_ms = 20; };
adapters = ( { name = "archive"; type = "archive"; batch_size = 700; run_interval = 1; } );
CONF
cv -c cv.conf migrate > /dev/null

wait_for() { # $1 = description, $2 = shell condition, $3 = tries of 0.25 s
	i=0
	until eval "$2"; do
		i=$((i + 1)); [ $i -lt "${3:-240}" ] || { tail -20 run.log; die "timeout waiting for $1"; }
		sleep 0.25
	done
}

# A malformed address is a usage error naming it; a taken port a runtime one.
set +e; cv -c cv.conf run --metrics nonsense 2>err; rc=$?; set -e
expect_eq "$rc" 2 "run --metrics nonsense exit status"
grep -q "nonsense: want HOST:PORT" err || die "bad address not explained: $(cat err)"
python3 -c 'import socket,time,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(3)' "$port" &
holder=$!; sleep 0.5
set +e; cv -c cv.conf run --metrics "127.0.0.1:$port" 2>err; rc=$?; set -e
kill $holder 2>/dev/null || true; wait $holder 2>/dev/null || true
expect_eq "$rc" 1 "run --metrics on a busy port"
grep -q "cannot listen: Address already in use" err || die "busy port not explained: $(cat err)"

gen --count "$N" --seed 31 > events.jsonl
cv -c cv.conf emit events.jsonl > /dev/null
"$CHATVAULT" -v -c cv.conf run --metrics "127.0.0.1:$port" > run.log 2>&1 &
pid=$!
wait_for "the archive" '[ "$(q "SELECT coalesce(sum(event_count),0) FROM chatvault.batches WHERE state = '"'done'"'")" = "$N" ] && [ "$(q "SELECT count(*) FROM chatvault.staged_events")" = 0 ]'

expect_eq "$(fetch "$base/healthz" health.txt)" 200 "/healthz status"
expect_eq "$(cat health.txt)" "ok" "/healthz body"
expect_eq "$(fetch "$base/nosuch" nf.txt)" 404 "unknown path"
expect_eq "$(fetch "$base/metrics" m405.txt POST)" 405 "POST /metrics"
t0=$(date +%s%N)
expect_eq "$(fetch "$base/metrics" metrics.txt)" 200 "/metrics status"
echo "scrape: $(( ($(date +%s%N) - t0) / 1000000 )) ms (python client included)"

# Parse the exposition text strictly and check the numbers.
cat > check_metrics.py <<'PY'
import math, sys
sys.path.insert(0, sys.argv[4])
import promtext   # the strict parser the metrics tests share
m = promtext.Scrape(sys.argv[1])
samples, types, get = m.samples, m.types, m.get

want = int(sys.argv[2]); db_up = sys.argv[3] == "1"
assert get("chatvault_events_ingested_total") == want, get("chatvault_events_ingested_total")
assert get("chatvault_events_delivered_total", adapter="archive") == want
assert get("chatvault_events_quarantined_total", stage="ingest") == 0
assert get("chatvault_delivery_retries_total", adapter="archive") >= 0
assert get("chatvault_sequence_gaps_total") >= 0
bi = [s for s in samples if s[0] == "chatvault_build_info"]
assert len(bi) == 1 and bi[0][2] == 1 and bi[0][1]["version"], bi
assert get("chatvault_up", component="db") == (1 if db_up else 0)
for c in ("ingest", "deliver", "retention"):
    assert get("chatvault_up", component=c) == 1, c
if db_up:
    assert get("chatvault_backlog_events", adapter="archive") == 0
    assert get("chatvault_staged_events") == 0
    assert get("chatvault_oldest_undelivered_age_seconds", adapter="archive") == 0
    assert get("chatvault_queue_depth") == 0
else:
    assert not [s for s in samples if s[0] == "chatvault_backlog_events"], "stale backlog"
for stage in ("ingest", "deliver"):
    b = [(s[1]["le"], s[2]) for s in samples
         if s[0] == "chatvault_batch_duration_seconds_bucket" and s[1]["stage"] == stage]
    les = [float(le) if le != "+Inf" else math.inf for le, _ in b]
    assert les == sorted(les) and les[-1] == math.inf, les
    counts = [c for _, c in b]
    assert counts == sorted(counts), "buckets not monotonic: %r" % counts
    count = get("chatvault_batch_duration_seconds_count", stage=stage)
    assert count > 0 and counts[-1] == count, (stage, count, counts)
    assert get("chatvault_batch_duration_seconds_sum", stage=stage) >= 0
print("metrics ok: %d samples, %d families" % (len(samples), len(types)))
PY
python3 check_metrics.py metrics.txt "$N" 1 "$REPO/tests/integration"
if command -v promtool > /dev/null; then
	promtool check metrics < metrics.txt || die "promtool rejects /metrics"
else
	echo "(promtool not installed: checked by the python parser only)"
fi

# stderr is a file: logfmt, one record per line with level and component.
cat > check_logfmt.py <<'PY'
import json, re, sys
tok = re.compile(r'([A-Za-z0-9_.-]+)=("(?:[^"\\]|\\.)*"|[^ "=\\]+)(?: |$)')
recs = []
for n, line in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
    line = line.rstrip("\n")
    pos, rec = 0, {}
    while pos < len(line):
        m = tok.match(line, pos)
        assert m, "line %d is not logfmt at %d: %r" % (n, pos, line)
        v = m.group(2)
        rec[m.group(1)] = json.loads(v) if v.startswith('"') else v
        pos = m.end()
    assert "level" in rec and "component" in rec and "msg" in rec and "ts" in rec, line
    recs.append(rec)
got = sum(int(r["events"]) for r in recs if r["msg"] == "batch delivered" and r.get("adapter") == "archive")
assert got == int(sys.argv[2]), "batch delivered lines add up to %d" % got
staged = sum(int(r["staged"]) for r in recs if r["msg"] == "batch staged")
assert staged == int(sys.argv[2]), "batch staged lines add up to %d" % staged
print("logfmt ok: %d records" % len(recs))
PY
python3 check_logfmt.py run.log "$N"

# The database goes away: the scrape still answers, /healthz says why.  The
# outage is made by refusing connections to the test database and ending the
# open ones, not by stopping the cluster: a stopped cluster frees its port,
# which a concurrent pg_virtualenv on the same machine may take meanwhile.
db=$PGDATABASE
psql -XAtq -d postgres -c "ALTER DATABASE \"$db\" ALLOW_CONNECTIONS false" \
	-c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '$db'" > /dev/null
t0=$(date +%s)
wait_for "/healthz 503" '[ "$(fetch "$base/healthz" health.txt)" = 503 ]' 120
echo "healthz 503 after $(( $(date +%s) - t0 )) s: $(cat health.txt)"
grep -q "^database: .*not currently accepting connections" health.txt ||
	die "503 reason does not name the database: $(cat health.txt)"
[ "$(wc -l < health.txt)" -eq 1 ] || die "503 reason is not one line"
expect_eq "$(fetch "$base/metrics" down.txt)" 200 "/metrics with the database down"
python3 check_metrics.py down.txt "$N" 0 "$REPO/tests/integration"
psql -XAtq -d postgres -c "ALTER DATABASE \"$db\" ALLOW_CONNECTIONS true"
wait_for "/healthz 200 again" '[ "$(fetch "$base/healthz" health.txt)" = 200 ]' 120
expect_eq "$(fetch "$base/metrics" up.txt)" 200 "/metrics after the database is back"
python3 check_metrics.py up.txt "$N" 1 "$REPO/tests/integration"
kill -TERM $pid
set +e; wait $pid; rc=$?; set -e
expect_eq "$rc" 0 "run exit status after SIGTERM"
python3 check_logfmt.py run.log "$N"
grep -q 'msg="database unreachable for /metrics and /healthz"' run.log || die "outage not logged"

# One-shot commands keep "chatvault: CMD: what: why" unless asked for logfmt.
printf 'nosuchkey = 1;\n' > bad.conf
set +e; cv -c bad.conf status 2>err; set -e
grep -q '^chatvault: status: configuration: .*nosuchkey' err || die "human error line: $(cat err)"
set +e; cv --log-format=logfmt -c bad.conf status 2>err; set -e
grep -q '^ts=[^ ]* level=error component=status msg="configuration: .*nosuchkey.*"$' err ||
	die "logfmt error line: $(cat err)"

#!/bin/sh
# soak.sh — the whole pipeline under steady load for a bounded time, with
# kill -9 of every worker (chatd included) and PostgreSQL restarts, then a
# drain and the proof: every acknowledged id and every IM chatd answered 200
# archived exactly once, verify clean, staging empty, and no worker's memory
# growing.  Not part of `make check`
# (`make soak`; docs/SOAK.md).
#
#   make soak [SOAK_SECONDS=300]
#   CHATVAULT=bin/chatvault tests/soak/soak.sh
#
# Knobs (environment; defaults in brackets):
#   SOAK_SECONDS      load phase length [300]; the drain comes after it
#   SOAK_PRODUCERS    emitting producers, each its own source.server [3]
#   SOAK_RATE         events per second per producer [200]
#   SOAK_KILL_MIN/MAX seconds between two kill -9 of one worker [20/60]
#   SOAK_DB_RESTART   seconds between PostgreSQL restarts (stop -m fast,
#                     then -m immediate, alternating; then start) [60]
#   SOAK_RETENTION    seconds between `chatvault retention` runs [15]
#   SOAK_SAMPLE       RSS sampling period in seconds [1]
#   SOAK_WARMUP       seconds of each worker lifetime not judged for RSS [10]
#   SOAK_CHAT=0       leave chatd and its IM load out [1]
#   SOAK_CHAT_RATE    IM MESSAGEs per second, all senders together [20]
#   SOAK_CHAT_PAIRS   sender/recipient pairs of the IM load [4]
#   SOAK_KEEP=1       keep the work directory even when everything passed
#
# Processes (each a separate `chatvault` process, as under systemd):
#   producers   SOAK_PRODUCERS loops; every second (on the second: a late run
#               is caught up) each runs
#               `chatvault emit --acks` on its next SOAK_RATE events (ids
#               generated here by tools/gen_events.py, so every id is known;
#               --acks lists the ids that became durable).  The spool needs
#               no database, so they keep going through DB restarts.
#   ingest      `chatvault ingest`, kill -9 at random moments, restarted
#               after a random 0.2-3 s;
#   deliver     `chatvault deliver` (adapters archive + xml, both required,
#               run_interval 1 s, lease 5 s), killed and restarted the same way;
#   retention   `chatvault retention` every SOAK_RETENTION s.  No retention
#               profile is configured, so nothing is purged (a run only
#               reads the catalog and writes its audit row) and the archive
#               must hold every id; a run that meets the database restarting
#               is counted apart, any other failure fails the soak;
#   PostgreSQL  restarted every SOAK_DB_RESTART s, the first after half of it
#               (pg_ctlcluster stop -m fast
#               or -m immediate in turn, then start) in the private
#               pg_virtualenv cluster;
#   chatd       `chatvault chatd` (chatd.conf: cv.conf + its own producer
#               server soak-chatd + chat { listen 127.0.0.1:<free port>;
#               domain soak.test }), so its events go through the same spool,
#               ingest and deliver; SOAK_CHAT_PAIRS sender/recipient users
#               added before it starts.  Killed and restarted like ingest; a
#               chatd that cannot start because PostgreSQL is restarting (it
#               loads its users at start, then serves from that cache) is
#               started again and counted;
#   IM load     tests/soak/soak_chat.py (the UA of tools/demo_chat.py):
#               each sender sends "soak-im K n" MESSAGEs, SOAK_CHAT_RATE a
#               second in all, a new text per MESSAGE (never sent twice);
#               200 → chat.acks; any other outcome (no answer, refused
#               while chatd is dead, 480/401/503 after a restart) is
#               counted and the sender signs in again and goes on;
#               recipients answer the forwarded MESSAGEs;
#   sampler     VmRSS and RssAnon of ingest, deliver and chatd every
#               SOAK_SAMPLE s.
#
# chatd's proof: every text answered 200 is the text of exactly one archived
# im.message, no text is archived twice (one never acknowledged — made
# durable, its 200 lost to a kill — at most once), none that was not sent.
#
# Memory: a worker's RSS is judged per lifetime (the time between two
# kills: a restart starts from zero).  After SOAK_WARMUP s the samples are
# cut in thirds; growth = median(last third) - median(first third).  It
# fails when growth is both > 20 % and > 8 MiB.  Why both: RssAnon is the
# figure judged (VmRSS also counts LMDB's file-backed map, which grows as
# the spool's pages are touched and is the kernel's page cache, not our
# heap); a worker is a few MiB of heap, where glibc's arenas move by a MiB
# or two with batch shapes (20 % of 5 MiB is noise), while 8 MiB on a
# worker that is large for a good reason (a 20000-event batch) is a few
# percent.  A leak of one event's worth of memory per event, at this load,
# crosses both within a minute.  Lifetimes with fewer than 9 samples
# after the warm-up are too short to judge and are listed as such; the
# soak fails if no lifetime of a worker could be judged.
#
# Exit status 0 only when every check passed; the summary table is printed
# either way, and the work directory (logs, ids, samples) is kept on failure.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
export CHATVAULT="${CHATVAULT:-$top/bin/chatvault}"
export PATH="/usr/lib/postgresql/15/bin:$PATH"

if [ -z "${CV_IN_VIRTUALENV:-}" ]; then
	# A private cluster on a random port (like bench/run.sh), dropped afterwards.
	port=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 20000))
	exec env CV_IN_VIRTUALENV=1 PGPORT="$port" pg_virtualenv -t -o shared_buffers=128MB \
		-o fsync=on -o max_connections=50 "$0" "$@"
fi

SOAK_SECONDS=${SOAK_SECONDS:-300}
SOAK_PRODUCERS=${SOAK_PRODUCERS:-3}
SOAK_RATE=${SOAK_RATE:-200}
SOAK_KILL_MIN=${SOAK_KILL_MIN:-20}
SOAK_KILL_MAX=${SOAK_KILL_MAX:-60}
SOAK_DB_RESTART=${SOAK_DB_RESTART:-60}
SOAK_RETENTION=${SOAK_RETENTION:-15}
SOAK_SAMPLE=${SOAK_SAMPLE:-1}
SOAK_WARMUP=${SOAK_WARMUP:-10}
SOAK_CHAT=${SOAK_CHAT:-1}
SOAK_CHAT_RATE=${SOAK_CHAT_RATE:-20}
SOAK_CHAT_PAIRS=${SOAK_CHAT_PAIRS:-4}
[ -x "$CHATVAULT" ] || { echo "soak: $CHATVAULT not built (make soak builds it)" >&2; exit 2; }

work=$(mktemp -d /tmp/cvsoak.XXXXXX)
cd "$work"
say() { echo "soak: [$(( $(date +%s) - t_start ))s] $*" >&2; }
q() { psql -XAtq -c "$1"; }
cv() { "$CHATVAULT" -c "$work/cv.conf" "$@"; }
rnd() { shuf -i "$1-$2" -n 1; }   # integer in [$1, $2]
# sleep $1 seconds (may be fractional) unless the stop file appears
nap() { python3 -c 'import os,sys,time
end = time.time() + float(sys.argv[1])
while time.time() < end and not os.path.exists("stop"):
    time.sleep(min(0.2, max(0, end - time.time())))' "$1"; }
t_start=$(date +%s)

export PGDATABASE=cv_soak
createdb "$PGDATABASE"
cluster=$(pg_lsclusters -h | awk -v p="$PGPORT" '$3 == p { print $1 " " $2 }')
[ -n "$cluster" ] || { echo "soak: cannot find the pg_virtualenv cluster" >&2; exit 1; }

cat > cv.conf <<CONF
data_dir = "$work/var";
log_level = "info";
ingest = { batch_size = 1000; max_wait_ms = 50; };
deliver = { lease = 5; retry_base_ms = 50; retry_max_ms = 2000; };
adapters = (
  { name = "archive"; type = "archive"; run_interval = 1; batch_size = 2000; },
  { name = "xml"; type = "xml"; run_interval = 1; batch_size = 2000; }
);
CONF
cv migrate

# ---- chatd: its own producer identity, a free port, users added before start ----
if [ "$SOAK_CHAT" != 0 ]; then
	chat_port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	{
		sed "s|^data_dir|producer = { server = \"soak-chatd\"; };\ndata_dir|" cv.conf
		echo "chat = { listen = \"127.0.0.1:$chat_port\"; domain = \"soak.test\"; };"
	} > chatd.conf
	(umask 077; printf 'soak-pw\n' > chat.pw)
	k=1
	while [ $k -le "$SOAK_CHAT_PAIRS" ]; do
		for u in send$k recv$k; do
			"$CHATVAULT" -c chatd.conf user add "sip:$u@soak.test" --password-file chat.pw > /dev/null
		done
		k=$((k + 1))
	done
fi

# ---- events: every id known before it is emitted ------------------------------
per_producer=$((SOAK_RATE * (SOAK_SECONDS + 5)))
say "generating $SOAK_PRODUCERS x $per_producer events"
p=1
while [ $p -le "$SOAK_PRODUCERS" ]; do
	sed "s|^data_dir|producer = { server = \"soak-p$p\"; };\ndata_dir|" cv.conf > "p$p.conf"
	mkdir -p "p$p"
	python3 "$top/tools/gen_events.py" --count "$per_producer" --seed $((4000 + p)) \
		--start "$(date -u +%Y-%m-%dT00:00:00Z)" --span-hours 20 |
		(cd "p$p" && split -l "$SOAK_RATE" -d -a 6 - chunk.)
	: > "acks.p$p"
	p=$((p + 1))
done

# ---- the processes --------------------------------------------------------------
producer() { # N: chunk k at start + k seconds (a late one catches up), until stop
	n=0; fails=0; t0=$(date +%s.%N)
	for chunk in p$1/chunk.*; do
		[ -f stop ] && break
		if ! "$CHATVAULT" -c "p$1.conf" emit --acks "acks.p$1" "$chunk" >> "emit.p$1.log" 2>&1; then
			fails=$((fails + 1))
		fi
		cat "$chunk" >> "sent.p$1"
		n=$((n + 1))
		left=$(echo "$t0 + $n - $(date +%s.%N)" | bc -l)
		case $left in -*|0) ;; *) nap "$left" ;; esac
	done
	echo "$n $fails" > "producer.p$1.done"
}

# supervise NAME CONF ARGS...: run `chatvault -c CONF ARGS` until stop; kill -9
# it after a random SOAK_KILL_MIN..MAX s, restart it after a random 0.2-3 s.
# chatd needs PostgreSQL to start (it loads its users, then serves from that
# cache): a chatd that exits before "listening on" with a database error in
# its log met a PostgreSQL restart and is started again after 1 s (counted);
# any other worker that dies by itself fails the soak.
supervise() {
	name=$1; conf=$2; shift 2
	kills=0; dbstarts=0
	while [ ! -f stop ]; do
		: >> "$name.log"; off=$(wc -c < "$name.log")
		"$CHATVAULT" -c "$conf" "$@" >> "$name.log" 2>&1 &
		pid=$!
		echo "$pid" > "$name.pid"
		echo "$(date +%s) start $pid" >> "$name.events"
		nap "$(rnd "$SOAK_KILL_MIN" "$SOAK_KILL_MAX")"
		if [ -f stop ]; then
			# The soak is over: a clean stop (SIGTERM finishes the batch).
			kill -TERM "$pid" 2>/dev/null || true
			rc=0; wait "$pid" || rc=$?
			echo "$(date +%s) term $pid rc=$rc" >> "$name.events"
			[ "$rc" -eq 0 ] || echo "$name exited $rc on SIGTERM" >> failures
			break
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			rc=0; wait "$pid" || rc=$?
			if [ "$name" = chatd ] && [ "$rc" -ne 0 ] &&
			   ! tail -c +$((off + 1)) "$name.log" | grep -q "listening on" &&
			   tail -c +$((off + 1)) "$name.log" | grep -qiE "connect|server closed|terminat|shut ?down|starting up|recovery|reset by peer"; then
				dbstarts=$((dbstarts + 1))
				echo "$(date +%s) dbstart $pid rc=$rc" >> "$name.events"
				: > "$name.pid"
				nap 1
				continue
			fi
			echo "$name $pid died by itself (exit $rc) — see $name.log" >> failures
		else
			kill -9 "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
			kills=$((kills + 1))
			echo "$(date +%s) kill9 $pid" >> "$name.events"
		fi
		: > "$name.pid"
		nap "0.$(rnd 2 9)$(rnd 0 9)"
		[ "$(rnd 0 9)" -lt 3 ] && nap "$(rnd 1 2)"
	done
	: > "$name.pid"
	echo "$kills" > "$name.kills"
	echo "$dbstarts" > "$name.dbstarts"
}

workers="ingest deliver"
[ "$SOAK_CHAT" = 0 ] || workers="$workers chatd"
sampler() { # t name pid VmRSS_kib RssAnon_kib
	while [ ! -f stop ]; do
		for name in $workers; do
			pid=$(cat "$name.pid" 2>/dev/null || true)
			[ -n "$pid" ] || continue
			awk -v t="$(date +%s.%N)" -v n="$name" -v p="$pid" \
				'/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 }
				 END { if (r != "") print t, n, p, r, a }' "/proc/$pid/status" \
				>> rss.samples 2>/dev/null || true
		done
		sleep "$SOAK_SAMPLE"
	done
}

db_restarter() { # the first after half the interval, then every interval
	n=0
	nap $((SOAK_DB_RESTART / 2))
	while [ ! -f stop ]; do
		mode=fast; [ $((n % 2)) -eq 1 ] && mode=immediate
		say "PostgreSQL restart -m $mode"
		# stop + start, not "restart": pg_ctlcluster's restart asks whether
		# the cluster runs through the external pid file
		# /var/run/postgresql/15-regress.pid, which every pg_virtualenv
		# cluster named 15/regress shares and which is gone after the first
		# restart, so a second "restart" only tries to start (and fails:
		# "Cluster is already running").  stop and start look at the data
		# directory's own postmaster.pid.
		if pg_ctlcluster $cluster stop -m $mode >> db.log 2>&1 &&
		   pg_ctlcluster $cluster start >> db.log 2>&1; then
			n=$((n + 1))
			echo "$(date +%s) restart $mode" >> db.events
		else
			echo "PostgreSQL restart -m $mode failed (db.log)" >> failures
		fi
		nap "$SOAK_DB_RESTART"
	done
	echo "$n" > db.restarts
}

retention_loop() {
	ok=0; dbdown=0
	while nap "$SOAK_RETENTION"; [ ! -f stop ]; do
		if cv retention > ret.out 2>&1; then
			ok=$((ok + 1))
			# No profile: nothing may be purged.
			if grep -qE ': [1-9][0-9]* purged' ret.out; then
				echo "retention purged something: $(tail -1 ret.out)" >> failures
			fi
		elif grep -qiE "connect|server closed|terminat|shut ?down|starting up|recovery|reset by peer|no connection" ret.out; then
			dbdown=$((dbdown + 1))
		else
			echo "retention failed: $(tail -1 ret.out)" >> failures
		fi
		tail -n 1 ret.out >> retention.log
	done
	echo "$ok $dbdown" > retention.done
}

: > failures
say "load for ${SOAK_SECONDS}s: $SOAK_PRODUCERS producers x $SOAK_RATE events/s$( [ "$SOAK_CHAT" = 0 ] || echo ", chatd $SOAK_CHAT_RATE IM/s" ); work dir $work"
pids=""
p=1
while [ $p -le "$SOAK_PRODUCERS" ]; do
	producer $p & pids="$pids $!"
	p=$((p + 1))
done
supervise ingest "$work/cv.conf" ingest & pids="$pids $!"
supervise deliver "$work/cv.conf" deliver & pids="$pids $!"
if [ "$SOAK_CHAT" != 0 ]; then
	supervise chatd "$work/chatd.conf" chatd & pids="$pids $!"
	python3 "$here/soak_chat.py" --server "127.0.0.1:$chat_port" --domain soak.test \
		--password-file chat.pw --pairs "$SOAK_CHAT_PAIRS" --rate "$SOAK_CHAT_RATE" \
		--stop stop --sent chat.sent --acks chat.acks > chat.json 2> chat.err & pids="$pids $!"
fi
sampler & pids="$pids $!"
db_restarter & pids="$pids $!"
retention_loop & pids="$pids $!"
cleanup() {
	touch "$work/stop"
	for pid in $pids; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup INT TERM

sleep "$SOAK_SECONDS"
say "stopping the load"
touch stop
for pid in $pids; do wait "$pid" || echo "background job $pid exited non-zero" >> failures; done
trap - INT TERM

# ---- drain -----------------------------------------------------------------------
say "draining (ingest --once, deliver --once)"
pg_isready -q -t 30 || true
for i in 1 2 3 4 5; do
	cv ingest --once >> drain.log 2>&1 && cv deliver --once >> drain.log 2>&1 &&
		[ "$(q 'SELECT count(*) FROM chatvault.staged_events')" = 0 ] && break
	sleep 2
done

# ---- checks ----------------------------------------------------------------------
say "checking"
cat acks.p* | sort > acked.ids
cat sent.p* | python3 -c 'import json,sys
for l in sys.stdin: print(json.loads(l)["id"])' | sort > sent.ids
# Every event's id to archived.ids; chatd's events (users @soak.test) apart:
# their ids are chatd's own, so they are left out of the producers' id
# checks (archived.pids); the text of each im.message to chat.archived, the
# type of each to chat.types.
for b in $(find var/archive -name '*.tar.zst' | sort); do
	tar --zstd -xOf "$b" events.jsonl
done | python3 -c 'import json,sys
ids, pids = open("archived.ids.u", "w"), open("archived.pids.u", "w")
texts, types = open("chat.archived.u", "w"), open("chat.types", "w")
for l in sys.stdin:
    e = json.loads(l)
    ids.write(e["id"] + "\n")
    if str(e.get("user", "")).endswith("@soak.test"):
        types.write(e["type"] + "\n")
        if e["type"] == "im.message":
            texts.write(e["text"] + "\n")
    else:
        pids.write(e["id"] + "\n")'
sort archived.ids.u > archived.ids
sort archived.pids.u > archived.pids
sort chat.archived.u > chat.archived
rm -f archived.ids.u archived.pids.u chat.archived.u
emitted=$(wc -l < sent.ids)
acked=$(wc -l < acked.ids)
archived=$(wc -l < archived.ids)
archived_p=$(wc -l < archived.pids)
dups=$(uniq -d archived.ids | wc -l)
missing=$(comm -23 acked.ids archived.pids | wc -l)
unacked=$(comm -23 sent.ids acked.ids | wc -l)
extra=$(sort -u archived.pids | comm -13 sent.ids - | wc -l)
staged=$(q 'SELECT count(*) FROM chatvault.staged_events')
quarantined=$(q 'SELECT count(*) FROM chatvault.quarantine')
catalog=$(q "SELECT coalesce(sum(event_count), 0) FROM chatvault.batches WHERE adapter = 'archive' AND state = 'done' AND tombstone IS NULL")
# The xml adapter's <Message id="staging id"> (FirstMessage repeats a
# conversation's first one, as in Lync's format, and is not counted).
find var/xml -name '*.xml' -exec cat {} + | grep -oE '<Message [^>]*>' |
	grep -oE ' id="[0-9]+"' | sort > xml.ids
xml_msgs=$(wc -l < xml.ids)
xml_dups=$(uniq -d xml.ids | wc -l)
vrc=0; "$CHATVAULT" verify "$work/var/archive" > verify.out 2>&1 || vrc=$?
verdict="exit $vrc: $(tail -n 1 verify.out)"

# Ingest retrying records PostgreSQL already holds (a lost COMMIT answer
# not followed by a rewind to the stored position) never drains on its own;
# here the next kill -9 would hide it, so it is counted.
stuck=$(cat ingest.log drain.log | grep -c "already at or past" || true)
[ "$stuck" -eq 0 ] || echo "ingest retried staged records $stuck times (\"already at or past\" in ingest.log)" >> failures
[ "$dups" -eq 0 ] || echo "$dups ids archived more than once" >> failures
[ "$missing" -eq 0 ] || echo "$missing acknowledged ids not archived" >> failures
[ "$unacked" -eq 0 ] || echo "$unacked emitted ids never acknowledged (emit.p*.log)" >> failures
[ "$extra" -eq 0 ] || echo "$extra archived ids that were never emitted" >> failures
[ "$staged" -eq 0 ] || echo "$staged events left in staging after the drain" >> failures
[ "$quarantined" -eq 0 ] || echo "$quarantined events quarantined" >> failures
[ "$catalog" -eq "$archived" ] || echo "catalog counts $catalog archived events, bundles hold $archived" >> failures
[ "$vrc" -eq 0 ] || echo "verify: $verdict" >> failures
# The xml adapter (required too) got every event once as well (a redelivered
# batch replaces its file under the same name).
[ "$xml_msgs" -eq "$archived" ] || echo "xml adapter holds $xml_msgs messages, archive $archived" >> failures
[ "$xml_dups" -eq 0 ] || echo "xml adapter holds $xml_dups staging ids more than once" >> failures

touch rss.samples
python3 - "$SOAK_WARMUP" rss.samples "$workers" > rss.table 2>> failures <<'PY' || echo "RSS grew (see the table)" >> failures
import collections, statistics, sys
warm = float(sys.argv[1])
life = collections.OrderedDict()   # (name, pid) -> [(t, rss, anon)]
for l in open(sys.argv[2]):
    f = l.split()
    if len(f) < 5:
        continue
    life.setdefault((f[1], f[2]), []).append((float(f[0]), int(f[3]), int(f[4])))
MIB = 1024
bad = False
judged = collections.Counter()
best = {}
for (name, pid), s in life.items():
    t0 = s[0][0]
    s = [x for x in s if x[0] - t0 >= warm]
    if len(s) < 9:
        continue
    k = len(s) // 3
    first = [statistics.median(x[i] for x in s[:k]) for i in (1, 2)]
    last = [statistics.median(x[i] for x in s[-k:]) for i in (1, 2)]
    grow = last[1] - first[1]
    fail = grow > 8 * MIB and grow > 0.20 * first[1]
    bad |= fail
    judged[name] += 1
    # report the longest lifetime of each worker, or any failing one
    if fail or name not in best or (not best[name][-1] and len(s) > best[name][0]):
        best[name] = (len(s), pid, first, last, s[-1][0] - s[0][0], fail)
    if fail:
        print("RSS: %s pid %s RssAnon %d -> %d KiB (+%d KiB, +%.0f%%)"
              % (name, pid, first[1], last[1], grow, 100.0 * grow / first[1]), file=sys.stderr)
for name in sys.argv[3].split():
    lifetimes = sum(1 for k in life if k[0] == name)
    if name not in best:
        print("%s\t%d\t0\t-\t-\t-" % (name, lifetimes))
        print("RSS: no lifetime of %s long enough to judge" % name, file=sys.stderr)
        bad = True
        continue
    n, pid, first, last, span, fail = best[name]
    print("%s\t%d\t%d\t%d/%d\t%d/%d\t%s" % (name, lifetimes, judged[name], first[0], last[0],
          first[1], last[1], "GREW" if fail else "ok (%ds judged, pid %s)" % (span, pid)))
sys.exit(1 if bad else 0)
PY

# ---- chatd: every acknowledged text archived exactly once, no text twice ----
if [ "$SOAK_CHAT" != 0 ]; then
	touch chat.sent chat.acks
	sort chat.sent > chat.sent.s
	sort chat.acks > chat.acks.s
	im_sent=$(wc -l < chat.sent.s)
	im_acked=$(wc -l < chat.acks.s)
	im_archived=$(wc -l < chat.archived)
	im_missing=$(comm -23 chat.acks.s chat.archived | wc -l)
	im_dups=$(uniq -d chat.archived | wc -l)
	im_unacked_arch=$(sort -u chat.archived | comm -12 - chat.sent.s | comm -23 - chat.acks.s | wc -l)
	im_extra=$(sort -u chat.archived | comm -23 - chat.sent.s | wc -l)
	im_resent=$(uniq -d chat.sent.s | wc -l)
	im_sessions=$(grep -cx 'im.session.start' chat.types || true)
	im_ends=$(grep -cx 'im.session.end' chat.types || true)
	[ "$im_missing" -eq 0 ] || echo "$im_missing acknowledged IM texts not archived (chat.acks, chat.archived)" >> failures
	[ "$im_dups" -eq 0 ] || echo "$im_dups IM texts archived more than once" >> failures
	[ "$im_extra" -eq 0 ] || echo "$im_extra archived IM texts that were never sent" >> failures
	[ "$im_resent" -eq 0 ] || echo "soak_chat.py sent $im_resent texts twice (a soak bug)" >> failures
	[ "$im_acked" -gt 0 ] || echo "no IM was acknowledged (chat.err, chatd.log)" >> failures
	[ -s chat.json ] || echo "soak_chat.py printed no summary (chat.err)" >> failures
	if grep -q Traceback chat.err 2>/dev/null; then echo "soak_chat.py raised (chat.err)" >> failures; fi
fi

# ---- summary ----------------------------------------------------------------------
kills_i=$(cat ingest.kills 2>/dev/null || echo "?")
kills_d=$(cat deliver.kills 2>/dev/null || echo "?")
restarts=$(cat db.restarts 2>/dev/null || echo "?")
set -- $(cat retention.done 2>/dev/null || echo "? ?")
ret_ok=$1; ret_down=$2
emits=0; emit_fails=0
for f in producer.p*.done; do
	set -- $(cat "$f"); emits=$((emits + $1)); emit_fails=$((emit_fails + $2))
done
[ "$emit_fails" -eq 0 ] || echo "$emit_fails emit runs failed (emit.p*.log)" >> failures
elapsed=$(( $(date +%s) - t_start ))
{
	echo
	echo "chatvault soak: ${SOAK_SECONDS}s load, $SOAK_PRODUCERS producers x $SOAK_RATE events/s, ${elapsed}s in all"
	printf '  %-34s %s\n' "emitted (ids sent to emit)" "$emitted"
	printf '  %-34s %s\n' "acknowledged (emit --acks)" "$acked"
	printf '  %-34s %s\n' "archived (ids in bundles; all events)" "$archived_p ($archived)"
	printf '  %-34s %s\n' "duplicates" "$dups"
	printf '  %-34s %s\n' "missing (acknowledged, not archived)" "$missing"
	printf '  %-34s %s\n' "xml adapter messages (duplicates)" "$xml_msgs ($xml_dups)"
	printf '  %-34s %s\n' "staged / quarantined after drain" "$staged / $quarantined"
	printf '  %-34s %s\n' "ingest retries of staged records" "$stuck"
	printf '  %-34s %s\n' "emit runs (failed)" "$emits ($emit_fails)"
	printf '  %-34s %s\n' "kill -9: ingest / deliver" "$kills_i / $kills_d"
	if [ "$SOAK_CHAT" != 0 ]; then
		printf '  %-34s %s\n' "chat IMs sent / acked / archived" "$im_sent / $im_acked / $im_archived"
		printf '  %-34s %s\n' "chat IMs acked, not archived" "$im_missing"
		printf '  %-34s %s\n' "chat IMs archived twice (never sent)" "$im_dups ($im_extra)"
		printf '  %-34s %s\n' "chat IMs archived, not acked" "$im_unacked_arch"
		printf '  %-34s %s\n' "chat sessions started / ended" "$im_sessions / $im_ends"
		printf '  %-34s %s\n' "kill -9: chatd (start met DB down)" "$(cat chatd.kills 2>/dev/null || echo '?') ($(cat chatd.dbstarts 2>/dev/null || echo '?'))"
		printf '  %-34s %s\n' "chat load (soak_chat.py)" "$(cat chat.json 2>/dev/null)"
	fi
	printf '  %-34s %s\n' "PostgreSQL restarts" "$restarts"
	printf '  %-34s %s\n' "retention runs ok / met DB restart" "$ret_ok / $ret_down"
	printf '  %-34s %s\n' "verify" "$verdict"
	echo "  RSS per worker (KiB, medians of the first/last third of a lifetime after ${SOAK_WARMUP}s warm-up):"
	printf '    %-8s %9s %7s %17s %17s  %s\n' worker lifetimes judged "VmRSS first/last" "RssAnon first/last" verdict
	while IFS="$(printf '\t')" read -r w l j r a v; do
		printf '    %-8s %9s %7s %17s %17s  %s\n' "$w" "$l" "$j" "$r" "$a" "$v"
	done < rss.table
	if [ -s failures ]; then
		echo "FAILED:"
		sed 's/^/  - /' failures
		echo "work directory kept: $work"
	else
		echo "PASSED"
	fi
} | tee summary.txt
if [ -s failures ]; then
	exit 1
fi
[ -n "${SOAK_KEEP:-}" ] && echo "work directory kept: $work" || { cd /; rm -rf "$work"; }
exit 0

#!/bin/sh
# bench/run.sh — chatvault's speed as ratios against a baseline measured side
# by side in the same run (never asserted, never fails the build; prints one
# table: measure, ours, baseline, ratio = ours ÷ baseline, note).  For
# throughput higher is better; for latency and memory lower is.
#
#   make bench          about 14 minutes on 2 cores (BIG=0: about 8.5)
#   make bench-quick    QUICK=1: about 1.5 minutes, smaller counts
#
# Sections (each figure the median of 3 runs unless the note says "once"):
#   - ingest / end to end / deliver against raw COPY, zstd and a bare
#     claim+DELETE loop, over N events (N=200000; QUICK 20000);
#   - Kafka path ÷ spool path: emit + ingest --once of KAFKA_N events
#     (50000; QUICK 10000) over librdkafka's mock cluster in its own process
#     (it_kafka_mock, KAFKA_PARTITIONS=16 partitions: it keeps only ~5 MiB per
#     partition) against the same events over the embedded spool;
#   - emit → durable latency p50/p99/max of the producer API (bench_latency,
#     LAT_RATE=5000 events/s for LAT_SECS=5 s; QUICK 2 s) against one small
#     write + fdatasync on the same filesystem, as many samples;
#   - peak RSS of `ingest --once` with 1M and then 5M events queued in the
#     spool, run ONCE (the slowest part: ~5.5 of the ~10 minutes); BIG=0
#     skips it (`make bench` then takes ~4 minutes); skipped under QUICK
#     unless BIG=1 (then 100k and 500k).  RSS_SIZES="A B" overrides (B a
#     multiple of A).  Scaled down, with a note, when /tmp has too little
#     free space (~1.2 GB per million events: spool, staging, WAL);
#   - chatd: SIPp MESSAGE rate through chatd (answered once durable in the
#     spool) ÷ the same SIPp UAC against a SIPp UAS, CHAT_N (20000; QUICK
#     2000) per run, each MESSAGE forwarded to a SIPp UAS that answers 200;
#     chatd's RSS growth per registered session at CHAT_SESS (10000; QUICK
#     1000) sessions, once.  Over UDP chatd's rate falls with the number of
#     messages (libre's timer list: docs/CHAT.md "Weak points");
#   - persistent chat, same chatd: posts/s accepted (rpl:grpchat resp 200,
#     i.e. chat.post durable) by one SIPp poster, one post in flight, and the
#     fan-out grpchat INFOs/s received by the other PC_USERS - 1 (10 users)
#     SIPp sessions in the room, each ÷ a SIPp UAC's INFO/s in a dialog to a
#     SIPp UAS answering 200 (PC_M INFOs: 2000; QUICK 200, per run);
#   - export events/s ÷ `tar --zstd -xO events.jsonl` of the same bundles,
#     verify MB/s ÷ sha256sum MB/s: only when those commands are built.
#   - end to end events/s against batch size (ingest.batch_size = the
#     archive adapter's batch_size = 100 … 20000; QUICK: 100, 1000, 5000 over
#     fewer events), each run once: bench/plot.sh writes
#     bench/out/e2e_batch.dat and, with gnuplot, bench/out/e2e_batch.png;
#     the table gets one line naming the PNG.  PLOT=0 skips it.
#
# ONLY="chat plot" (any of: pipeline kafka latency rss chat plot) runs just
# those sections; the table then has only their rows.  KEEP=1 keeps the work
# directory (SIPp logs msg_*.{out,err,screen}, chatd.log) for a post-mortem.
#
# Needs: bin/chatvault, BENCH_LATENCY (build/rel/bench/bench_latency) and
# IT_KAFKA_MOCK (build/rel/tests/it_kafka_mock); `make bench` builds and
# passes both.  PostgreSQL is a throwaway pg_virtualenv cluster.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
export PATH="/usr/lib/postgresql/15/bin:$PATH"
if [ -z "${CV_IN_VIRTUALENV:-}" ]; then
	# -t: a private cluster directory even as root, and a random port, so
	# a test run elsewhere (15/regress, port 5432 or 5433) and we do not
	# collide.
	port=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 20000))
	exec env CV_IN_VIRTUALENV=1 PGPORT="$port" pg_virtualenv -t -o shared_buffers=256MB "$0" "$@"
fi
QUICK=${QUICK:-}
BIG=${BIG:-}
ONLY=${ONLY:-}
want() { [ -z "$ONLY" ] || case " $ONLY " in *" $1 "*) true ;; *) false ;; esac; }
for s in $ONLY; do
	case $s in pipeline|kafka|latency|rss|chat|plot) ;;
	*) echo "bench: ONLY: unknown section '$s' (pipeline kafka latency rss chat plot)" >&2; exit 2 ;;
	esac
done
q() { [ -n "$QUICK" ] && echo "$1" || echo "$2"; }
N=${N:-$(q 20000 200000)}
KAFKA_N=${KAFKA_N:-$(q 10000 50000)}
KAFKA_PARTITIONS=${KAFKA_PARTITIONS:-16}
LAT_RATE=${LAT_RATE:-5000}
LAT_SECS=${LAT_SECS:-$(q 2 5)}
if [ -n "${RSS_SIZES:-}" ]; then
	:
elif [ "$BIG" = 0 ] || { [ -n "$QUICK" ] && [ -z "$BIG" ]; }; then
	RSS_SIZES=""
else
	RSS_SIZES=$(q "100000 500000" "1000000 5000000")
fi
cv="$top/bin/chatvault"
mock_bin=${IT_KAFKA_MOCK:-$top/build/rel/tests/it_kafka_mock}
lat_bin=${BENCH_LATENCY:-$top/build/rel/bench/bench_latency}
for b in "$cv" "$mock_bin" "$lat_bin"; do
	[ -x "$b" ] || { echo "bench: $b not built (make bench builds it)" >&2; exit 1; }
done
work=$(mktemp -d /tmp/cvbench.XXXXXX)
mockpid=""
chatpid=""
cleanup() {
	[ -z "$mockpid" ] || kill "$mockpid" 2>/dev/null || true
	[ -z "$chatpid" ] || kill "$chatpid" 2>/dev/null || true
	if [ -n "${KEEP:-}" ]; then say "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
cd "$work"
now() { date +%s.%N; }
median() { sort -g | sed -n '2p'; }
m() { median < "$1"; }
calc() { echo "$1" | bc -l; }
: > table
# row LABEL OURS BASELINE [NOTE] / row LABEL OURS "" [NOTE] / line TEXT
row() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" >> table; }
line() { printf '%s\n' "$1" >> table; }
bench_t0=$(date +%s)
say() { echo "bench [+$(($(date +%s) - bench_t0)) s]: $*" >&2; }

if want pipeline || want kafka; then
	python3 "$top/tools/gen_events.py" --count "$N" --seed 99 > events.jsonl
fi

# ---- ingest, end to end, deliver (N events) ---------------------------------
if want pipeline; then
built() { "$cv" "$1" --help >/dev/null 2>&1 && ! "$cv" "$1" --help 2>&1 | grep -q "not built yet"; }
have_export=""; have_verify=""
built export && have_export=1
built verify && have_verify=1
cat > cv.conf <<CONF
data_dir = "$work/var";
ingest = { batch_size = 5000; };
adapters = ( { name = "archive"; type = "archive"; batch_size = 20000; } );
CONF
: > r_emit; : > r_ingest; : > r_copy; : > r_deliver; : > r_e2e; : > r_zstd; : > r_arch; : > r_bare
: > r_export; : > r_untar; : > r_verify; : > r_sha
python3 - events.jsonl > rows.tsv <<'PY'
import json, sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    esc = lambda s: s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    print("\t".join([e["id"], e["type"], e["ts"], esc(e.get("room") or "") or "\\N",
                     esc(e["user"]), "bench", "1", esc(l.rstrip("\n"))]))
PY
for run in 1 2 3; do
	say "pipeline run $run of 3 ($N events)"
	dropdb --if-exists bench >/dev/null 2>&1; createdb bench; export PGDATABASE=bench
	rm -rf var; $cv -c cv.conf migrate >/dev/null
	t0=$(now); $cv -c cv.conf emit events.jsonl 2>/dev/null; t1=$(now)
	$cv -c cv.conf ingest --once >/dev/null; t2=$(now)
	$cv -c cv.conf deliver --once >/dev/null; t3=$(now)
	calc "$N / ($t1 - $t0)" >> r_emit
	calc "$N / ($t2 - $t1)" >> r_ingest
	calc "$N / ($t3 - $t2)" >> r_deliver
	calc "$N / ($t3 - $t0)" >> r_e2e
	# Baseline: raw COPY of the same canonical rows into an identical table.
	psql -XAtq -c "CREATE TABLE copy_base (LIKE chatvault.staged_events INCLUDING ALL)" 2>/dev/null
	t4=$(now)
	psql -XAtq -c "\\copy copy_base (event_id, type, ts, room, user_uri, source_server, source_seq, body) FROM 'rows.tsv'"
	t5=$(now)
	calc "$N / ($t5 - $t4)" >> r_copy
	# Baseline for delivery: a bare claim + DELETE loop over the same rows
	# (what delivery would cost with an adapter that does nothing).
	t8=$(now)
	while [ "$(psql -XAtq -c "WITH c AS (SELECT staging_id FROM copy_base ORDER BY staging_id LIMIT 20000),
	          d AS (DELETE FROM copy_base b USING c WHERE b.staging_id = c.staging_id RETURNING b.body)
	          SELECT count(*) FROM d")" != 0 ]; do :; done
	t9=$(now)
	calc "$N / ($t9 - $t8)" >> r_bare
	bytes=$(stat -c %s events.jsonl)
	t6=$(now); zstd -3 -q -f events.jsonl -o e.zst; t7=$(now)
	calc "$bytes / ($t7 - $t6) / 1048576" >> r_zstd
	calc "$bytes / ($t3 - $t2) / 1048576" >> r_arch
	zsize=$(stat -c %s e.zst)
	find var/archive -name '*.tar.zst' | sort > bundles
	asize=$(xargs stat -c %s < bundles | awk '{s+=$1} END {print s}')
	if [ -n "$have_export" ]; then
		t0=$(now)
		$cv -c cv.conf export -q --from 1970-01-01 --to 2100-01-01 --format jsonl -o out.tar.zst
		t1=$(now)
		nexp=$(tar --zstd -xOf out.tar.zst events.jsonl | wc -l)
		t2=$(now)
		while read -r b; do tar --zstd -xOf "$b" events.jsonl; done < bundles > /dev/null
		t3=$(now)
		calc "$nexp / ($t1 - $t0)" >> r_export
		calc "$N / ($t3 - $t2)" >> r_untar
	fi
	if [ -n "$have_verify" ]; then
		t0=$(now); $cv verify -q var/archive >/dev/null; t1=$(now)
		xargs sha256sum < bundles > /dev/null; t2=$(now)
		calc "$asize / ($t1 - $t0) / 1048576" >> r_verify
		calc "$asize / ($t2 - $t1) / 1048576" >> r_sha
	fi
done
row "ingest rows/s ÷ raw COPY rows/s" "$(m r_ingest)" "$(m r_copy)"
row "end to end events/s ÷ raw COPY rows/s" "$(m r_e2e)" "$(m r_copy)"
row "deliver (claim→tar+zstd→fsync→delete) MB/s ÷ zstd -3" "$(m r_arch)" "$(m r_zstd)"
row "archive size ÷ zstd -3 size (bytes)" "$asize" "$zsize" "last run"
row "producer durable events/s (emit, spool)" "$(m r_emit)" ""
row "delivery drain rows/s ÷ bare claim+DELETE" "$(m r_deliver)" "$(m r_bare)"
if [ -n "$have_export" ]; then
	row "export jsonl events/s ÷ tar --zstd -xO events.jsonl" "$(m r_export)" "$(m r_untar)" \
		"$nexp of $N events exported"
else
	line "export: not built yet"
fi
if [ -n "$have_verify" ]; then
	row "verify archive MB/s ÷ sha256sum MB/s" "$(m r_verify)" "$(m r_sha)" \
		"bundles: $(wc -l < bundles)"
else
	line "verify: not built yet"
fi
fi # pipeline

# ---- Kafka path ÷ spool path (KAFKA_N events) -------------------------------
if want kafka; then
if [ "$KAFKA_N" -le "$N" ]; then
	head -n "$KAFKA_N" events.jsonl > kevents.jsonl
else
	python3 "$top/tools/gen_events.py" --count "$KAFKA_N" --seed 98 > kevents.jsonl
fi
cat > spool.conf <<CONF
data_dir = "$work/svar";
ingest = { batch_size = 5000; };
CONF
: > r_kemit; : > r_king; : > r_ktot; : > r_semit; : > r_sing; : > r_stot
kafka_note=""
for run in 1 2 3; do
	say "kafka run $run of 3 ($KAFKA_N events, $KAFKA_PARTITIONS partitions)"
	# A fresh mock cluster (empty topic, new group) every run.
	rm -f mock.in mock.out; mkfifo mock.in
	"$mock_bin" chatvault.events "$KAFKA_PARTITIONS" < mock.in > mock.out 2> mock.err &
	mockpid=$!
	exec 3> mock.in
	i=0
	while [ ! -s mock.out ]; do
		i=$((i + 1)); [ $i -lt 100 ] || { say "mock cluster did not start"; cat mock.err >&2; exit 1; }
		sleep 0.1
	done
	cat > kafka.conf <<CONF
data_dir = "$work/kvar";
queue = { backend = "kafka"; kafka = { brokers = "$(head -1 mock.out)"; topic = "chatvault.events";
  properties = ( ("consumer.session.timeout.ms", 6000), ("consumer.heartbeat.interval.ms", 500) ); }; };
ingest = { batch_size = 5000; };
CONF
	dropdb --if-exists benchk >/dev/null 2>&1; createdb benchk
	rm -rf kvar; PGDATABASE=benchk $cv -c kafka.conf migrate >/dev/null
	t0=$(now); PGDATABASE=benchk $cv -c kafka.conf emit kevents.jsonl 2>/dev/null; t1=$(now)
	PGDATABASE=benchk $cv -c kafka.conf ingest --once >/dev/null 2>kafka.ingest.log; t2=$(now)
	exec 3>&-
	wait "$mockpid" || true
	mockpid=""
	got=$(psql -d benchk -XAtq -c "SELECT count(*) FROM chatvault.staged_events")
	[ "$got" = "$KAFKA_N" ] || kafka_note="run $run staged $got of $KAFKA_N!"
	calc "$KAFKA_N / ($t1 - $t0)" >> r_kemit
	calc "$KAFKA_N / ($t2 - $t1)" >> r_king
	calc "$KAFKA_N / ($t2 - $t0)" >> r_ktot

	dropdb --if-exists benchk >/dev/null 2>&1; createdb benchk
	rm -rf svar; PGDATABASE=benchk $cv -c spool.conf migrate >/dev/null
	t0=$(now); PGDATABASE=benchk $cv -c spool.conf emit kevents.jsonl 2>/dev/null; t1=$(now)
	PGDATABASE=benchk $cv -c spool.conf ingest --once >/dev/null; t2=$(now)
	calc "$KAFKA_N / ($t1 - $t0)" >> r_semit
	calc "$KAFKA_N / ($t2 - $t1)" >> r_sing
	calc "$KAFKA_N / ($t2 - $t0)" >> r_stot
done
rm -rf kvar svar
row "Kafka ÷ spool: emit + ingest --once events/s" "$(m r_ktot)" "$(m r_stot)" \
	"$KAFKA_N events, $KAFKA_PARTITIONS partitions $kafka_note"
row "Kafka ÷ spool: emit events/s" "$(m r_kemit)" "$(m r_semit)"
row "Kafka ÷ spool: ingest --once events/s" "$(m r_king)" "$(m r_sing)" "incl. ~3 s group join"
fi # kafka

# ---- emit → durable latency (producer API, spool) ---------------------------
if want latency; then
cat > lat.conf <<CONF
data_dir = "$work/lvar";
CONF
: > r_lp50; : > r_lp99; : > r_lmax; : > r_fp50; : > r_fp99; : > r_fmax
lat_note=""
for run in 1 2 3; do
	say "latency run $run of 3 ($LAT_RATE events/s for $LAT_SECS s)"
	rm -rf lvar
	"$lat_bin" lat.conf "$LAT_RATE" "$LAT_SECS" > lat.out || lat_note="bench_latency failed: $(tail -1 lat.out)"
	rm -f lp50 lp99 lmax fp50 fp99 fmax lsamples
	awk '$1 == "emit_durable_us" { print $3 > "lp50"; print $5 > "lp99"; print $7 > "lmax" }
	     $1 == "fdatasync_us" { print $3 > "fp50"; print $5 > "fp99"; print $7 > "fmax" }
	     $1 == "samples" { print $2 > "lsamples" }' lat.out
	for f in lp50 lp99 lmax fp50 fp99 fmax; do [ ! -f "$f" ] || cat "$f" >> "r_$f"; done
done
rm -rf lvar
row "emit→durable p50 µs ÷ write+fdatasync p50" "$(m r_lp50)" "$(m r_fp50)" \
	"$(cat lsamples) samples at $LAT_RATE/s, default producer (linger_ms 2) $lat_note"
row "emit→durable p99 µs ÷ write+fdatasync p99" "$(m r_lp99)" "$(m r_fp99)" \
	"baseline rewrites allocated blocks: the floor"
row "emit→durable max µs ÷ write+fdatasync max" "$(m r_lmax)" "$(m r_fmax)"
fi # latency

# ---- peak RSS of ingest --once against the backlog (run once) --------------
if want rss; then
# One backlog: emit COPIES copies of base.jsonl (copy k has ids starting
# with hex digit k, so all ids differ), then ingest --once under
# /usr/bin/time; also samples the anonymous RSS (LMDB's map is file-backed
# and counts in the peak RSS as the spool is read).
rss_run() { # COPIES -> prints "maxrss_kib anon_peak_kib events_per_s"
	dropdb --if-exists benchr >/dev/null 2>&1; createdb benchr
	rm -rf rvar; PGDATABASE=benchr $cv -c rss.conf migrate >/dev/null
	k=0
	while [ $k -lt "$1" ]; do
		sed "s/^{\"v\":1,\"id\":\"./{\"v\":1,\"id\":\"$(printf %x $k)/" base.jsonl |
			PGDATABASE=benchr $cv -c rss.conf emit - 2>/dev/null
		k=$((k + 1))
	done
	t0=$(now)
	PGDATABASE=benchr /usr/bin/time -f %M -o rss.time $cv -c rss.conf ingest --once > rss.out 2>&1 &
	tpid=$!
	anon=0
	while kill -0 $tpid 2>/dev/null; do
		c=$(ps -o pid= --ppid $tpid | tr -d ' ' | head -1)
		if [ -n "$c" ]; then
			a=$(awk '/^RssAnon:/ { print $2 }' "/proc/$c/status" 2>/dev/null || true)
			[ -n "$a" ] && [ "$a" -gt "$anon" ] && anon=$a
		fi
		sleep 0.2
	done
	wait $tpid
	t1=$(now)
	staged=$(psql -d benchr -XAtq -c "SELECT count(*) FROM chatvault.staged_events")
	echo "$(tail -1 rss.time) $anon $(calc "$staged / ($t1 - $t0)") $staged"
}
if [ -z "$RSS_SIZES" ]; then
	line "ingest peak RSS vs backlog: skipped ($( [ -n "$QUICK" ] && echo "QUICK; BIG=1 runs 100k and 500k" || echo "BIG=0"))"
else
	set -- $RSS_SIZES
	small=$1; big=$2
	copies=$((big / small))
	[ $((copies * small)) -eq "$big" ] && [ "$copies" -ge 1 ] && [ "$copies" -le 16 ] ||
		{ say "RSS_SIZES: the second must be 1..16 times the first"; exit 2; }
	avail_kb=$(df -Pk /tmp | awk 'NR == 2 { print $4 }')
	need_kb=$((big / 1000 * 1200))
	rss_note="once, not median"
	if [ "$avail_kb" -lt "$need_kb" ]; then
		small=$((small * (avail_kb / 1024) / (need_kb / 1024) / 10000 * 10000))
		[ "$small" -ge 10000 ] || small=10000
		big=$((small * copies))
		rss_note="$rss_note; scaled to $small/$big: only $((avail_kb / 1048576)) GB free in /tmp"
		say "only $((avail_kb / 1048576)) GB free in /tmp: RSS section scaled down to $small and $big events"
	fi
	cat > rss.conf <<CONF
data_dir = "$work/rvar";
queue = { spool = { max_size = 68719476736L; }; };
ingest = { batch_size = 5000; };
CONF
	say "RSS: generating $small events"
	python3 "$top/tools/gen_events.py" --count "$small" --seed 97 > base.jsonl
	say "RSS: ingest --once with $small queued"
	set -- $(rss_run 1)
	r1=$1; a1=$2; s1=$3; n1=$4
	say "RSS: ingest --once with $big queued"
	set -- $(rss_run "$copies")
	r2=$1; a2=$2; s2=$3; n2=$4
	rm -rf rvar base.jsonl
	dropdb --if-exists benchr >/dev/null 2>&1 || true
	[ "$n1" = "$small" ] && [ "$n2" = "$big" ] || rss_note="$rss_note; staged $n1/$n2!"
	row "ingest peak RSS KiB, $big ÷ $small queued" "$r2" "$r1" "$rss_note; /usr/bin/time %M, counts LMDB's file-backed map"
	row "ingest peak anon RSS KiB, $big ÷ $small queued" "$a2" "$a1" \
		"once; RssAnon sampled every 0.2 s"
	row "ingest events/s, $big ÷ $small queued" "$s2" "$s1" "once"
fi
fi # rss

# ---- chatd: MESSAGE rate through chatd ÷ SIPp to SIPp; memory per session -----
if want chat; then
# The same SIPp UAC (UDP, at most CHAT_L calls in flight) sends CHAT_N
# MESSAGEs, once straight to a SIPp UAS and once through chatd, which answers
# each only when its im.message is durable in the spool and then forwards it
# to the recipient's registration (the same SIPp UAS).  Then CHAT_SESS
# Contacts (CHAT_SESS / 100 users, rounded up, 100 each) sign in with
# digest and chatd's VmRSS growth is
# divided by their number.
CHAT_N=${CHAT_N:-$(q 2000 20000)}
CHAT_L=${CHAT_L:-200}
CHAT_SESS=${CHAT_SESS:-$(q 1000 10000)}
PC_USERS=${PC_USERS:-10}
PC_M=${PC_M:-$(q 200 2000)}
if command -v sipp > /dev/null; then
	freep() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
	sipc() { python3 "$top/tests/integration/sipc.py" --server "127.0.0.1:$cport" --domain bench.test "$@"; }
	dropdb --if-exists benchc >/dev/null 2>&1; createdb benchc; export PGDATABASE=benchc
	cport=$(freep)
	cat > chat.conf <<CONF
data_dir = "$work/cvar";
log_level = "warn";
chat = { listen = "127.0.0.1:$cport"; domain = "bench.test"; max_connections = 1000000;
	 max_registrations_per_user = 1024; };
CONF
	$cv -c chat.conf migrate > /dev/null
	umask 077
	printf 'pw\n' > pw
	sess_users=$(( (CHAT_SESS + 99) / 100 ))   # 100 Contacts each
	for u in alice bob $(seq -f 'm%03g' 1 "$sess_users") $(seq -f 'pc%02g' 0 $((PC_USERS - 1))); do
		$cv -c chat.conf user add "sip:$u@bench.test" --password-file pw > /dev/null
	done
	$cv -c chat.conf chatd > chatd.log 2>&1 &
	chatpid=$!
	i=0; until python3 -c "import socket,sys; s=socket.socket(); s.connect(('127.0.0.1',$cport))" 2>/dev/null; do
		i=$((i + 1)); [ $i -lt 100 ] || { say "chatd did not start"; cat chatd.log >&2; break; }; sleep 0.1
	done
	# persistent chat (issue 7): one poster and PC_USERS - 1 receivers
	# joined to one room (a new room per run), every session a SIPp process
	# registered with sipc from its port.  The poster posts PC_M grpchats one
	# at a time, each after its rpl:grpchat resp 200 (= chat.post durable);
	# the receivers answer every INFO 200 and count the fan-out.  Baseline: a
	# SIPp UAC sending PC_M INFOs (the same body) one at a time in a dialog
	# to a SIPp UAS answering 200.  Times are SIPp's [timestamp]s around the
	# posts (T0 before the first, T1 after the last reply; the fan-out until
	# the last receiver's PC_M-th grpchat), so sign-in and joins are not in.
	ts() { awk -v k="$1" '$1 == k { print $4 }' "$2"; }   # "T0 <date> <time> <epoch>"
	pchat_bench() {
		for i in $(seq 0 $((PC_USERS - 1))); do
			eval "pcp$i=$(freep)"
			sipc --user "$(printf 'pc%02d' "$i")" --password pw --lport "$(eval echo \$pcp$i)" \
				--expires 3600 register > /dev/null
		done
		for f in pc_poster pc_recv pc_info_uac; do
			sed "s/@M@/$PC_M/" "$top/bench/sipp/$f.xml" > "$f.xml"
		done
		: > r_pc_base; : > r_pc_post; : > r_pc_fan
		for run in 1 2 3; do
			say "pchat run $run of 3 ($PC_M posts, $PC_USERS users in one room; SIPp INFOs first)"
			d="pc$run"; mkdir "$d"
			up=$(freep)
			(cd "$d" && sipp -sf "$top/bench/sipp/pc_info_uas.xml" -i 127.0.0.1 -p "$up" -m 1 \
				-timeout 120 -nostdin > /dev/null 2>&1) &
			uas=$!; sleep 0.3
			(cd "$d" && sipp "127.0.0.1:$up" -sf ../pc_info_uac.xml -i 127.0.0.1 -p "$(freep)" \
				-s pcbase -set dom bench.test -set svc "sip:uas@127.0.0.1:$up" -m 1 -timeout 120 \
				-timeout_error -nostdin -trace_logs > /dev/null 2>&1) || say "pchat: SIPp INFO baseline failed"
			wait $uas || true
			t0=$(ts T0 "$d"/pc_info_uac_*_logs.log || true); t1=$(ts T1 "$d"/pc_info_uac_*_logs.log || true)
			[ -z "$t0" ] || [ -z "$t1" ] || calc "$PC_M / ($t1 - $t0)" >> r_pc_base
			room=$($cv -c chat.conf room add "Bench $run" --domain bench.test)
			rg=${room##*/}
			pids=""
			for i in $(seq 1 $((PC_USERS - 1))); do
				(cd "$d" && sipp "127.0.0.1:$cport" -sf ../pc_recv.xml -i 127.0.0.1 \
					-p "$(eval echo \$pcp$i)" -s "$(printf 'pc%02d' "$i")" -set dom bench.test \
					-set svc sip:chan1@bench.test -set rdom bench.test -set rguid "$rg" -m 1 \
					-timeout 300 -timeout_error -aa -nostdin -trace_logs > /dev/null 2>&1) &
				pids="$pids $!"
			done
			sleep 1.5    # the receivers' joins are durable well before (not timed)
			(cd "$d" && sipp "127.0.0.1:$cport" -sf ../pc_poster.xml -i 127.0.0.1 -p "$pcp0" \
				-s pc00 -set dom bench.test -set svc sip:chan2@bench.test -set room "$room" \
				-set rdom bench.test -set rguid "$rg" -m 1 -timeout 300 -timeout_error -aa \
				-nostdin -trace_logs > /dev/null 2>&1) || say "pchat: poster failed (see chatd.log)"
			rok=1
			for p in $pids; do wait "$p" || rok=""; done
			t0=$(ts T0 "$d"/pc_poster_*_logs.log || true); t1=$(ts T1 "$d"/pc_poster_*_logs.log || true)
			[ -z "$t0" ] || [ -z "$t1" ] || calc "$PC_M / ($t1 - $t0)" >> r_pc_post
			got=$(cat "$d"/pc_recv_*_logs.log | grep -c "^TEND .* COUNT $PC_M" || true)
			tend=$(cat "$d"/pc_recv_*_logs.log 2>/dev/null | awk '$1 == "TEND" { print $4 }' | sort -g | tail -n 1)
			if [ -n "$rok" ] && [ "$got" = $((PC_USERS - 1)) ] && [ -n "$t0" ] && [ -n "$tend" ]; then
				calc "($PC_USERS - 1) * $PC_M / ($tend - $t0)" >> r_pc_fan
			else
				say "pchat run $run: $got of $((PC_USERS - 1)) receivers got all $PC_M posts"
			fi
		done
		if [ -s r_pc_post ] && [ -s r_pc_base ]; then
			row "pchat posts/s (rpl:grpchat resp 200 = durable) ÷ SIPp INFO/s in a dialog" \
				"$(m r_pc_post)" "$(m r_pc_base)" "UDP, 1 poster, 1 post in flight, $PC_M per run, $PC_USERS users in the room"
		else
			line "pchat posts/s: runs failed (see chatd.log)"
		fi
		if [ -s r_pc_fan ] && [ -s r_pc_base ]; then
			row "pchat fan-out grpchat INFOs/s to $((PC_USERS - 1)) sessions ÷ SIPp INFO/s" \
				"$(m r_pc_fan)" "$(m r_pc_base)" "UDP, $(($PC_USERS - 1)) × $PC_M per run, each answered 200 by SIPp$([ "$(wc -l < r_pc_fan)" = 3 ] || echo "; $(wc -l < r_pc_fan) good runs")"
		else
			line "pchat fan-out: runs failed (see chatd.log)"
		fi
	}
	sipp_msgs() { # $1 = target port, $2 = UAC port, $3 = log name → wall seconds, or "" on failure
		t0=$(now)
		rc=0
		sipp "127.0.0.1:$1" -sf "$top/bench/sipp/msg_uac.xml" -i 127.0.0.1 -p "$2" -s alice \
			-set dom bench.test -set to bob -m "$CHAT_N" -r 100000 -l "$CHAT_L" -timeout 120 \
			-timeout_error -nostdin -trace_err -error_file "$3.err" -trace_screen \
			-screen_file "$3.screen" > "$3.out" 2>&1 || rc=$?
		if [ "$rc" != 0 ]; then
			say "$3: SIPp UAC failed (exit $rc): $(grep -h -m1 -i 'fail\|error\|timeout' "$3.out" "$3.err" 2>/dev/null | head -n 1)"
			echo ""; return
		fi
		t1=$(now); calc "$t1 - $t0"
	}
	# The recipient's UAS lingers after each 200 to answer retransmissions
	# (bench/sipp/msg_uas.xml): 4 s, 1 s under QUICK.
	sed "s/<timewait milliseconds=\"4000\"/<timewait milliseconds=\"$(q 1000 4000)\"/" \
		"$top/bench/sipp/msg_uas.xml" > msg_uas.xml
	: > r_sipp; : > r_chatd
	for run in 1 2 3; do
		say "chatd run $run of 3 ($CHAT_N MESSAGEs, SIPp to SIPp, then through chatd)"
		up=$(freep)
		sipp -sf msg_uas.xml -i 127.0.0.1 -p "$up" -m "$CHAT_N" -timeout 120 \
			-nostdin > /dev/null 2>&1 &
		uas=$!; sleep 0.3
		el=$(sipp_msgs "$up" "$(freep)" "msg_sipp$run")
		# Every 200 arrived: nothing is left for the UAS to answer.
		[ -z "$el" ] || kill "$uas" 2>/dev/null || true
		wait $uas || true
		[ -z "$el" ] || calc "$CHAT_N / $el" >> r_sipp
		bp=$(freep); ap=$(freep)
		sipc --user bob --password pw --lport "$bp" --expires 3600 register > /dev/null
		sipc --user alice --password pw --lport "$ap" --expires 3600 register > /dev/null
		sipp -sf msg_uas.xml -i 127.0.0.1 -p "$bp" -m "$CHAT_N" -timeout 120 \
			-nostdin > /dev/null 2>&1 &
		uas=$!; sleep 0.3
		el=$(sipp_msgs "$cport" "$ap" "msg_chatd$run"); wait $uas || true
		[ -z "$el" ] || calc "$CHAT_N / $el" >> r_chatd
		# Sign both out: a registration left behind would make chatd forward
		# every MESSAGE of the next run to a dead port too (32 s of
		# retransmissions each), which is what slowed runs 2 and 3 until
		# the UAC timed out.
		sipc --user bob --password pw --lport "$bp" --expires 0 register > /dev/null || true
		sipc --user alice --password pw --lport "$ap" --expires 0 register > /dev/null || true
	done
	row "chatd MESSAGE/s (200 once durable in the spool, then forwarded) ÷ SIPp to SIPp" \
		"$(m r_chatd)" "$(m r_sipp)" "UDP, $CHAT_N per run, at most $CHAT_L in flight"
	pchat_bench
	rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$chatpid/status"; }
	nsess=$((sess_users * 100))
	say "chatd: $nsess sessions"
	r0=$(rss)
	regok=1
	for u in $(seq -f 'm%03g' 1 "$sess_users"); do   # 100 Contacts each
		sipp "127.0.0.1:$cport" -sf "$top/bench/sipp/reg_many.xml" -s "$u" -au "$u" -ap pw \
			-i 127.0.0.1 -p "$(freep)" -set dom bench.test -m 100 -r 5000 \
			-l 100 -timeout 60 -timeout_error -nostdin > /dev/null 2>&1 || { regok=""; break; }
	done
	if [ -n "$regok" ]; then
		sleep 1; r1=$(rss)
		row "chatd RSS bytes per registered session ($nsess)" "$(calc "($r1 - $r0) * 1024 / $nsess")" "" \
			"once; VmRSS $r0 → $r1 KiB"
	else
		line "chatd sessions: SIPp registration run failed (see chatd.log)"
	fi
	kill -TERM $chatpid; wait $chatpid || say "chatd exit status $?"; chatpid=""
	export PGDATABASE=bench
else
	line "chatd: sipp not installed (sip-tester), skipped"
fi
fi # chat

# ---- end to end against batch size (bench/plot.sh, run once) ---------------
if want plot; then
if [ "${PLOT:-1}" = 0 ]; then
	line "e2e vs batch size plot: skipped (PLOT=0)"
else
	say "e2e against batch size (bench/plot.sh)"
	if plot_line=$(CHATVAULT="$cv" QUICK="$QUICK" "$here/plot.sh" | tail -n 1); then
		line "$plot_line"
	else
		line "e2e vs batch size plot: bench/plot.sh failed"
	fi
fi
fi # plot

# ---- the table ---------------------------------------------------------------
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
ram=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
printf '\nchatvault bench: N=%s events, median of 3 runs unless noted%s\n' "$N" \
	"$([ -n "$QUICK" ] && echo " (QUICK)")"
printf 'machine: %s cores, %s, %s RAM, %s %s\n\n' "$(nproc)" "${cpu:-unknown CPU}" "$ram" \
	"$(uname -s)" "$(uname -r)"
python3 - table <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
w = max([len("measure")] + [len(r[0]) for r in rows if len(r) > 1])
print("%-*s %14s %14s %9s  %s" % (w, "measure", "ours", "baseline", "ratio", "note"))
for r in rows:
    if len(r) == 1:
        print(r[0])
        continue
    label, ours, base, note = r
    note = note.strip()
    def num(s):
        try:
            return float(s)
        except ValueError:
            return None
    o, b = num(ours), num(base)
    ratio = "%9.3f" % (o / b) if o is not None and b else "%9s" % ""
    print("%-*s %14s %14s %s  %s" % (w, label, "%.1f" % o if o is not None else "-",
                                     "%.1f" % b if b is not None else "", ratio, note))
PY

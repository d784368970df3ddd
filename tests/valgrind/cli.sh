#!/bin/sh
# tests/valgrind/cli.sh — the commands that talk to PostgreSQL (libpq,
# OpenSSL), run worker threads (the producer in emit) or load an adapter
# .so, each under valgrind, on a small pipeline in a private pg_virtualenv
# cluster.  The unit tests need no server, so this is where `make valgrind`
# checks the database paths: migrate, emit, ingest (--once, and a running
# one stopped with SIGTERM), deliver (archive, xml, jsonl, eml and the
# example .so; --once and SIGTERM), status, hold, erase, retention, export,
# verify, config.
#
#   VALGRIND="valgrind ..." CHATVAULT=build/rel/chatvault EXAMPLE_SO=... tests/valgrind/cli.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
export PATH="/usr/lib/postgresql/15/bin:$PATH"
if [ -z "${CV_IN_VIRTUALENV:-}" ]; then
	port=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 20000))
	exec env CV_IN_VIRTUALENV=1 PGPORT="$port" pg_virtualenv -t "$0" "$@"
fi
: "${VALGRIND:?VALGRIND: the valgrind command line}"
CHATVAULT=${CHATVAULT:-$top/build/rel/chatvault}
EXAMPLE_SO=${EXAMPLE_SO:-$top/build/rel/adapters/examples/example_adapter.so}
work=$(mktemp -d /tmp/cvvg.XXXXXX)
cd "$work"
export PGDATABASE=cv_vg
createdb "$PGDATABASE"
fails=0; runs=0
# Valgrind's own verdict as exit 99, apart from the command's exit status.
VG="$VALGRIND --error-exitcode=99"
# vg NAME [=STATUS] CMD...: one chatvault command under valgrind, which must
# exit STATUS (default 0) with no valgrind error; its log in vg.NAME.log
vg() {
	name=$1; shift
	want=0
	case $1 in =*) want=${1#=}; shift ;; esac
	runs=$((runs + 1))
	rc=0
	$VG --log-file="vg.$name.log" "$CHATVAULT" -c cv.conf "$@" > "out.$name" 2>&1 || rc=$?
	if [ $rc -ne "$want" ]; then
		fails=$((fails + 1))
		echo "FAIL valgrind chatvault $* (exit $rc, want $want; 99: valgrind errors)"
		tail -n 5 "out.$name" | sed 's/^/     /'
		grep -A 12 -E "definitely lost in|Invalid|uninitialised|Mismatched|overlap" "vg.$name.log" |
			head -n 60 | sed 's/^/     /'
	else
		echo "ok   valgrind chatvault $*"
	fi
}
# vg_daemon NAME SECONDS CMD...: a worker under valgrind, SIGTERM after SECONDS
vg_daemon() {
	name=$1; secs=$2; shift 2
	runs=$((runs + 1))
	$VG --log-file="vg.$name.log" "$CHATVAULT" -c cv.conf "$@" > "out.$name" 2>&1 &
	pid=$!
	sleep "$secs"
	kill -TERM "$pid"
	rc=0; wait "$pid" || rc=$?
	if [ $rc -ne 0 ]; then
		fails=$((fails + 1))
		echo "FAIL valgrind chatvault $* (SIGTERM after ${secs}s: exit $rc; 99: valgrind errors)"
		tail -n 5 "out.$name" | sed 's/^/     /'
		grep -A 12 -E "definitely lost in|Invalid|uninitialised|Mismatched|overlap" "vg.$name.log" |
			head -n 60 | sed 's/^/     /'
	else
		echo "ok   valgrind chatvault $* (SIGTERM after ${secs}s)"
	fi
}

cat > cv.conf <<CONF
data_dir = "$work/var";
ingest = { batch_size = 300; max_wait_ms = 20; };
deliver = { lease = 5; };
adapters = (
  { name = "archive"; type = "archive"; batch_size = 400; run_interval = 1; },
  { name = "xml"; type = "xml"; batch_size = 400; run_interval = 1; },
  { name = "jsonl"; type = "jsonl"; required = false; batch_size = 400; run_interval = 1; },
  { name = "eml"; type = "eml"; required = false; batch_size = 400; run_interval = 1; },
  { name = "ex"; type = "so"; path = "$EXAMPLE_SO"; batch_size = 400; run_interval = 1;
    options = { file = "$work/ex-"; }; }
);
CONF
python3 "$top/tools/gen_events.py" --count 1500 --seed 5 --start 2026-11-20T08:00:00Z \
	--span-hours 4 > a.jsonl
python3 "$top/tools/gen_events.py" --count 1000 --seed 6 --start 2026-11-20T12:00:00Z \
	--span-hours 4 > b.jsonl
printf '{"v":1,"type":"chat.post"}\nnot json\n' > bad.jsonl
user=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["user"])' a.jsonl)

vg config config check
vg config_bad =2 -c /nonexistent.conf config check
vg migrate migrate
vg emit emit --acks acks.txt a.jsonl
vg emit_bad =1 emit bad.jsonl
vg ingest_once ingest --once
vg deliver_once deliver --once
vg emit_b emit b.jsonl
vg_daemon ingest 12 ingest
vg_daemon deliver 15 deliver
vg status status
vg status_json status --json
vg hold_add hold add --user "$user" --reason "valgrind check"
vg hold_list hold list --json
vg hold_release hold release 1 --reason "valgrind check done"
vg retention_dry retention --dry-run
vg retention retention
vg erase =1 erase --user "sip:nobody@contoso.com" --reason "valgrind check"
vg export_jsonl export --from 2026-11-20 --to 2026-11-21 --format jsonl -o export.jsonl.tar.zst
vg export_xml export --from 2026-11-20T08:00:00Z --to 2026-11-20T10:00:00Z --user "$user" --format xml -o export.xml.tar.zst
vg verify verify var/archive export.jsonl.tar.zst export.xml.tar.zst
vg quarantine quarantine list

staged=$(psql -XAtq -c "SELECT count(*) FROM chatvault.staged_events")
[ "$staged" = 0 ] || { fails=$((fails + 1)); echo "FAIL $staged events left in staging"; }
echo "valgrind cli: $runs commands, $fails failed"
if [ "$fails" -eq 0 ]; then
	cd /; rm -rf "$work"
else
	echo "logs kept in $work"
	exit 1
fi

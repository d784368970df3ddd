#!/bin/sh
# demo.sh [clean] — the main job end to end on the embedded default:
#  - a private PostgreSQL under ./var (or /var/tmp as root when postgres cannot
#    reach ./var);
#  - 300 chat users (`chatvault user add`, one 0600 password file) and 36
#    persistent chat rooms with members (`chatvault room add`, `room member add`);
#  - yesterday-style history: a day of traffic (60000 events spread over
#    2026-11-20, the same users and rooms) through `emit`, stamped source
#    "demo-history";
#  - live traffic THROUGH THE CHAT SERVER: `chatvault chatd` on a free loopback
#    port (domain demo.test) and tools/demo_chat.py, one SIP client per user:
#    digest sign-in, IMs between signed-in users, the Lookup and Channel
#    services (join, history, posts, part), a file up and down through the
#    file service, sign-out.  These events carry the real time of the run;
#  - ingest, delivery to the default adapters (archive + xml), a retention dry
#    run, an auditor export of one room with its verification and the
#    archive's, and a summary read from the archive.
# Run again, it reuses the cluster, users, rooms and history (recognised as
# already archived) and appends a new round of live traffic.
# `demo.sh clean` stops what is left and removes it all.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
var="$top/var"
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
port=55439
domain=demo.test
chatd_source="chatd.$domain"          # producer.server of chatd's events
users=${DEMO_USERS:-300}
rooms=${DEMO_ROOMS:-36}
seconds=${DEMO_CHAT_SECONDS:-25}

if [ "$(id -u)" -eq 0 ]; then
	pguser=postgres
	as_pg() { su postgres -s /bin/sh -c "$*"; }
else
	pguser=$(id -un)
	as_pg() { sh -c "$*"; }
fi

# PostgreSQL refuses to run as root; as root the cluster belongs to postgres,
# which must be able to reach it: under ./var when it can, else /var/tmp.
pgdir="$var/pg"
if [ "$(id -u)" -eq 0 ] && ! su postgres -s /bin/sh -c "test -x '$top'" 2>/dev/null; then
	pgdir="/var/tmp/chatvault-demo-$(echo "$top" | cksum | cut -d' ' -f1)/pg"
fi

stop_chatd() { # the chatd of this or an earlier, interrupted run
	[ -f "$var/chatd.pid" ] || return 0
	p=$(cat "$var/chatd.pid")
	if [ -n "$p" ] && kill -0 "$p" 2>/dev/null &&
	   tr '\0' ' ' 2>/dev/null < "/proc/$p/cmdline" | grep -qF "$var/demo.conf chatd"; then
		kill -TERM "$p" 2>/dev/null || true
		i=0
		while kill -0 "$p" 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
		kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
	fi
	rm -f "$var/chatd.pid"
}

# One demo at a time in this tree: a second one (or a clean) would share the
# spool, the cluster and chatd's pid file.  chatd and the driver do not
# inherit the lock (9>&-), so a demo killed with -9 frees it.
lock() {
	mkdir -p "$var"
	exec 9> "$var/demo.lock"
	flock -n 9 || { echo "demo: another demo is running in $top (lock $var/demo.lock)" >&2; exit 1; }
}

stop_driver() { # tools/demo_chat.py of an earlier run killed with -9
	[ -f "$var/driver.pid" ] || return 0
	p=$(cat "$var/driver.pid")
	if [ -n "$p" ] && tr '\0' ' ' 2>/dev/null < "/proc/$p/cmdline" | grep -qF "demo_chat.py traffic"; then
		kill -TERM "$p" 2>/dev/null || true
	fi
	rm -f "$var/driver.pid"
}

if [ "${1:-}" = "clean" ]; then
	[ -d "$var" ] && lock
	stop_driver
	stop_chatd
	[ -d "$pgdir" ] && as_pg "$pgbin/pg_ctl -D '$pgdir/data' -m fast stop" >/dev/null 2>&1 || true
	rm -rf "$var" "$pgdir"
	case "$pgdir" in "$var"/*) echo "demo: removed $var" ;; *) echo "demo: removed $var and $pgdir" ;; esac
	exit 0
fi

t_start=$(date +%s)
lock
mkdir -p "$var/demo"
stop_driver
stop_chatd
cleanup() {
	stop_driver
	stop_chatd
}
trap cleanup EXIT
trap 'echo "demo: interrupted; chatd stopped" >&2; exit 130' INT TERM
if [ ! -d "$pgdir/data" ]; then
	echo "demo: creating a private PostgreSQL cluster in $pgdir"
	mkdir -p "$pgdir/sock"
	[ "$(id -u)" -eq 0 ] && chown -R postgres "$pgdir"
	as_pg "$pgbin/initdb -D '$pgdir/data' -A trust -U '$pguser' >/dev/null"
fi
if ! as_pg "$pgbin/pg_ctl -D '$pgdir/data' status" >/dev/null 2>&1; then
	as_pg "$pgbin/pg_ctl -D '$pgdir/data' -w -l '$pgdir/log' -o \"-k '$pgdir/sock' -p $port -c listen_addresses=''\" start" >/dev/null 9>&-
fi
export PGHOST="$pgdir/sock" PGPORT=$port PGUSER=$pguser PGDATABASE=chatvault
psql -XAtq -d postgres -c "SELECT 1 FROM pg_database WHERE datname='chatvault'" | grep -q 1 ||
	psql -XAtq -d postgres -c "CREATE DATABASE chatvault"

# The configuration: built-in defaults (archive + xml adapters under var/demo)
# plus the chat server on a free loopback port.
sip_port=$(python3 -c 'import socket
for _ in range(50):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
    p = u.getsockname()[1]; t = socket.socket()
    try:
        t.bind(("127.0.0.1", p)); print(p); break
    except OSError: pass')
conf="$var/demo.conf"
cat > "$conf" <<CONF
# written by tools/demo.sh on every run (the SIP port is picked anew)
data_dir = "$var/demo";
log_level = "info";
producer = { server = "$chatd_source"; };
chat = { listen = "127.0.0.1:$sip_port"; domain = "$domain"; };
CONF
cv="$top/bin/chatvault -c $conf"
$cv migrate

# Users (one password for all, in a 0600 file) and rooms with members.
pwfile="$var/demo-users.pw"
if [ ! -f "$pwfile" ]; then
	(umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(12))' > "$pwfile")
fi
python3 "$top/tools/demo_chat.py" setup --cv "$cv" --domain $domain --users "$users" \
	--rooms "$rooms" --password-file "$pwfile" --out "$var"

# The history: a day of traffic for the same users and rooms (room events by
# their members) through emit.
history="$var/demo-history.jsonl"
again=""
[ -f "$history" ] && again=" again (already archived: recognised as duplicates)"
if [ ! -f "$history" ]; then
	python3 "$top/tools/gen_events.py" --count 60000 --room-uris "$var/demo-rooms.tsv" \
		--user-uris "$var/demo-users.txt" --domain $domain --start 2026-11-20T00:00:00Z \
		--span-hours 24 --seed 2026 --source demo-history > "$history.tmp"
	mv "$history.tmp" "$history"
fi
echo "demo: emitting $(wc -l < "$history") events of history (2026-11-20, $users users, $rooms rooms)$again"
$cv emit "$history"

# Live traffic through chatd.
live_from=$(date -u +%Y-%m-%dT%H:%M:%SZ)
$cv chatd > "$var/demo/chatd.log" 2>&1 9>&- &
echo $! > "$var/chatd.pid"
i=0
until grep -q "listening on" "$var/demo/chatd.log"; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$(cat "$var/chatd.pid")" 2>/dev/null; then
		tail -n 20 "$var/demo/chatd.log" >&2
		echo "demo: chatd did not start" >&2
		exit 1
	fi
	sleep 0.1
done
echo "demo: chatd on udp/tcp 127.0.0.1:$sip_port (domain $domain); $users users sign in and chat for about ${seconds}s"
# In the background and waited for, so that an interrupt runs the trap at once
# (a foreground child would delay it): the trap ends the driver and chatd.
driver_rc=0
python3 "$top/tools/demo_chat.py" traffic --server "127.0.0.1:$sip_port" --domain $domain \
	--password-file "$pwfile" --dir "$var" --duration "$seconds" > "$var/demo/traffic.json" 9>&- &
echo $! > "$var/driver.pid"
wait "$(cat "$var/driver.pid")" || driver_rc=$?
rm -f "$var/driver.pid"
stop_chatd                               # SIGTERM: everything acknowledged is durable
live_to=$(date -u +%Y-%m-%dT%H:%M:%SZ)

$cv ingest --once
$cv deliver --once
$cv status
# Retention as a dry run: the built-in defaults include no regulation profile,
# so every bundle is kept ("no retention profile applies").
$cv retention --dry-run | tail -n 1

# An auditor export of the first room ("General") from the history's day to
# today, Lync XML, and the verification of the archive and of the export.
room=$(head -n 1 "$var/demo-rooms.tsv" | cut -f1)
room_name=$(head -n 1 "$var/demo-rooms.tsv" | cut -f2)
span=$(python3 -c 'import datetime as d
t = d.datetime.now(d.timezone.utc).date()
a = min(d.date(2026, 11, 20), t); b = max(d.date(2026, 11, 21), t + d.timedelta(days=1))
print(a, b)')
set -- $span
export_file="$var/demo/export-general-$1_$2.tar.zst"
rm -f "$export_file"
export_out=$($cv export --from "$1" --to "$2" --room "$room" --format xml -o "$export_file")
echo "$export_out"
export_events=$(echo "$export_out" | sed -n 's/^export: \([0-9]*\) events.*/\1/p')
verdict_archive=$($cv verify "$var/demo/archive" 2>&1 | tail -n 1) || verdict_archive="FAILED: $verdict_archive"
verdict_export=$($cv verify "$export_file" 2>&1 | tail -n 1) || verdict_export="FAILED: $verdict_export"

# Figures read from the system: the catalog, the bundles, the export.
archived=$(psql -XAtq -c "SELECT coalesce(sum(event_count), 0) FROM chatvault.batches WHERE adapter='archive' AND state='done'")
bundles=$(find "$var/demo/archive" -name '*.tar.zst' | wc -l)
bad=0
for b in $(find "$var/demo/archive" -name '*.tar.zst'); do
	tar --zstd -tf "$b" >/dev/null || bad=$((bad + 1))
done
xmlbad=0
xmls=$(find "$var/demo/xml" -name '*.xml' | wc -l)
find "$var/demo/xml" -name '*.xml' -exec xmllint --noout {} + || xmlbad=1
# chatd's events in the archive by type (source.server = $chatd_source):
# all runs, and this run's (time stamps from the start of chatd on).
counts=$(find "$var/demo/archive" -name '*.tar.zst' | sort | while read -r b; do
	tar --zstd -xOf "$b" events.jsonl; done | python3 -c '
import json, sys
src, since = sys.argv[1], sys.argv[2]
allc, run = {}, {}
for l in sys.stdin:
    if not l.strip(): continue
    e = json.loads(l)
    if e.get("source", {}).get("server") != src: continue
    allc[e["type"]] = allc.get(e["type"], 0) + 1
    if e["ts"][:19] >= since[:19]:
        run[e["type"]] = run.get(e["type"], 0) + 1
def g(c, t): return c.get(t, 0)
for name, c in (("all", allc), ("run", run)):
    print("%s_sessions=%d %s_ims=%d %s_posts=%d %s_joins=%d %s_parts=%d %s_reads=%d %s_files=%d %s_total=%d" % (
        name, g(c, "im.session.start"), name, g(c, "im.message"), name, g(c, "chat.post"),
        name, g(c, "chat.join"), name, g(c, "chat.part"), name, g(c, "chat.backchat"),
        name, g(c, "chat.file.upload") + g(c, "chat.file.download"), name, sum(c.values())))
' "$chatd_source" "$live_from")
eval "$counts"
# what the clients were told (acknowledged once durable), for the cross-check
acked=$(python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))
print("ack_sessions=%d ack_ims=%d ack_posts=%d ack_errors=%d ims_in=%d fanout=%d" % (t.get("sessions",0),
      t.get("ims",0), t.get("posts",0), t.get("errors",0), t.get("im_received",0), t.get("fanout_received",0)))' \
	"$var/demo/traffic.json" 2>/dev/null) || acked="ack_sessions=0 ack_ims=0 ack_posts=0 ack_errors=1 ims_in=0 fanout=0"
eval "$acked"
check="every acknowledged one archived"
[ "$run_sessions" -eq "$ack_sessions" ] && [ "$run_ims" -eq "$ack_ims" ] && [ "$run_posts" -eq "$ack_posts" ] ||
	check="MISMATCH with the clients' acknowledgements ($ack_sessions sessions, $ack_ims IMs, $ack_posts posts)"
[ "$ack_errors" -eq 0 ] || check="$check; $ack_errors client errors (see $var/demo/traffic.json)"

cat <<SUMMARY

== chatvault demo summary
events archived:   $archived (history 2026-11-20 through emit + live through chatd)
through chatd:     this run: $run_sessions sign-in sessions, $run_ims IMs, $run_posts room posts ($run_joins joins, $run_parts parts, $run_reads history reads, $run_files file transfers; $run_total events between $live_from and $live_to)
                   all runs: $all_sessions sessions, $all_ims IMs, $all_posts posts ($all_total events)
                   clients: $ims_in IMs received, $fanout posts fanned out to them; $check
archive bundles:   $bundles under $var/demo/archive (each readable with tar --zstd -xf; $bad unreadable)
Lync XML files:    $xmls under $var/demo/xml ($( [ $xmlbad -eq 0 ] && echo "xmllint: all well-formed" || echo "xmllint: ERRORS"))
database:          PGHOST=$PGHOST PGPORT=$PGPORT PGDATABASE=$PGDATABASE
auditor export:    $export_file
                   ($export_events events of room "$room_name" $room, $1 to $2, Lync XML)
verify archive:    $verdict_archive
verify export:     $verdict_export
took:              $(( $(date +%s) - t_start ))s
run again:         make demo (reuses cluster, users, rooms; the history is recognised as archived; new live traffic)
remove:            make demo-clean
SUMMARY
[ $bad -eq 0 ] && [ $xmlbad -eq 0 ] && [ $driver_rc -eq 0 ] && case "$verdict_archive$verdict_export$check" in
	*FAILED*|*MISMATCH*|*errors*) false ;; esac

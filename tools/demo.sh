#!/bin/sh
# demo.sh [clean] — the main job end to end on the embedded default:
# a private PostgreSQL under ./var, a day of chat traffic for 300 users in
# 36 rooms through `emit`, ingest, delivery to the default adapters
# (archive + xml), a retention dry run, an auditor export of one room's day
# with its verification, and a summary.  Run again, it reuses the cluster and the
# data (the same events are recognised as already archived).
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
var="$top/var"
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
port=55439

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

if [ "${1:-}" = "clean" ]; then
	[ -d "$pgdir" ] && as_pg "$pgbin/pg_ctl -D '$pgdir/data' -m fast stop" >/dev/null 2>&1 || true
	rm -rf "$var" "$pgdir"
	echo "demo: removed $var${pgdir#$var}"
	exit 0
fi

mkdir -p "$var"
if [ ! -d "$pgdir/data" ]; then
	echo "demo: creating a private PostgreSQL cluster in $pgdir"
	mkdir -p "$pgdir/sock"
	[ "$(id -u)" -eq 0 ] && chown -R postgres "$pgdir"
	as_pg "$pgbin/initdb -D '$pgdir/data' -A trust -U '$pguser' >/dev/null"
fi
if ! as_pg "$pgbin/pg_ctl -D '$pgdir/data' status" >/dev/null 2>&1; then
	as_pg "$pgbin/pg_ctl -D '$pgdir/data' -w -l '$pgdir/log' -o \"-k '$pgdir/sock' -p $port -c listen_addresses=''\" start" >/dev/null
fi
export PGHOST="$pgdir/sock" PGPORT=$port PGUSER=$pguser PGDATABASE=chatvault
psql -XAtq -d postgres -c "SELECT 1 FROM pg_database WHERE datname='chatvault'" | grep -q 1 ||
	psql -XAtq -d postgres -c "CREATE DATABASE chatvault"

cv="$top/bin/chatvault -D $var/demo"
$cv migrate
events="$var/demo-day.jsonl"
[ -f "$events" ] || python3 "$top/tools/gen_events.py" --count 60000 --rooms 36 --users 300 \
	--start 2026-11-20T00:00:00Z --span-hours 24 --seed 2026 > "$events"
echo "demo: emitting $(wc -l < "$events") events (a day of traffic, 300 users, 36 rooms)"
$cv emit "$events"
$cv ingest --once
$cv deliver --once
$cv status
# Retention as a dry run: the built-in defaults include no regulation profile,
# so every bundle is kept ("no retention profile applies").
$cv retention --dry-run | tail -n 1
# An auditor export of the day's traffic in one room and its verification.
export_file="$var/demo/export-2026-11-20.tar.zst"
room=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e.get("room"): print(e["room"]); break' "$events")
rm -f "$export_file"
$cv export --from 2026-11-20 --to 2026-11-21 --room "$room" --format xml -o "$export_file"
verdict_archive=$($cv verify "$var/demo/archive" 2>&1 | tail -n 1) || verdict_archive="FAILED: $verdict_archive"
verdict_export=$($cv verify "$export_file" 2>&1 | tail -n 1) || verdict_export="FAILED: $verdict_export"

archived=$(psql -XAtq -c "SELECT coalesce(sum(event_count), 0) FROM chatvault.batches WHERE adapter='archive' AND state='done'")
bundles=$(find "$var/demo/archive" -name '*.tar.zst' | wc -l)
bad=0
for b in $(find "$var/demo/archive" -name '*.tar.zst'); do
	tar --zstd -tf "$b" >/dev/null || bad=$((bad + 1))
done
xmlbad=0
xmls=$(find "$var/demo/xml" -name '*.xml' | wc -l)
find "$var/demo/xml" -name '*.xml' -exec xmllint --noout {} + || xmlbad=1
cat <<SUMMARY

== chatvault demo summary
events archived:   $archived
archive bundles:   $bundles under $var/demo/archive (each readable with tar --zstd -xf; $bad unreadable)
Lync XML files:    $xmls under $var/demo/xml ($( [ $xmlbad -eq 0 ] && echo "xmllint: all well-formed" || echo "xmllint: ERRORS"))
database:          PGHOST=$PGHOST PGPORT=$PGPORT PGDATABASE=$PGDATABASE
auditor export:    $export_file (room $room, 2026-11-20, Lync XML)
verify archive:    $verdict_archive
verify export:     $verdict_export
run again:         make demo (reuses the cluster; the same events are recognised as duplicates)
remove:            make demo-clean
SUMMARY
[ $bad -eq 0 ] && [ $xmlbad -eq 0 ] && case "$verdict_archive$verdict_export" in *FAILED*) false ;; esac

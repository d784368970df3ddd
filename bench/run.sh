#!/bin/sh
# bench/run.sh — chatvault's speed as ratios against a baseline measured side
# by side in the same run (never asserted; prints a table).  QUICK=1 for a
# smaller run.  Each figure is the median of 3 runs.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top="$here/.."
export PATH="/usr/lib/postgresql/15/bin:$PATH"
if [ -z "${CV_IN_VIRTUALENV:-}" ]; then
	exec env CV_IN_VIRTUALENV=1 pg_virtualenv -t -o shared_buffers=256MB "$0" "$@"
fi
N=${N:-$([ -n "${QUICK:-}" ] && echo 20000 || echo 200000)}
cv="$top/bin/chatvault"
work=$(mktemp -d /tmp/cvbench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
python3 "$top/tools/gen_events.py" --count "$N" --seed 99 > events.jsonl
now() { date +%s.%N; }
median() { sort -g | sed -n '2p'; }

cat > cv.conf <<CONF
data_dir = "$work/var";
ingest = { batch_size = 5000; };
adapters = ( { name = "archive"; type = "archive"; batch_size = 20000; } );
CONF
: > r_emit; : > r_ingest; : > r_copy; : > r_deliver; : > r_e2e; : > r_zstd; : > r_arch; : > r_bare
for run in 1 2 3; do
	dropdb --if-exists bench >/dev/null 2>&1; createdb bench; export PGDATABASE=bench
	rm -rf var; $cv -c cv.conf migrate >/dev/null
	t0=$(now); $cv -c cv.conf emit events.jsonl 2>/dev/null; t1=$(now)
	$cv -c cv.conf ingest --once >/dev/null; t2=$(now)
	$cv -c cv.conf deliver --once >/dev/null; t3=$(now)
	echo "$N / ($t1 - $t0)" | bc -l >> r_emit
	echo "$N / ($t2 - $t1)" | bc -l >> r_ingest
	echo "$N / ($t3 - $t2)" | bc -l >> r_deliver
	echo "$N / ($t3 - $t0)" | bc -l >> r_e2e
	# Baseline: raw COPY of the same canonical rows into an identical table.
	psql -XAtq -c "CREATE TABLE copy_base (LIKE chatvault.staged_events INCLUDING ALL)" 2>/dev/null
	python3 - events.jsonl > rows.tsv <<'PY'
import json, sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    esc = lambda s: s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    print("\t".join([e["id"], e["type"], e["ts"], esc(e.get("room") or "") or "\\N",
                     esc(e["user"]), "bench", "1", esc(l.rstrip("\n"))]))
PY
	t4=$(now)
	psql -XAtq -c "\\copy copy_base (event_id, type, ts, room, user_uri, source_server, source_seq, body) FROM 'rows.tsv'"
	t5=$(now)
	echo "$N / ($t5 - $t4)" | bc -l >> r_copy
	# Baseline for delivery: a bare claim + DELETE loop over the same rows
	# (what delivery would cost with an adapter that does nothing).
	t8=$(now)
	while [ "$(psql -XAtq -c "WITH c AS (SELECT staging_id FROM copy_base ORDER BY staging_id LIMIT 20000),
	          d AS (DELETE FROM copy_base b USING c WHERE b.staging_id = c.staging_id RETURNING b.body)
	          SELECT count(*) FROM d")" != 0 ]; do :; done
	t9=$(now)
	echo "$N / ($t9 - $t8)" | bc -l >> r_bare
	bytes=$(stat -c %s events.jsonl)
	t6=$(now); zstd -3 -q -f events.jsonl -o e.zst; t7=$(now)
	echo "$bytes / ($t7 - $t6) / 1048576" | bc -l >> r_zstd
	echo "$bytes / ($t3 - $t2) / 1048576" | bc -l >> r_arch
	zsize=$(stat -c %s e.zst)
	asize=$(find var/archive -name '*.tar.zst' -exec stat -c %s {} + | awk '{s+=$1} END {print s}')
done
m() { median < "$1"; }
ratio() { echo "$1 / $2" | bc -l; }
printf '\nchatvault bench: %s events, median of 3 runs, %s, %s cores\n\n' "$N" "$(uname -m)" "$(nproc)"
printf '%-44s %14s %14s %8s\n' "measure" "ours" "baseline" "ratio"
row() { printf '%-44s %14.1f %14.1f %8.3f\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }
row "ingest rows/s ÷ raw COPY rows/s" "$(m r_ingest)" "$(m r_copy)"
row "end to end events/s ÷ raw COPY rows/s" "$(m r_e2e)" "$(m r_copy)"
row "deliver (claim→tar+zstd→fsync→delete) MB/s ÷ zstd -3" "$(m r_arch)" "$(m r_zstd)"
row "archive size ÷ zstd -3 size (bytes)" "$asize" "$zsize"
printf '%-44s %14.1f\n' "producer durable events/s (emit, spool)" "$(m r_emit)"
row "delivery drain rows/s ÷ bare claim+DELETE" "$(m r_deliver)" "$(m r_bare)"

#!/bin/sh
# bench/plot.sh — end-to-end throughput against batch size, as a table
# (bench/out/e2e_batch.dat) and a gnuplot PNG (bench/out/e2e_batch.png).
# Called by bench/run.sh (so by `make bench` and `make bench-quick`); runs
# alone too, in its own pg_virtualenv cluster.  Never fails the build: a
# missing gnuplot leaves the .dat and says so.
#
# For each batch size B in PLOT_SIZES (100 500 1000 5000 20000; QUICK:
# 100 1000 5000) ingest.batch_size and the archive adapter's batch_size are
# both B; PLOT_N events (100000; QUICK 10000) are emitted into an empty
# spool, then drained by `ingest --once` and `deliver --once` on a fresh
# database.  Columns, all events/s, each run ONCE (not a median):
#   batch  emit  ingest  deliver  e2e  bundles
# e2e = PLOT_N ÷ (emit + ingest + deliver wall time): the whole path
# emit → spool → staging → archive bundle, one stage after the other.
# The last line printed on stdout is the summary for run.sh's table.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
export PATH="/usr/lib/postgresql/15/bin:$PATH"
if [ -z "${CV_IN_VIRTUALENV:-}" ]; then
	port=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 20000))
	exec env CV_IN_VIRTUALENV=1 PGPORT="$port" pg_virtualenv -t -o shared_buffers=256MB "$0" "$@"
fi
QUICK=${QUICK:-}
if [ -n "$QUICK" ]; then
	PLOT_N=${PLOT_N:-10000}
	PLOT_SIZES=${PLOT_SIZES:-"100 1000 5000"}
else
	PLOT_N=${PLOT_N:-100000}
	PLOT_SIZES=${PLOT_SIZES:-"100 500 1000 5000 20000"}
fi
cv="${CHATVAULT:-$top/bin/chatvault}"
out="${PLOT_OUT:-$top/bench/out}"
mkdir -p "$out"
work=$(mktemp -d /tmp/cvplot.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
now() { date +%s.%N; }
calc() { echo "$1" | bc -l; }
say() { echo "bench: $*" >&2; }

python3 "$top/tools/gen_events.py" --count "$PLOT_N" --seed 96 > events.jsonl
dat="$out/e2e_batch.dat"
{
	echo "# chatvault end to end vs batch size: $PLOT_N events per run, each run once"
	echo "# $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "# batch	emit/s	ingest/s	deliver/s	e2e/s	bundles"
} > "$dat.tmp"
for b in $PLOT_SIZES; do
	say "plot: batch size $b ($PLOT_N events)"
	cat > cv.conf <<CONF
data_dir = "$work/var";
ingest = { batch_size = $b; };
adapters = ( { name = "archive"; type = "archive"; batch_size = $b; } );
CONF
	dropdb --if-exists benchp >/dev/null 2>&1; createdb benchp
	rm -rf var; PGDATABASE=benchp $cv -c cv.conf migrate >/dev/null
	t0=$(now); PGDATABASE=benchp $cv -c cv.conf emit events.jsonl 2>/dev/null; t1=$(now)
	PGDATABASE=benchp $cv -c cv.conf ingest --once >/dev/null; t2=$(now)
	PGDATABASE=benchp $cv -c cv.conf deliver --once >/dev/null; t3=$(now)
	left=$(psql -d benchp -XAtq -c "SELECT count(*) FROM chatvault.staged_events")
	[ "$left" = 0 ] || say "plot: batch $b: $left events left in staging!"
	printf '%s\t%.0f\t%.0f\t%.0f\t%.0f\t%s\n' "$b" "$(calc "$PLOT_N / ($t1 - $t0)")" \
		"$(calc "$PLOT_N / ($t2 - $t1)")" "$(calc "$PLOT_N / ($t3 - $t2)")" \
		"$(calc "$PLOT_N / ($t3 - $t0)")" "$(find var/archive -name '*.tar.zst' | wc -l)" >> "$dat.tmp"
done
dropdb --if-exists benchp >/dev/null 2>&1 || true
mv "$dat.tmp" "$dat"

png="$out/e2e_batch.png"
if command -v gnuplot >/dev/null 2>&1; then
	gnuplot <<GP
set terminal pngcairo size 900,560 noenhanced font ",10"
set output "$png"
set title "chatvault: throughput against batch size (ingest.batch_size = archive batch_size; $PLOT_N events, once each)"
set xlabel "batch size (events)"
set ylabel "events/s"
set logscale x
set xrange [$(echo $PLOT_SIZES | awk '{ print $1 / 2 ":" $NF * 2 }')]
set xtics ($(echo $PLOT_SIZES | sed 's/\([0-9]*\)/"\1" \1/g; s/ "/, "/g'))
set grid
set key bottom right
set yrange [0:*]
plot "$dat" using 1:5 with linespoints lw 2 pt 7 title "end to end (emit + ingest + deliver)", \
     "" using 1:3 with linespoints pt 5 title "ingest --once (spool -> staging)", \
     "" using 1:4 with linespoints pt 9 title "deliver --once (staging -> archive bundles)"
GP
	echo "e2e events/s by batch size ($(awk '!/^#/ { printf "%s%s: %s", s, $1, $5; s = ", " }' "$dat")): $png"
else
	echo "e2e events/s by batch size ($(awk '!/^#/ { printf "%s%s: %s", s, $1, $5; s = ", " }' "$dat")): $dat (gnuplot not installed: no PNG)"
fi

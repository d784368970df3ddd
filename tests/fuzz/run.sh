#!/bin/sh
# run.sh TARGET... — run each libFuzzer binary build/fuzz/fuzz_TARGET for
# FUZZ_SECONDS (default 60) on tests/fuzz/corpus/TARGET (called by
# `make fuzz`; see docs/FUZZING.md).
#
# New interesting inputs go to build/fuzz/corpus-new/TARGET (not the repo);
# crash, leak, timeout and oom reproducers are copied to
# tests/fuzz/crashes/TARGET/, where `make check` replays them, and make
# the run fail.  Every target runs even after one failed.  Logs:
# build/fuzz/TARGET.log; one summary line per target: build/fuzz/summary.txt.
set -u

[ $# -gt 0 ] || { echo "usage: $0 TARGET..." >&2; exit 2; }

secs=${FUZZ_SECONDS:-60}
# Known third-party leaks (libconfig 1.5), each documented in the file.
LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$(pwd)/tests/fuzz/lsan.supp:print_suppressions=0"
export LSAN_OPTIONS
out=build/fuzz
failed=""
mkdir -p "$out"

printf '%-10s %10s %10s %8s %8s %8s %s\n' target execs exec/s cov ft corpus result \
	>"$out/summary.txt"
for t in "$@"; do
	bin=$out/fuzz_$t
	new=$out/corpus-new/$t
	art=$out/artifacts/$t
	log=$out/$t.log
	seeds=tests/fuzz/corpus/$t
	mkdir -p "$new" "$art"
	rm -f "$art"/*
	dict=""
	[ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
	echo "fuzz: $t for ${secs}s (log $log)"
	# shellcheck disable=SC2086
	"$bin" -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$art/" $dict "$new" "$seeds" >"$log" 2>&1
	rc=$?

	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
	cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')

	result=ok
	found=$(ls "$art" 2>/dev/null)
	if [ -n "$found" ]; then
		mkdir -p "tests/fuzz/crashes/$t"
		for f in $found; do
			cp "$art/$f" "tests/fuzz/crashes/$t/$f"
			echo "fuzz: $t: reproducer tests/fuzz/crashes/$t/$f" >&2
		done
		result="FOUND $(echo "$found" | wc -l)"
		failed="$failed $t"
		grep -E 'ERROR|SUMMARY|check failed' "$log" | head -n 5 >&2
	elif [ "$rc" -ne 0 ]; then
		result="exit $rc"
		failed="$failed $t"
		tail -n 20 "$log" >&2
	fi
	printf '%-10s %10s %10s %8s %8s %8s %s\n' "$t" "${execs:-?}" "${rate:-?}" \
		"${cov:-?}" "${ft:-?}" "${corp:-?}" "$result" >>"$out/summary.txt"
done
cat "$out/summary.txt"
if [ -n "$failed" ]; then
	echo "fuzz: FAILED:$failed (reproducers in tests/fuzz/crashes/; docs/FUZZING.md)" >&2
	exit 1
fi

#!/bin/sh
# run.sh — integration tests against real parts: a throwaway PostgreSQL
# cluster (pg_virtualenv), the real spool, tar/zstd/xmllint reading what we
# wrote, kill -9 of real processes.  Each t_*.sh gets its own database and
# data directory.  Prints "N passed, N failed" and exits non-zero on failure.
#
#   CHATVAULT=build/rel/chatvault tests/integration/run.sh [t_name ...]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
export CHATVAULT="${CHATVAULT:-$here/../../bin/chatvault}"
export REPO="$here/../.."
export PATH="/usr/lib/postgresql/15/bin:$PATH"

if [ -z "${PGHOST:-}" ] || [ -z "${CV_IN_VIRTUALENV:-}" ]; then
	# Re-run inside a private cluster; pg_virtualenv drops it afterwards.
	# -t: a temporary cluster directory even as root, so concurrent runs
	# (a developer and CI, several worktrees) never share "15/regress".
	exec env CV_IN_VIRTUALENV=1 pg_virtualenv -t -o shared_buffers=128MB \
		-o fsync=on -o max_connections=50 "$0" "$@"
fi

# Processes a test left running (a server started in the background by a
# test that failed before it stopped it) still have the test's directory as
# their working directory: end them so they hold no port or file.
reap() {
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/cwd" 2>/dev/null)" = "$1" ] || continue
		kill -9 "${p#/proc/}" 2>/dev/null || true
	done
}

tests="$*"
[ -n "$tests" ] || tests=$(cd "$here" && ls t_*.sh | sed 's/\.sh$//')
pass=0; fail=0; failed=""
for t in $tests; do
	db="cv_$(echo "$t" | tr -c 'a-z0-9_\n' '_')"
	work=$(mktemp -d /tmp/cvit.XXXXXX)
	dropdb --if-exists "$db" 2>/dev/null || true
	createdb "$db"
	start=$(date +%s)
	if (cd "$work" && PGDATABASE="$db" WORK="$work" sh -eu "$here/$t.sh") >"$work/log" 2>&1; then
		reap "$work"
		pass=$((pass + 1)); echo "ok   $t ($(( $(date +%s) - start ))s)"
		rm -rf "$work"
	else
		reap "$work"
		fail=$((fail + 1)); failed="$failed $t"
		echo "FAIL $t ($(( $(date +%s) - start ))s) — last lines of $work/log:"
		tail -n 25 "$work/log" | sed 's/^/     /'
	fi
done
echo "integration: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

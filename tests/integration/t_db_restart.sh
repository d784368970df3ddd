# PostgreSQL restarts in the middle of ingest and of delivery: nothing lost
# or doubled, the workers reconnect by themselves.
. "$REPO/tests/integration/lib.sh"
N=${CV_IT_EVENTS:-100000}
[ "$N" -gt 60000 ] && N=60000
cat > cv.conf <<CONF
data_dir = "$WORK/var";
ingest = { batch_size = 1000; max_wait_ms = 20; };
adapters = ( { name = "archive"; type = "archive"; batch_size = 1000; } );
CONF
cv -c cv.conf migrate
gen --count "$N" --seed 21 > events.jsonl
cv -c cv.conf emit events.jsonl
cluster=$(pg_lsclusters -h | awk -v p="$PGPORT" '$3 == p { print $1 " " $2 }')
[ -n "$cluster" ] || die "cannot find the test cluster"
"$CHATVAULT" -v -c cv.conf run > run.log 2>&1 &
pid=$!
# stop + start, not "restart": pg_ctlcluster's restart decides whether the
# cluster runs from the external pid file /var/run/postgresql/15-regress.pid,
# which every pg_virtualenv cluster named 15/regress on the machine shares
# (concurrent runs in other worktrees, CI) and which another cluster's stop
# removes; it then only tries to start ("Cluster is already running", exit
# 2).  stop and start check this cluster's own postmaster.pid.
sleep 1
pg_ctlcluster $cluster stop -m fast
pg_ctlcluster $cluster start
sleep 1
pg_ctlcluster $cluster stop -m immediate
pg_ctlcluster $cluster start
# wait for everything to be archived
i=0
while [ "$(q 'SELECT count(*) FROM chatvault.staged_events' 2>/dev/null || echo x)" != 0 ] ||
      [ "$(q "SELECT coalesce(sum(event_count),0) FROM chatvault.batches WHERE state='done'" 2>/dev/null || echo 0)" != "$N" ]; do
	i=$((i + 1)); [ $i -lt 240 ] || { cat run.log; die "not drained after restarts"; }
	sleep 0.5
done
kill -TERM $pid
set +e; wait $pid; rc=$?; set -e
[ $rc -eq 0 ] || { cat run.log; die "run exited $rc on SIGTERM"; }
grep -q "reconnect\|retry" run.log || echo "(note: no reconnect logged)"
ids_of events.jsonl > want.ids
archive_ids var/archive > got.ids
cmp want.ids got.ids || die "archive ids differ after database restarts"
check_chain var/archive
# Staging ids stayed dense through the restarts: verify finds no gap.
"$CHATVAULT" verify var/archive > verify.out || { tail -5 verify.out; die "verify after restarts"; }

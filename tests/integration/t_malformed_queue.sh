# Malformed records that reach the queue (written by another producer) are
# quarantined with their reason and raw bytes; the good ones around them are
# staged; `quarantine list/show` shows them.
. "$REPO/tests/integration/lib.sh"
cv migrate
gen --count 200 --seed 3 --source other01 > good.jsonl
{ head -100 good.jsonl
  echo 'this is not json'
  echo '{"v":1,"type":"chat.post","room":"ma-chan://x/y","user":"sip:a@b","text":"no id"}'
  printf '{"v":2,"id":"0192f0c4-6c1e-7d3a-9b1e-2f6a5c0d9e11","type":"chat.post","ts":"2026-11-21T10:00:00.123Z","room":"r:x","user":"sip:a@b","text":"x","source":{"server":"s","seq":1}}\n'
  printf '\377\376garbage\n'
  tail -100 good.jsonl; } > mixed.jsonl
"$IT_SPOOL_PUT" "$WORK/var/spool" < mixed.jsonl
cv -D "$WORK/var" ingest --once
expect_eq "$(q 'SELECT count(*) FROM chatvault.staged_events')" 200 "good events staged"
expect_eq "$(q 'SELECT count(*) FROM chatvault.quarantine WHERE adapter IS NULL')" 4 "quarantined"
q "SELECT reason FROM chatvault.quarantine ORDER BY qid" > reasons
cat reasons
grep -q 'missing required field "id"' reasons || die "missing id reason"
grep -q 'unsupported version 2' reasons || die "version reason"
expect_eq "$(q "SELECT encode(raw, 'escape') FROM chatvault.quarantine ORDER BY qid LIMIT 1")" "this is not json" "raw bytes kept"
cv -D "$WORK/var" quarantine list | grep -q "this is not json\|invalid JSON\|not json" || true
cv -D "$WORK/var" quarantine list > list.out
[ "$(wc -l < list.out)" -eq 5 ] || die "quarantine list: $(cat list.out)"
first=$(q "SELECT min(qid) FROM chatvault.quarantine")
cv -D "$WORK/var" quarantine show "$first" | grep -q "this is not json" || die "quarantine show"
# Sequence gap detection: skip seq 5 of a producer.
printf '%s\n' "$(head -4 good.jsonl | sed 's/"server":"other01"/"server":"gappy"/')" > gap.jsonl
sed -n '6,8p' good.jsonl | sed 's/"server":"other01"/"server":"gappy"/' >> gap.jsonl
"$IT_SPOOL_PUT" "$WORK/var/spool" < gap.jsonl
cv -D "$WORK/var" ingest --once
# the ids are duplicates of staged events, but the sequence is tracked per server
cv -D "$WORK/var" status | grep -q "gap: gappy seq 5..5 missing" || die "gap not shown: $(cv -D "$WORK/var" status)"

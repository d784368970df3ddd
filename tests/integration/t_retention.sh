# Retention with a clock set by CHATVAULT_NOW: bundles expire exactly at the
# boundary; a hold on one user keeps exactly the bundles holding that user's
# events; a released hold lets them go; purges are audited and tombstoned;
# verify passes across the tombstones; interrupted purges are finished; kill -9
# during retention loses nothing; WORM refuses early purges and survives a
# shortened profile; GDPR erasure with and without a conflicting hold.
. "$REPO/tests/integration/lib.sh"
ms_iso() { python3 -c 'import sys,datetime
ms=int(sys.argv[1]); print(datetime.datetime.fromtimestamp(ms/1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")+"%03dZ" % (ms%1000))' "$1"; }
live() { q "SELECT string_agg(batch_no::text, ',' ORDER BY batch_no) FROM chatvault.batches WHERE adapter='archive' AND state='done'"; }
maxts() { q "SELECT (extract(epoch FROM max_ts)*1000)::bigint FROM chatvault.batches WHERE adapter='archive' AND batch_no=$1"; }
DAY=86400000

cat > cv.conf <<CONF
data_dir = "$WORK/var";
adapters = ( { name = "archive"; type = "archive"; batch_size = 500; } );
retention = { profiles = {
  monthly = { retention_days = 30; worm = false; erasure = false; required_adapters = [ "archive" ];
              rooms = []; users = []; };
}; };
CONF
cv -c cv.conf migrate
# 4000 events over 10 days of 2020, plus two events of sip:suspect@contoso.com
# placed so that they land in bundles 3 and 6 (500 events each).
gen --count 4000 --rooms 8 --users 40 --start 2020-01-01T00:00:00Z --span-hours 240 --seed 5 > base.jsonl
python3 - base.jsonl > events.jsonl <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
out = []
for i, l in enumerate(lines):
    if i in (1200, 2700):
        e = json.loads(l)
        s = {"v": 1, "id": "00000000-0000-4000-8000-%012d" % i, "ts": e["ts"], "type": "im.message",
             "user": "sip:suspect@contoso.com", "to": "sip:user1@contoso.com", "text": "the plan"}
        out.append(json.dumps(s))
    out.append(l)
print("\n".join(out))
PY
cv -c cv.conf emit events.jsonl
cv -c cv.conf ingest --once
cv -c cv.conf deliver --once
expect_eq "$(live)" "1,2,3,4,5,6,7,8,9" "bundles after delivery"
expect_eq "$(q "SELECT string_agg(batch_no::text, ',' ORDER BY batch_no) FROM chatvault.batches WHERE 'sip:suspect@contoso.com' = ANY(users)")" "3,6" "suspect's bundles"
for f in $(find var/archive -name '*.tar.zst'); do
	expect_eq "$(stat -c %a "$f")" 444 "bundle mode $f"
done
cp -a var/archive archive.orig

# --- the exact boundary ------------------------------------------------------
m2=$(maxts 2)
before=$(ms_iso $((m2 + 30 * DAY - 1))); at=$(ms_iso $((m2 + 30 * DAY)))
CHATVAULT_NOW=$before cv -c cv.conf retention --dry-run > dry.out
grep -q "would purge archive batch 1 " dry.out || die "dry run should purge batch 1"
grep -q "would purge archive batch 2 " dry.out && die "dry run must keep batch 2 one ms before its boundary"
expect_eq "$(live)" "1,2,3,4,5,6,7,8,9" "a dry run changes nothing"
expect_eq "$(q "SELECT count(*) FROM chatvault.audit_log WHERE action LIKE 'retention%'")" 0 "dry run not audited"
CHATVAULT_NOW=$before cv -c cv.conf retention > r1.out
expect_eq "$(live)" "2,3,4,5,6,7,8,9" "one ms before the boundary"
grep -q "kept archive batch 2 .*retention until $at (monthly)" r1.out || die "batch 2 kept with its reason: $(cat r1.out)"
CHATVAULT_NOW=$at cv -c cv.conf retention > r2.out
expect_eq "$(live)" "3,4,5,6,7,8,9" "exactly at the boundary"
grep -q "purged archive batch 2 .*monthly 30 days elapsed at $at" r2.out || die "purge reason: $(cat r2.out)"

# --- holds -----------------------------------------------------------------------
cv -c cv.conf hold add --user sip:suspect@contoso.com --reason "SEC inquiry 7" > h1.out
h1=$(sed -n 's/^hold \([0-9]*\) added$/\1/p' h1.out)
[ -n "$h1" ] || die "hold add printed no id"
cv -c cv.conf hold list | grep -q "SEC inquiry 7" || die "hold list misses the hold"
CHATVAULT_NOW=2030-01-01 cv -c cv.conf retention > r3.out
expect_eq "$(live)" "3,6" "a user hold keeps exactly that user's bundles"
grep -q "kept archive batch 3 .*held by hold $h1 (SEC inquiry 7)" r3.out || die "held reason: $(cat r3.out)"
# A narrower hold: only the first suspect event's instant.
t1=$(q "SELECT (extract(epoch FROM ts)*1000)::bigint FROM chatvault.staged_events LIMIT 0")
t1=$(python3 -c 'import json
for l in open("events.jsonl"):
    e=json.loads(l)
    if e["user"]=="sip:suspect@contoso.com": print(e["ts"]); break')
t1next=$(python3 -c 'import sys,datetime
d=datetime.datetime.strptime(sys.argv[1],"%Y-%m-%dT%H:%M:%S.%fZ")+datetime.timedelta(milliseconds=1)
print(d.strftime("%Y-%m-%dT%H:%M:%S.")+"%03dZ"%(d.microsecond//1000))' "$t1")
cv -c cv.conf hold add --user sip:suspect@contoso.com --from "$t1" --to "$t1next" --reason "narrow" > h2.out
h2=$(sed -n 's/^hold \([0-9]*\) added$/\1/p' h2.out)
cv -c cv.conf hold release "$h1" --reason "inquiry closed"
cv -c cv.conf hold release "$h1" --reason "again" 2> rel.err && die "releasing twice must fail"
grep -q "already released" rel.err || die "second release: $(cat rel.err)"
CHATVAULT_NOW=2030-01-01 cv -c cv.conf retention > r4.out
expect_eq "$(live)" "3" "a time-bounded hold keeps only the bundle with that instant"
cv -c cv.conf hold release "$h2" --reason "done"
CHATVAULT_NOW=2030-01-01 cv -c cv.conf retention > r5.out
expect_eq "$(live)" "" "released holds let the rest go"
expect_eq "$(q "SELECT count(*) FROM chatvault.audit_log WHERE action = 'retention.purge'")" 9 "one audit row per purge"
expect_eq "$(q "SELECT count(*) FROM chatvault.audit_log WHERE action IN ('hold.add','hold.release')")" 4 "hold acts audited"
q "SELECT actor FROM chatvault.audit_log WHERE action = 'hold.add' LIMIT 1" | grep -q '@' || die "actor recorded"
expect_eq "$(q "SELECT count(*) FROM chatvault.audit_log WHERE action = 'retention.purge' AND details->>'clock' = 'CHATVAULT_NOW'")" 9 "overridden clock audited"

# Tombstones: one per bundle, read-only, chained to the catalog.
expect_eq "$(find var/archive -name '*.tar.zst' | wc -l)" 0 "bundle files removed"
expect_eq "$(find var/archive -name '*.tombstone.json' | wc -l)" 9 "tombstones"
python3 - var/archive archive.orig <<'PY' || die "tombstones do not match the bundles they replace"
import hashlib, json, os, subprocess, sys
orig = {}
for root, _, files in os.walk(sys.argv[2]):
    for f in files:
        p = os.path.join(root, f)
        m = subprocess.run(["tar", "--zstd", "-xOf", p, "manifest.json"], check=True, capture_output=True).stdout
        orig[f] = (hashlib.sha256(m).hexdigest(), json.loads(m), hashlib.sha256(open(p, "rb").read()).hexdigest())
n = 0
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        p = os.path.join(root, f)
        assert os.stat(p).st_mode & 0o777 == 0o444, p
        t = json.load(open(p))
        mh, man, fh = orig[t["bundle"]]
        assert t["format"] == "chatvault-tombstone/1"
        assert t["manifest_sha256"] == mh and t["bundle_sha256"] == fh, f
        assert t["prev_manifest_sha256"] == man["prev_manifest_sha256"]
        assert t["staging_ids"] == man["staging_ids"] and t["event_count"] == man["event_count"]
        seqs = sum(b - a + 1 for r in t["sources"].values() for a, b in r)
        assert seqs == man["event_count"], (seqs, man["event_count"])
        n += 1
assert n == 9
PY
"$CHATVAULT" verify var/archive > verify.out || die "verify across tombstones: $(tail -5 verify.out)"

# --- interrupted purges and kill -9 ------------------------------------------------
# Purged in the catalog but the file survived (crash before unlink): finished.
b=$(find archive.orig -name '*-0000000000000001-*.tar.zst')
dest=$(find var/archive -name '*-0000000000000001-*.tombstone.json' | sed 's/\.tombstone\.json$/.tar.zst/')
cp -p "$b" "$dest"
cv -c cv.conf retention > r6.out
grep -q "finished the interrupted purge of .*/$(basename "$dest")" r6.out || die "interrupted purge: $(cat r6.out)"
[ ! -e "$dest" ] || die "interrupted purge left the bundle"

# A second pipeline with many small bundles; retention killed -9 repeatedly.
dropdb_db="${PGDATABASE}_kill"; createdb "$dropdb_db"
sed -e "s#$WORK/var#$WORK/var2#" -e 's/batch_size = 500/batch_size = 50/' cv.conf > kill.conf
PGDATABASE=$dropdb_db cv -c kill.conf migrate
gen --count 3000 --start 2020-01-01T00:00:00Z --span-hours 24 --seed 8 > k.jsonl
PGDATABASE=$dropdb_db cv -c kill.conf emit k.jsonl
PGDATABASE=$dropdb_db cv -c kill.conf ingest --once
PGDATABASE=$dropdb_db cv -c kill.conf deliver --once
total=$(PGDATABASE=$dropdb_db q "SELECT count(*) FROM chatvault.batches WHERE state='done'")
kills=0
while [ "$(PGDATABASE=$dropdb_db q "SELECT count(*) FROM chatvault.batches WHERE state='done'")" != 0 ] && [ $kills -lt 40 ]; do
	CHATVAULT_NOW=2030-01-01 PGDATABASE=$dropdb_db "$CHATVAULT" -q -c kill.conf retention > /dev/null 2>&1 &
	pid=$!
	sleep 0.0$(( (kills * 37) % 9 + 1 ))
	kill -9 $pid 2>/dev/null || true
	wait $pid 2>/dev/null || true
	kills=$((kills + 1))
done
CHATVAULT_NOW=2030-01-01 PGDATABASE=$dropdb_db cv -c kill.conf retention > /dev/null
expect_eq "$(PGDATABASE=$dropdb_db q "SELECT count(*) FROM chatvault.batches WHERE state='purged'")" "$total" "all purged after $kills kills"
expect_eq "$(find var2/archive -name '*.tar.zst' | wc -l)" 0 "no bundle survives its purge"
expect_eq "$(find var2/archive -name '*.tombstone.json' | wc -l)" "$total" "one tombstone per purge"
expect_eq "$(PGDATABASE=$dropdb_db q "SELECT count(*) FROM chatvault.audit_log WHERE action='retention.purge'")" "$total" "one audit row per purge despite kills"
"$CHATVAULT" verify var2/archive > /dev/null || die "verify after killed retention runs"
echo "retention survived $kills kill -9"

# --- WORM -----------------------------------------------------------------------------
wdb="${PGDATABASE}_worm"; createdb "$wdb"
cat > worm.conf <<CONF
data_dir = "$WORK/var3";
adapters = ( { name = "archive"; type = "archive"; batch_size = 1000; } );
retention = { profiles = {
  @include "$(realpath --relative-to="$WORK" "$REPO/conf/regulations/sec-17a4.conf")"
}; };
CONF
PGDATABASE=$wdb cv -c worm.conf migrate
# Events of 2024: sec-17a4's 3 years run into 2027, after the database clock.
gen --count 2000 --start 2024-06-01T00:00:00Z --span-hours 24 --seed 9 > w.jsonl
PGDATABASE=$wdb cv -c worm.conf emit w.jsonl
PGDATABASE=$wdb cv -c worm.conf ingest --once
PGDATABASE=$wdb cv -c worm.conf deliver --once
PGDATABASE=$wdb cv -c worm.conf config check | grep -q "any room, any user: 1096 days (sec-17a4), WORM (sec-17a4)" || die "effective retention in config check"
CHATVAULT_NOW=2031-01-01 PGDATABASE=$wdb cv -c worm.conf retention > w1.out
expect_eq "$(PGDATABASE=$wdb q "SELECT count(*) FROM chatvault.batches WHERE state='done'")" 2 "WORM: nothing purged early even when asked"
grep -q "refused archive batch 1 .*WORM: retention until 2027-06-0" w1.out || die "refusal: $(cat w1.out)"
expect_eq "$(PGDATABASE=$wdb q "SELECT count(*) FROM chatvault.audit_log WHERE action='retention.refused'")" 2 "refusals audited"
# Shorten the profile afterwards: the lock holds.
sed 's#@include.*#short = { retention_days = 1; worm = false; erasure = false; required_adapters = []; rooms = []; users = []; };#' worm.conf > short.conf
PGDATABASE=$wdb cv -c short.conf retention > w2.out
expect_eq "$(PGDATABASE=$wdb q "SELECT count(*) FROM chatvault.batches WHERE state='done'")" 2 "WORM lock survives a shortened profile"
grep -q "kept archive batch 1 .*retention until 2027-06-0.*WORM" w2.out || die "WORM lock reason: $(cat w2.out)"
for f in $(find var3/archive -name '*.tar.zst'); do
	expect_eq "$(stat -c %a "$f")" 444 "WORM bundle read-only"
done

# --- GDPR erasure -----------------------------------------------------------------------
gdb="${PGDATABASE}_gdpr"; createdb "$gdb"
cat > gdpr.conf <<CONF
data_dir = "$WORK/var4";
retention = { profiles = {
  @include "$(realpath --relative-to="$WORK" "$REPO/conf/regulations/gdpr.conf")"
}; };
CONF
PGDATABASE=$gdb cv -c gdpr.conf migrate
gen --count 500 --users 5 --seed 10 > g.jsonl
PGDATABASE=$gdb cv -c gdpr.conf emit g.jsonl
PGDATABASE=$gdb cv -c gdpr.conf ingest --once
PGDATABASE=$gdb cv -c gdpr.conf hold add --user sip:user2@contoso.com --reason "litigation 12"
PGDATABASE=$gdb cv -c gdpr.conf erase --user sip:user2@contoso.com --reason "Art. 17 request" > e1.out 2> e1.err && die "erase under a hold must be refused"
grep -q "refused: legal hold 1 applies (litigation 12)" e1.err || die "refusal line: $(cat e1.err)"
want=$(python3 -c 'import json
print(sum(1 for l in open("g.jsonl") if "sip:user3@contoso.com" in (json.loads(l)["user"], json.loads(l).get("to"))))')
PGDATABASE=$gdb cv -c gdpr.conf erase --user sip:user3@contoso.com --reason "Art. 17 request" > e2.out
grep -q "honoured: $want staged event(s) redacted" e2.out || die "erase: $(cat e2.out), want $want"
expect_eq "$(PGDATABASE=$gdb q "SELECT count(*) FROM chatvault.staged_events WHERE (user_uri = 'sip:user3@contoso.com' OR body::jsonb->>'to' = 'sip:user3@contoso.com') AND body::jsonb ? 'text' AND body::jsonb->>'text' <> '[erased]'")" 0 "no text of the erased user left in staging"
expect_eq "$(PGDATABASE=$gdb q "SELECT count(*) FROM chatvault.staged_events WHERE user_uri = 'sip:user2@contoso.com' AND body LIKE '%[erased]%'")" 0 "held user untouched"
expect_eq "$(PGDATABASE=$gdb q "SELECT string_agg(state, ',' ORDER BY erasure_id) FROM chatvault.erasures")" "refused,honoured" "erasure requests recorded"
expect_eq "$(PGDATABASE=$gdb q "SELECT count(*) FROM chatvault.audit_log WHERE action='erase'")" 2 "erasures audited"
# Redacted events are still valid canonical events: delivery archives them.
PGDATABASE=$gdb cv -c gdpr.conf deliver --once
expect_eq "$(PGDATABASE=$gdb q "SELECT count(*) FROM chatvault.staged_events")" 0 "redacted events delivered"
archive_ids var4/archive | sort > g.got; ids_of g.jsonl > g.want
cmp g.want g.got || die "erasure lost events from the archive trail"
# A profile that requires keeping refuses erasure.
sed 's#gdpr.conf"#finra-4511.conf"\n  @include "'"$(realpath --relative-to="$WORK" "$REPO/conf/regulations/gdpr.conf")"'"#' gdpr.conf > both.conf
sed -i 's#^retention#adapters = ( { name = "archive"; type = "archive"; } );\nretention#' both.conf
PGDATABASE=$gdb cv -c both.conf erase --user sip:user4@contoso.com --reason "Art. 17" 2> e3.err && die "erase under finra must be refused"
grep -q "refused: profile finra-4511 requires keeping 2192 days" e3.err || die "profile refusal: $(cat e3.err)"
echo "retention ok"

# chatvault export (docs/FORMATS.md §3): emit → ingest → deliver into many
# small bundles (some with real attachments), then export by time, room,
# user, room+user in every format and compare the exported ids exactly with
# the same filter computed here over the generated events; every package
# and member opens in a standard tool (tar, sha256sum, xmllint, python's
# csv/email/json); erasures leave a user out and are counted; a tampered
# source bundle fails the export naming it; each export is audited, and an
# export whose audit row cannot be written leaves no file; bad arguments
# exit 2 (1 for an unwritable output directory) with one error line.
. "$REPO/tests/integration/lib.sh"
N=6000
cat > cv.conf <<CONF
data_dir = "$WORK/var";
adapters = ( { name = "archive"; type = "archive"; batch_size = 400; } );
CONF
cv -c cv.conf migrate

# Events over 10 hours; every other chat.file.upload gets a real attachment
# in the file store, so bundles carry files/<sha256>.
gen --count "$N" --rooms 5 --users 12 --span-hours 10 --seed 7 --text-bytes 60 > raw.jsonl
mkdir -p var/files
python3 - raw.jsonl events.jsonl var/files <<'PY'
import hashlib, json, os, sys
n = 0
with open(sys.argv[1]) as src, open(sys.argv[2], "w") as out:
    for line in src:
        e = json.loads(line)
        if e["type"] == "chat.file.upload":
            n += 1
            if n % 2:
                body = ("attachment %s, with a comma, \"quotes\" and\nnewlines\n" % e["id"]).encode() * (n % 7 + 1)
                sha = hashlib.sha256(body).hexdigest()
                with open(os.path.join(sys.argv[3], sha), "wb") as f:
                    f.write(body)
                e["files"][0].update(size=len(body), sha256=sha)
        out.write(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n")
PY
cv -c cv.conf emit events.jsonl
cv -c cv.conf ingest --once
cv -c cv.conf deliver --once
nb=$(q "SELECT count(*) FROM chatvault.batches WHERE adapter='archive' AND state='done'")
[ "$nb" -ge 14 ] || die "only $nb bundles"

# The FORMATS.md filter over the generated events, and a package checker.
cat > xchk.py <<'PY'
import csv, email, hashlib, io, json, os, subprocess, sys, tarfile
from datetime import datetime, timezone
from email import policy

def ms(s):
    s = s.rstrip("Z")
    fmt = "%Y-%m-%dT%H:%M:%S.%f" if "." in s else ("%Y-%m-%dT%H:%M:%S" if s.count(":") == 2 else
                                                   "%Y-%m-%dT%H:%M" if "T" in s else "%Y-%m-%d")
    return int(datetime.strptime(s, fmt).replace(tzinfo=timezone.utc).timestamp() * 1000 + 0.5)

def lst(s):
    return [x for x in s.split(",") if x]

def want(frm, to, rooms, users, erased):
    rooms, users, erased = set(lst(rooms)), set(lst(users)), set(lst(erased))
    f, t = ms(frm), ms(to)
    ids, omitted = [], 0
    for line in open("events.jsonl"):
        e = json.loads(line)
        if not (f <= ms(e["ts"]) < t):
            continue
        if rooms and e.get("room") not in rooms:
            continue
        if users and e["user"] not in users and e.get("to") not in users:
            continue
        if e["user"] in erased or e.get("to") in erased:
            omitted += 1
            continue
        ids.append(e)
    return ids, omitted

def sid_map():
    # staging id -> event id, from the bundles themselves
    m = {}
    for root, _, files in os.walk("var/archive"):
        for fn in files:
            if not fn.endswith(".tar.zst"):
                continue
            p = os.path.join(root, fn)
            ev = subprocess.run(["tar", "--zstd", "-xOf", p, "events.jsonl"], check=True,
                                capture_output=True).stdout.decode().splitlines()
            man = json.loads(subprocess.run(["tar", "--zstd", "-xOf", p, "manifest.json"],
                                            check=True, capture_output=True).stdout)
            sids = [s for a, b in man["staging_ids"] for s in range(a, b + 1)]
            for s, l in zip(sids, ev):
                m[s] = json.loads(l)["id"]
    return m

def check(pkg, fmt, frm, to, rooms, users, erased):
    d = pkg + ".d"
    names = subprocess.run(["tar", "--zstd", "-tf", pkg], check=True, capture_output=True,
                           text=True).stdout.split()
    os.makedirs(d)
    subprocess.run(["tar", "--zstd", "-xf", pkg, "-C", d], check=True)
    man = json.load(open(os.path.join(d, "manifest.json")))
    assert man["format"] == "chatvault-export/1", man["format"]
    q = man["query"]
    assert q["format"] == fmt and q["from"] == datetime.fromtimestamp(ms(frm) / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", q
    assert q["rooms"] == sorted(set(lst(rooms))) and q["users"] == sorted(set(lst(users))), q
    assert "@" in man["exported_by"] and man["tool"].startswith("chatvault "), man
    # member order: README.txt, events member(s), files/ ascending, manifest.json last
    assert names[0] == "README.txt" and names[-1] == "manifest.json", names
    ev_members = [n for n in names[1:-1] if not n.startswith("files/")]
    files = [n for n in names[1:-1] if n.startswith("files/")]
    assert names[1:-1] == ev_members + files, names
    assert files == sorted(files), files
    assert list(man["members"]) == names[:-1], (list(man["members"]), names)
    with open(pkg + ".sums", "w") as f:
        for n, v in man["members"].items():
            f.write("%s  %s\n" % (v["sha256"], n))
            assert os.path.getsize(os.path.join(d, n)) == v["size"], n
    for n in files:
        assert hashlib.sha256(open(os.path.join(d, n), "rb").read()).hexdigest() == n[6:], n
    exp, omitted = want(frm, to, rooms, users, erased)
    got = []
    if fmt == "jsonl":
        assert ev_members == ["events.jsonl"], ev_members
        lines = open(os.path.join(d, "events.jsonl"), "rb").read().decode().splitlines()
        got = [json.loads(l)["id"] for l in lines]
        src = {e["id"]: e for e in exp}
        for l in lines:  # the canonical bytes, as emitted
            e = json.loads(l)
            assert {k: v for k, v in e.items() if k != "source"} == src[e["id"]], e
    elif fmt == "csv":
        assert ev_members == ["events.csv"], ev_members
        raw = open(os.path.join(d, "events.csv"), "rb").read().decode()
        rows = list(csv.reader(io.StringIO(raw, newline="")))
        assert rows[0] == "staging_id,id,type,ts,room,user,to,text,files,source_server,source_seq".split(","), rows[0]
        rows = rows[1:]
        src = {e["id"]: e for e in exp}
        for r in rows:
            e = src[r[1]]
            assert r[2] == e["type"] and r[3] == e["ts"] and r[4] == e.get("room", "") and r[5] == e["user"], r
            assert r[6] == e.get("to", "") and r[7] == e.get("text", ""), r
            assert (json.loads(r[8]) if r[8] else None) == e.get("files"), r
            assert int(r[0]) > 0 and int(r[10]) > 0 and r[9], r
        assert [int(r[0]) for r in rows] == sorted(int(r[0]) for r in rows)
        got = [r[1] for r in rows]
    elif fmt == "xml":
        import xml.etree.ElementTree as ET
        assert ev_members and all(n.startswith("xml/") and n.endswith(".xml") for n in ev_members), ev_members
        m = sid_map()
        for n in ev_members:
            if n.endswith(".attachments.xml"):
                continue
            for el in ET.parse(os.path.join(d, n)).iter():
                if el.tag == "Message":
                    got.append(m[int(el.get("id"))])
    elif fmt == "eml":
        assert ev_members and all(n.startswith("eml/") and n.endswith(".eml") for n in ev_members), ev_members
        for n in ev_members:
            raw = open(os.path.join(d, n), "rb").read()
            msg = email.message_from_bytes(raw, policy=policy.default)
            assert msg["From"] and msg["To"] and msg["Date"] and msg["Subject"] and msg["Message-ID"], n
            assert msg.is_multipart(), n
            for part in msg.walk():
                if part.get_content_type() == "application/json":
                    got += [e["id"] for e in json.loads(part.get_content())]
                elif not part.is_multipart():
                    assert part.get_payload(decode=True) is not None, n
    if sorted(got) != sorted(e["id"] for e in exp) or len(got) != len(set(got)):
        sys.exit("%s: exported %d ids, want %d (%d missing, %d extra)" % (
            pkg, len(got), len(exp), len(set(e["id"] for e in exp) - set(got)),
            len(set(got) - set(e["id"] for e in exp))))
    # attachments: exactly those of exported events that the file store had
    store = set(os.listdir("var/files"))
    want_files = sorted("files/" + f["sha256"] for e in exp for f in e.get("files", []) if f["sha256"] in store)
    assert files == sorted(set(want_files)), (files, want_files)
    c = man["counts"]
    us = set(e["user"] for e in exp) | set(e["to"] for e in exp if "to" in e)
    assert c == {"events": len(exp), "rooms": len(set(e["room"] for e in exp if "room" in e)),
                 "users": len(us), "attachments": len(files), "omitted_erased": omitted}, (c, omitted)
    assert (man["source_bundles"] or not exp) and all(len(b["sha256"]) == 64 and len(b["manifest_sha256"]) == 64
                                         for b in man["source_bundles"]), man["source_bundles"]
    print(len(got), omitted)

if __name__ == "__main__":
    if sys.argv[1] == "check":
        check(*sys.argv[2:])
PY

# ex NAME FORMAT FROM TO ROOMS USERS [ERASED]: export, check, sha256sum -c
nexp=0
ex() {
	args="--from $3 --to $4 --format $2"
	for r in $(echo "$5" | tr ',' ' '); do args="$args --room $r"; done
	for u in $(echo "$6" | tr ',' ' '); do args="$args --user $u"; done
	cv -c cv.conf export $args -o "$1.tar.zst" > "$1.out" || die "export $1 failed"
	nexp=$((nexp + 1))
	[ ! -e "$1.tar.zst.tmp" ] || die "$1: temporary left behind"
	expect_eq "$(stat -c %a "$1.tar.zst")" 640 "$1 mode"
	python3 xchk.py check "$1.tar.zst" "$2" "$3" "$4" "$5" "$6" "${7:-}" > "$1.n" || die "check $1"
	(cd "$1.tar.zst.d" && sha256sum --quiet -c "../$1.tar.zst.sums") || die "sha256sum -c $1"
	echo "$1: $(cat "$1.n") (exported, omitted)"
}
R1=$(python3 -c 'import json; print(sorted({json.loads(l).get("room","") for l in open("events.jsonl")} - {""})[0])')
R2=$(python3 -c 'import json; print(sorted({json.loads(l).get("room","") for l in open("events.jsonl")} - {""})[3])')
U1=sip:user003@contoso.com
U2=sip:user007@contoso.com
U3=sip:user010@contoso.com
ex all jsonl 2026-11-20 2026-11-21 "" ""
expect_eq "$(cut -d' ' -f1 all.n)" "$N" "everything exported"
ex time jsonl 2026-11-20T10:30 2026-11-20T14:00:00.500Z "" ""
ex room jsonl 2026-11-20 2026-11-21 "$R1,$R2" ""
ex user jsonl 2026-11-20T09:00 2026-11-20T17:00 "" "$U1"
ex roomuser jsonl 2026-11-20 2026-11-21 "$R2" "$U2,$U3"
ex csv_time csv 2026-11-20T11:00 2026-11-20T15:00 "" ""
ex csv_room csv 2026-11-20 2026-11-21 "$R1" ""
ex xml_user xml 2026-11-20T08:00 2026-11-20T18:00 "" "$U1,$U2"
ex xml_roomuser xml 2026-11-20 2026-11-21 "$R1" "$U3"
ex eml_room eml 2026-11-20T09:00:00Z 2026-11-20T16:00 "$R2" ""
ex eml_user eml 2026-11-20 2026-11-21 "" "$U3"
ex empty jsonl 2027-01-01 2027-01-02 "" ""
expect_eq "$(cat empty.n)" "0 0" "empty range"
for p in *.tar.zst.d; do
	for x in $(find "$p" -name '*.xml'); do xmllint --noout "$x" || die "xmllint $x"; done
done
[ -z "$(find . -maxdepth 1 -name '.chatvault-export-*')" ] || die "temporary directory left behind"
tar --zstd -xOf all.tar.zst README.txt | grep -q "chatvault verify" || die "README lacks how to verify"

# Audit: one 'export' row per successful export, with the package's hash.
expect_eq "$(q "SELECT count(*) FROM chatvault.audit_log WHERE action='export'")" "$nexp" "audit rows"
expect_eq "$(q "SELECT details->>'output_sha256' FROM chatvault.audit_log WHERE action='export' AND target='$WORK/empty.tar.zst'")" \
	"$(sha256sum empty.tar.zst | cut -d' ' -f1)" "audited sha256"

# Erasure: the user's events (as sender or recipient) are left out and counted.
q "INSERT INTO chatvault.erasures (user_uri, reason, requested_by, state) VALUES ('$U2', 'test', 'dpo', 'honoured')"
ex erased jsonl 2026-11-20 2026-11-21 "" "" "$U2"
ex erased_csv csv 2026-11-20T10:00 2026-11-20T13:00 "$R1" "$U2,$U1" "$U2"
python3 - "$U2" <<'PY'
import json, sys
man = json.load(open("erased.tar.zst.d/manifest.json"))
n = sum(1 for l in open("events.jsonl") if sys.argv[1] in (json.loads(l)["user"], json.loads(l).get("to")))
assert n > 0
assert [(e["user"], e["events_omitted"]) for e in man["erasures"]] == [(sys.argv[1], n)], man["erasures"]
assert man["counts"]["omitted_erased"] == n
for l in open("erased.tar.zst.d/events.jsonl"):
    e = json.loads(l)
    assert sys.argv[1] not in (e["user"], e.get("to")), e
PY
nexp_before=$nexp

# Bad arguments: exit 2 (1 for an output directory that cannot be written),
# one error line, nothing written.
bad() {
	want=$1; shift
	set +e; cv -c cv.conf export "$@" > /dev/null 2> err; rc=$?; set -e
	expect_eq "$rc" "$want" "export $* exit"
	expect_eq "$(wc -l < err)" 1 "export $* error lines"
	grep -q '^chatvault: export: ' err || die "error line: $(cat err)"
}
bad 2 --from 2026-11-20 -o x.tar.zst
bad 2 --from 2026-11-21 --to 2026-11-20 -o x.tar.zst
bad 2 --from 2026-11-20 --to 2026-11-20 -o x.tar.zst
bad 2 --from 2026-11-20 --to 2026-11-21 --format pdf -o x.tar.zst
bad 2 --from 2026-11-20T25:00 --to 2026-11-21 -o x.tar.zst
bad 2 --from 2026-11-20 --to 2026-11-21
bad 2 --from 2026-11-20 --to 2026-11-21 --adapter nosuch -o x.tar.zst
bad 2 --from 2026-11-20 --to 2026-11-21 -o x.tar.zst stray
bad 1 --from 2026-11-20 --to 2026-11-21 -o "$WORK/no/such/dir/x.tar.zst"
bad 1 --from 2026-11-20 --to 2026-11-21 -o "$WORK/events.jsonl/x.tar.zst"
[ ! -e x.tar.zst ] || die "a failed export left x.tar.zst"

# An export whose audit row cannot be written does not exist.
q "CREATE FUNCTION pg_temp_refuse() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN RAISE EXCEPTION 'audit refused'; END \$\$;
   CREATE TRIGGER refuse BEFORE INSERT ON chatvault.audit_log FOR EACH ROW EXECUTE FUNCTION pg_temp_refuse()"
bad 1 --from 2026-11-20 --to 2026-11-21 -o unaudited.tar.zst
grep -q "audit refused" err || die "audit failure not reported: $(cat err)"
[ ! -e unaudited.tar.zst ] && [ ! -e unaudited.tar.zst.tmp ] || die "unaudited export left a file"
q "DROP TRIGGER refuse ON chatvault.audit_log; DROP FUNCTION pg_temp_refuse()"

# A tampered source bundle (one byte flipped in the middle) fails the export,
# naming it; nothing is written.
victim=$(q "SELECT path FROM chatvault.batches WHERE adapter='archive' AND state='done' ORDER BY batch_no OFFSET 5 LIMIT 1")
cp -p "$victim" victim.orig
cp "$victim" victim.bad
chmod u+w victim.bad
python3 - victim.bad <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[len(b) // 2] ^= 0x55
open(sys.argv[1], "wb").write(b)
PY
cp victim.bad "$victim"
bad 1 --from 2026-11-20 --to 2026-11-21 -o tampered.tar.zst
grep -q "$(basename "$victim")" err || die "tampered bundle not named: $(cat err)"
[ ! -e tampered.tar.zst ] && [ ! -e tampered.tar.zst.tmp ] || die "tampered export left a file"
# a range that does not touch it still exports
end2=$(q "SELECT to_char(max(max_ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS') FROM chatvault.batches WHERE adapter='archive' AND batch_no <= 2")
cv -c cv.conf export -q --from 2026-11-20 --to "$end2" -o before.tar.zst || die "export beside a tampered bundle"
expect_eq "$(tar --zstd -xOf before.tar.zst manifest.json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["source_bundles"]))')" 2 "bundles read before the tampered one"
nexp_before=$((nexp_before + 1))
cp -p victim.orig "$victim"

# A bundle purged by retention (simulated in the catalog): listed in
# purged_in_range, its events absent, the rest exported.
pno=$(q "SELECT batch_no FROM chatvault.batches WHERE adapter='archive' AND state='done' ORDER BY batch_no OFFSET 3 LIMIT 1")
pv=$(q "SELECT path FROM chatvault.batches WHERE adapter='archive' AND batch_no=$pno")
tar --zstd -xOf "$pv" events.jsonl > purged.jsonl
mv "$pv" purged.bundle
q "UPDATE chatvault.batches SET state='purged', purged_at=now(), purge_reason='test purge' WHERE adapter='archive' AND batch_no=$pno"
cv -c cv.conf export -q --from 2026-11-20 --to 2026-11-21 -o purged.tar.zst || die "export with a purged bundle"
nexp_before=$((nexp_before + 1))
tar --zstd -xOf purged.tar.zst manifest.json > purged.manifest
tar --zstd -xOf purged.tar.zst events.jsonl > purged.events
python3 - "$U2" "$pno" <<'PY'
import json, sys
man = json.load(open("purged.manifest"))
p = man["purged_in_range"]
assert len(p) == 1 and p[0]["batch_no"] == int(sys.argv[2]) and p[0]["reason"] == "test purge", p
assert p[0]["adapter"] == "archive" and p[0]["min_ts"] and p[0]["max_ts"] and p[0]["purged_at"].endswith("Z"), p
gone = {json.loads(l)["id"] for l in open("purged.jsonl")}
want = sorted(e["id"] for e in map(json.loads, open("events.jsonl"))
              if e["id"] not in gone and sys.argv[1] not in (e["user"], e.get("to")))
got = sorted(json.loads(l)["id"] for l in open("purged.events"))
assert got == want, (len(got), len(want))
assert int(sys.argv[2]) not in [b["batch_no"] for b in man["source_bundles"]]
PY
expect_eq "$(q "SELECT count(*) FROM chatvault.audit_log WHERE action='export'")" "$nexp_before" "audit rows after failures"

# The packages pass `chatvault verify`, when this build has it.
if cv verify --help > /dev/null 2>&1; then
	cv verify all.tar.zst csv_room.tar.zst xml_user.tar.zst eml_user.tar.zst erased.tar.zst \
		purged.tar.zst empty.tar.zst || die "chatvault verify rejects an export package"
fi
[ -z "$(find . -maxdepth 1 -name '.chatvault-export-*')" ] || die "temporary directory left behind"
echo "t_export: ok ($nexp exports checked)"

# chatvault verify: a real archive (emit → ingest → deliver, 10 bundles with
# attachments, three source servers) verifies clean; then a table of tampering,
# each on a fresh copy, must exit 3 naming the file (and member); tombstones
# are known gaps; synthetic export packages (built per docs/FORMATS.md §3 by
# vtamper.py) verify, and fail when a member byte flips or members move.
. "$REPO/tests/integration/lib.sh"
V="$REPO/tests/integration/vtamper.py"
cat > cv.conf <<CONF
data_dir = "$WORK/var";
adapters = ( { name = "archive"; type = "archive"; batch_size = 400; },
  { name = "arch2"; type = "archive"; batch_size = 1500; options = { dir = "$WORK/var/arch2"; }; } );
CONF
cv -c cv.conf migrate
gen --count 3000 --source chat01 --seed 1 > a.jsonl
gen --count 994 --source chat02 --seed 2 --start 2026-11-20T09:00:00Z > b.jsonl
# chat02 interleaved with chat01; six uploads (source chat03) whose files are
# in the file store, so bundles carry files/<sha256> members.
python3 - <<'PY'
import hashlib, json, os, random, uuid
os.makedirs("var/files", exist_ok=True)
a, b = open("a.jsonl").readlines(), open("b.jsonl").readlines()
out, bi = [], 0
for i, l in enumerate(a):
    out.append(l)
    if i % 3 == 0 and bi < len(b):
        out.append(b[bi]); bi += 1
out += b[bi:]
rnd = random.Random(7)
for k in range(6):
    data = ("attachment %d " % k).encode() * (50 + k)
    h = hashlib.sha256(data).hexdigest()
    open("var/files/" + h, "wb").write(data)
    ev = {"v": 1, "id": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
          "type": "chat.file.upload", "ts": "2026-11-20T1%d:00:00.000Z" % k,
          "room": "ma-chan://contoso.com/files", "user": "sip:user001@contoso.com",
          "files": [{"name": "f%d.txt" % k, "size": len(data), "sha256": h}],
          "source": {"server": "chat03", "seq": k + 1}}
    out.insert(700 * k + 5, json.dumps(ev, separators=(",", ":")) + "\n")
open("events.jsonl", "w").writelines(out)
PY
cv -c cv.conf emit events.jsonl
cv -c cv.conf ingest --once
cv -c cv.conf deliver --once
nb=$(find var/archive -name '*.tar.zst' | wc -l)
[ "$nb" -ge 8 ] || die "only $nb bundles"

# --- the untouched archive ------------------------------------------------------
cv verify var/archive > out 2> err || { cat out err; die "clean archive does not verify"; }
cat out
grep -q "^verify: $nb bundles, 0 tombstones (known gaps), 0 export packages, 4000 events; OK$" out ||
	die "summary: $(cat out)"
[ ! -s err ] || die "stderr on success: $(cat err)"
# two instances with the same events: two chains, no event "doubled"; the
# whole data directory (spool, file store: notes) too
cv verify var/arch2 var/archive > out || { cat out; die "two instances do not verify"; }
grep -q "^verify: $((nb + 3)) bundles, .* 8000 events; OK$" out || die "two instances: $(cat out)"
cv verify var > out || { cat out; die "the data directory does not verify"; }
grep -q "^note: var/files/.*: not a bundle or tombstone, ignored" out || die "no note for var/files: $(cat out)"
# one bundle alone: a chain that starts late is a note, not a failure
one=$(find var/archive -name '*.tar.zst' | sort | sed -n 5p)
cv verify "$one" > out || { cat out; die "a single bundle does not verify"; }
grep -q "^note: chain starts at batch 5: earlier bundles not given" out || die "no late-start note: $(cat out)"
cv verify -q var/archive > out
[ "$(wc -l < out)" -eq 1 ] || die "--quiet printed findings: $(cat out)"
# usage and unreadable
set +e; cv verify > /dev/null 2>&1; rc=$?; set -e
expect_eq "$rc" 2 "verify without PATH"
set +e; cv verify --frobnicate var/archive > /dev/null 2>&1; rc=$?; set -e
expect_eq "$rc" 2 "verify with an unknown option"
set +e; cv verify var/archive "$WORK/no/such/dir" > out 2> err; rc=$?; set -e
expect_eq "$rc" 1 "verify of a missing PATH"
grep -q "chatvault: verify: $WORK/no/such/dir: No such file or directory" err || die "missing PATH: $(cat err)"
mkdir empty
set +e; cv verify empty > out 2> err; rc=$?; set -e
expect_eq "$rc" 1 "verify of an empty directory"
grep -q "chatvault: verify: empty: no bundle, tombstone or export package found" err || die "empty: $(cat err)"

# --- tampering: each case on a fresh copy; exit 3, the file (and member) named ---
T="$WORK/t"
fresh() { rm -rf "$T"; cp -a var/archive "$T"; chmod -R u+w "$T"; }
b() { find "$T" -name '*.tar.zst' | sort | sed -n "$1p"; }
base() { basename "$1"; }
# expect_fail NAME PATTERN... : verify $T exits 3, stdout+stderr hold every
# PATTERN, stderr holds the contract's line.
expect_fail() {
	name=$1; shift
	set +e; cv verify "$T" > out 2> err; rc=$?; set -e
	cat out err > all
	[ "$rc" = 3 ] || { cat all; die "$name: exit $rc, want 3"; }
	for p in "$@"; do grep -qF -- "$p" all || { cat all; die "$name: output lacks '$p'"; }; done
	grep -q '^chatvault: verify: ' err || { cat all; die "$name: no stderr line"; }
	echo "ok   tamper: $name"
}
# the position of a bundle carrying attachments (the uploads are spread out)
att=0
for i in $(seq 2 "$nb"); do
	f=$(find var/archive -name '*.tar.zst' | sort | sed -n "${i}p")
	if tar --zstd -tf "$f" | grep -q '^files/'; then att=$i; break; fi
done
[ "$att" -gt 0 ] || die "no bundle with an attachment"

fresh; f=$(b 3); python3 "$V" flip-events "$f"
expect_fail "byte flipped in events.jsonl" "$(base "$f"): member events.jsonl: sha256 mismatch"

fresh; f=$(b 3); python3 "$V" manifest-count "$f"
expect_fail "event_count changed in manifest.json" "$(base "$f"): member events.jsonl" \
	"manifest event_count" "$(base "$(b 4)"): member manifest.json: chain broken"

fresh; f=$(b 3)
python3 -c 'import sys; p = sys.argv[1]; d = bytearray(open(p, "rb").read())
d[len(d) // 2] ^= 0xff; open(p, "wb").write(d)' "$f"
expect_fail "raw byte of the compressed file" "chatvault: verify: $f: "

fresh; f=$(b 3); truncate -s 2000 "$f"
expect_fail "truncated bundle" "chatvault: verify: $f: " "runcated"

fresh; f=$(b 4); rm "$f"
expect_fail "middle bundle deleted" "gap: archive staging ids 1201..1600 between $(b 3) and $(b 4)" \
	"$(b 4): member manifest.json: chain broken" "batch 4 not given"

fresh; f=$(b 4); g=$(b 5); mv "$f" "$T/x"; mv "$g" "$f"; mv "$T/x" "$g"
expect_fail "two bundles' names swapped" "$f: file name does not match its manifest" \
	"$g: file name does not match its manifest"

fresh; f=$(b 2); mkdir -p "$T/2026/11/23"; cp "$f" "$T/2026/11/23/"
expect_fail "bundle duplicated under another date" "$T/2026/11/23/$(base "$f")" "doubled events" \
	"archive batch 2 (staging ids 401..800) is also"

fresh; f=$(b 3); python3 "$V" add-line "$f"
expect_fail "event line added, member hash fixed" "$(base "$f"): member events.jsonl: 401 lines" \
	"$(base "$(b 4)"): member manifest.json: chain broken"

fresh; f=$(b "$att"); m=$(python3 "$V" rm-attachment "$f")
expect_fail "attachment member removed" "$(base "$f"): member $m: listed in manifest but absent"

fresh; f=$(b 3); python3 "$V" manifest-first "$f"
expect_fail "manifest.json moved first" "$(base "$f"): member manifest.json: before events.jsonl"

fresh; f=$(b 4); t=$(python3 "$V" tombstone "$f" --break sources); rm "$f"
expect_fail "malformed tombstone" "$t: malformed tombstone: key \"sources\": missing"

fresh; f=$(b 4); t=$(printf '{"format":"chatvault-tombstone/1",' > "${f%.tar.zst}.tombstone.json" &&
	echo "${f%.tar.zst}.tombstone.json"); rm "$f"
expect_fail "tombstone that is not JSON" "$t: malformed tombstone: invalid JSON"

fresh; f=$(b 4); t=$(python3 "$V" tombstone "$f" --bad-manifest); rm "$f"
expect_fail "tombstone with a wrong manifest_sha256" \
	"$(b 4): member manifest.json: chain broken" "not the manifest of batch 4 ($t)"

fresh; f=$(b 4); t=$(python3 "$V" tombstone "$f" --shift 3); rm "$f"
expect_fail "staging-id gap behind a tombstone" "gap: archive staging ids 1201..1203 between $(b 3) and $t"

fresh; f=$(b "$nb"); hole=$(python3 "$V" drop-event "$f")
expect_fail "source.seq hole (last bundle rewritten consistently)" \
	"source ${hole% *}: seq ${hole#* } not in any bundle or tombstone of archive" "$(base "$f")"

# a sound bundle under another's name: batch 3's bytes as batch 2
fresh; f=$(b 2); g=$(b 3); cp "$g" "$f"
expect_fail "bundle replaced by another under its name" "$f: file name does not match its manifest"

# --- passing cases ----------------------------------------------------------------
fresh; f=$(b 4); t=$(python3 "$V" tombstone "$f"); rm "$f"
cv verify "$T" > out 2> err || { cat out err; die "valid tombstone does not verify"; }
grep -qF "known gap: archive batch 4, staging ids 1201..1600, purged 2032-11-21T10:00:00.000Z: retention: finra-4511 2192 days elapsed ($t)" out ||
	die "no known-gap line: $(cat out)"
grep -q "1 tombstones (known gaps).*; OK$" out || die "summary with tombstone: $(cat out)"
echo "ok   pass: tombstone in place of a purged bundle"

fresh; f=$(b 4); t=$(python3 "$V" tombstone "$f")
cv verify "$T" > out || { cat out; die "bundle + tombstone does not verify"; }
grep -qF "note: $t: ignored, its bundle $f is still there" out || die "no ignored-tombstone note: $(cat out)"
echo "ok   pass: bundle and its tombstone (unfinished purge)"

fresh; touch "$T/2026/11/20/archive-0000000000009001-0000000000009400.tar.zst.tmp"
cv verify "$T" > out || { cat out; die "stray .tmp fails"; }
grep -q "^note: .*tar.zst.tmp: not a bundle or tombstone, ignored" out || die "no .tmp note: $(cat out)"
echo "ok   pass: stray .tmp is a note"

# --- export packages ----------------------------------------------------------------
src=$(find var/archive -name '*.tar.zst' | sort | sed -n "${att}p")
python3 "$V" export "$src" pkg.tar.zst
cv verify pkg.tar.zst > out || { cat out; die "synthetic export does not verify"; }
grep -q "1 export packages, 400 events; OK$" out || die "export summary: $(cat out)"
grep -q "source bundles not among the paths given" out || die "no cross-check note: $(cat out)"
cv verify pkg.tar.zst var/archive > out || { cat out; die "export + archive do not verify"; }
grep -q "source bundles not among" out && die "source bundle not compared: $(cat out)"
echo "ok   pass: export package (alone and with its archive)"

python3 "$V" export "$src" flip.tar.zst --flip events.jsonl
set +e; cv verify flip.tar.zst > out 2> err; rc=$?; set -e
expect_eq "$rc" 3 "export with a flipped byte"
grep -q "^chatvault: verify: flip.tar.zst: member events.jsonl: sha256 mismatch" err || die "flip: $(cat out err)"
echo "ok   tamper: export member byte flipped"

python3 "$V" export "$src" reorder.tar.zst --reorder
set +e; cv verify reorder.tar.zst > out 2> err; rc=$?; set -e
expect_eq "$rc" 3 "export with members reordered"
grep -q "^chatvault: verify: reorder.tar.zst: member events.jsonl: events member after files/" err ||
	die "reorder: $(cat out err)"
echo "ok   tamper: export members reordered"

# an export whose source bundle is not the one in the archive
cp -a var/archive other; chmod -R u+w other
python3 "$V" flip-events "$(find other -name "$(basename "$src")")"
set +e; cv verify pkg.tar.zst other > out 2> err; rc=$?; set -e
expect_eq "$rc" 3 "export against a changed source bundle"
grep -qF "pkg.tar.zst: member manifest.json: source bundle $(basename "$src")" out || die "cross: $(cat out)"
echo "ok   tamper: export's source bundle changed"

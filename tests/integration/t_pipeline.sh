# End to end on the embedded spool: emit → ingest → deliver to archive, xml,
# jsonl and eml; every id exactly once in each output, tar/xmllint/MIME read
# what we wrote, staging empty afterwards, quarantine empty.
. "$REPO/tests/integration/lib.sh"
N=${CV_IT_EVENTS:-100000}
cat > cv.conf <<CONF
data_dir = "$WORK/var";
adapters = (
  { name = "archive"; type = "archive"; batch_size = 20000; },
  { name = "xml"; type = "xml"; batch_size = 20000; },
  { name = "jsonl"; type = "jsonl"; batch_size = 20000; },
  { name = "eml"; type = "eml"; batch_size = 20000; }
);
CONF
cv -c cv.conf migrate
gen --count "$N" --rooms 30 --users 300 > events.jsonl
cv -c cv.conf emit events.jsonl
cv -c cv.conf status
cv -c cv.conf ingest --once
staged=$(q "SELECT count(DISTINCT event_id) FROM chatvault.staged_events")
expect_eq "$staged" "$N" "distinct staged ids"
expect_eq "$(q 'SELECT count(*) FROM chatvault.staged_events')" "$N" "staged rows"
# room order: staging order within a room follows emit order (ts is monotonic in the file)
bad=$(q "SELECT count(*) FROM (SELECT ts < lag(ts) OVER (PARTITION BY room ORDER BY staging_id) AS back FROM chatvault.staged_events WHERE room IS NOT NULL) x WHERE back")
expect_eq "$bad" 0 "events out of room order"
cv -c cv.conf deliver --once
cv -c cv.conf status --json > status.json
expect_eq "$(q 'SELECT count(*) FROM chatvault.staged_events')" 0 "staging empty after delivery"
expect_eq "$(q 'SELECT count(*) FROM chatvault.quarantine')" 0 "quarantine empty"
ids_of events.jsonl > want.ids
archive_ids var/archive > got.ids
cmp want.ids got.ids || die "archive ids differ from emitted ids"
for b in $(find var/archive -name '*.tar.zst'); do tar --zstd -tf "$b" > /dev/null || die "tar cannot list $b"; done
check_chain var/archive
find var/xml -name '*.xml' | xargs xmllint --noout || die "xmllint rejected xml output"
python3 - var/xml want.ids <<'PY'
import os, sys, xml.etree.ElementTree as ET
n = 0
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        if f.endswith(".xml") and not f.endswith(".attachments.xml"):
            for m in ET.parse(os.path.join(root, f)).iter():
                if m.tag.endswith("Message") and not m.tag.endswith("FirstMessage"):
                    n += 1
want = sum(1 for _ in open(sys.argv[2]))
if n != want:
    sys.exit("xml has %d messages, want %d" % (n, want))
PY
cat $(find var/jsonl -name '*.jsonl' | sort) | python3 -c 'import json,sys
for l in sys.stdin: print(json.loads(l)["id"])' | sort > jsonl.ids
cmp want.ids jsonl.ids || die "jsonl ids differ"
python3 - var/eml want.ids <<'PY'
import email, json, os, sys
from email import policy
ids = []
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        msg = email.message_from_binary_file(open(os.path.join(root, f), "rb"), policy=policy.default)
        assert msg["From"] and msg["To"] and msg["Date"] and msg["Subject"], f
        for part in msg.walk():
            if part.get_content_type() == "application/json":
                ids += [e["id"] for e in json.loads(part.get_content())]
want = [l.strip() for l in open(sys.argv[2])]
if sorted(ids) != want:
    sys.exit("eml ids differ: %d vs %d" % (len(ids), len(want)))
PY
# catalog rows match bundles on disk
expect_eq "$(q "SELECT count(*) FROM chatvault.batches WHERE adapter='archive' AND state='done'")" \
	"$(find var/archive -name '*.tar.zst' | wc -l)" "catalog rows vs bundles"

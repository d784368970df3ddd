# pchat store (schema/005_pchat.sql, chat/chat_rooms.c) through the `room`
# command and the it_pchat driver: rooms, members, managers, invitations,
# search visibility of private rooms, history order (as an XCCOS bccontext
# reply xmllint accepts), preferences, single-use and expiring file tokens.
. "$REPO/tests/integration/lib.sh"
IT_PCHAT=${IT_PCHAT:-$REPO/build/rel/tests/it_pchat}
itp() { "$IT_PCHAT" "$@"; }

cv migrate
expect_eq "$(q "SELECT count(*) FROM chatvault.schema_migrations WHERE version = 5")" 1 "005 recorded"
expect_eq "$(q "SELECT count(*) FROM pg_tables WHERE schemaname = 'pchat'")" 8 "pchat tables"

# room add prints ma-chan://<domain>/<guid>
ops=$(cv room add "Ops & Dev" --domain example.test --description 'the "ops" room' --topic "deploys")
echo "$ops" | grep -Eq '^ma-chan://example\.test/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' \
	|| die "room add printed '$ops'"
sec=$(cv room add "Secret board" --domain example.test --private)
quiet=$(cv room add "Quiet" --domain example.test --no-log)
other=$(cv room add "Ops & Dev" --domain other.test)
# same name in the same domain (any case): refused, exit 1
set +e; cv room add "ops & DEV" --domain example.test 2>err; rc=$?; set -e
expect_eq "$rc" 1 "duplicate room name exit"
grep -q "exists in example.test" err || die "duplicate name error: $(cat err)"
set +e; cv room add "x" 2>/dev/null; rc=$?; set -e
expect_eq "$rc" 2 "room add without --domain"

cv room list > list.txt
expect_eq "$(wc -l < list.txt)" 4 "room list lines"
grep -q "^$sec	Secret board	private" list.txt || die "private room not listed for the admin"
grep -q "^$quiet	Quiet	public,no-log" list.txt || die "no-log room"
cv room list --json | python3 -c '
import json, sys
rooms = json.load(sys.stdin)
assert len(rooms) == 4, rooms
r = [x for x in rooms if x["name"] == "Ops & Dev" and x["domain"] == "example.test"][0]
assert r["description"] == "the \"ops\" room" and r["topic"] == "deploys" and not r["private"], r'

# membership
cv room member add "$ops" sip:alice@example.test
cv room member add "$ops" sip:alice@example.test            # twice: no error
cv room member add "$ops" sip:bob@example.test
cv room member add "$sec" sip:alice@example.test
cv room member add "$ops" sip:carol@example.test --manager
cv room member list "$ops" > m.txt
printf 'sip:alice@example.test\tmember\nsip:bob@example.test\tmember\nsip:carol@example.test\tmanager\n' > want.txt
cmp m.txt want.txt || die "member list: $(cat m.txt)"
cv room member remove "$ops" sip:bob@example.test
set +e; cv room member remove "$ops" sip:bob@example.test 2>err; rc=$?; set -e
expect_eq "$rc" 1 "removing an absent member"
set +e; cv room member add ma-chan://example.test/nope sip:x@example.test 2>err; rc=$?; set -e
expect_eq "$rc" 1 "member of an unknown room"
grep -q "no room" err || die "unknown room error: $(cat err)"
expect_eq "$(cv room list --json | python3 -c 'import json,sys; print([r["members"] for r in json.load(sys.stdin) if r["uri"] == sys.argv[1]][0])' "$ops")" 1 "ucnt after remove"

# invitations
cv room invite "$sec" sip:dave@example.test
cv room invite "$sec" sip:dave@example.test                 # again: still one
expect_eq "$(itp invitations sip:dave@example.test)" "$sec" "getinv"
expect_eq "$(q "SELECT count(*) FROM pchat.invitations")" 1 "one invitation"

# search: the private room only for its members and managers
expect_eq "$(itp search secret sip:alice@example.test)" "$sec" "member finds the private room"
expect_eq "$(itp search secret sip:mallory@example.test)" "" "non-member must not see the private room"
expect_eq "$(cv room search SECRET --user sip:mallory@example.test)" "" "room search CLI hides it too"
cv room member add "$sec" sip:erin@example.test --manager
expect_eq "$(itp search secret sip:erin@example.test)" "$sec" "manager finds the private room"
expect_eq "$(itp search '' sip:mallory@example.test | wc -l)" 3 "empty criteria lists the visible rooms"
expect_eq "$(itp search '%' sip:alice@example.test)" "" "LIKE wildcards are literal"
expect_eq "$(itp search ' & ' sip:alice@example.test | sort | tr '\n' ' ')" "$(printf '%s\n%s\n' "$ops" "$other" | sort | tr '\n' ' ')" "substring match"

# associations: member rooms, then managed rooms
itp assoc sip:alice@example.test > a.txt
expect_eq "$(cut -d' ' -f1 a.txt | tr '\n' ' ')" "member member " "alice's associations"
itp assoc sip:carol@example.test > a.txt
expect_eq "$(cat a.txt)" "manager $ops" "carol's associations"

# history: last N, in order, ids dense per room; XCCOS output well-formed
for i in 1 2 3 4 5; do itp post "$ops" sip:alice@example.test "line $i <&> \"q\" é" >/dev/null; done
expect_eq "$(itp post "$ops" sip:bob@example.test 'six')" 6 "message id"
expect_eq "$(itp post "$sec" sip:alice@example.test 'first')" 1 "ids are per room"
expect_eq "$(itp post "$quiet" sip:alice@example.test 'gone')" 0 "no-log room keeps nothing"
expect_eq "$(q "SELECT count(*) FROM pchat.messages WHERE room = '$quiet'")" 0 "no-log history"
itp history "$ops" 3 > h.xml
xmllint --noout h.xml
python3 - "$ops" h.xml <<'PY'
import sys, xml.etree.ElementTree as ET
ns = "{urn:parlano:xml:ns:xccos}"
root = ET.parse(sys.argv[2]).getroot()
msgs = root.findall(f"{ns}rpl/{ns}data/{ns}msg")
got = [(m.get("msgid"), m.find(f"{ns}chat").text) for m in msgs]
want = [("4", 'line 4 <&> "q" é'), ("5", 'line 5 <&> "q" é'), ("6", "six")]
assert got == want, got
assert all(m.get("chanUri") == sys.argv[1] for m in msgs)
PY
expect_eq "$(itp history "$ops" 100 | grep -o '<msg ' | wc -l)" 6 "history longer than the room"
set +e; itp post ma-chan://example.test/nope sip:a@example.test x 2>/dev/null; rc=$?; set -e
expect_eq "$rc" 4 "post to an unknown room"

# preferences: base64 in, base64 out, version increments
expect_eq "$(itp pref-get sip:alice@example.test GroupChannels)" "0 -" "no preference yet"
expect_eq "$(itp pref-set sip:alice@example.test GroupChannels PGNoYW5zLz4=)" 1 "first setpref"
expect_eq "$(itp pref-set sip:alice@example.test GroupChannels PGNoYW5zPjxjLz48L2NoYW5zPg==)" 2 "second setpref"
expect_eq "$(itp pref-get sip:alice@example.test GroupChannels)" "2 PGNoYW5zPjxjLz48L2NoYW5zPg==" "getpref"
long=$(head -c 3000 /dev/urandom | base64 -w0)
itp pref-set sip:alice@example.test big "$long" >/dev/null
expect_eq "$(itp pref-get sip:alice@example.test big | cut -d' ' -f2)" "$long" "long preference unwrapped"
set +e; itp pref-set sip:alice@example.test bad 'not base64!' 2>/dev/null; rc=$?; set -e
expect_eq "$rc" 1 "invalid base64 refused"

# file tokens: single use, expiry, kind
tok=$(itp token-issue upload "$ops" sip:alice@example.test q3.pdf)
echo "$tok" | grep -Eq '^[0-9a-f]{32}$' || die "token '$tok'"
guid=${ops##*/}
expect_eq "$(itp token-consume upload "$tok")" "sip:alice@example.test $ops $guid q3.pdf -" "first use"
set +e; itp token-consume upload "$tok" 2>/dev/null; rc=$?; set -e
expect_eq "$rc" 3 "second use refused"
tok2=$(itp token-issue upload "$ops" sip:alice@example.test q4.pdf)
set +e; itp token-consume download "$tok2" 2>/dev/null; rc=$?; set -e
expect_eq "$rc" 3 "upload token used for a download"
q "UPDATE pchat.file_tokens SET expires_at = now() - interval '1 second' WHERE token = '$tok2'"
set +e; itp token-consume upload "$tok2" 2>/dev/null; rc=$?; set -e
expect_eq "$rc" 3 "expired token refused"
expect_eq "$(q "SELECT used_at IS NULL FROM pchat.file_tokens WHERE token = '$tok2'")" t "expired token not marked used"
expect_eq "$(q "SELECT (expires_at - created) = interval '30 minutes' FROM pchat.file_tokens WHERE token = '$tok'")" t "30 minute validity"
set +e; itp token-consume upload 'x; DROP TABLE pchat.rooms' 2>/dev/null; rc=$?; set -e
expect_eq "$rc" 3 "malformed token"
# download needs the file; the token carries its sha256
set +e; itp token-issue download "$ops" sip:bob@example.test q3.pdf 2>/dev/null; rc=$?; set -e
expect_eq "$rc" 4 "download token for a missing file"
sha=$(printf 'pdf bytes' | sha256sum | cut -d' ' -f1)
itp file-record "$tok" "$ops" q3.pdf "$sha" 9 sip:alice@example.test
dtok=$(itp token-issue download "$ops" sip:bob@example.test q3.pdf)
expect_eq "$(itp token-consume download "$dtok")" "sip:bob@example.test $ops $guid q3.pdf $sha" "download token"
set +e; itp token-issue upload ma-chan://example.test/nope sip:a@example.test f 2>/dev/null; rc=$?; set -e
expect_eq "$rc" 4 "upload token for an unknown room"

# concurrent consumption of one token: exactly one winner
tok3=$(itp token-issue upload "$ops" sip:alice@example.test race.bin)
for i in 1 2 3 4 5 6; do ( itp token-consume upload "$tok3" >/dev/null 2>&1 && echo won >> race.txt || true ) & done
wait
expect_eq "$(wc -l < race.txt)" 1 "racing token uses"

# migrate again: nothing to do
cv migrate | grep -q "(0 migrations applied now)" || die "second migrate applied something"
echo "t_pchat_store: ok"

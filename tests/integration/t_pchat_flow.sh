# Persistent chat end to end (issue 7) with SIPp as the client and the real
# queue, store and archive:
#  a. the seed sign-in: REGISTER (digest), provisioning SUBSCRIBE, INVITE
#     to the Lookup service, requri (the least loaded Channel service), BYE,
#     INVITE to that service, getserverinfo, getassociations, bjoin,
#     bccontext, getinv — every reply checked in the scenario;
#  b. "subscribe to a room and post": bob in the room (on the other Channel
#     service) posts, alice finds the room, joins, reads the history, posts;
#     bob gets ntc:join, the grpchat and ntc:part; 413 and 403 posts;
#  c. a file up with a getfutok token and down with a getfdtok token
#     (curl; same sha256); reused and expired tokens refused;
#  d. ingest --once, deliver --once: every join, part, post, history read
#     and file event in the bundle and the Lync XML exactly once, the file
#     under files/<sha256>;
#  e. bad XCCOS (malformed, XXE, billion laughs → 400, unknown → 501), the
#     session still answers, an INFO in a dead dialog → SIP 481.
. "$REPO/tests/integration/lib.sh"
die() { echo "FAILED: $*" >&2; tail -n 25 chatd.log >&2 2>/dev/null; cat ./*_errors.log >&2 2>/dev/null; exit 1; }
PORT=$(free_port); AP=$(free_port); BP=$(free_port)
DOM=example.test
chat_conf
# sipp_run NAME SCENARIO PORT USER [options]: one client run, its logs as NAME_*
sipp_run() {
	n=$1; sc=$2; p=$3; u=$4; shift 4
	cp "$REPO/tests/sipp/$sc.xml" "$n.xml"
	sipp 127.0.0.1:$PORT -sf "$n.xml" -i 127.0.0.1 -p "$p" -s "$u" -m 1 -timeout 20 \
		-timeout_error -set dom $DOM -nostdin -trace_err -trace_logs "$@" > "sipp_$n.out" 2>&1
}
logs() { cat "$1"_*_logs.log 2>/dev/null; }

chat_users alice bob
umask 022
ops=$(cv -c cv.conf room add Ops --domain $DOM --description operations --private)
lobby=$(cv -c cv.conf room add Lobby --domain $DOM --topic "say hi")
secret=$(cv -c cv.conf room add Secret --domain $DOM --private)
cv -c cv.conf room member add "$ops" sip:alice@$DOM > /dev/null
cv -c cv.conf room invite "$secret" sip:alice@$DOM > /dev/null
rdom() { r=${1#ma-chan://}; echo "${r%%/*}"; }
rguid() { echo "${1##*/}"; }

trap 'kill $pid 2>/dev/null || true' EXIT
start_chatd
start=$(date +%s)

# sign-ins (digest) and alice's provisioning document
sipp_run reg_a register $AP alice -au alice -ap alice-pw -set cparams '' || die "alice sign-in"
sipp_run reg_b register $BP bob -au bob -ap bob-pw -set cparams '' || die "bob sign-in"

# b (first half): bob on chan1 joins the Lobby and posts
sipp_run wait_b pc_wait $BP bob -timeout 40 -set svc "sip:chan1@$DOM" -set room "$lobby" \
	-set rdom "$(rdom "$lobby")" -set rguid "$(rguid "$lobby")" &
bobpid=$!
wait_for "bob's post in the history" \
	'[ "$(q "SELECT count(*) FROM pchat.messages WHERE author = '"'sip:bob@$DOM'"'")" = 1 ]'

# a: provisioning, then Lookup → the least loaded service (chan1 has bob: chan2), then sign in there
sipp_run prov_a pc_prov $AP alice || die "provisioning SUBSCRIBE/NOTIFY"
sipp_run lookup_a pc_lookup $AP alice -set svc "sip:ocschat@$DOM" || die "lookup (requri)"
chan=$(logs lookup_a | sed -n 's/^CHAN=//p' | head -n 1)
expect_eq "$chan" "sip:chan2@$DOM" "requri names the least loaded Channel service"
sipp_run signin_a pc_signin $AP alice -set svc "$chan" -set room "$ops" \
	-set rdom "$(rdom "$ops")" -set rguid "$(rguid "$ops")" || die "sign-in flow"
logs signin_a | grep -q "GETINV.*chanUri=\"$secret\"" || die "getinv does not list the invitation to Secret"

# b (second half): alice searches, joins, reads, posts; bob receives
sipp_run post_a pc_post $AP alice -set svc "$chan" -set room "$lobby" \
	-set rdom "$(rdom "$lobby")" -set rguid "$(rguid "$lobby")" -set other "$ops" \
	|| die "alice's search/join/post"
wait $bobpid || { cat sipp_wait_b.out; die "bob did not get ntc:join, the post and ntc:part"; }
expect_eq "$(q "SELECT count(*) FROM pchat.messages WHERE room = '$lobby'")" 2 "Lobby history"

# c: files through tokens from the Channel service
head -c 70000 /dev/urandom > q3.pdf
sha=$(sha256sum q3.pdf | cut -d' ' -f1)
ftok() { # $1 = futok|fdtok → "TOKEN URL"
	rm -f "tok_$1"_*_logs.log
	sipp_run "tok_$1" pc_cmd $AP alice -set svc "$chan" \
		-set cmd "<cmd id=\"cmd:get$1\" seqid=\"1\"><data><ftdb channelUri=\"$lobby\" fileUrl=\"https://files/q3.pdf\"/></data></cmd>" \
		|| die "get$1"
	logs "tok_$1" | grep -o 'token token="[0-9a-f]*" serveruri="[^"]*"' | head -n 1 |
		sed 's/token token="\([0-9a-f]*\)" serveruri="\([^"]*\)"/\1 \2/'
}
code() { m=$1; u=$2; shift 2; curl -sS -o body.out -w '%{http_code}' -X "$m" "$@" "$u" || true; }
set -- $(ftok futok); tok=$1; url=$2
[ -n "$tok" ] && [ -n "$url" ] || die "no upload token in rpl:getftok"
expect_eq "$(code PUT "$url?token=$tok" -T q3.pdf)" 201 "upload with the getfutok token"
expect_eq "$(code PUT "$url?token=$tok" -T q3.pdf)" 403 "reused upload token"
set -- $(ftok fdtok); tok=$1; url=$2
expect_eq "$(code GET "$url?token=$tok")" 200 "download with the getfdtok token"
expect_eq "$(sha256sum body.out | cut -d' ' -f1)" "$sha" "downloaded bytes"
expect_eq "$(code GET "$url?token=$tok")" 403 "reused download token"
set -- $(ftok fdtok); tok=$1; url=$2
q "UPDATE pchat.file_tokens SET expires_at = now() - interval '1 minute' WHERE token = '$tok'"
expect_eq "$(code GET "$url?token=$tok")" 403 "expired download token"

# e: bad input, then the session still works; a dead dialog gets 481
NS='xmlns="urn:parlano:xml:ns:xccos"'
xxe='<?xml version="1.0"?><!DOCTYPE xccos [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'"<xccos ver=\"1\" envid=\"3002\" $NS><cmd id=\"cmd:chansrch\" seqid=\"1\"><data><qib qtype=\"BYNAME\" criteria=\"&xxe;\"/></data></cmd></xccos>"
lol='lollollollollollollollollollol'
laughs="<?xml version=\"1.0\"?><!DOCTYPE xccos [<!ENTITY a \"$lol\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\"><!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">]><xccos ver=\"1\" envid=\"3003\" $NS><cmd id=\"cmd:chansrch\" seqid=\"1\"><data><qib qtype=\"BYNAME\" criteria=\"&d;\"/></data></cmd></xccos>"
sipp_run bad_a pc_bad $AP alice -set svc "$chan" -set xxe "$xxe" -set laughs "$laughs" \
	|| die "bad-input scenario"
! logs bad_a | grep -q 'root:' || die "an external entity was read"
! logs bad_a | grep -q 'lollollollollollollollollollollollol' || die "an entity was expanded"
kill -0 $pid || die "chatd died"
echo "flows took $(( $(date +%s) - start ))s"

# graceful stop: everything accepted is durable
kill -TERM $pid
wait $pid || die "chatd exit status $? on SIGTERM"
trap - EXIT

# d: staged, then archived and in the Lync XML, each once
cv -c cv.conf ingest --once > /dev/null
cv -c cv.conf deliver --once > /dev/null
ev() { # type user room [text] → count in the archive bundles
	for b in $(find var/archive -name '*.tar.zst' | sort); do tar --zstd -xOf "$b" events.jsonl; done |
		python3 -c 'import json,sys
t,u,r=sys.argv[1:4]; x=sys.argv[4] if len(sys.argv)>4 else None
print(sum(1 for l in sys.stdin if l.strip() and (lambda e: e["type"]==t and e["user"]==u and e.get("room")==r and (x is None or e.get("text")==x))(json.loads(l))))' "$@"
}
A=sip:alice@$DOM; B=sip:bob@$DOM
expect_eq "$(ev chat.post $A "$lobby" 'hello room & all, from alice')" 1 "alice's post archived once"
expect_eq "$(ev chat.post $B "$lobby" 'hello from bob')" 1 "bob's post archived once"
expect_eq "$(ev chat.join $A "$ops")" 1 "alice joined Ops (bjoin)"
expect_eq "$(ev chat.join $A "$lobby")" 1 "alice joined the Lobby"
expect_eq "$(ev chat.join $B "$lobby")" 1 "bob joined the Lobby"
expect_eq "$(ev chat.part $A "$lobby" part)" 1 "alice parted the Lobby (cmd:part)"
expect_eq "$(ev chat.part $A "$ops" bye)" 1 "alice parted Ops with her BYE"
expect_eq "$(ev chat.part $B "$lobby" bye)" 1 "bob parted with his BYE"
expect_eq "$(ev chat.backchat $A "$ops")" 1 "alice read Ops' history"
expect_eq "$(ev chat.backchat $A "$lobby")" 1 "alice read the Lobby's history"
expect_eq "$(ev chat.file.upload $A "$lobby")" 1 "upload event"
expect_eq "$(ev chat.file.download $A "$lobby")" 1 "download event (refused tokens: none)"
expect_eq "$(ev chat.post $A "$ops")" 0 "the refused posts are not archived"
for b in $(find var/archive -name '*.tar.zst'); do tar --zstd -tf "$b"; done | grep -qx "files/$sha" \
	|| die "files/$sha not in the bundle"
for b in $(find var/archive -name '*.tar.zst'); do tar --zstd -xOf "$b" events.jsonl; done |
	grep '"chat.file.upload"' | grep -q "\"name\":\"q3.pdf\",\"size\":70000,\"sha256\":\"$sha\"" \
	|| die "upload event's files[] wrong"
find var/xml -name '*.xml' | xargs xmllint --noout || die "xmllint rejected the XML output"
expect_eq "$(cat $(find var/xml -name '*.xml') | grep -c 'hello room &amp; all, from alice')" 1 \
	"alice's post once in the Lync XML"
for t in JOIN PART CHAT BACKCHAT FILEUPLOAD FILEDOWNLOAD; do
	cat $(find var/xml -name '*.xml') | grep -q "type=\"$t\"" || die "no $t message in the Lync XML"
done
expect_eq "$(q "SELECT count(DISTINCT event_id) = count(*) FROM chatvault.staged_events")" t "no event twice"
echo "pchat flow: ok"

# chatd end to end with real SIP clients (SIPp) and the real queue:
# digest sign-in (401 → 200, wrong password 403, not permitted 403),
# provisioning SUBSCRIBE/NOTIFY (document checked by SIPp and xmllint),
# MESSAGE alice → bob received by bob's endpoint, then `ingest --once` and
# the im.* events staged exactly once; malformed SIP table; SIGTERM ends
# the sessions (im.session.end "shutdown") and exits 0.
. "$REPO/tests/integration/lib.sh"
die() { echo "FAILED: $*" >&2; tail -n 15 chatd.log >&2 2>/dev/null; cat ./*_errors.log >&2 2>/dev/null; exit 1; }
wait_for() { # $1 = description, $2 = shell condition
	i=0
	until eval "$2"; do
		i=$((i + 1)); [ $i -lt 80 ] || { cat chatd.log; die "timeout waiting for $1"; }
		sleep 0.25
	done
}
PORT=$(free_port); BOBP=$(free_port); ALIP=$(free_port)
DOM=example.test
cat > cv.conf <<CONF
data_dir = "$WORK/var";
log_level = "info";
chat = { listen = "127.0.0.1:$PORT"; domain = "$DOM"; max_message_size = 4096; max_headers = 20; };
CONF
sipp_run() { # $1 = scenario, rest = sipp options
	sc=$1; shift
	sipp 127.0.0.1:$PORT -sf "$REPO/tests/sipp/$sc.xml" -i 127.0.0.1 -m 1 -timeout 15 \
		-timeout_error -set dom $DOM -nostdin -trace_err -trace_logs "$@" > "sipp_$sc.out" 2>&1
}
cv -c cv.conf migrate > /dev/null
chat_users alice bob
printf 'carol-pw\n' > carol.pw
cv -c cv.conf user add sip:carol@$DOM --password-file carol.pw --no-im > /dev/null
chat_users dave
cv -c cv.conf user disable sip:dave@$DOM > /dev/null

start_chatd

# wrong password: 401 then 403; not permitted (no IM, disabled): 403 with reason
sipp_run register_bad -s alice -au alice -ap wrong -p $(free_port) || die "wrong password not 403"
sipp_run register_bad -s carol -au carol -ap carol-pw -p $(free_port) || die "--no-im user not 403"
grep -q "carol@example.test: 403 instant messaging not enabled" chatd.log || die "no-IM refusal not logged with its reason"
sipp_run register_bad -s dave -au dave -ap dave-pw -p $(free_port) || die "disabled user not 403"
grep -q "dave@example.test: 403 user disabled" chatd.log || die "disabled refusal not logged with its reason"

# bob signs in from BOBP, then his endpoint listens there for the MESSAGE
sipp_run register -s bob -au bob -ap bob-pw -p $BOBP -set cparams '' || die "bob sign-in"
sipp 127.0.0.1:$PORT -sf "$REPO/tests/sipp/bob_uas.xml" -i 127.0.0.1 -p $BOBP -m 1 -timeout 20 \
	-timeout_error -nostdin -trace_err > /dev/null 2>&1 &
bobpid=$!
sleep 0.5
# alice: sign in, provisioning, MESSAGE to bob (200 once durable), sign out
sipp_run alice -s alice -au alice -ap alice-pw -p $ALIP -set to bob \
	|| { cat *alice*err* 2>/dev/null; die "alice scenario"; }
wait $bobpid || die "bob did not receive the MESSAGE"
# the provisioning document is well-formed XML
sed -n '/<?xml/,/<\/provisionGroupList>/p' ./*alice*_logs.log > prov.xml
xmllint --noout prov.xml || die "provisioning document not well-formed"
grep -q 'sip:ocschat@example.test' prov.xml || die "pool URI missing"

# malformed / hostile input: each answered (or dropped) on its own
python3 - "$PORT" <<'PY' || die "malformed SIP table"
import socket, sys
port = int(sys.argv[1])
def udp(data, want):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.5)
    s.bind(("127.0.0.1", 0)); lp = s.getsockname()[1]
    s.sendto(data.replace(b"LP", str(lp).encode()), ("127.0.0.1", port))
    try:
        got = s.recv(65536).split(b"\r\n")[0].decode()
    except socket.timeout:
        got = None
    ok = (got is None) if want is None else (got is not None and got.startswith("SIP/2.0 " + want))
    print(("ok  " if ok else "BAD ") + repr(data[:40]) + " -> " + repr(got) + " want " + repr(want))
    return ok
n = [0]
def req(method, extra=b"", body=b"", clen=None, to=b"sip:alice@example.test"):
    n[0] += 1
    h = (method + b" " + to + b" SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:LP;branch=z9hG4bK" + str(n[0]).encode() + method +
         b"\r\nFrom: <sip:alice@example.test>;tag=1\r\nTo: <" + to + b">\r\nCall-ID: x" + str(n[0]).encode() +
         b"\r\nCSeq: 1 " + method + b"\r\nMax-Forwards: 70\r\n" + extra)
    return h + b"Content-Length: " + str(len(body) if clen is None else clen).encode() + b"\r\n\r\n" + body
table = [
    (b"\x00\x01garbage that is not SIP at all\r\n\r\n", None),
    (req(b"FOO"), "501"),
    (req(b"INFO"), "501"),
    (req(b"REGISTER", to=b"sip:nobody@example.test"), "404"),
    (req(b"REGISTER", extra=b"Authorization: Digest username=\"alice\", realm=\"example.test\", nonce=\"00000000deadbeef\", uri=\"sip:example.test\", response=\"0123456789abcdef0123456789abcdef\"\r\n"), "401"),
    (req(b"REGISTER", extra=b"Authorization: Digest garbage\r\n"), "400"),
    (req(b"MESSAGE", body=b"x" * 5000, to=b"sip:bob@example.test"), "513"),
    (req(b"MESSAGE", extra=b"".join(b"X-H%d: v\r\n" % i for i in range(30)), to=b"sip:bob@example.test"), "400"),
    (req(b"MESSAGE", body=b"hi", clen=10, to=b"sip:bob@example.test"), "400"),
    (req(b"MESSAGE", body=b"hi", to=b"sip:bob@example.test"), "401"),   # not a registered flow: digest
    (req(b"MESSAGE", body=b"hi", to=b"sip:bob@example.test").replace(b"sip:alice@example.test>;tag", b"sip:mallory@example.test>;tag"), "403"),
    (req(b"SUBSCRIBE", extra=b"Event: vnd-microsoft-provisioning-v2\r\n"), "401"),
    (req(b"REGISTER").replace(b"CSeq: 1 REGISTER", b"CSeq: 1 INVITE"), "400"),
    (req(b"REGISTER").replace(b"Call-ID", b"X-Call-ID"), "400"),
    (b"REGISTER sip:alice@example.test SIP/2.0\r\nFrom: <sip:a@b>\r\n\r\n", None),
    (req(b"SUBSCRIBE", extra=b"Event: presence\r\n"), "489"),
    (req(b"OPTIONS"), "200"),
]
ok = all([udp(d, w) for d, w in table])
sys.exit(0 if ok else 1)
PY
kill -0 $pid || die "chatd died on malformed input"
# and a normal sign-in still works
sipp_run register -s bob -au bob -ap bob-pw -p $(free_port) -set cparams '' || die "sign-in after the malformed table"

# SIGTERM: sessions end with "shutdown", exit 0
kill -TERM $pid
wait $pid || die "chatd exit status $? on SIGTERM"
grep -q "stopped:" chatd.log || die "no graceful stop"

cv -c cv.conf ingest --once > /dev/null
expect_eq "$(q "SELECT count(*) FROM chatvault.staged_events WHERE type = 'im.message' AND body::json->>'user' = 'sip:alice@$DOM' AND body::json->>'to' = 'sip:bob@$DOM' AND body::json->>'text' LIKE 'hello bob, from alice%'")" 1 "im.message staged once"
expect_eq "$(q "SELECT count(*) FROM chatvault.staged_events WHERE type = 'im.session.start' AND body::json->>'user' = 'sip:alice@$DOM'")" 1 "alice session start"
expect_eq "$(q "SELECT count(*) FROM chatvault.staged_events WHERE type = 'im.session.end' AND body::json->>'user' = 'sip:alice@$DOM' AND body::json->>'text' = 'logout'")" 1 "alice session end (logout)"
expect_eq "$(q "SELECT count(*) FROM chatvault.staged_events WHERE type = 'im.session.end' AND body::json->>'text' = 'shutdown'")" 2 "bob's two sessions end at shutdown"
expect_eq "$(q "SELECT count(DISTINCT event_id) FROM chatvault.staged_events")" "$(q "SELECT count(*) FROM chatvault.staged_events")" "no event twice"
! grep -q 'alice-pw\|bob-pw' chatd.log || die "a password reached the log"
echo "chatd: ok"

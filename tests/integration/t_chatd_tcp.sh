# chatd over TCP: bob signs in over TCP with a Contact that does not say
# ;transport=tcp and stays on that connection; alice (SIPp -t t1) signs in
# over TCP, gets the provisioning NOTIFY, sends a MESSAGE answered 200 once
# archived, and chatd forwards it to bob on the connection he registered
# over (the flow, not the Contact's host and default transport).  A replayed
# Authorization gets a fresh challenge (nonce-count window).  A MESSAGE from
# outside a registered flow must authenticate with digest.
. "$REPO/tests/integration/lib.sh"
die() { echo "FAILED: $*" >&2; tail -n 20 chatd.log bob.out >&2 2>/dev/null; cat ./*_errors.log >&2 2>/dev/null; exit 1; }
PORT=$(free_port)
DOM=example.test
chat_conf
chat_users alice bob
start_chatd

python3 "$REPO/tests/integration/sipc.py" --server 127.0.0.1:$PORT --tcp --user bob \
	--password bob-pw --domain $DOM --wait 20 listen > bob.out 2>&1 &
bobpid=$!
wait_for "bob signed in over TCP" 'grep -q "^listening on TCP" bob.out'
grep -q "REGISTER.*(TCP)\|session start: sip:bob@$DOM" chatd.log || die "bob's session"
sipp 127.0.0.1:$PORT -t t1 -sf "$REPO/tests/sipp/alice.xml" -i 127.0.0.1 -p $(free_port) -m 1 \
	-timeout 15 -timeout_error -set dom $DOM -set to bob -nostdin -trace_err -trace_logs \
	-s alice -au alice -ap alice-pw > sipp_alice.out 2>&1 || die "alice over TCP"
wait $bobpid || die "bob did not get the MESSAGE on his TCP connection: $(cat bob.out)"
grep -q "^MESSAGE from <sip:alice@$DOM>.*: hello bob, from alice" bob.out || die "MESSAGE content: $(cat bob.out)"
grep -q '<persistentChatEnabled>true' ./*alice*_logs.log || die "provisioning NOTIFY over TCP"
# MESSAGE from outside any registered flow (a fresh UDP port): challenged,
# accepted with alice's digest, refused with a wrong password
sipc_msg() { python3 "$REPO/tests/integration/sipc.py" --server 127.0.0.1:$PORT --user alice \
	--domain $DOM --to bob "$@" message; }
expect_eq "$(sipc_msg --password alice-pw --text 'from elsewhere')" "SIP/2.0 200 OK" "MESSAGE with digest from an unregistered flow"
expect_eq "$(sipc_msg --password wrong --text 'forged')" "SIP/2.0 403 Bad Credentials" "MESSAGE with a wrong password"
grep -q "MESSAGE from .* 403 digest response wrong" chatd.log || die "MESSAGE digest refusal not logged"
# a replayed Authorization (same nonce, same nc) is not accepted: a fresh
# challenge with stale=true (a real client just answers it)
out=$(python3 "$REPO/tests/integration/sipc.py" --server 127.0.0.1:$PORT --tcp --user alice \
	--password alice-pw --domain $DOM --replay register)
expect_eq "$(echo "$out" | sed -n 1p)" "SIP/2.0 200 OK" "alice signs in again"
expect_eq "$(echo "$out" | sed -n 2p)" "replay: SIP/2.0 401 Unauthorized" "replayed Authorization"
echo "$out" | grep -q '^replay: WWW-Authenticate: Digest .*stale=true' || die "replay not answered stale=true: $out"
grep -q "401 nonce count not above the last one" chatd.log || die "replay not logged"
kill -TERM $pid
wait $pid || die "chatd exit status $? on SIGTERM"

cv -c cv.conf ingest --once > /dev/null
expect_eq "$(q "SELECT count(*) FROM chatvault.staged_events WHERE type = 'im.message' AND body::json->>'user' = 'sip:alice@$DOM' AND body::json->>'to' = 'sip:bob@$DOM' AND body::json->>'text' LIKE 'hello bob, from alice%'")" 1 "im.message over TCP staged once"
expect_eq "$(q "SELECT string_agg(body::json->>'text', ',') FROM chatvault.staged_events WHERE type = 'im.message' AND body::json->>'text' NOT LIKE 'hello bob%'")" "from elsewhere" "the digest-authorised MESSAGE archived, the forged one not"
expect_eq "$(q "SELECT count(*) FROM chatvault.staged_events WHERE type = 'im.session.start'")" 3 "three sessions started"
expect_eq "$(q "SELECT string_agg(body::json->>'text', ',' ORDER BY body::json->>'text') FROM chatvault.staged_events WHERE type = 'im.session.end'")" "logout,shutdown,shutdown" "alice logged out (then back), bob and alice at shutdown"
echo "chatd tcp: ok"

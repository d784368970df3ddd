# chatd push notifications (the Lync mobility flow, seed 003; docs/CHAT.md
# "Push"): bob is registered only from a mobile client (Contact parameter
# ;mobility="mobile") that has not refreshed within im.idle_timeout, so it is
# not reachable; alice's MESSAGE is archived, answered 202 Accepted, and a
# JSON document is POSTed to the push gateway — a local HTTP listener that
# answers 503 to the first POST and 200 to the next: the notification is
# retried and delivered, its id is the archived im.message's id.
. "$REPO/tests/integration/lib.sh"
die() { echo "FAILED: $*" >&2; tail -n 20 chatd.log gw.log >&2 2>/dev/null; cat ./*_errors.log >&2 2>/dev/null; exit 1; }
PORT=$(free_port); HP=$(free_port)
DOM=example.test

# the gateway: every POST body appended to posts.jsonl with the answer given
python3 - "$HP" > gw.log 2>&1 <<'PY' &
import http.server, json, sys
n = [0]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        n[0] += 1
        code = 503 if n[0] == 1 else 200
        with open("posts.jsonl", "a") as f:
            f.write(json.dumps({"status": code, "path": self.path,
                                "ctype": self.headers.get("Content-Type"),
                                "doc": json.loads(body)}) + "\n")
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
gwpid=$!
trap 'kill $gwpid 2>/dev/null || true' EXIT

cat > cv.conf <<CONF
data_dir = "$WORK/var";
log_level = "info";
chat = { listen = "127.0.0.1:$PORT"; domain = "$DOM";
	 push_url = "http://127.0.0.1:$HP/push/v1?token=s3cret"; push_backoff_ms = 200; };
im = { idle_timeout = 1; };
CONF
cv -c cv.conf migrate > /dev/null
chat_users alice bob
start_chatd
sipp_run() { # $1 = scenario, rest = sipp options
	sc=$1; shift
	sipp 127.0.0.1:$PORT -sf "$REPO/tests/sipp/$sc.xml" -i 127.0.0.1 -m 1 -timeout 15 \
		-timeout_error -set dom $DOM -nostdin -trace_err "$@" > "sipp_$sc.out" 2>&1
}

sipp_run register -s bob -au bob -ap bob-pw -p $(free_port) -set cparams ';mobility="mobile"' \
	|| die "bob's mobile sign-in"
grep -q "session start: sip:bob@$DOM .*(mobile)" chatd.log || die "Contact ;mobility=\"mobile\" not seen as mobile"
sleep 1.5     # past im.idle_timeout: the phone is out of reach
sipp_run message_push -s alice -au alice -ap alice-pw -p $(free_port) -set to bob \
	|| die "alice's MESSAGE not answered 202"
wait_for "push delivered" 'grep -q "push .* to sip:bob@$DOM: delivered after 2 attempts" chatd.log'
kill -TERM $pid
wait $pid || die "chatd exit status $? on SIGTERM"

cv -c cv.conf ingest --once > /dev/null
id=$(q "SELECT event_id FROM chatvault.staged_events WHERE type = 'im.message' AND body::json->>'user' = 'sip:alice@$DOM' AND body::json->>'to' = 'sip:bob@$DOM'")
[ -n "$id" ] || die "im.message not staged"
python3 - "$id" "$DOM" <<'PY' || die "push documents"
import json, sys
want_id, dom = sys.argv[1], sys.argv[2]
posts = [json.loads(l) for l in open("posts.jsonl")]
assert [p["status"] for p in posts] == [503, 200], posts
for p in posts:
    d = p["doc"]
    assert p["path"] == "/push/v1?token=s3cret", p
    assert p["ctype"].startswith("application/json"), p
    assert d["to"] == "sip:bob@" + dom, d
    assert d["from"] == "sip:alice@" + dom, d
    assert d["id"] == want_id, (d["id"], want_id)
    assert d["type"] == "im", d
print("push: %d POSTs, id %s" % (len(posts), want_id))
PY
expect_eq "$(q "SELECT count(*) FROM chatvault.staged_events WHERE type = 'im.message'")" 1 "one im.message"
! grep -q 's3cret\|/push/v1' chatd.log || die "the gateway URL's path or token reached the log"
! grep -q 'push me to' chatd.log || die "message text reached the log"
echo "chatd push: ok"

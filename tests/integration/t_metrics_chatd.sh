# `chatd --metrics`: chatd's own /metrics (chatvault_chat_* families,
# chatvault_up with chatd only, no staging figures) counting what real SIP
# clients (sipc.py) did: two sessions, one IM answered 200 once durable, a
# wrong password refused 403 (the digest challenges before it not counted);
# /healthz 200 while the loop runs; a busy port is refused before chatd
# starts.
. "$REPO/tests/integration/lib.sh"
die() { echo "FAILED: $*" >&2; tail -n 20 chatd.log bob.out >&2 2>/dev/null; exit 1; }
PORT=$(free_port); MP=$(free_port)
DOM=example.test
chat_conf
chat_users alice bob

# a taken metrics port: exit 1 with the reason, and no SIP socket bound
python3 -c 'import socket,time,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(3)' "$MP" &
holder=$!; sleep 0.5
set +e; cv -c cv.conf chatd --metrics "127.0.0.1:$MP" 2>err; rc=$?; set -e
kill $holder 2>/dev/null || true; wait $holder 2>/dev/null || true
expect_eq "$rc" 1 "chatd --metrics on a busy port"
grep -q "cannot listen: Address already in use" err || die "busy port not explained: $(cat err)"

start_chatd chatd.log --metrics "127.0.0.1:$MP"
expect_eq "$(fetch "http://127.0.0.1:$MP/healthz" h.txt)" 200 "/healthz of a running chatd"
expect_eq "$(cat h.txt)" "ok" "/healthz body"

sipc() { python3 "$REPO/tests/integration/sipc.py" --server 127.0.0.1:$PORT --domain $DOM "$@"; }
# bob registers and waits for one MESSAGE; alice registers from elsewhere
sipc --user bob --password bob-pw --wait 20 listen > bob.out 2>&1 &
bobpid=$!
wait_for "bob signed in" 'grep -q "^listening on UDP" bob.out'
expect_eq "$(sipc --user alice --password alice-pw register)" "SIP/2.0 200 OK" "alice signs in"
expect_eq "$(sipc --user alice --password wrong register)" "SIP/2.0 403 Bad Credentials" "a wrong password"
expect_eq "$(sipc --user alice --password alice-pw --to bob --text 'hello, metrics' message)" \
	"SIP/2.0 200 OK" "alice's MESSAGE to bob"
wait $bobpid || die "bob did not get the MESSAGE: $(cat bob.out)"

expect_eq "$(fetch "http://127.0.0.1:$MP/metrics" m.txt)" 200 "/metrics status"
python3 - "$REPO/tests/integration" m.txt <<'PY' || die "chatd metrics: $(cat m.txt)"
import sys
sys.path.insert(0, sys.argv[1])
import promtext
m = promtext.Scrape(sys.argv[2])
assert m.get("chatvault_chat_sessions") == 2, m.get("chatvault_chat_sessions")
assert m.get("chatvault_chat_channel_sessions") == 0
assert m.get("chatvault_chat_messages_total", kind="im") == 1
assert m.get("chatvault_chat_messages_total", kind="post") == 0
assert m.get("chatvault_chat_refusals_total", code="403") == 1
assert not m.has("chatvault_chat_refusals_total", code="401"), "a digest challenge counted"
assert m.get("chatvault_chat_producer_busy_total") == 0
ups = [(s[1]["component"], s[2]) for s in m.samples if s[0] == "chatvault_up"]
assert ups == [("chatd", 1)], ups
for name in ("chatvault_staged_events", "chatvault_queue_depth", "chatvault_events_ingested_total"):
    assert not m.has(name), name + " in chatd's metrics"
assert m.types["chatvault_chat_refusals_total"] == "counter"
print("chatd metrics ok: %d samples" % len(m.samples))
PY
if command -v promtool > /dev/null; then
	promtool check metrics < m.txt || die "promtool rejects chatd's /metrics"
else
	echo "(promtool not installed: checked by the python parser only)"
fi
expect_eq "$(fetch "http://127.0.0.1:$MP/healthz" h.txt)" 200 "/healthz after the traffic"

kill -TERM $pid
wait $pid || die "chatd exit status $? on SIGTERM"
grep -q "stopped:" chatd.log || die "no graceful stop"
echo "chatd metrics: ok"

# chatd IM session limits (BlackBerry Collaboration Service rules, seeds
# 000/001; docs/CHAT.md "Limits"), through real sign-ins and the real queue:
#   A. im.max_sessions = 2: two fresh sessions → a third sign-in gets
#      "503 Server Busy" with Retry-After; once one session is idle past
#      im.idle_timeout the third gets in and the idle one is logged out
#      (im.session.end "idle"); im.inactivity_timeout then logs the silent
#      ones out (im.session.end "inactivity").
#   B. no maximum, server capacity (chat.max_connections = 2) exhausted →
#      "503 Failed".
# Then `ingest --once` and exact counts and reasons of the staged events.
. "$REPO/tests/integration/lib.sh"
die() { echo "FAILED: $*" >&2; tail -n 20 chatd*.log >&2 2>/dev/null; exit 1; }
DOM=example.test
SRV="sip:chatd@$DOM"
sipc() { python3 "$REPO/tests/integration/sipc.py" --server "127.0.0.1:$PORT" --domain $DOM "$@"; }
# sign_in USER LPORT → the final status line (and Retry-After, if any)
sign_in() { sipc --user "$1" --password "$1-pw" --lport "$2" --header Retry-After register; }
stop_chatd() {
	kill -TERM $pid
	wait $pid || die "chatd exit status $? on SIGTERM"
}

umask 077
PORT=$(free_port)
cat > cv.conf <<CONF
data_dir = "$WORK/var";
log_level = "info";
chat = { listen = "127.0.0.1:$PORT"; domain = "$DOM"; };
im = { max_sessions = 2; idle_timeout = 3; inactivity_timeout = 8; };
CONF
cv -c cv.conf migrate > /dev/null
chat_users u1 u2 u3 f1 f2 f3

# ---- A: maximum, idle eviction, inactivity --------------------------------
start_chatd chatd_a.log
L1=$(free_port); L2=$(free_port); L3=$(free_port)
expect_eq "$(sign_in u1 $L1)" "SIP/2.0 200 OK" "u1 sign-in"
expect_eq "$(sign_in u2 $L2)" "SIP/2.0 200 OK" "u2 sign-in"
out=$(sign_in u3 $L3)
expect_eq "$(echo "$out" | head -n 1)" "SIP/2.0 503 Server Busy" "third sign-in at im.max_sessions, nobody idle"
echo "$out" | grep -Eq '^Retry-After: [0-9]+$' || die "503 Server Busy without Retry-After: $out"
# u1 goes idle (no refresh for > idle_timeout); u2 refreshes just before u3 tries
sleep 3.3
expect_eq "$(sign_in u2 $L2)" "SIP/2.0 200 OK" "u2 refresh"
expect_eq "$(sign_in u3 $L3)" "SIP/2.0 200 OK" "third sign-in once u1 is idle"
grep -q "session end: sip:u1@$DOM .*(idle)" chatd_a.log || die "idle u1 not logged out"
# nobody refreshes now: both remaining sessions end on inactivity (8 s)
wait_for "inactivity logouts" '[ "$(grep -c "(inactivity)" chatd_a.log)" -eq 2 ]' 60
stop_chatd

# ---- B: no maximum, capacity exhausted → Failed ----------------------------
PORT=$(free_port)
cat > cv.conf <<CONF
data_dir = "$WORK/var";
log_level = "info";
chat = { listen = "127.0.0.1:$PORT"; domain = "$DOM"; max_connections = 2; };
CONF
start_chatd chatd_b.log
expect_eq "$(sign_in f1 $(free_port))" "SIP/2.0 200 OK" "f1 sign-in"
expect_eq "$(sign_in f2 $(free_port))" "SIP/2.0 200 OK" "f2 sign-in"
out=$(sign_in f3 $(free_port))
expect_eq "$(echo "$out" | head -n 1)" "SIP/2.0 503 Failed" "sign-in with no maximum at capacity"
stop_chatd

# ---- the compliance trail ----------------------------------------------------
cv -c cv.conf ingest --once > /dev/null
ev() { # $1 = type, $2 = extra condition → "user text" lines, sorted
	q "SELECT body::json->>'user', coalesce(body::json->>'text', '-') FROM chatvault.staged_events
	   WHERE type = '$1' ${2:-} ORDER BY 1, 2" | tr '|' ' '
}
expect_eq "$(ev im.session.start | tr '\n' ,)" \
	"sip:f1@$DOM -,sip:f2@$DOM -,sip:u1@$DOM -,sip:u2@$DOM -,sip:u3@$DOM -," "session starts (refused sign-ins start nothing)"
expect_eq "$(ev im.session.end | tr '\n' ,)" \
	"sip:f1@$DOM shutdown,sip:f2@$DOM shutdown,sip:u1@$DOM idle,sip:u2@$DOM inactivity,sip:u3@$DOM inactivity," \
	"session ends with their reasons"
expect_eq "$(q "SELECT count(*) FROM chatvault.staged_events WHERE type LIKE 'im.session.%' AND body::json->>'to' <> '$SRV'")" 0 \
	"session events are addressed to $SRV"
expect_eq "$(q "SELECT count(DISTINCT event_id) FROM chatvault.staged_events")" "$(q "SELECT count(*) FROM chatvault.staged_events")" "no event twice"
! grep -q -- '-pw' chatd_a.log chatd_b.log || die "a password reached the log"
echo "chatd limits: ok"

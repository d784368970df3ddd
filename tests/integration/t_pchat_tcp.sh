# Persistent chat over TCP (PCHAT.md §5 "Sessions"): carol (SIPp -t t1)
# signs in, INVITEs a Channel service with a Contact that does not say
# ;transport=tcp and joins a room, all on one TCP connection; bob (UDP)
# joins and posts.  The server's INFOs to carol — rpl:join, ntc:join, the
# fan-out grpchat — must come over her connection (the flow the INVITE came
# in on), as a forwarded MESSAGE does, not to her Contact's UDP address.
. "$REPO/tests/integration/lib.sh"
die() { echo "FAILED: $*" >&2; tail -n 25 chatd.log >&2 2>/dev/null; cat ./*_errors.log sipp_*.out >&2 2>/dev/null; exit 1; }
PORT=$(free_port); BP=$(free_port); CP=$(free_port)
DOM=example.test
chat_conf
chat_users bob carol
umask 022
room=$(cv -c cv.conf room add Wire --domain $DOM)
r=${room#ma-chan://}; rdom=${r%%/*}; rguid=${room##*/}

trap 'kill $pid 2>/dev/null || true' EXIT
start_chatd

sipp 127.0.0.1:$PORT -t t1 -sf "$REPO/tests/sipp/pc_tcp.xml" -i 127.0.0.1 -p "$CP" -s carol \
	-au carol -ap carol-pw -m 1 -timeout 20 -timeout_error -set dom $DOM -set svc "sip:chan1@$DOM" \
	-set rdom "$rdom" -set rguid "$rguid" -aa -nostdin -trace_err -trace_logs \
	> sipp_carol.out 2>&1 &
carolpid=$!
wait_for "carol joined over TCP" "grep -q 'sip:carol@$DOM joined $room' chatd.log"

python3 "$REPO/tests/integration/sipc.py" --server 127.0.0.1:$PORT --user bob --password bob-pw \
	--domain $DOM --lport "$BP" register > /dev/null || die "bob's sign-in"
sed 's/@M@/1/' "$REPO/bench/sipp/pc_poster.xml" > poster.xml
sipp 127.0.0.1:$PORT -sf poster.xml -i 127.0.0.1 -p "$BP" -s bob -m 1 -timeout 20 -timeout_error \
	-set dom $DOM -set svc "sip:chan2@$DOM" -set room "$room" -set rdom "$rdom" -set rguid "$rguid" \
	-aa -nostdin -trace_err > sipp_bob.out 2>&1 || die "bob's join and post"
wait $carolpid || die "carol did not get the fan-out over her TCP connection"
grep -q "^FAN <grpchat id=\"grpchat\"[^>]*chanUri=\"$room\"[^>]*author=\"sip:bob@$DOM\".*<chat>bench post [0-9]* from bob</chat>" \
	./pc_tcp_*_logs.log || die "fan-out content: $(cat ./pc_tcp_*_logs.log)"
! grep -q "INFO to sip:carol.* not sent\|server requests follow its Contact" chatd.log || die "chatd could not reach carol's flow"
kill -TERM $pid
wait $pid || die "chatd exit status $? on SIGTERM"
trap - EXIT
echo "pchat tcp: ok"

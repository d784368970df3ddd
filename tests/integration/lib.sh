# lib.sh — helpers for the integration tests (sourced).
cv() { "$CHATVAULT" "$@"; }
die() { echo "FAILED: $*" >&2; exit 1; }
expect_eq() { [ "$1" = "$2" ] || die "$3: got '$1', want '$2'"; }
gen() { python3 "$REPO/tools/gen_events.py" "$@"; }
q() { psql -XAtq -c "$1"; }
# ids in a JSON Lines file, sorted
ids_of() { python3 -c 'import json,sys
for l in open(sys.argv[1]):
    l=l.strip()
    if l: print(json.loads(l)["id"])' "$1" | sort; }
# all event ids inside the archive bundles under $1, sorted (duplicates kept)
archive_ids() {
	for b in $(find "$1" -name '*.tar.zst' | sort); do
		tar --zstd -xOf "$b" events.jsonl
	done | python3 -c 'import json,sys
for l in sys.stdin: print(json.loads(l)["id"])' | sort
}
# check the bundle hash chain in batch order; prints the bundle count
check_chain() {
	python3 - "$1" <<'PY'
import hashlib, json, os, subprocess, sys
bundles = []
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        if f.endswith(".tar.zst"):
            p = os.path.join(root, f)
            m = subprocess.run(["tar", "--zstd", "-xOf", p, "manifest.json"], check=True,
                               capture_output=True).stdout
            bundles.append((json.loads(m)["batch_no"], p, m))
bundles.sort()
prev = ""
for no, p, m in bundles:
    j = json.loads(m)
    if j["prev_manifest_sha256"] != prev:
        sys.exit("chain broken at %s: prev %r, want %r" % (p, j["prev_manifest_sha256"], prev))
    prev = hashlib.sha256(m).hexdigest()
print(len(bundles))
PY
}
# a free TCP port on 127.0.0.1
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_for DESCRIPTION CONDITION [TRIES]: eval CONDITION every 0.25 s, at
# most TRIES (80) times, then die
wait_for() {
	i=0
	until eval "$2"; do
		i=$((i + 1)); [ $i -lt "${3:-80}" ] || die "timeout waiting for $1"
		sleep 0.25
	done
}
# fetch URL FILE [METHOD]: prints the HTTP status (0 when nothing answers),
# the body in FILE
fetch() {
	python3 - "$1" "$2" "${3:-GET}" <<'PY'
import sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1], method=sys.argv[3])
try:
    r = urllib.request.urlopen(req, timeout=10)
    code, body = r.status, r.read()
except urllib.error.HTTPError as e:
    code, body = e.code, e.read()
except OSError as e:
    code, body = 0, str(e).encode()
open(sys.argv[2], "wb").write(body)
print(code)
PY
}
# chat_conf: cv.conf for a chatd on 127.0.0.1:$PORT serving $DOM (logging at
# info), and the schema migrated
chat_conf() {
	cat > cv.conf <<CONF
data_dir = "$WORK/var";
log_level = "info";
chat = { listen = "127.0.0.1:$PORT"; domain = "$DOM"; };
CONF
	cv -c cv.conf migrate > /dev/null
}
# chat_users NAME...: the users sip:NAME@$DOM, password NAME-pw in NAME.pw
# (the umask is 077 from here on: a password file must be mode 600)
chat_users() {
	umask 077
	for u in "$@"; do
		printf '%s-pw\n' "$u" > "$u.pw"
		cv -c cv.conf user add "sip:$u@$DOM" --password-file "$u.pw" > /dev/null
	done
}
# start_chatd [LOG [OPTION...]]: chatd -c cv.conf in the background ($pid),
# its output in LOG (chatd.log); returns once it listens
start_chatd() {
	chatd_log=${1:-chatd.log}
	[ $# -eq 0 ] || shift
	"$CHATVAULT" -c cv.conf chatd "$@" > "$chatd_log" 2>&1 &
	pid=$!
	wait_for "chatd listening" "grep -q 'listening on' $chatd_log"
}

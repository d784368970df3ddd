# chat users: `user add|list|disable|enable|passwd` against a real
# PostgreSQL; no cleartext password anywhere in the row; the digest
# credential is RFC 2617's HA1; a running listener (chat_store_listen /
# poll_changes, as chatd uses them) is notified and survives a lost
# connection.
. "$REPO/tests/integration/lib.sh"
IT_CHAT_LISTEN=${IT_CHAT_LISTEN:-$REPO/build/rel/tests/it_chat_listen}
pw='Sesame-0pen-4-Alice!'
cat > cv.conf <<EOF
chat = { domain = "contoso.com"; realm = "contoso.com"; };
EOF

# before migrate: one clear line naming the fix, exit 1
printf '%s\n' "$pw" > pw; chmod 600 pw
set +e; cv -c cv.conf user add sip:alice@contoso.com --password-file pw 2>err; rc=$?; set -e
cat err
expect_eq "$rc" 1 "user add before migrate"
grep -q "chatvault migrate" err || die "no hint to migrate: $(cat err)"
cv -c cv.conf migrate
expect_eq "$(q "SELECT count(*) FROM chatvault.schema_migrations WHERE version = 4")" 1 "migration 004 recorded"

# add: canonical (lower-cased) URI, HA1 = MD5(user:realm:password)
cv -c cv.conf user add SIP:Alice@Contoso.COM --password-file pw > out
cat out
grep -q "user sip:alice@contoso.com added" out || die "add output: $(cat out)"
grep -q "$pw" out && die "password echoed by user add"
want_ha1=$(printf '%s' "alice:contoso.com:$pw" | md5sum | cut -d' ' -f1)
expect_eq "$(q "SELECT ha1 FROM chat.users WHERE uri = 'sip:alice@contoso.com'")" "$want_ha1" "stored HA1"
expect_eq "$(q "SELECT realm FROM chat.users WHERE uri = 'sip:alice@contoso.com'")" "contoso.com" "stored realm"
# no column of any row holds the password (or its MD5 alone)
pw_md5=$(printf '%s' "$pw" | md5sum | cut -d' ' -f1)
n=$(echo "SELECT count(*) FROM chat.users u WHERE strpos(u::text, :'pw') > 0 OR strpos(u::text, :'pwmd5') > 0" |
	psql -XAtq -v pw="$pw" -v pwmd5="$pw_md5")
expect_eq "$n" 0 "cleartext password stored"
psql -XAtq -c "COPY chat.users TO STDOUT" | grep -qF "$pw" && die "password found in a dump of chat.users"

# --no-chat / --no-im; a password from standard input
printf '%s\r\nsecond line ignored\n' 'b0b-pw' | cv -c cv.conf user add sip:bob@contoso.com --password-file - --no-chat
expect_eq "$(q "SELECT chat_enabled::text || im_enabled::text FROM chat.users WHERE uri = 'sip:bob@contoso.com'")" "falsetrue" "bob's permissions"
expect_eq "$(q "SELECT ha1 FROM chat.users WHERE uri = 'sip:bob@contoso.com'")" \
	"$(printf '%s' 'bob:contoso.com:b0b-pw' | md5sum | cut -d' ' -f1)" "HA1 from stdin without CR LF"
cv -c cv.conf user add sip:carol@contoso.com --password-file pw --no-im

# duplicate: exit 1, one line, nothing changed
set +e; cv -c cv.conf user add sip:alice@contoso.com --password-file pw 2>err; rc=$?; set -e
expect_eq "$rc" 1 "duplicate add"
grep -q "already exists" err || die "duplicate not named: $(cat err)"
expect_eq "$(wc -l < err)" 1 "duplicate: one error line"

# bad URIs: exit 2 naming the problem, nothing stored
for bad in 'alice@contoso.com' 'sip:@contoso.com' 'sip:alice' 'sip:al ice@contoso.com' \
	"sip:a'b@contoso.com" 'sip:alice@-contoso.com' 'sip:alice@contoso..com' 'sip:a@b@c' \
	"sip:$(printf 'x%.0s' $(seq 65))@contoso.com" 'tel:+15551234'; do
	set +e; cv -c cv.conf user add "$bad" --password-file pw 2>err; rc=$?; set -e
	expect_eq "$rc" 2 "bad URI $bad"
	grep -q "invalid user URI" err || die "bad URI $bad: $(cat err)"
done
expect_eq "$(q "SELECT count(*) FROM chat.users")" 3 "users after the refusals"
# the table refuses what the CLI would (last line of defence)
if q "INSERT INTO chat.users (uri, ha1, realm) VALUES ('sip:Eve@contoso.com', '$want_ha1', 'r')" 2>/dev/null; then
	die "table accepted an upper-case URI"; fi
if q "INSERT INTO chat.users (uri, ha1, realm) VALUES ('sip:eve@contoso.com', 'secret', 'r')" 2>/dev/null; then
	die "table accepted a non-HA1 credential"; fi

# bad password files: exit 2, the password never printed
printf '%s\n' "$pw" > loose; chmod 644 loose
: > empty; chmod 600 empty
printf '\n%s\n' "$pw" > blank1; chmod 600 blank1
printf 'a\tb\n' > ctl; chmod 600 ctl
head -c 2000 /dev/zero | tr '\0' 'x' > long; chmod 600 long
for f in loose empty blank1 ctl long missing .; do
	set +e; cv -c cv.conf user add sip:dave@contoso.com --password-file $f 2>err; rc=$?; set -e
	echo "$f: $(cat err)"
	expect_eq "$rc" 2 "password file $f"
	grep -q -- "--password-file $f" err || die "password file $f not named"
	grep -qF "$pw" err && die "password printed for $f"
done
set +e; cv -c cv.conf user add sip:dave@contoso.com --password-file loose 2>err; set -e
grep -q "chmod 600" err || die "loose file: no chmod hint"
set +e; cv -c cv.conf user add sip:dave@contoso.com 2>err; rc=$?; set -e
expect_eq "$rc" 2 "add without --password-file"
set +e; cv -c cv.conf user add sip:dave@contoso.com --password-file pw --frob 2>err; rc=$?; set -e
expect_eq "$rc" 2 "add with an unknown option"
set +e; cv -c cv.conf user frob 2>err; rc=$?; set -e
expect_eq "$rc" 2 "unknown user subcommand"
grep -q "usage: chatvault user" err || die "no usage line"

# list: text and JSON, never the credential
cv -c cv.conf user list > list.txt
cat list.txt
grep -q "^sip:alice@contoso.com  *yes  *yes  *yes" list.txt || die "alice not listed"
grep -q "^sip:bob@contoso.com  *yes  *no  *yes" list.txt || die "bob not listed"
grep -q "$want_ha1" list.txt && die "HA1 in user list"
cv -c cv.conf user list --json > list.json
python3 - list.json "$want_ha1" <<'PY'
import json, sys
users = json.load(open(sys.argv[1]))
assert [u["uri"] for u in users] == ["sip:alice@contoso.com", "sip:bob@contoso.com", "sip:carol@contoso.com"], users
assert all(set(u) == {"uri", "enabled", "chat", "im", "realm", "created", "realm_mismatch"} for u in users), users
assert users[1]["chat"] is False and users[2]["im"] is False and users[0]["enabled"] is True
assert sys.argv[2] not in open(sys.argv[1]).read()
PY

# disable / enable / passwd; unknown users exit 1
set +e; cv -c cv.conf user disable sip:nobody@contoso.com 2>err; rc=$?; set -e
expect_eq "$rc" 1 "disable an unknown user"
grep -q "no such user" err || die "unknown user not named"

# a listener (what chatd runs) sees every change, and rides through a lost
# connection: disable, enable, passwd, a killed backend, then a delete
rm -f ready
"$IT_CHAT_LISTEN" cv.conf ready 4 60 > listen.out 2> listen.err &
lpid=$!
for i in $(seq 100); do [ -f ready ] && break; sleep 0.1; done
[ -f ready ] || { cat listen.err; die "listener did not start"; }
cv -c cv.conf user disable sip:alice@contoso.com
expect_eq "$(q "SELECT disabled FROM chat.users WHERE uri = 'sip:alice@contoso.com'")" t "alice disabled"
cv -c cv.conf user disable sip:alice@contoso.com   # already disabled: fine, no change
cv -c cv.conf user enable sip:bob@contoso.com      # already enabled: no change, no notification
printf 'n3w-pass\n' > pw2; chmod 600 pw2
cv -c cv.conf user passwd sip:carol@contoso.com --password-file pw2
expect_eq "$(q "SELECT ha1 FROM chat.users WHERE uri = 'sip:carol@contoso.com'")" \
	"$(printf '%s' 'carol:contoso.com:n3w-pass' | md5sum | cut -d' ' -f1)" "carol's new HA1"
sleep 0.5
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'chatvault-chat' AND pid <> pg_backend_pid()" > /dev/null
sleep 0.5
cv -c cv.conf user enable sip:alice@contoso.com
q "DELETE FROM chat.users WHERE uri = 'sip:carol@contoso.com'"
wait $lpid || { cat listen.out listen.err; die "listener: fewer notifications than changes"; }
cat listen.out
grep -q "^reconnect" listen.out || die "listener did not notice the lost connection"
grep -q "^notifications [45]$" listen.out || die "notification count: $(tail -1 listen.out)"
grep -q "user sip:alice@contoso.com disabled=1" listen.out || die "reload did not see alice disabled"
tail -n 4 listen.out | grep -q "user sip:alice@contoso.com disabled=0" || die "reload did not see alice enabled"
tail -n 4 listen.out | grep -q "carol" && die "reload still lists the deleted user"

# a changed realm: the user cannot sign in, the load says so
cat > realm2.conf <<EOF
chat = { domain = "contoso.com"; realm = "chat.contoso.com"; };
EOF
cv -c realm2.conf user list 2> warn > list2.txt
grep -q "other realm: cannot sign in" list2.txt || die "realm mismatch not shown"
grep -q 'sip:alice@contoso.com cannot sign in.*realm "contoso.com".*"chat.contoso.com"' warn || die "realm warning: $(cat warn)"
cv -c realm2.conf user passwd sip:alice@contoso.com --password-file pw
expect_eq "$(q "SELECT realm FROM chat.users WHERE uri = 'sip:alice@contoso.com'")" "chat.contoso.com" "realm after passwd"
echo "chat users: ok"

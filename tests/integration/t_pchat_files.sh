# The file service (chat/chat_files.c) over real HTTP (curl) with tokens
# from the real store: upload → 201 and the file in the store under its
# sha256, read-only; reused, expired, foreign or missing tokens refused;
# oversized bodies 413; download returns the same bytes; the on_transfer
# hook is called exactly once per successful transfer, and its failure
# answers 503 without recording the file.
. "$REPO/tests/integration/lib.sh"
IT_PCHAT=${IT_PCHAT:-$REPO/build/rel/tests/it_pchat}
IT_PCHAT_FILES=${IT_PCHAT_FILES:-$REPO/build/rel/tests/it_pchat_files}
itp() { "$IT_PCHAT" "$@"; }

cv migrate >/dev/null
room=$(cv room add "Files" --domain example.test)
guid=${room##*/}
store=$WORK/store
"$IT_PCHAT_FILES" "$store" hook.log port 1048576 2>files.err &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for i in $(seq 1 50); do [ -s port ] && break; sleep 0.1; done
[ -s port ] || die "file service did not start: $(cat files.err)"
base="http://127.0.0.1:$(cat port)/files/$guid"
# code METHOD URL [curl args…] → the HTTP status
code() { m=$1; u=$2; shift 2; curl -sS -o body.out -w '%{http_code}' -X "$m" "$@" "$u" || true; }
up() { itp token-issue upload "$room" sip:alice@example.test "$1"; }

head -c 300000 /dev/urandom > f1.bin
sha=$(sha256sum f1.bin | cut -d' ' -f1)
tok=$(up f1.bin)
expect_eq "$(code PUT "$base/f1.bin?token=$tok" -T f1.bin)" 201 "upload"
[ -f "$store/$sha" ] || die "file not stored as $store/$sha: $(ls -la "$store")"
expect_eq "$(sha256sum "$store/$sha" | cut -d' ' -f1)" "$sha" "stored bytes"
expect_eq "$(stat -c %a "$store/$sha")" 440 "stored file mode"
expect_eq "$(q "SELECT sha256 || ' ' || size FROM pchat.files WHERE room = '$room' AND name = 'f1.bin'")" "$sha 300000" "file recorded"
expect_eq "$(code PUT "$base/f1.bin?token=$tok" -T f1.bin)" 403 "reused upload token"

# refusals
expect_eq "$(code PUT "$base/f1.bin" -T f1.bin)" 401 "no token"
expect_eq "$(code PUT "$base/f1.bin?token=0123456789abcdef0123456789abcdef" -T f1.bin)" 403 "unknown token"
tok=$(up other.bin)
expect_eq "$(code PUT "$base/f1.bin?token=$tok" -T f1.bin)" 403 "token for another file"
tok=$(up f1.bin)
q "UPDATE pchat.file_tokens SET expires_at = now() - interval '1 minute' WHERE token = '$tok'"
expect_eq "$(code PUT "$base/f1.bin?token=$tok" -T f1.bin)" 403 "expired token"
expect_eq "$(code PUT "http://127.0.0.1:$(cat port)/etc/passwd?token=$tok" -T f1.bin)" 404 "path outside /files"
expect_eq "$(code DELETE "$base/f1.bin?token=$tok")" 405 "method"

# size limit (1 MiB): declared, and chunked
head -c 1500000 /dev/urandom > big.bin
tok=$(up big.bin)
expect_eq "$(code PUT "$base/big.bin?token=$tok" -T big.bin)" 413 "oversized upload"
tok=$(up big.bin)
expect_eq "$(code PUT "$base/big.bin?token=$tok" -H 'Transfer-Encoding: chunked' -T - < big.bin)" 413 "oversized chunked upload"
expect_eq "$(q "SELECT count(*) FROM pchat.files WHERE name = 'big.bin'")" 0 "oversized not recorded"

# download: same bytes, token single use and directional
dtok=$(itp token-issue download "$room" sip:bob@example.test f1.bin)
expect_eq "$(code GET "$base/f1.bin?token=$dtok")" 200 "download"
expect_eq "$(sha256sum body.out | cut -d' ' -f1)" "$sha" "downloaded bytes"
expect_eq "$(code GET "$base/f1.bin?token=$dtok")" 403 "reused download token"
utok=$(up f1.bin)
expect_eq "$(code GET "$base/f1.bin?token=$utok")" 403 "upload token used to download"

# the hook: once per successful transfer, with the transfer's facts
expect_eq "$(wc -l < hook.log)" 2 "hook calls"
expect_eq "$(sed -n 1p hook.log)" "upload sip:alice@example.test $room f1.bin 300000 $sha" "upload hook"
expect_eq "$(sed -n 2p hook.log)" "download sip:bob@example.test $room f1.bin 300000 $sha" "download hook"

# a failing hook (the event is not durable): 503, nothing recorded
touch hook.log.fail
printf 'second file' > f2.bin
tok=$(up f2.bin)
expect_eq "$(code PUT "$base/f2.bin?token=$tok" -T f2.bin)" 503 "upload with a failing hook"
expect_eq "$(q "SELECT count(*) FROM pchat.files WHERE name = 'f2.bin'")" 0 "not recorded after 503"
dtok=$(itp token-issue download "$room" sip:bob@example.test f1.bin)
expect_eq "$(code GET "$base/f1.bin?token=$dtok")" 503 "download with a failing hook"
rm hook.log.fail
tok=$(up f2.bin)
expect_eq "$(code PUT "$base/f2.bin?token=$tok" -T f2.bin)" 201 "retry with a new token"
expect_eq "$(wc -l < hook.log)" 3 "hook calls after the retry"
# the same content again is stored once
tok=$(up copy.bin)
expect_eq "$(code PUT "$base/copy.bin?token=$tok" -T f1.bin)" 201 "same content, other name"
expect_eq "$(ls "$store" | grep -c "^$sha\$")" 1 "content stored once"
expect_eq "$(ls -A "$store" | grep -c '^\.upload')" 0 "no temporary files left"
kill $pid; wait $pid || true
trap - EXIT
echo "t_pchat_files: ok"

# The command frame: help for every command, unbuilt commands exit 2,
# config errors exit 2 naming file/line/key, emit --check reports lines.
. "$REPO/tests/integration/lib.sh"
cv --help | grep -q "export" || die "--help lacks export"
for c in migrate config emit ingest deliver run status quarantine export verify retention hold erase user room chatd; do
	cv $c --help >/dev/null || die "$c --help failed"
done
for c in hold erase user room; do
	set +e; cv $c >/dev/null 2>err; rc=$?; set -e
	expect_eq "$rc" 2 "$c without arguments: exit status"
	grep -q "usage: chatvault $c" err || die "$c without arguments: no usage line"
done
set +e; cv frobnicate 2>/dev/null; rc=$?; set -e
expect_eq "$rc" 2 "unknown command"
# config errors
printf 'ingest = { batch_size = 0; };\n' > bad.conf
set +e; cv -c bad.conf config check 2>err; rc=$?; set -e
expect_eq "$rc" 2 "bad config exit"
grep -q "bad.conf:1: ingest.batch_size" err || die "config error lacks file:line:key: $(cat err)"
printf 'nosuchkey = 1;\n' > bad2.conf
set +e; cv -c bad2.conf status 2>err; rc=$?; set -e
expect_eq "$rc" 2 "unknown key exit"
grep -q "nosuchkey" err || die "unknown key not named"
cv -c "$REPO/conf/chatvault.conf" config check > eff.conf
grep -q "adapters" eff.conf || die "effective config lacks adapters"
printf 'database = { conninfo = "host=x password=hunter2"; };\n' > pw.conf
cv -c pw.conf config check > out
grep -q hunter2 out && die "password printed by config check"
# emit --check: line numbers and reasons, exit 1; clean file exit 0
gen --count 50 > good.jsonl
cv emit --check good.jsonl
{ head -3 good.jsonl; echo '{"v":1,"type":"chat.post","room":"ma-chan://x/y","text":"hi"}';
  echo 'not json'; printf '{"v":1,"type":"chat.post","room":"ma-chan://x/y","user":"sip:a@b","text":"\377"}\n';
  tail -2 good.jsonl; } > mixed.jsonl
set +e; cv emit --check mixed.jsonl 2>err; rc=$?; set -e
cat err
expect_eq "$rc" 1 "emit --check with bad lines"
grep -q 'line 4: missing required field "user"' err || die "line 4 not reported"
grep -q 'line 5:' err || die "line 5 not reported"
grep -q 'line 6: .*UTF-8' err || die "line 6 not reported as bad UTF-8"
[ "$(grep -c '^chatvault: emit: line' err)" -eq 3 ] || die "wrong number of reported lines"
# make install: binary, header, configs, profiles, docs and systemd units that
# systemd itself accepts (hardening options included).
make -s -C "$REPO" install PREFIX="$WORK/inst" > /dev/null
for f in bin/chatvault include/chatvault/adapter.h share/chatvault/chatvault.conf \
	share/chatvault/regulations/sec-17a4.conf lib/sysusers.d/chatvault.conf \
	lib/systemd/system/chatvault-ingest.service lib/systemd/system/chatvault-deliver.service \
	lib/systemd/system/chatvault-retention.service lib/systemd/system/chatvault-retention.timer \
	lib/systemd/system/chatvault-chatd.service; do
	[ -f "$WORK/inst/$f" ] || die "make install did not install $f"
done
grep -q "^ExecStart=$WORK/inst/bin/chatvault .* ingest$" "$WORK/inst/lib/systemd/system/chatvault-ingest.service" || die "ExecStart not substituted"
grep -q "^ExecStart=$WORK/inst/bin/chatvault .* chatd$" "$WORK/inst/lib/systemd/system/chatvault-chatd.service" || die "chatd ExecStart not substituted"
! grep -q '@[A-Z]*@' "$WORK"/inst/lib/systemd/system/chatvault-* || die "a @VARIABLE@ left in a unit"
if command -v systemd-analyze > /dev/null; then
	SYSTEMD_LOG_LEVEL=notice systemd-analyze verify "$WORK"/inst/lib/systemd/system/chatvault-* || die "systemd-analyze rejects the units"
else
	echo "(systemd-analyze not installed: units not verified by systemd)"
fi

# migrate: fresh apply, re-apply is a no-op, a broken migration rolls back.
. "$REPO/tests/integration/lib.sh"
out=$(cv migrate)
echo "$out"
echo "$out" | grep -q "migrations applied now" || echo "$out" | grep -q "migration applied now" || die "migrate output: $out"
tables=$(q "SELECT count(*) FROM pg_tables WHERE schemaname='chatvault'")
[ "$tables" -ge 12 ] || die "only $tables tables"
before=$(q "SELECT md5(string_agg(table_name||column_name||data_type, ',' ORDER BY table_name, column_name)) FROM information_schema.columns WHERE table_schema='chatvault'")
out=$(cv migrate)
echo "$out" | grep -q "(0 migrations applied now)" || die "second migrate applied something: $out"
after=$(q "SELECT md5(string_agg(table_name||column_name||data_type, ',' ORDER BY table_name, column_name)) FROM information_schema.columns WHERE table_schema='chatvault'")
expect_eq "$after" "$before" "schema changed on re-apply"
# the audit log is append-only
q "INSERT INTO chatvault.audit_log (actor, action) VALUES ('test', 'probe')"
if q "DELETE FROM chatvault.audit_log" 2>/dev/null; then die "audit_log row deleted"; fi
# broken migration, in its own database
createdb cv_broken
PGDATABASE=cv_broken "$IT_MIGRATE"
# unreachable database: one clear line, exit 1
set +e
printf "database = { retry_max = 2; };\n" > dead.conf
err=$(PGPORT=1 "$CHATVAULT" -c dead.conf migrate 2>&1); rc=$?
set -e
echo "$err"
[ $rc -ne 0 ] || die "migrate against a dead port succeeded"

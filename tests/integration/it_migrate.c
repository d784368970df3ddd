/*
 * it_migrate — migration runner against a real PostgreSQL (PG* env):
 * a migration that fails half-way leaves nothing behind, and the ones
 * before it stay applied.  Exit 0 when all checks hold.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sto_migrate.h"

static int scalar(struct sto_db *db, const char *sql, char *out, size_t len)
{
	char err[STO_ERRLEN];
	PGresult *res = NULL;

	if (sto_exec(db, "query", sql, 0, NULL, &res, err, sizeof(err)) != CV_OK) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	snprintf(out, len, "%s", PQntuples(res) ? PQgetvalue(res, 0, 0) : "");
	PQclear(res);
	return 0;
}

int main(void)
{
	static const struct sto_migration list[] = {
		{ 1, "001_ok.sql", "CREATE SCHEMA IF NOT EXISTS chatvault; CREATE TABLE chatvault.t1 (a int);" },
		{ 2, "002_broken.sql", "CREATE TABLE chatvault.t2 (a int); INSERT INTO chatvault.t2 VALUES (1);"
				       " SELECT no_such_column FROM chatvault.t2;" },
	};
	struct sto_db_opts o = { .conninfo = "", .connect_timeout_s = 5 };
	struct sto_db *db;
	char err[STO_ERRLEN], v[64];
	int applied = -1;

	if (sto_db_open(&o, &db, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (sto_migrate(db, list, 2, &applied, err, sizeof(err)) == CV_OK) {
		fprintf(stderr, "broken migration reported success\n");
		return 1;
	}
	printf("error as reported: %s\n", err);
	if (!strstr(err, "002_broken.sql")) {
		fprintf(stderr, "error does not name the migration\n");
		return 1;
	}
	if (applied != 1)
		return fprintf(stderr, "applied %d, want 1\n", applied), 1;
	if (scalar(db, "SELECT count(*) FROM pg_tables WHERE schemaname='chatvault' AND tablename='t2'",
		   v, sizeof(v)) || strcmp(v, "0") != 0)
		return fprintf(stderr, "t2 exists after the failed migration\n"), 1;
	if (scalar(db, "SELECT string_agg(version::text, ',' ORDER BY version) FROM chatvault.schema_migrations",
		   v, sizeof(v)) || strcmp(v, "1") != 0)
		return fprintf(stderr, "recorded versions %s, want 1\n", v), 1;
	/* A changed shipped migration is refused. */
	{
		struct sto_migration changed[1] = { { 1, "001_ok.sql", "CREATE TABLE chatvault.t9 (a int);" } };

		if (sto_migrate(db, changed, 1, &applied, err, sizeof(err)) == CV_OK ||
		    !strstr(err, "different content"))
			return fprintf(stderr, "edited migration not refused: %s\n", err), 1;
	}
	sto_db_close(db);
	printf("it_migrate: ok\n");
	return 0;
}

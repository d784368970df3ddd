/*
 * sto_migrate — versioned schema migrations (schema/NNN_name.sql).
 *
 * The SQL files are compiled into the binary (tools/embed_sql.sh generates
 * build/schema_sql.c from the schema/NNN_*.sql files in version order), so an installed
 * chatvault needs no schema directory at run time.
 *
 * Each migration runs in its own transaction together with the row that
 * records it in chatvault.schema_migrations (version, name, SHA-256 of the
 * SQL, applied_at): a failing migration leaves the database as it was.
 * Concurrent `migrate` runs serialise on an advisory lock.  A recorded
 * migration whose SQL changed since is refused (checksum mismatch): shipped
 * migrations are never edited.
 */
#ifndef STO_MIGRATE_H
#define STO_MIGRATE_H

#include <stddef.h>

#include "sto_db.h"

struct sto_migration {
	int version;
	const char *name;   /* file name, e.g. "001_staging.sql" */
	const char *sql;
};

/* The migrations compiled into this binary, in version order. */
extern const struct sto_migration sto_migrations[];
extern const size_t sto_nmigrations;

/*
 * Apply every migration in list not yet recorded.  *applied receives the
 * number applied now (0 when the schema was current).  Returns CV_OK, or
 * CV_RETRY / CV_FAIL with "migration 002_x.sql: <sqlstate> <message>" in err.
 */
enum cv_result sto_migrate(struct sto_db *db, const struct sto_migration *list, size_t n,
			   int *applied, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Highest applied version, 0 when none; negative on error. */
int sto_schema_version(struct sto_db *db, char *err, size_t errlen);

#endif

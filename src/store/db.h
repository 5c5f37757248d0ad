/* db.h: one SQLite database file shared by the threads of a process. Each
 * thread gets its own connection, opened on first use (WAL mode lets readers
 * run beside the single writer; busy_timeout absorbs writer contention).
 * Used by store/sqlite.c only; it knows no table. */
#ifndef TORO_STORE_DB_H
#define TORO_STORE_DB_H

#include <sqlite3.h>
#include <stdbool.h>

#include "store/store.h" /* toro_db_sync_t */

typedef struct toro_db toro_db_t;

/* Why: creates the file, switches it to WAL and runs schema_sql once.
 * On failure *out is untouched and *err (caller frees) explains it. */
int toro_db_open(const char *path, const char *schema_sql, toro_db_sync_t sync, toro_db_t **out, char **err);

/* Why: the calling thread's connection (borrowed; closed at thread exit or
 * toro_db_close). NULL when it cannot be opened. */
sqlite3 *toro_db_conn(toro_db_t *db);

/* Why: all threads that used the db must have stopped using it. */
void toro_db_close(toro_db_t *db);

/* Why: parsing SQL was a fifth of the CPU of a busy server. These have the
 * signature of sqlite3_prepare_v2 and sqlite3_finalize but keep prepared
 * statements in a per-thread cache keyed by (connection, SQL text address):
 * pass string literals. toro_db_done resets the statement for the next use
 * (it finalizes statements that did not fit the cache). Statements of a
 * connection are finalized when its toro_db_t is closed. */
int toro_db_prepare(sqlite3 *c, const char *sql, int nbyte, sqlite3_stmt **st, const char **tail);
void toro_db_done(sqlite3_stmt *st);

/* Why: one-off statements. 0 or TORO_EIO. */
int toro_db_exec(sqlite3 *c, const char *sql);

/* Why: a failing database repeats one error in a loop (disk full, I/O
 * error): logs "what: sqlite message" rate-limited under `key` (a static
 * string) and notes the message for /healthz (core/health.h). c may be NULL. */
void toro_db_report(sqlite3 *c, const char *component, const char *key, const char *what);

/* A write run by toro_db_write: its statements on c (the writer thread's
 * connection, inside the batch's transaction). 0 keeps its writes; any
 * other code rolls back its writes alone and is returned to its caller. */
typedef int toro_db_write_fn(sqlite3 *c, void *arg);

/* Why: SQLite admits one writer per file. Every write of the process runs
 * on one writer thread at normal priority, which commits the writes that
 * queued up while it was busy in one transaction (group commit: one WAL
 * append and no lock hand-over between threads per batch; db.c says more).
 * Blocks until the batch that ran fn has committed; returns fn's code, or
 * TORO_EIO when the batch failed (nothing of fn was written; fn's effects
 * on arg must then be discarded by the caller), or TORO_EUNAVAIL while the
 * db closes. fn runs on another thread: arg must stay valid until this
 * returns; fn must not call toro_db_write. */
int toro_db_write(toro_db_t *db, toro_db_write_fn *fn, void *arg);

#endif

/* db.h: one SQLite database file shared by the threads of a process. Each
 * thread gets its own connection, opened on first use (WAL mode lets readers
 * run beside the single writer; busy_timeout absorbs writer contention).
 * Used by store/sqlite.c only (the gateway reaches the writer priority
 * through toro_store_set_urgent); it knows no table. */
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

/* Why: SQLite admits one writer per file, and a thread that meets a busy
 * database sleeps in SQLite's busy handler in steps of milliseconds. Threads
 * of one toro process therefore take this process-wide writer mutex around
 * every write, so SQLite never sees contention from inside the process.
 * toro_db_begin: lock + BEGIN IMMEDIATE (unlocks again on failure).
 * toro_db_end: COMMIT when rc is 0, else ROLLBACK; unlocks; returns the
 * final code. toro_db_write_lock/unlock: around single-statement writes. */
int toro_db_begin(sqlite3 *c);
int toro_db_end(sqlite3 *c, int rc);
void toro_db_write_lock(void);
void toro_db_write_unlock(void);

/* Why: marks the calling thread's writes urgent (the gateway's commits,
 * where a client waits): they take the writer lock before waiting workers,
 * and its connection leaves WAL checkpoints to the other threads (up to a
 * backstop of WAL size). */
void toro_db_set_urgent(toro_db_t *db, bool urgent);

#endif

/* db.c: per-thread SQLite connections to one file, a statement cache and the
 * process-wide writer lock (see db.h). */
#include "store/db.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/health.h"
#include "core/log.h"

typedef struct conn_node {
    sqlite3 *conn;
    struct conn_node *next;
} conn_node_t;

struct toro_db {
    char *path;
    toro_db_sync_t sync;
    pthread_key_t key;       /* -> conn_node_t of the calling thread */
    pthread_mutex_t lock;    /* guards conns */
    conn_node_t *conns;      /* every open connection, closed at toro_db_close */
};

/* Thread exit: the node stays in the list and is closed by toro_db_close;
 * threads of toro live as long as the db, so nothing leaks in practice. */

static int open_conn(const char *path, toro_db_sync_t sync, sqlite3 **out, char **err)
{
    sqlite3 *c = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &c, flags, NULL) != SQLITE_OK) {
        if (err) {
            size_t n = strlen(path) + 128;
            *err = malloc(n);
            if (*err)
                snprintf(*err, n, "cannot open database %s: %s", path, c ? sqlite3_errmsg(c) : "out of memory");
        }
        sqlite3_close(c);
        return TORO_EIO;
    }
    sqlite3_busy_timeout(c, 10000);
    sqlite3_exec(c, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
    sqlite3_exec(c, sync == TORO_DB_SYNC_FULL ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", NULL, NULL,
                 NULL);
    sqlite3_exec(c, "PRAGMA foreign_keys=ON", NULL, NULL, NULL);
    *out = c;
    return 0;
}

int toro_db_open(const char *path, const char *schema_sql, toro_db_sync_t sync, toro_db_t **out, char **err)
{
    toro_db_t *db = calloc(1, sizeof *db);
    sqlite3 *c = NULL;
    if (!db || !(db->path = strdup(path))) {
        free(db);
        return TORO_ENOMEM;
    }
    db->sync = sync;
    pthread_mutex_init(&db->lock, NULL);
    pthread_key_create(&db->key, NULL);
    int rc = open_conn(path, sync, &c, err);
    if (rc)
        goto fail;
    char *msg = NULL;
    if (schema_sql && sqlite3_exec(c, schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
        if (err) {
            size_t n = strlen(msg ? msg : "") + 64;
            *err = malloc(n);
            if (*err)
                snprintf(*err, n, "cannot create schema: %s", msg ? msg : "?");
        }
        sqlite3_free(msg);
        sqlite3_close(c);
        rc = TORO_EIO;
        goto fail;
    }
    sqlite3_close(c);
    *out = db;
    return 0;
fail:
    pthread_key_delete(db->key);
    pthread_mutex_destroy(&db->lock);
    free(db->path);
    free(db);
    return rc;
}

sqlite3 *toro_db_conn(toro_db_t *db)
{
    conn_node_t *n = pthread_getspecific(db->key);
    if (n)
        return n->conn;
    n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    char *err = NULL;
    if (open_conn(db->path, db->sync, &n->conn, &err) != 0) {
        toro_log_error("db", NULL, "%s", err ? err : "cannot open database");
        free(err);
        free(n);
        return NULL;
    }
    pthread_mutex_lock(&db->lock);
    n->next = db->conns;
    db->conns = n;
    pthread_mutex_unlock(&db->lock);
    pthread_setspecific(db->key, n);
    return n->conn;
}

/* Generation of the statement cache below: bumped by every close. */
static atomic_ulong generation = 1;

void toro_db_close(toro_db_t *db)
{
    if (!db)
        return;
    pthread_key_delete(db->key);
    conn_node_t *n = db->conns;
    while (n) {
        conn_node_t *next = n->next;
        sqlite3_stmt *st;
        while ((st = sqlite3_next_stmt(n->conn, NULL)) != NULL)
            sqlite3_finalize(st);
        sqlite3_close_v2(n->conn);
        free(n);
        n = next;
    }
    pthread_mutex_destroy(&db->lock);
    free(db->path);
    free(db);
    atomic_fetch_add(&generation, 1); /* cached statements of it are gone */
}

/* Statement cache. A slot is valid while its generation equals the global
 * one; closing any database bumps the generation (after finalizing that
 * database's statements), so no thread ever uses a statement of a closed
 * connection. */
#define STMT_SLOTS 128
typedef struct stmt_slot {
    sqlite3 *c;
    const char *sql;
    sqlite3_stmt *st;
    unsigned long gen;
} stmt_slot_t;
static _Thread_local stmt_slot_t slots[STMT_SLOTS];

int toro_db_prepare(sqlite3 *c, const char *sql, int nbyte, sqlite3_stmt **st, const char **tail)
{
    unsigned long gen = atomic_load(&generation);
    size_t h = (((uintptr_t)c >> 4) ^ ((uintptr_t)sql * 2654435761u)) % STMT_SLOTS;
    stmt_slot_t *free_slot = NULL;
    for (size_t i = 0; i < STMT_SLOTS; i++) {
        stmt_slot_t *sl = &slots[(h + i) % STMT_SLOTS];
        if (sl->st && sl->gen == gen) {
            if (sl->c == c && sl->sql == sql) {
                *st = sl->st;
                if (tail)
                    *tail = NULL;
                return SQLITE_OK;
            }
            continue;
        }
        free_slot = sl; /* empty, or left from a closed database */
        break;
    }
    int rc = sqlite3_prepare_v3(c, sql, nbyte, free_slot ? SQLITE_PREPARE_PERSISTENT : 0, st, tail);
    if (rc == SQLITE_OK && free_slot)
        *free_slot = (stmt_slot_t){c, sql, *st, gen};
    return rc;
}

void toro_db_done(sqlite3_stmt *st)
{
    if (!st)
        return;
    unsigned long gen = atomic_load(&generation);
    for (size_t i = 0; i < STMT_SLOTS; i++) {
        if (slots[i].st == st && slots[i].gen == gen) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            return;
        }
    }
    sqlite3_finalize(st);
}

/* The process-wide writer lock. Threads marked urgent (the gateway's loop,
 * where a client waits for its 202) go before the others: a worker that
 * wants the lock waits while an urgent thread does. Without this the loop
 * thread queued behind every worker transaction under load. */
static pthread_mutex_t writer_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t writer_cv = PTHREAD_COND_INITIALIZER;
static int writer_held;           /* guarded by writer_mu */
static int urgent_waiting;        /* guarded by writer_mu */
static _Thread_local bool thread_urgent;

/* WAL checkpoints. SQLite's autocheckpoint runs inside the COMMIT that
 * takes the WAL past its threshold, under toro's writer lock, so that the
 * next writer restarts the WAL from its start (a checkpoint outside the lock
 * races the next commit and the WAL never restarts). The urgent thread
 * (the gateway's commits, where clients wait for 202) leaves them to the
 * workers, which commit after every question they handle; its own
 * threshold is only a backstop for when no worker commits. Durability is
 * unchanged: a commit is durable in the WAL; a checkpoint moves pages. */
#define CKPT_FRAMES 1000         /* SQLite's default */
#define CKPT_FRAMES_URGENT 16000 /* ~64 MB of WAL with 4 KiB pages */

void toro_db_set_urgent(toro_db_t *db, bool urgent)
{
    thread_urgent = urgent;
    sqlite3 *c = toro_db_conn(db);
    if (c)
        sqlite3_wal_autocheckpoint(c, urgent ? CKPT_FRAMES_URGENT : CKPT_FRAMES);
}

static void writer_lock(void)
{
    pthread_mutex_lock(&writer_mu);
    if (thread_urgent)
        urgent_waiting++;
    while (writer_held || (!thread_urgent && urgent_waiting))
        pthread_cond_wait(&writer_cv, &writer_mu);
    if (thread_urgent)
        urgent_waiting--;
    writer_held = 1;
    pthread_mutex_unlock(&writer_mu);
}

static void writer_unlock(void)
{
    pthread_mutex_lock(&writer_mu);
    writer_held = 0;
    pthread_cond_broadcast(&writer_cv);
    pthread_mutex_unlock(&writer_mu);
}

/* A statement without results through the cache. 0 or TORO_EIO. */
static int exec_cached(sqlite3 *c, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int rc = TORO_EIO;
    if (toro_db_prepare(c, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_DONE)
        rc = 0;
    if (rc)
        toro_db_report(c, "db", sql, sql);
    toro_db_done(st);
    return rc;
}

void toro_db_report(sqlite3 *c, const char *component, const char *key, const char *what)
{
    const char *msg = c ? sqlite3_errmsg(c) : "no database connection";
    toro_health_note(msg);
    toro_log_ratelimited(TORO_LOG_ERROR, component, key, "%s: %s", what, msg);
}

void toro_db_write_lock(void) { writer_lock(); }
void toro_db_write_unlock(void) { writer_unlock(); }

int toro_db_begin(sqlite3 *c)
{
    if (!c)
        return TORO_EIO;
    writer_lock();
    int rc = exec_cached(c, "BEGIN IMMEDIATE");
    if (rc)
        writer_unlock();
    return rc;
}

int toro_db_end(sqlite3 *c, int rc)
{
    if (rc == 0)
        rc = exec_cached(c, "COMMIT");
    if (rc && !sqlite3_get_autocommit(c)) /* a failed COMMIT may have rolled back already */
        exec_cached(c, "ROLLBACK");
    writer_unlock();
    return rc;
}

int toro_db_exec(sqlite3 *c, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(c, sql, NULL, NULL, &msg) != SQLITE_OK) {
        toro_log_error("db", NULL, "%s: %s", sql, msg ? msg : sqlite3_errmsg(c));
        sqlite3_free(msg);
        return TORO_EIO;
    }
    return 0;
}

/* db.c: per-thread SQLite connections to one file, a statement cache and the
 * writer thread that runs every write of the process in group transactions
 * (see db.h). */
#define _GNU_SOURCE /* pthread_setname_np */
#include "store/db.h"

#include <assert.h>
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

/* One write waiting for, or run by, the writer thread; on its caller's stack. */
typedef struct write_req {
    toro_db_write_fn *fn;
    void *arg;
    int rc;                 /* fn's result, or the batch's failure */
    bool done;              /* guarded by wmu: rc is final, the caller may return */
    struct write_req *next; /* guarded by wmu while queued */
} write_req_t;

struct toro_db {
    char *path;
    toro_db_sync_t sync;
    pthread_key_t key;       /* -> conn_node_t of the calling thread */
    pthread_mutex_t lock;    /* guards conns */
    conn_node_t *conns;      /* every open connection, closed at toro_db_close */
    /* the writer thread (toro_db_write) */
    pthread_t writer;
    bool writer_started;     /* writer was created and not yet joined */
    pthread_mutex_t wmu;     /* guards the fields below and every queued write_req_t */
    pthread_cond_t work_cv;  /* a write was queued, or stopping was set */
    pthread_cond_t done_cv;  /* a batch ended: its callers may return */
    write_req_t *head;       /* queued writes, oldest first */
    write_req_t **tail;      /* &last->next, or &head */
    bool stopping;           /* toro_db_close: the writer ends once the queue is empty */
    /* the checkpointer thread (ckpt_main) */
    pthread_t ckpt;
    bool ckpt_started;       /* ckpt was created and not yet joined */
    pthread_cond_t ckpt_cv;  /* a checkpoint is wanted (ckpt_running), or stopping */
    bool ckpt_running;       /* guarded by wmu: asked for or running */
    bool ckpt_tail;          /* guarded by wmu: the writer checkpoints what was appended meanwhile */
    int ckpt_next;           /* writer thread only: WAL frames at which the next checkpoint starts */
    int wal_frames;          /* writer thread only: WAL frames after its last commit */
};

/* WAL frames (pages of 4 KiB) written between two checkpoints (SQLite's
 * own default is 1000). Each checkpoint ends with the writer's tail, whose
 * two fsyncs hold up every write for a few milliseconds: fewer, larger
 * checkpoints cost the clients less. */
#define CKPT_FRAMES 8000

static int writer_start(toro_db_t *db);
static void writer_stop(toro_db_t *db);
static void release(toro_db_t *db);

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
    /* the writer's savepoints journal the pages they change: in memory,
     * not in a temporary file made and deleted per batch */
    sqlite3_exec(c, "PRAGMA temp_store=MEMORY", NULL, NULL, NULL);
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
    pthread_mutex_init(&db->wmu, NULL);
    pthread_cond_init(&db->work_cv, NULL);
    pthread_cond_init(&db->done_cv, NULL);
    pthread_cond_init(&db->ckpt_cv, NULL);
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
    if ((rc = writer_start(db)) != 0) {
        toro_set_err(err, "cannot start the database writer thread");
        goto fail;
    }
    *out = db;
    return 0;
fail:
    release(db);
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

/* Closes the connections of db and frees it (its threads have ended). */
static void release(toro_db_t *db)
{
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
    pthread_cond_destroy(&db->done_cv);
    pthread_cond_destroy(&db->ckpt_cv);
    pthread_cond_destroy(&db->work_cv);
    pthread_mutex_destroy(&db->wmu);
    pthread_mutex_destroy(&db->lock);
    free(db->path);
    free(db);
    atomic_fetch_add(&generation, 1); /* cached statements of it are gone */
}

void toro_db_close(toro_db_t *db)
{
    if (!db)
        return;
    writer_stop(db); /* the writes queued are done first */
    release(db);
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

/* The writer thread. SQLite admits one writer per file; rather than let the
 * threads of the process take turns with a lock (each commit its own WAL
 * append, each hand-over a futex wake-up, and a worker thread whose nice
 * value is raised holding the lock while the gateway's commit waits behind
 * it), one thread at normal priority runs every write: it takes all the
 * writes queued while it was busy and runs them in one BEGIN IMMEDIATE
 * transaction, each in a savepoint of its own (a write that fails is rolled
 * back alone and returns its code), then commits once. A failed COMMIT, or
 * an error that made SQLite roll the whole transaction back, fails every
 * write of the batch with TORO_EIO: nothing of it was written. WAL
 * checkpoints run on a thread of their own (ckpt_main). */

/* Fails the writes of [from, to) whose own result was success: their
 * writes were rolled back with the batch. */
static void fail_batch(write_req_t *from, const write_req_t *to)
{
    for (write_req_t *r = from; r != to; r = r->next)
        if (r->rc == 0)
            r->rc = TORO_EIO;
}

/* Runs the writes of the list first in one transaction on c (NULL: the
 * connection could not be opened) and sets each one's rc. */
static void run_batch(sqlite3 *c, write_req_t *first)
{
    int rc = c ? exec_cached(c, "BEGIN IMMEDIATE") : TORO_EIO;
    write_req_t *r = first;
    while (r && rc == 0 && (rc = exec_cached(c, "SAVEPOINT toro_w")) == 0) {
        r->rc = r->fn(c, r->arg);
        if (sqlite3_get_autocommit(c)) /* SQLite ended the transaction (I/O error, disk full) */
            rc = TORO_EIO;
        else if (r->rc)
            rc = exec_cached(c, "ROLLBACK TO toro_w"); /* r's writes only */
        if (rc == 0)
            rc = exec_cached(c, "RELEASE toro_w");
        r = r->next;
    }
    for (write_req_t *q = r; q; q = q->next) /* not run: the batch failed before them */
        q->rc = TORO_EIO;
    if (rc == 0)
        rc = exec_cached(c, "COMMIT");
    if (rc) {
        if (c && !sqlite3_get_autocommit(c)) /* a failed COMMIT may have rolled back already */
            exec_cached(c, "ROLLBACK");
        fail_batch(first, r);
    }
}

/* The WAL hook of the writer's connection (after each commit): once
 * CKPT_FRAMES frames were written since the last checkpoint started (or
 * since the WAL started over), wakes the checkpointer. A WAL that could not
 * start over (a reader still used its end) is not checkpointed again at
 * every commit: the next one waits for CKPT_FRAMES more. */
static int on_wal_commit(void *arg, sqlite3 *c, const char *name, int frames)
{
    toro_db_t *db = arg;
    (void)c;
    (void)name;
    if (frames < db->wal_frames || db->ckpt_next == 0) /* the WAL started over */
        db->ckpt_next = CKPT_FRAMES;
    db->wal_frames = frames;
    if (frames >= db->ckpt_next) {
        pthread_mutex_lock(&db->wmu);
        if (!db->ckpt_running) {
            db->ckpt_running = true;
            db->ckpt_next = frames + CKPT_FRAMES;
            pthread_cond_signal(&db->ckpt_cv);
        }
        pthread_mutex_unlock(&db->wmu);
    }
    return SQLITE_OK;
}

/* A PASSIVE checkpoint on c (never waits for the writer); a failure only
 * leaves the WAL longer until the next one, so it is logged, not returned. */
static void checkpoint(sqlite3 *c)
{
    int rc = sqlite3_wal_checkpoint_v2(c, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        toro_db_report(c, "db", "checkpoint", "WAL checkpoint failed");
}

static void *writer_main(void *arg)
{
    toro_db_t *db = arg;
    pthread_setname_np(pthread_self(), "toro-writer"); /* for top -H, perf */
    sqlite3 *c = toro_db_conn(db);
    if (c) {
        sqlite3_wal_autocheckpoint(c, 0); /* the checkpointer's job */
        sqlite3_wal_hook(c, on_wal_commit, db);
    }
    pthread_mutex_lock(&db->wmu);
    for (;;) {
        while (!db->head && !db->stopping)
            pthread_cond_wait(&db->work_cv, &db->wmu);
        if (!db->head)
            break; /* stopping, nothing left */
        write_req_t *batch = db->head;
        db->head = NULL;
        db->tail = &db->head;
        pthread_mutex_unlock(&db->wmu);
        run_batch(c, batch);
        pthread_mutex_lock(&db->wmu);
        for (write_req_t *r = batch; r; r = r->next)
            r->done = true;
        pthread_cond_broadcast(&db->done_cv);
        if (db->ckpt_tail && c) { /* the frames written while the checkpointer ran */
            db->ckpt_tail = false;
            pthread_mutex_unlock(&db->wmu);
            checkpoint(c); /* so that the next write starts the WAL over */
            pthread_mutex_lock(&db->wmu);
        }
    }
    pthread_mutex_unlock(&db->wmu);
    return NULL;
}

/* The checkpointer: copies the WAL's pages into the database file on its
 * own connection, beside the writer (SQLite lets one checkpoint run beside
 * one writer), so that the writes of clients wait only for the tail: the
 * frames the writer appended meanwhile are left to the writer (ckpt_tail);
 * after that its next write starts the WAL over from its start when no
 * reader still uses the WAL's end. The tail's two fsyncs are what the
 * clients still wait for, once per CKPT_FRAMES (BENCHMARKS.md). */
static void *ckpt_main(void *arg)
{
    toro_db_t *db = arg;
    pthread_setname_np(pthread_self(), "toro-checkpoint");
    sqlite3 *c = toro_db_conn(db);
    pthread_mutex_lock(&db->wmu);
    for (;;) {
        while (!db->ckpt_running && !db->stopping)
            pthread_cond_wait(&db->ckpt_cv, &db->wmu);
        if (db->stopping)
            break;
        pthread_mutex_unlock(&db->wmu);
        if (c)
            checkpoint(c);
        pthread_mutex_lock(&db->wmu);
        db->ckpt_running = false;
        db->ckpt_tail = true;
    }
    pthread_mutex_unlock(&db->wmu);
    return NULL;
}

/* Ends the writer (once the writes queued are done) and the checkpointer. */
static void writer_stop(toro_db_t *db)
{
    pthread_mutex_lock(&db->wmu);
    db->stopping = true;
    pthread_cond_broadcast(&db->work_cv);
    pthread_cond_broadcast(&db->ckpt_cv);
    pthread_mutex_unlock(&db->wmu);
    if (db->writer_started)
        pthread_join(db->writer, NULL);
    if (db->ckpt_started)
        pthread_join(db->ckpt, NULL);
    db->writer_started = db->ckpt_started = false;
}

/* Starts the writer and checkpointer threads of db. 0 or TORO_ENOMEM
 * (nothing left running). */
static int writer_start(toro_db_t *db)
{
    db->tail = &db->head;
    db->writer_started = pthread_create(&db->writer, NULL, writer_main, db) == 0;
    db->ckpt_started = db->writer_started && pthread_create(&db->ckpt, NULL, ckpt_main, db) == 0;
    if (db->ckpt_started)
        return 0;
    writer_stop(db);
    return TORO_ENOMEM;
}

int toro_db_write(toro_db_t *db, toro_db_write_fn *fn, void *arg)
{
    write_req_t r = {.fn = fn, .arg = arg};
    assert(db && fn && !pthread_equal(pthread_self(), db->writer));
    pthread_mutex_lock(&db->wmu);
    if (db->stopping) {
        pthread_mutex_unlock(&db->wmu);
        return TORO_EUNAVAIL;
    }
    *db->tail = &r;
    db->tail = &r.next;
    pthread_cond_signal(&db->work_cv);
    while (!r.done)
        pthread_cond_wait(&db->done_cv, &db->wmu);
    pthread_mutex_unlock(&db->wmu);
    return r.rc;
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

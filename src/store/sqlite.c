/* sqlite.c: the embedded store. Tables questions and connections and the
 * outbox (bus_events, dead letters in bus_dead; names kept from earlier
 * versions so existing data files open unchanged) live in one SQLite file
 * (WAL); every write runs on the db's writer thread (store/db.h,
 * toro_db_write), and each guarded status change commits with its event
 * (transition()). The outbox is read back through
 * bus/outbox.h: by the local bus in the same process, or by a relay. */
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "store/db.h"
#include "store/store.h"

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS questions("
    " user_id TEXT NOT NULL, question_id TEXT NOT NULL, question TEXT NOT NULL, status TEXT NOT NULL,"
    " answer TEXT, sources TEXT, found_relevant_docs INTEGER, model TEXT, kb_version TEXT, error_message TEXT,"
    " attempts INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    " processing_started_at INTEGER, processed_at INTEGER,"
    " PRIMARY KEY (user_id, question_id)) WITHOUT ROWID;"
    "CREATE UNIQUE INDEX IF NOT EXISTS questions_by_id ON questions(question_id);"
    "CREATE INDEX IF NOT EXISTS questions_history ON questions(user_id, created_at DESC, question_id DESC);"
    "CREATE TABLE IF NOT EXISTS connections(connection_id TEXT PRIMARY KEY, user_id TEXT NOT NULL,"
    " node TEXT NOT NULL, connected_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS connections_by_user ON connections(user_id);"
    "CREATE TABLE IF NOT EXISTS bus_events(id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
    " payload TEXT NOT NULL, created_at INTEGER NOT NULL, available_at INTEGER NOT NULL,"
    " leased_until INTEGER NOT NULL DEFAULT 0, deliveries INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS bus_events_topic ON bus_events(topic, id);"
    "CREATE TABLE IF NOT EXISTS bus_dead(id INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload TEXT NOT NULL,"
    " created_at INTEGER NOT NULL, dead_at INTEGER NOT NULL, deliveries INTEGER NOT NULL, reason TEXT);";

typedef struct sqlite_store {
    toro_store_t super;
    toro_outbox_t outbox;   /* this store's outbox interface */
    toro_db_t *db;
    int wake[2];            /* pipe written after commits with events once a waiter exists */
    atomic_int has_waiter;  /* 1 after the first toro_outbox_wait (a relay runs) */
} sqlite_store_t;

#define COLS                                                                                                           \
    "user_id, question_id, question, status, answer, sources, found_relevant_docs, model, kb_version,"                 \
    " error_message, attempts, created_at, updated_at, processing_started_at, processed_at,"                        \
    " feedback_rating, feedback_comment, feedback_at, conversation_id, retrieval_query"
#define COL_FEEDBACK 15     /* the first of the three feedback columns in COLS */
#define COL_CONVERSATION 18 /* conversation_id, then retrieval_query */

/* Columns added after the first release: a file made before gets them when
 * it is opened (add_columns), so existing data files keep opening. */
static const char *const added_columns[][2] = {
    {"feedback_rating", "TEXT CHECK (feedback_rating IN ('up','down'))"},
    {"feedback_comment", "TEXT"},
    {"feedback_at", "INTEGER"},
    {"conversation_id", "TEXT"},
    {"retrieval_query", "TEXT"},
};
static const char added_indexes[] = "CREATE INDEX IF NOT EXISTS questions_feedback ON questions(feedback_at,"
                                    " question_id) WHERE feedback_rating IS NOT NULL;"
                                    "CREATE INDEX IF NOT EXISTS questions_conversation ON questions(user_id,"
                                    " conversation_id, created_at, question_id);";

/* Questions per status for /metrics, kept by triggers in the transaction
 * of every change, in place of an index on status (dropped: it cost every
 * new question a page write at a random place; a count read it all). The
 * first open of an older file fills the counts from its rows. */
static const char added_counts[] =
    "BEGIN IMMEDIATE;"
    "CREATE TABLE IF NOT EXISTS question_counts(status TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO question_counts(status, n) SELECT s.status, (SELECT count(*) FROM questions q"
    " WHERE q.status = s.status) FROM (SELECT 'pending' AS status UNION ALL SELECT 'processing' UNION ALL"
    " SELECT 'completed' UNION ALL SELECT 'error') s WHERE NOT EXISTS (SELECT 1 FROM question_counts);"
    "CREATE TRIGGER IF NOT EXISTS question_counts_ins AFTER INSERT ON questions BEGIN"
    " UPDATE question_counts SET n = n + 1 WHERE status = NEW.status; END;"
    "CREATE TRIGGER IF NOT EXISTS question_counts_upd AFTER UPDATE OF status ON questions"
    " WHEN OLD.status <> NEW.status BEGIN UPDATE question_counts SET n = n - 1 WHERE status = OLD.status;"
    " UPDATE question_counts SET n = n + 1 WHERE status = NEW.status; END;"
    "CREATE TRIGGER IF NOT EXISTS question_counts_del AFTER DELETE ON questions BEGIN"
    " UPDATE question_counts SET n = n - 1 WHERE status = OLD.status; END;"
    "DROP INDEX IF EXISTS questions_status;"
    "COMMIT;";

static sqlite3 *conn(toro_store_t *s) { return toro_db_conn(((sqlite_store_t *)s)->db); }

static sqlite_store_t *of_outbox(toro_outbox_t *o)
{
    return (sqlite_store_t *)(void *)((char *)o - offsetof(sqlite_store_t, outbox));
}

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

static void row_to_question(sqlite3_stmt *st, toro_question_t *q)
{
    memset(q, 0, sizeof *q);
    q->user_id = col_dup(st, 0);
    q->question_id = col_dup(st, 1);
    q->question = col_dup(st, 2);
    const char *status = (const char *)sqlite3_column_text(st, 3);
    if (toro_status_parse(status, &q->status) != 0)
        q->status = TORO_STATUS_ERROR;
    q->answer = col_dup(st, 4);
    const char *src = (const char *)sqlite3_column_text(st, 5);
    if (toro_sources_load(src, &q->sources, &q->n_sources) == TORO_EFORMAT)
        toro_log_warn("store", q->question_id, "stored sources are not a JSON array; shown as none");
    q->found_relevant_docs = sqlite3_column_int(st, 6) != 0;
    q->model = col_dup(st, 7);
    q->kb_version = col_dup(st, 8);
    q->error_message = col_dup(st, 9);
    q->attempts = sqlite3_column_int(st, 10);
    q->created_at = sqlite3_column_int64(st, 11);
    q->updated_at = sqlite3_column_int64(st, 12);
    q->processing_started_at = sqlite3_column_int64(st, 13);
    q->processed_at = sqlite3_column_int64(st, 14);
    if (toro_rating_parse((const char *)sqlite3_column_text(st, COL_FEEDBACK), &q->feedback.rating) == 0) {
        q->feedback.comment = col_dup(st, COL_FEEDBACK + 1);
        q->feedback.at = sqlite3_column_int64(st, COL_FEEDBACK + 2);
    }
    q->conversation_id = col_dup(st, COL_CONVERSATION);
    q->retrieval_query = col_dup(st, COL_CONVERSATION + 1);
}

/* After a commit that wrote events: wakes a waiting relay. */
static void wake_relay(sqlite_store_t *ss)
{
    if (atomic_load(&ss->has_waiter)) {
        ssize_t w = write(ss->wake[1], "e", 1); /* full pipe: a wake-up is pending anyway */
        (void)w;
    }
}

/* Runs fn(c, arg) on the writer thread (store/db.h); a committed write
 * with events (events true) wakes a waiting relay. */
static int write_tx(toro_store_t *s, toro_db_write_fn *fn, void *arg, bool events)
{
    sqlite_store_t *ss = (sqlite_store_t *)s;
    int rc = toro_db_write(ss->db, fn, arg);
    if (rc == 0 && events)
        wake_relay(ss);
    return rc;
}

/* The outbox write of a state change, inside the caller's transaction. */
static int outbox_put(sqlite3 *c, const toro_event_t *ev)
{
    sqlite3_stmt *st = NULL;
    int rc = TORO_EIO;
    int64_t now = toro_now_ms();
    assert(ev && ev->topic && ev->payload);
    if (toro_db_prepare(c, "INSERT INTO bus_events(topic, payload, created_at, available_at) VALUES (?1, ?2, ?3, ?3)",
                        -1, &st, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(st, 1, ev->topic, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ev->payload, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now);
    if (sqlite3_step(st) == SQLITE_DONE)
        rc = 0;
out:
    if (rc)
        toro_db_report(c, "store", "outbox-put", "outbox write failed");
    toro_db_done(st);
    return rc;
}

/* Inserts one pending question and its event inside the caller's transaction. */
static int insert_question(sqlite3 *c, const toro_question_t *q, const toro_event_t *ev)
{
    sqlite3_stmt *st = NULL;
    int rc = TORO_EIO;
    if (toro_db_prepare(c,
                        "INSERT INTO questions(user_id, question_id, question, status, attempts, created_at,"
                        " updated_at, conversation_id) VALUES (?1, ?2, ?3, 'pending', 0, ?4, ?4, ?5)",
                        -1, &st, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(st, 1, q->user_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, q->question_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, q->question, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, q->created_at);
    sqlite3_bind_text(st, 5, q->conversation_id, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_CONSTRAINT) {
        rc = TORO_ECONFLICT;
        goto out;
    }
    if (step != SQLITE_DONE)
        goto out;
    rc = outbox_put(c, ev);
out:
    if (rc && rc != TORO_ECONFLICT)
        toro_db_report(c, "store", "store-create", "create failed");
    toro_db_done(st);
    return rc;
}

typedef struct create_args {
    const toro_question_t *qs;
    const toro_event_t *evs;
    size_t n;
} create_args_t;

/* toro_db_write_fn: inserts every question of a (create_args_t) or none. */
static int create_fn(sqlite3 *c, void *arg)
{
    const create_args_t *a = arg;
    int rc = 0;
    for (size_t i = 0; i < a->n && rc == 0; i++)
        rc = insert_question(c, &a->qs[i], &a->evs[i]);
    return rc;
}

static int s_create(toro_store_t *s, const toro_question_t *q, const toro_event_t *ev)
{
    create_args_t a = {q, ev, 1};
    return write_tx(s, create_fn, &a, true);
}

/* All or none: every results[i] gets the transaction's code. */
static int s_create_many(toro_store_t *s, const toro_question_t *qs, const toro_event_t *evs, size_t n, int *results)
{
    create_args_t a = {qs, evs, n};
    int rc = write_tx(s, create_fn, &a, true);
    for (size_t i = 0; i < n; i++)
        results[i] = rc;
    return rc;
}

static int s_get(toro_store_t *s, const char *question_id, toro_question_t *out)
{
    sqlite3 *c = conn(s);
    sqlite3_stmt *st = NULL;
    int rc = TORO_EIO;
    if (!c || toro_db_prepare(c, "SELECT " COLS " FROM questions WHERE question_id = ?1", -1, &st, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(st, 1, question_id, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        row_to_question(st, out);
        rc = 0;
    } else if (step == SQLITE_DONE) {
        rc = TORO_ENOTFOUND;
    }
out:
    toro_db_done(st);
    return rc;
}

static int s_list(toro_store_t *s, const char *user_id, int limit, const char *cursor, toro_question_t **items,
                  size_t *n, char **next)
{
    sqlite3 *c = conn(s);
    sqlite3_stmt *st = NULL;
    int64_t c_at = INT64_MAX;
    char c_qid[64] = "\xff";
    toro_question_t *arr = NULL;
    size_t count = 0;
    int rc = 0;
    *items = NULL;
    *n = 0;
    *next = NULL;
    if (cursor && toro_history_cursor_decode(cursor, &c_at, c_qid) != 0)
        return TORO_EINVAL;
    arr = calloc((size_t)limit + 1, sizeof *arr);
    if (!arr)
        return TORO_ENOMEM;
    rc = TORO_EIO;
    if (!c || toro_db_prepare(c,
                                 "SELECT " COLS " FROM questions WHERE user_id = ?1 AND (created_at < ?2 OR"
                                 " (created_at = ?2 AND question_id < ?3)) ORDER BY created_at DESC, question_id DESC"
                                 " LIMIT ?4",
                                 -1, &st, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, c_at);
    sqlite3_bind_text(st, 3, c_qid, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, limit + 1);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW)
        row_to_question(st, &arr[count++]);
    if (step != SQLITE_DONE)
        goto out;
    if (count > (size_t)limit) {
        toro_question_clear(&arr[limit]);
        count = (size_t)limit;
        *next = toro_history_cursor_encode(&arr[count - 1]);
    }
    rc = 0;
out:
    toro_db_done(st);
    if (rc) {
        toro_questions_free(arr, count);
        return rc;
    }
    *items = arr;
    *n = count;
    return 0;
}

static int read_status(sqlite3 *c, const char *user_id, const char *question_id, toro_status_t *status, int *attempts)
{
    sqlite3_stmt *st = NULL;
    int rc = TORO_EIO;
    if (toro_db_prepare(c, "SELECT status, attempts FROM questions WHERE user_id = ?1 AND question_id = ?2", -1,
                           &st, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, question_id, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        rc = toro_status_parse((const char *)sqlite3_column_text(st, 0), status);
        if (attempts)
            *attempts = sqlite3_column_int(st, 1);
    } else if (step == SQLITE_DONE) {
        rc = TORO_ENOTFOUND;
    }
out:
    toro_db_done(st);
    return rc;
}

/* The UPDATE of each target status: ?1 user_id, ?2 question_id, ?3 now,
 * ?4.. toro_transition_args. */
static const char *const transition_sql[TORO_STATUS_COUNT] = {
    [TORO_STATUS_PROCESSING] = "UPDATE questions SET status = 'processing', attempts = attempts + 1, updated_at = ?3,"
                               " processing_started_at = coalesce(processing_started_at, ?3)"
                               " WHERE user_id = ?1 AND question_id = ?2",
    [TORO_STATUS_COMPLETED] = "UPDATE questions SET status = 'completed', answer = ?4, sources = ?5,"
                              " found_relevant_docs = CAST(?6 AS INTEGER), model = ?7, kb_version = ?8,"
                              " retrieval_query = ?9, error_message = NULL, updated_at = ?3, processed_at = ?3"
                              " WHERE user_id = ?1 AND question_id = ?2",
    [TORO_STATUS_ERROR] = "UPDATE questions SET status = 'error', error_message = ?4, updated_at = ?3,"
                          " processed_at = ?3 WHERE user_id = ?1 AND question_id = ?2",
};

/* Runs t's UPDATE inside the caller's transaction. */
static int update_status(sqlite3 *c, const toro_transition_t *t, const char *const *args, int n_args)
{
    sqlite3_stmt *st = NULL;
    int rc = TORO_EIO;
    if (toro_db_prepare(c, transition_sql[t->to], -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, t->user_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, t->question_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, toro_now_ms());
        for (int i = 0; i < n_args; i++)
            sqlite3_bind_text(st, 4 + i, args[i], -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_DONE)
            rc = 0;
    }
    toro_db_done(st);
    return rc;
}

typedef struct transition_args {
    toro_transition_t *t;
    const char *args[TORO_TRANSITION_MAX_ARGS];
    int n_args;
    bool wrote_ev; /* out: the event was written */
} transition_args_t;

/* toro_db_write_fn: the read, the guard, the UPDATE and the event of a
 * (transition_args_t). */
static int transition_fn(sqlite3 *c, void *arg)
{
    transition_args_t *a = arg;
    toro_transition_t *t = a->t;
    a->wrote_ev = false;
    int rc = read_status(c, t->user_id, t->question_id, &t->from, &t->attempts);
    if (rc == 0 && !toro_status_can_move(t->from, t->to))
        rc = TORO_ECONFLICT;
    if (rc == 0)
        rc = update_status(c, t, a->args, a->n_args);
    if (rc == 0 && t->ev && (!t->ev_if_pending || t->from == TORO_STATUS_PENDING)) {
        rc = outbox_put(c, t->ev);
        a->wrote_ev = rc == 0;
    }
    return rc;
}

/* The guarded status change (store.h, toro_transition_t): one write on the
 * writer thread; on failure nothing was written. */
static int s_transition(toro_store_t *s, toro_transition_t *t)
{
    transition_args_t a = {.t = t};
    char *owned = NULL;
    assert(t->to < TORO_STATUS_COUNT && transition_sql[t->to]);
    a.n_args = toro_transition_args(t, "1", "0", a.args, &owned);
    if (a.n_args < 0)
        return a.n_args;
    int rc = toro_db_write(((sqlite_store_t *)s)->db, transition_fn, &a);
    if (rc == 0 && a.wrote_ev)
        wake_relay((sqlite_store_t *)s);
    free(owned);
    return rc;
}

typedef struct text_args {
    const char *sql;    /* a string literal (statement cache key) */
    const char *a, *b, *d; /* ?1, ?2, ?3 (b, d: NULL leaves them unbound) */
    int64_t e;          /* ?4 (0: unbound) */
} text_args_t;

/* toro_db_write_fn: one statement of a (text_args_t). */
static int text_fn(sqlite3 *c, void *arg)
{
    const text_args_t *t = arg;
    sqlite3_stmt *st = NULL;
    int rc = TORO_EIO;
    if (toro_db_prepare(c, t->sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, t->a, -1, SQLITE_STATIC);
        if (t->b)
            sqlite3_bind_text(st, 2, t->b, -1, SQLITE_STATIC);
        if (t->d)
            sqlite3_bind_text(st, 3, t->d, -1, SQLITE_STATIC);
        if (t->e)
            sqlite3_bind_int64(st, 4, t->e);
        if (sqlite3_step(st) == SQLITE_DONE)
            rc = 0;
    }
    if (rc)
        toro_db_report(c, "store", t->sql, t->sql);
    toro_db_done(st);
    return rc;
}

static int exec_text(toro_store_t *s, const char *sql, const char *a, const char *b, const char *d, int64_t e)
{
    text_args_t t = {sql, a, b, d, e};
    return write_tx(s, text_fn, &t, false);
}

static int s_put_conn(toro_store_t *s, const toro_connection_t *cn)
{
    return exec_text(s, "INSERT OR REPLACE INTO connections(connection_id, user_id, node, connected_at)"
                        " VALUES (?1, ?2, ?3, ?4)",
                     cn->connection_id, cn->user_id, cn->node, cn->connected_at);
}

static int s_del_conn(toro_store_t *s, const char *id)
{
    return exec_text(s, "DELETE FROM connections WHERE connection_id = ?1", id, NULL, NULL, 0);
}

static int s_del_node(toro_store_t *s, const char *node)
{
    return exec_text(s, "DELETE FROM connections WHERE node = ?1", node, NULL, NULL, 0);
}

static int s_list_conn(toro_store_t *s, const char *user_id, toro_connection_t **out, size_t *n)
{
    sqlite3 *c = conn(s);
    sqlite3_stmt *st = NULL;
    toro_connection_t *arr = NULL;
    size_t count = 0, cap = 0;
    int rc = TORO_EIO;
    *out = NULL;
    *n = 0;
    if (!c || toro_db_prepare(c,
                                 "SELECT connection_id, user_id, node, connected_at FROM connections"
                                 " WHERE user_id = ?1 ORDER BY connected_at",
                                 -1, &st, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_STATIC);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        toro_connection_t *grown = toro_grow(arr, &cap, count, sizeof *arr, 4);
        if (!grown) {
            rc = TORO_ENOMEM;
            goto out;
        }
        arr = grown;
        toro_connection_t *cn = &arr[count++];
        cn->connection_id = col_dup(st, 0);
        cn->user_id = col_dup(st, 1);
        cn->node = col_dup(st, 2);
        cn->connected_at = sqlite3_column_int64(st, 3);
    }
    if (step == SQLITE_DONE)
        rc = 0;
out:
    toro_db_done(st);
    if (rc) {
        toro_connections_free(arr, count);
        return rc;
    }
    *out = arr;
    *n = count;
    return 0;
}

static int s_count(toro_store_t *s, long counts[TORO_STATUS_COUNT])
{
    sqlite3 *c = conn(s);
    sqlite3_stmt *st = NULL;
    int rc = TORO_EIO;
    for (int i = 0; i < TORO_STATUS_COUNT; i++)
        counts[i] = 0;
    if (c && toro_db_prepare(c, "SELECT status, n FROM question_counts", -1, &st, NULL) == SQLITE_OK) {
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            toro_status_t stt;
            if (toro_status_parse((const char *)sqlite3_column_text(st, 0), &stt) == 0)
                counts[stt] = (long)sqlite3_column_int64(st, 1);
        }
        if (step == SQLITE_DONE)
            rc = 0;
    }
    toro_db_done(st);
    return rc;
}

static int s_ping(toro_store_t *s)
{
    sqlite3 *c = conn(s);
    return c && sqlite3_exec(c, "SELECT 1 FROM questions LIMIT 1", NULL, NULL, NULL) == SQLITE_OK ? 0 : TORO_EIO;
}

/* Conversations (store.h, version 4). Rows written before conversations
 * have no conversation_id and belong to none. */

/* Reads the rows of st (bound, limit + 1 asked) into a page: at most limit
 * items and, when there were more, *next = the cursor of the last. */
static int collect_questions(sqlite3_stmt *st, int limit, toro_question_t **items, size_t *n, char **next)
{
    toro_question_t *arr = calloc((size_t)limit + 1, sizeof *arr);
    size_t count = 0;
    int step = SQLITE_DONE;
    if (!arr)
        return TORO_ENOMEM;
    while (count <= (size_t)limit && (step = sqlite3_step(st)) == SQLITE_ROW)
        row_to_question(st, &arr[count++]);
    if (count <= (size_t)limit && step != SQLITE_DONE) {
        toro_questions_free(arr, count);
        return TORO_EIO;
    }
    return toro_store_questions_page(arr, count, limit, items, n, next);
}

/* Binds a page's cursor from ?i: its created_at (NULL without a cursor:
 * from the start), its id, and the limit + 1 rows asked for. */
static void bind_page(sqlite3_stmt *st, int i, const char *cursor, int64_t at, const char *id, int limit)
{
    if (cursor)
        sqlite3_bind_int64(st, i, at);
    else
        sqlite3_bind_null(st, i);
    sqlite3_bind_text(st, i + 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, i + 2, limit + 1);
}

/* [0] oldest first, [1] newest first; ?3 NULL = from the start. */
static const char *const turns_sql[2] = {
    "SELECT " COLS " FROM questions WHERE user_id = ?1 AND conversation_id = ?2 AND (?3 IS NULL OR"
    " created_at > ?3 OR (created_at = ?3 AND question_id > ?4)) ORDER BY created_at, question_id LIMIT ?5",
    "SELECT " COLS " FROM questions WHERE user_id = ?1 AND conversation_id = ?2 AND (?3 IS NULL OR"
    " created_at < ?3 OR (created_at = ?3 AND question_id < ?4)) ORDER BY created_at DESC, question_id DESC"
    " LIMIT ?5",
};

static int s_list_turns(toro_store_t *s, const char *user_id, const char *conversation_id, bool newest_first,
                        int limit, const char *cursor, toro_question_t **items, size_t *n, char **next)
{
    sqlite3 *c = conn(s);
    sqlite3_stmt *st = NULL;
    int64_t c_at = 0;
    char c_qid[64] = "";
    int rc = TORO_EIO;
    if (cursor && toro_history_cursor_decode(cursor, &c_at, c_qid) != 0)
        return TORO_EINVAL;
    if (!c || toro_db_prepare(c, turns_sql[newest_first], -1, &st, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, conversation_id, -1, SQLITE_STATIC);
    bind_page(st, 3, cursor, c_at, c_qid, limit);
    rc = collect_questions(st, limit, items, n, next);
out:
    toro_db_done(st);
    return rc;
}

static void row_to_conversation(sqlite3_stmt *st, const char *user_id, toro_conversation_t *cv)
{
    cv->conversation_id = col_dup(st, 0);
    cv->user_id = strdup(user_id);
    cv->created_at = sqlite3_column_int64(st, 1);
    cv->last_activity_at = sqlite3_column_int64(st, 2);
    cv->n_questions = (long)sqlite3_column_int64(st, 3);
    cv->title = col_dup(st, 4);
}

static int s_list_conversations(toro_store_t *s, const char *user_id, int limit, const char *cursor,
                                toro_conversation_t **items, size_t *n, char **next)
{
    sqlite3 *c = conn(s);
    sqlite3_stmt *st = NULL;
    int64_t c_at = 0;
    char c_id[64] = "";
    toro_conversation_t *arr = NULL;
    size_t count = 0;
    int rc = TORO_EIO, step = SQLITE_ERROR;
    if (cursor && toro_history_cursor_decode(cursor, &c_at, c_id) != 0)
        return TORO_EINVAL;
    if (!(arr = calloc((size_t)limit + 1, sizeof *arr)))
        return TORO_ENOMEM;
    if (!c || toro_db_prepare(c,
                                 "SELECT conversation_id, min(created_at), max(created_at) AS last, count(*),"
                                 " (SELECT t.question FROM questions t WHERE t.user_id = ?1 AND"
                                 " t.conversation_id = g.conversation_id ORDER BY t.created_at, t.question_id LIMIT 1)"
                                 " FROM questions g WHERE user_id = ?1 AND conversation_id IS NOT NULL"
                                 " GROUP BY conversation_id HAVING ?2 IS NULL OR max(created_at) < ?2 OR"
                                 " (max(created_at) = ?2 AND conversation_id < ?3)"
                                 " ORDER BY last DESC, conversation_id DESC LIMIT ?4",
                                 -1, &st, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_STATIC);
    bind_page(st, 2, cursor, c_at, c_id, limit);
    while (count <= (size_t)limit && (step = sqlite3_step(st)) == SQLITE_ROW)
        row_to_conversation(st, user_id, &arr[count++]);
    if (count <= (size_t)limit && step != SQLITE_DONE)
        goto out;
    rc = 0;
out:
    toro_db_done(st);
    if (rc) {
        toro_conversations_free(arr, count);
        return rc;
    }
    return toro_store_conversations_page(arr, count, limit, items, n, next);
}

/* The outbox (bus/outbox.h). Claims run as one UPDATE ... RETURNING on
 * the writer thread; its rows come back in no set order, so they are sorted.
 * claim_sql: [0] one event of a topic (the local bus's fetch, the hot path:
 * the statement it always was), [1] up to ?4 of a topic, [2] of any topic. */
#define CLAIM_SET "UPDATE bus_events SET leased_until = ?1, deliveries = deliveries + 1 WHERE id "
#define CLAIM_READY                                                                                                    \
    " AND available_at <= ?3 AND leased_until <= ?3 ORDER BY id LIMIT ?4)"                                             \
    " RETURNING id, topic, payload, deliveries, created_at"
static const char *const claim_sql[3] = {
    CLAIM_SET "= (SELECT id FROM bus_events WHERE topic = ?2" CLAIM_READY,
    CLAIM_SET "IN (SELECT id FROM bus_events WHERE topic = ?2" CLAIM_READY,
    CLAIM_SET "IN (SELECT id FROM bus_events WHERE ?2 IS NULL" CLAIM_READY,
};

typedef struct claim_args {
    const char *sql; /* one of claim_sql */
    const char *topic;
    int max, lease_ms;
    toro_outbox_event_t *out;
    size_t *n;
} claim_args_t;

/* toro_db_write_fn: the claim of a (claim_args_t); the rows read are in
 * out[0..*n) also on failure (the caller frees them). */
static int claim_fn(sqlite3 *c, void *arg)
{
    claim_args_t *a = arg;
    sqlite3_stmt *st = NULL;
    int step = SQLITE_ERROR;
    int64_t now = toro_now_ms();
    if (toro_db_prepare(c, a->sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, now + a->lease_ms);
        sqlite3_bind_text(st, 2, a->topic, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, now);
        sqlite3_bind_int(st, 4, a->max);
        while ((step = sqlite3_step(st)) == SQLITE_ROW && *a->n < (size_t)a->max) {
            toro_outbox_event_t *e = &a->out[(*a->n)++];
            e->id = sqlite3_column_int64(st, 0);
            e->topic = col_dup(st, 1);
            e->payload = col_dup(st, 2);
            e->deliveries = sqlite3_column_int(st, 3);
            e->created_at = sqlite3_column_int64(st, 4);
            snprintf(e->msg_id, sizeof e->msg_id, "%lld-%lld", (long long)e->created_at, (long long)e->id);
            if (!e->topic || !e->payload)
                step = SQLITE_NOMEM;
        }
    }
    int rc = step == SQLITE_DONE ? 0 : (step == SQLITE_NOMEM ? TORO_ENOMEM : TORO_EIO);
    if (rc == TORO_EIO)
        toro_db_report(c, "store", "outbox-claim", "outbox claim failed");
    toro_db_done(st); /* ends the statement inside the write */
    return rc;
}

static int o_claim(toro_outbox_t *o, const char *topic, int max, int lease_ms, toro_outbox_event_t *out, size_t *n)
{
    assert(max > 0 && out && n);
    *n = 0;
    claim_args_t a = {claim_sql[!topic ? 2 : max == 1 ? 0 : 1], topic, max, lease_ms, out, n};
    int rc = toro_db_write(of_outbox(o)->db, claim_fn, &a);
    if (rc) { /* nothing was leased: the rows stay ready */
        toro_outbox_events_clear(out, *n);
        *n = 0;
    }
    toro_outbox_events_sort(out, *n);
    return rc;
}

/* One statement on an outbox row (?1 id, ?2 arg) inside the caller's write. */
static int exec_id(sqlite3 *c, const char *sql, int64_t id, int64_t arg)
{
    sqlite3_stmt *st = NULL;
    int rc = TORO_EIO;
    if (c && toro_db_prepare(c, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, arg);
        if (sqlite3_step(st) == SQLITE_DONE)
            rc = 0;
    }
    if (rc)
        toro_db_report(c, "store", sql, sql);
    toro_db_done(st);
    return rc;
}

typedef struct mark_args {
    const int64_t *ids;
    size_t n;
} mark_args_t;

/* toro_db_write_fn: deletes the outbox rows of a (mark_args_t). */
static int mark_fn(sqlite3 *c, void *arg)
{
    const mark_args_t *a = arg;
    int rc = 0;
    for (size_t i = 0; i < a->n && rc == 0; i++)
        rc = exec_id(c, "DELETE FROM bus_events WHERE id = ?1 AND ?2 = ?2", a->ids[i], 0);
    return rc;
}

static int o_mark(toro_outbox_t *o, const int64_t *ids, size_t n)
{
    mark_args_t a = {ids, n};
    return toro_db_write(of_outbox(o)->db, mark_fn, &a);
}

typedef struct release_args {
    int64_t id; /* 0: every lease */
    int delay_ms;
} release_args_t;

/* toro_db_write_fn: releases the lease(s) of a (release_args_t). */
static int release_fn(sqlite3 *c, void *arg)
{
    const release_args_t *a = arg;
    if (a->id == 0)
        return exec_id(c, "UPDATE bus_events SET leased_until = 0 WHERE ?1 = ?1 AND ?2 = ?2", 0, 0);
    return exec_id(c, "UPDATE bus_events SET available_at = ?2, leased_until = 0 WHERE id = ?1", a->id,
                   toro_now_ms() + (a->delay_ms > 0 ? a->delay_ms : 0));
}

static int o_release(toro_outbox_t *o, int64_t id, int delay_ms)
{
    release_args_t a = {id, delay_ms};
    return toro_db_write(of_outbox(o)->db, release_fn, &a);
}

typedef struct bury_args {
    int64_t id;
    const char *reason;
} bury_args_t;

/* toro_db_write_fn: moves the outbox row of a (bury_args_t) to bus_dead. */
static int bury_fn(sqlite3 *c, void *arg)
{
    const bury_args_t *a = arg;
    sqlite3_stmt *st = NULL;
    int rc = TORO_EIO;
    if (toro_db_prepare(c,
                        "INSERT OR REPLACE INTO bus_dead(id, topic, payload, created_at, dead_at, deliveries, reason) "
                        "SELECT id, topic, payload, created_at, ?2, deliveries, ?3 FROM bus_events WHERE id = ?1",
                        -1, &st, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_int64(st, 1, a->id);
    sqlite3_bind_int64(st, 2, toro_now_ms());
    sqlite3_bind_text(st, 3, a->reason, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto out;
    rc = exec_id(c, "DELETE FROM bus_events WHERE id = ?1 AND ?2 = ?2", a->id, 0);
out:
    toro_db_done(st);
    return rc;
}

static int o_bury(toro_outbox_t *o, int64_t id, const char *reason)
{
    bury_args_t a = {id, reason};
    return toro_db_write(of_outbox(o)->db, bury_fn, &a);
}

static int o_depth(toro_outbox_t *o, const char *topic, long *out)
{
    sqlite3 *c = toro_db_conn(of_outbox(o)->db);
    sqlite3_stmt *st = NULL;
    int rc = TORO_EIO;
    if (c && toro_db_prepare(c, "SELECT count(*) FROM bus_events WHERE topic = ?1", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            *out = (long)sqlite3_column_int64(st, 0);
            rc = 0;
        }
    }
    toro_db_done(st);
    return rc;
}

/* A relay waits here: from the first call on, commits with events write to
 * the pipe (before that no one listens, and commits skip the write). */
static int o_wait(toro_outbox_t *o, int wake_fd, int timeout_ms)
{
    sqlite_store_t *ss = of_outbox(o);
    atomic_store(&ss->has_waiter, 1);
    struct pollfd p[2] = {{.fd = ss->wake[0], .events = POLLIN}, {.fd = wake_fd, .events = POLLIN}};
    if (poll(p, 2, timeout_ms) > 0 && (p[0].revents & POLLIN)) {
        char buf[64];
        while (read(ss->wake[0], buf, sizeof buf) > 0) {
        }
    }
    return 0;
}

static const toro_outbox_ops_t sqlite_outbox_ops = {
    .version = TORO_OUTBOX_OPS_VERSION,
    .claim = o_claim,
    .mark_published = o_mark,
    .release = o_release,
    .bury = o_bury,
    .depth = o_depth,
    .wait = o_wait,
};

static toro_outbox_t *s_outbox(toro_store_t *s) { return &((sqlite_store_t *)s)->outbox; }


static void s_close(toro_store_t *s)
{
    sqlite_store_t *ss = (sqlite_store_t *)s;
    toro_db_close(ss->db);
    for (int i = 0; i < 2; i++)
        if (ss->wake[i] >= 0)
            close(ss->wake[i]);
    free(ss);
}

/* Feedback (store.h, set_feedback): the status check and the UPDATE in one
 * write; no event (nothing waits for feedback). */
typedef struct feedback_args {
    const char *user_id, *question_id;
    const toro_feedback_t *fb;
} feedback_args_t;

/* toro_db_write_fn: the guard and the UPDATE of a (feedback_args_t). */
static int feedback_fn(sqlite3 *c, void *arg)
{
    const feedback_args_t *a = arg;
    const char *user_id = a->user_id, *question_id = a->question_id;
    const toro_feedback_t *fb = a->fb;
    sqlite3_stmt *st = NULL;
    toro_status_t status = TORO_STATUS_PENDING;
    int rc = read_status(c, user_id, question_id, &status, NULL);
    if (rc == 0 && status != TORO_STATUS_COMPLETED)
        rc = TORO_ECONFLICT;
    if (rc == 0) {
        rc = TORO_EIO;
        if (toro_db_prepare(c,
                            "UPDATE questions SET feedback_rating = ?3, feedback_comment = ?4, feedback_at = ?5"
                            " WHERE user_id = ?1 AND question_id = ?2",
                            -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_text(st, 1, user_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, question_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, toro_rating_name(fb->rating), -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, fb->comment, -1, SQLITE_STATIC); /* NULL binds NULL */
            sqlite3_bind_int64(st, 5, fb->at);
            if (sqlite3_step(st) == SQLITE_DONE)
                rc = 0;
        }
        toro_db_done(st);
    }
    return rc;
}

static int s_set_feedback(toro_store_t *s, const char *user_id, const char *question_id, const toro_feedback_t *fb)
{
    feedback_args_t a = {user_id, question_id, fb};
    return write_tx(s, feedback_fn, &a, false);
}

/* Reads up to max rows of st (COLS) into a new array: 0 with *items and
 * *n set, or TORO_ENOMEM / TORO_EIO with nothing kept. */
static int read_rows(sqlite3_stmt *st, size_t max, toro_question_t **items, size_t *n)
{
    toro_question_t *arr = calloc(max ? max : 1, sizeof *arr);
    size_t count = 0;
    int step = SQLITE_DONE;
    if (!arr)
        return TORO_ENOMEM;
    while (count < max && (step = sqlite3_step(st)) == SQLITE_ROW)
        row_to_question(st, &arr[count++]);
    if (step != SQLITE_DONE && step != SQLITE_ROW) {
        toro_questions_free(arr, count);
        return TORO_EIO;
    }
    *items = arr;
    *n = count;
    return 0;
}

static int s_list_feedback(toro_store_t *s, const toro_feedback_query_t *q, toro_question_t **items, size_t *n)
{
    sqlite3 *c = conn(s);
    sqlite3_stmt *st = NULL;
    int rc = TORO_EIO;
    if (c && toro_db_prepare(c,
                             "SELECT " COLS " FROM questions WHERE feedback_rating IS NOT NULL"
                             " AND (?1 IS NULL OR feedback_rating = ?1) AND feedback_at >= ?2"
                             " AND (feedback_at > ?3 OR (feedback_at = ?3 AND question_id > ?4))"
                             " ORDER BY feedback_at, question_id LIMIT ?5",
                             -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, toro_rating_name(q->rating), -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, q->since);
        sqlite3_bind_int64(st, 3, q->after_id ? q->after_at : INT64_MIN);
        sqlite3_bind_text(st, 4, q->after_id ? q->after_id : "", -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 5, q->limit);
        rc = read_rows(st, (size_t)q->limit, items, n);
    }
    toro_db_done(st);
    return rc;
}

static const toro_store_ops_t sqlite_ops = {
    .name = "sqlite",
    .version = TORO_STORE_OPS_VERSION,
    .create_question = s_create,
    .create_questions = s_create_many,
    .get_question = s_get,
    .list_questions = s_list,
    .transition = s_transition,
    .put_connection = s_put_conn,
    .delete_connection = s_del_conn,
    .list_connections = s_list_conn,
    .delete_node_connections = s_del_node,
    .count_by_status = s_count,
    .ping = s_ping,
    .close = s_close,
    .outbox = s_outbox,
    .set_feedback = s_set_feedback,
    .list_feedback = s_list_feedback,
    .list_conversations = s_list_conversations,
    .list_turns = s_list_turns,
};

/* Whether table questions has column name (PRAGMA table_info): 1, 0, or
 * TORO_EIO. Uncached statements: this runs once, at open. */
static int has_column(sqlite3 *c, const char *name)
{
    sqlite3_stmt *st = NULL;
    int found = 0, step = SQLITE_ERROR;
    if (sqlite3_prepare_v2(c, "SELECT name FROM pragma_table_info('questions')", -1, &st, NULL) == SQLITE_OK)
        while (!found && (step = sqlite3_step(st)) == SQLITE_ROW)
            found = strcmp((const char *)sqlite3_column_text(st, 0), name) == 0;
    sqlite3_finalize(st);
    return found || step == SQLITE_DONE ? found : TORO_EIO;
}

/* Adds the columns of added_columns a file lacks and their indexes. A
 * process racing on the same file may add one first: then it exists. On
 * failure *err (caller frees) names the column. */
static int add_columns(toro_db_t *db, char **err)
{
    sqlite3 *c = toro_db_conn(db);
    char sql[256];
    for (size_t i = 0; c && i < sizeof added_columns / sizeof added_columns[0]; i++) {
        if (has_column(c, added_columns[i][0]) == 1)
            continue;
        snprintf(sql, sizeof sql, "ALTER TABLE questions ADD COLUMN %s %s", added_columns[i][0], added_columns[i][1]);
        if (sqlite3_exec(c, sql, NULL, NULL, NULL) != SQLITE_OK && has_column(c, added_columns[i][0]) != 1) {
            toro_set_err(err, "cannot add column questions.%s: %s", added_columns[i][0], sqlite3_errmsg(c));
            return TORO_EIO;
        }
    }
    if (!c || sqlite3_exec(c, added_indexes, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(c, added_counts, NULL, NULL, NULL) != SQLITE_OK) {
        toro_set_err(err, "cannot upgrade the schema: %s", c ? sqlite3_errmsg(c) : "no connection");
        if (c && !sqlite3_get_autocommit(c)) /* added_counts failed midway: nothing of it stays */
            sqlite3_exec(c, "ROLLBACK", NULL, NULL, NULL);
        return TORO_EIO;
    }
    return 0;
}

int toro_store_sqlite_open(const char *path, toro_db_sync_t sync, toro_store_t **out, char **err)
{
    sqlite_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return TORO_ENOMEM;
    s->wake[0] = s->wake[1] = -1;
    if (pipe(s->wake) != 0 || fcntl(s->wake[0], F_SETFL, O_NONBLOCK) != 0 ||
        fcntl(s->wake[1], F_SETFL, O_NONBLOCK) != 0) {
        if (err)
            *err = strdup("cannot create the outbox wake-up pipe");
        s->db = NULL;
        s_close(&s->super);
        return TORO_EIO;
    }
    int rc = toro_db_open(path, schema, sync, &s->db, err);
    if (rc == 0)
        rc = add_columns(s->db, err);
    if (rc) {
        s_close(&s->super);
        return rc;
    }
    s->super.ops = &sqlite_ops;
    s->outbox.ops = &sqlite_outbox_ops;
    *out = &s->super;
    return 0;
}

/* sqlite.c: the embedded store. Tables questions and connections live in one
 * SQLite file (WAL) beside the local bus's bus_events table; every guarded
 * status change and its event commit in one BEGIN IMMEDIATE transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
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
    "CREATE INDEX IF NOT EXISTS questions_status ON questions(status);"
    "CREATE TABLE IF NOT EXISTS connections(connection_id TEXT PRIMARY KEY, user_id TEXT NOT NULL,"
    " node TEXT NOT NULL, connected_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS connections_by_user ON connections(user_id);" TORO_BUS_LOCAL_SCHEMA;

typedef struct sqlite_store {
    toro_store_t super;
    toro_db_t *db;
} sqlite_store_t;

#define COLS                                                                                                           \
    "user_id, question_id, question, status, answer, sources, found_relevant_docs, model, kb_version,"                 \
    " error_message, attempts, created_at, updated_at, processing_started_at, processed_at"

static sqlite3 *conn(toro_store_t *s) { return toro_db_conn(((sqlite_store_t *)s)->db); }

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
}

/* Write transactions: BEGIN IMMEDIATE under the process writer lock. */
static int begin(sqlite3 *c) { return toro_db_begin(c); }
static int finish(sqlite3 *c, int rc) { return toro_db_end(c, rc); }

/* Inserts one pending question and its event inside the caller's transaction. */
static int insert_question(sqlite3 *c, const toro_question_t *q, const toro_event_t *ev)
{
    sqlite3_stmt *st = NULL;
    int rc = TORO_EIO;
    if (toro_db_prepare(c,
                        "INSERT INTO questions(user_id, question_id, question, status, attempts, created_at,"
                        " updated_at) VALUES (?1, ?2, ?3, 'pending', 0, ?4, ?4)",
                        -1, &st, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(st, 1, q->user_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, q->question_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, q->question, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, q->created_at);
    int step = sqlite3_step(st);
    if (step == SQLITE_CONSTRAINT) {
        rc = TORO_ECONFLICT;
        goto out;
    }
    if (step != SQLITE_DONE)
        goto out;
    rc = toro_bus_local_enqueue(c, ev->topic, ev->payload);
out:
    if (rc && rc != TORO_ECONFLICT)
        toro_db_report(c, "store", "store-create", "create failed");
    toro_db_done(st);
    return rc;
}

static int s_create(toro_store_t *s, const toro_question_t *q, const toro_event_t *ev)
{
    sqlite3 *c = conn(s);
    int rc = begin(c);
    if (rc)
        return rc;
    return finish(c, insert_question(c, q, ev));
}

static int s_create_many(toro_store_t *s, const toro_question_t *qs, const toro_event_t *evs, size_t n)
{
    sqlite3 *c = conn(s);
    int rc = begin(c);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = insert_question(c, &qs[i], &evs[i]);
    return finish(c, rc);
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

static int s_start(toro_store_t *s, const char *user_id, const char *question_id, const toro_event_t *ev, bool *first,
                   int *attempts)
{
    sqlite3 *c = conn(s);
    sqlite3_stmt *st = NULL;
    toro_status_t cur;
    int rc = begin(c);
    if (rc)
        return rc;
    rc = read_status(c, user_id, question_id, &cur, attempts);
    if (rc)
        goto out;
    if (!toro_status_can_move(cur, TORO_STATUS_PROCESSING)) {
        rc = TORO_ECONFLICT;
        goto out;
    }
    rc = TORO_EIO;
    int64_t now = toro_now_ms();
    if (toro_db_prepare(c,
                           "UPDATE questions SET status = 'processing', attempts = attempts + 1, updated_at = ?3,"
                           " processing_started_at = coalesce(processing_started_at, ?3)"
                           " WHERE user_id = ?1 AND question_id = ?2",
                           -1, &st, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, question_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto out;
    *first = cur == TORO_STATUS_PENDING;
    *attempts += 1;
    rc = *first && ev ? toro_bus_local_enqueue(c, ev->topic, ev->payload) : 0;
out:
    toro_db_done(st);
    return finish(c, rc);
}

static int s_complete(toro_store_t *s, const toro_question_t *r, const toro_event_t *ev)
{
    sqlite3 *c = conn(s);
    sqlite3_stmt *st = NULL;
    char *sources = NULL;
    toro_status_t cur;
    int rc = begin(c);
    if (rc)
        return rc;
    rc = read_status(c, r->user_id, r->question_id, &cur, NULL);
    if (rc)
        goto out;
    if (cur != TORO_STATUS_PROCESSING || !toro_status_can_move(cur, TORO_STATUS_COMPLETED)) {
        rc = TORO_ECONFLICT;
        goto out;
    }
    rc = TORO_EIO;
    sources = toro_sources_dump(r->sources, r->n_sources);
    int64_t now = toro_now_ms();
    if (!sources || toro_db_prepare(c,
                                       "UPDATE questions SET status = 'completed', answer = ?3, sources = ?4,"
                                       " found_relevant_docs = ?5, model = ?6, kb_version = ?7, error_message = NULL,"
                                       " updated_at = ?8, processed_at = ?8 WHERE user_id = ?1 AND question_id = ?2",
                                       -1, &st, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(st, 1, r->user_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->question_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->answer ? r->answer : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, sources, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, r->found_relevant_docs);
    sqlite3_bind_text(st, 6, r->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, r->kb_version, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, now);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto out;
    rc = ev ? toro_bus_local_enqueue(c, ev->topic, ev->payload) : 0;
out:
    toro_db_done(st);
    free(sources);
    return finish(c, rc);
}

static int s_fail(toro_store_t *s, const char *user_id, const char *question_id, const char *message,
                  const toro_event_t *ev)
{
    sqlite3 *c = conn(s);
    sqlite3_stmt *st = NULL;
    toro_status_t cur;
    int rc = begin(c);
    if (rc)
        return rc;
    rc = read_status(c, user_id, question_id, &cur, NULL);
    if (rc)
        goto out;
    if (!toro_status_can_move(cur, TORO_STATUS_ERROR)) {
        rc = TORO_ECONFLICT;
        goto out;
    }
    rc = TORO_EIO;
    int64_t now = toro_now_ms();
    if (toro_db_prepare(c,
                           "UPDATE questions SET status = 'error', error_message = ?3, updated_at = ?4,"
                           " processed_at = ?4 WHERE user_id = ?1 AND question_id = ?2",
                           -1, &st, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, question_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, message, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto out;
    rc = ev ? toro_bus_local_enqueue(c, ev->topic, ev->payload) : 0;
out:
    toro_db_done(st);
    return finish(c, rc);
}

static int exec_text(toro_store_t *s, const char *sql, const char *a, const char *b, const char *d, int64_t e)
{
    sqlite3 *c = conn(s);
    sqlite3_stmt *st = NULL;
    int rc = TORO_EIO;
    toro_db_write_lock();
    if (c && toro_db_prepare(c, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
        if (b)
            sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
        if (d)
            sqlite3_bind_text(st, 3, d, -1, SQLITE_STATIC);
        if (e)
            sqlite3_bind_int64(st, 4, e);
        if (sqlite3_step(st) == SQLITE_DONE)
            rc = 0;
    }
    toro_db_done(st);
    toro_db_write_unlock();
    if (rc)
        toro_db_report(c, "store", sql, sql);
    return rc;
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
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            toro_connection_t *na = realloc(arr, ncap * sizeof *na);
            if (!na) {
                rc = TORO_ENOMEM;
                goto out;
            }
            arr = na;
            cap = ncap;
        }
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
    if (c && toro_db_prepare(c, "SELECT status, count(*) FROM questions GROUP BY status", -1, &st, NULL) ==
                 SQLITE_OK) {
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

static void s_close(toro_store_t *s)
{
    sqlite_store_t *ss = (sqlite_store_t *)s;
    toro_db_close(ss->db);
    free(ss);
}

static const toro_store_ops_t sqlite_ops = {
    .name = "sqlite",
    .create_question = s_create,
    .create_questions = s_create_many,
    .get_question = s_get,
    .list_questions = s_list,
    .start_processing = s_start,
    .complete = s_complete,
    .fail = s_fail,
    .put_connection = s_put_conn,
    .delete_connection = s_del_conn,
    .list_connections = s_list_conn,
    .delete_node_connections = s_del_node,
    .count_by_status = s_count,
    .ping = s_ping,
    .close = s_close,
};

int toro_store_sqlite_open(const char *path, toro_db_sync_t sync, toro_store_t **out, char **err)
{
    sqlite_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return TORO_ENOMEM;
    int rc = toro_db_open(path, schema, sync, &s->db, err);
    if (rc) {
        free(s);
        return rc;
    }
    s->super.ops = &sqlite_ops;
    *out = &s->super;
    return 0;
}

void toro_questions_free(toro_question_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        toro_question_clear(&items[i]);
    free(items);
}

void toro_connections_free(toro_connection_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i].connection_id);
        free(items[i].user_id);
        free(items[i].node);
    }
    free(items);
}

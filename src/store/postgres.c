/* postgres.c: the distributed store (the DynamoDB boxes on PostgreSQL).
 * Tables questions and connections, plus an outbox table: every guarded
 * status change inserts its event into outbox in the same transaction and
 * NOTIFYs the relay (bus/relay.c), which publishes outbox rows to JetStream
 * and deletes them after the publish ack. So a row and the event announcing
 * it are never separated, even when NATS is down at commit time.
 *
 * Connections: one PGconn per calling thread (pthread key), opened lazily,
 * reset when PostgreSQL drops it, so a database restart is survived: while it
 * is down, calls return TORO_EIO and ping() fails (/healthz unhealthy).
 * The schema is created and migrated by toro_store_postgres_migrate (`toro db
 * migrate`), never implicitly by open. It does not publish anything itself. */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "store/store.h"

/* Each entry is one migration step, applied in order in its own transaction;
 * schema_migrations records the highest applied. Append, never edit. */
static const char *const migrations[] = {
    /* 1: the two tables of DESIGN.md and the outbox */
    "CREATE TABLE IF NOT EXISTS questions("
    " user_id text NOT NULL, question_id text COLLATE \"C\" NOT NULL, question text NOT NULL,"
    " status text NOT NULL CHECK (status IN ('pending','processing','completed','error')),"
    " answer text, sources text, found_relevant_docs boolean, model text, kb_version text, error_message text,"
    " attempts integer NOT NULL DEFAULT 0, created_at bigint NOT NULL, updated_at bigint NOT NULL,"
    " processing_started_at bigint, processed_at bigint, PRIMARY KEY (user_id, question_id));"
    "CREATE UNIQUE INDEX IF NOT EXISTS questions_by_id ON questions(question_id);"
    "CREATE INDEX IF NOT EXISTS questions_history ON questions(user_id, created_at DESC, question_id DESC);"
    "CREATE INDEX IF NOT EXISTS questions_status ON questions(status);"
    "CREATE TABLE IF NOT EXISTS connections(connection_id text PRIMARY KEY, user_id text NOT NULL,"
    " node text NOT NULL, connected_at bigint NOT NULL);"
    "CREATE INDEX IF NOT EXISTS connections_by_user ON connections(user_id);"
    "CREATE INDEX IF NOT EXISTS connections_by_node ON connections(node);"
    "CREATE TABLE IF NOT EXISTS outbox(id bigserial PRIMARY KEY, msg_id uuid NOT NULL DEFAULT gen_random_uuid(),"
    " topic text NOT NULL, payload text NOT NULL, created_at bigint NOT NULL);",
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

typedef struct pg_conn_slot {
    PGconn *conn;
    struct pg_conn_slot *next; /* registry of every slot, freed by close */
} pg_conn_slot_t;

typedef struct pg_store {
    toro_store_t super;
    char *conninfo;          /* owned: libpq URI or keyword string */
    pthread_key_t key;       /* -> this thread's pg_conn_slot_t */
    pthread_mutex_t lock;    /* guards slots */
    pg_conn_slot_t *slots;   /* owned */
} pg_store_t;

#define COLS                                                                                                           \
    "user_id, question_id, question, status, answer, sources, found_relevant_docs, model, kb_version,"                 \
    " error_message, attempts, created_at, updated_at, processing_started_at, processed_at"

static PGconn *open_conn(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    if (c && PQstatus(c) == CONNECTION_OK) {
        PQclear(PQexec(c, "SET client_min_messages = warning"));
        return c;
    }
    return c; /* a bad connection is kept and reset later */
}

/* This thread's connection, (re)connected if needed; NULL when unreachable. */
static PGconn *conn(toro_store_t *s)
{
    pg_store_t *ps = (pg_store_t *)s;
    pg_conn_slot_t *slot = pthread_getspecific(ps->key);
    if (!slot) {
        slot = calloc(1, sizeof *slot);
        if (!slot)
            return NULL;
        pthread_mutex_lock(&ps->lock);
        slot->next = ps->slots;
        ps->slots = slot;
        pthread_mutex_unlock(&ps->lock);
        pthread_setspecific(ps->key, slot);
    }
    if (!slot->conn)
        slot->conn = open_conn(ps->conninfo);
    else if (PQstatus(slot->conn) != CONNECTION_OK)
        PQreset(slot->conn);
    if (!slot->conn || PQstatus(slot->conn) != CONNECTION_OK)
        return NULL;
    if (PQtransactionStatus(slot->conn) != PQTRANS_IDLE) /* a failed call left a transaction open */
        PQclear(PQexec(slot->conn, "ROLLBACK"));
    return slot->conn;
}

/* Runs a parameterized statement. Returns the result (caller PQclear) or
 * NULL after logging, with *rc set: TORO_ECONFLICT on a unique violation,
 * TORO_EIO otherwise. */
static PGresult *run(PGconn *c, const char *sql, int n, const char *const *params, int *rc)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        *rc = 0;
        return r;
    }
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    *rc = state && strcmp(state, "23505") == 0 ? TORO_ECONFLICT : TORO_EIO;
    if (*rc == TORO_EIO)
        toro_log_error("store", NULL, "postgres: %s", PQerrorMessage(c));
    PQclear(r);
    return NULL;
}

static int exec0(PGconn *c, const char *sql, int n, const char *const *params)
{
    int rc;
    PQclear(run(c, sql, n, params, &rc));
    return rc;
}

static int begin(PGconn *c) { return c ? exec0(c, "BEGIN", 0, NULL) : TORO_EIO; }

static int finish(PGconn *c, int rc)
{
    if (rc == 0)
        rc = exec0(c, "COMMIT", 0, NULL);
    if (rc && PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE)
        PQclear(PQexec(c, "ROLLBACK"));
    return rc;
}

static void fmt_i64(char buf[24], int64_t v) { snprintf(buf, 24, "%lld", (long long)v); }

/* The outbox write of a state change, inside the caller's transaction. */
static int outbox_put(PGconn *c, const toro_event_t *ev)
{
    if (!ev)
        return 0;
    char now[24];
    fmt_i64(now, toro_now_ms());
    const char *p[] = {ev->topic, ev->payload, now};
    int rc = exec0(c, "INSERT INTO outbox(topic, payload, created_at) VALUES ($1, $2, $3)", 3, p);
    if (rc == 0)
        rc = exec0(c, "NOTIFY " TORO_OUTBOX_CHANNEL, 0, NULL);
    return rc;
}

static char *val_dup(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}

static int64_t val_i64(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static void row_to_question(PGresult *r, int row, toro_question_t *q)
{
    memset(q, 0, sizeof *q);
    q->user_id = val_dup(r, row, 0);
    q->question_id = val_dup(r, row, 1);
    q->question = val_dup(r, row, 2);
    if (toro_status_parse(PQgetvalue(r, row, 3), &q->status) != 0)
        q->status = TORO_STATUS_ERROR;
    q->answer = val_dup(r, row, 4);
    if (toro_sources_load(PQgetisnull(r, row, 5) ? NULL : PQgetvalue(r, row, 5), &q->sources, &q->n_sources) ==
        TORO_EFORMAT)
        toro_log_warn("store", q->question_id, "stored sources are not a JSON array; shown as none");
    q->found_relevant_docs = !PQgetisnull(r, row, 6) && PQgetvalue(r, row, 6)[0] == 't';
    q->model = val_dup(r, row, 7);
    q->kb_version = val_dup(r, row, 8);
    q->error_message = val_dup(r, row, 9);
    q->attempts = (int)val_i64(r, row, 10);
    q->created_at = val_i64(r, row, 11);
    q->updated_at = val_i64(r, row, 12);
    q->processing_started_at = val_i64(r, row, 13);
    q->processed_at = val_i64(r, row, 14);
}

/* Runs op once more on a fresh connection when PostgreSQL dropped the first
 * (a restart): the retried statements are guarded, so a commit that did land
 * the first time turns into ECONFLICT, never into a second state change. */
#define WITH_RETRY(expr)                                                                                               \
    do {                                                                                                               \
        for (int try_ = 0; try_ < 2; try_++) {                                                                         \
            rc = (expr);                                                                                               \
            if (rc != TORO_EIO)                                                                                        \
                break;                                                                                                 \
            pg_conn_slot_t *slot_ = pthread_getspecific(((pg_store_t *)s)->key);                                       \
            if (!slot_ || !slot_->conn || PQstatus(slot_->conn) == CONNECTION_OK)                                      \
                break;                                                                                                 \
        }                                                                                                              \
    } while (0)

static int create_once(toro_store_t *s, const toro_question_t *q, const toro_event_t *ev)
{
    PGconn *c = conn(s);
    int rc = begin(c);
    if (rc)
        return rc;
    char at[24];
    fmt_i64(at, q->created_at);
    const char *p[] = {q->user_id, q->question_id, q->question, at};
    rc = exec0(c,
               "INSERT INTO questions(user_id, question_id, question, status, attempts, created_at, updated_at)"
               " VALUES ($1, $2, $3, 'pending', 0, $4, $4)",
               4, p);
    if (rc == 0)
        rc = outbox_put(c, ev);
    return finish(c, rc);
}

static int s_create(toro_store_t *s, const toro_question_t *q, const toro_event_t *ev)
{
    int rc;
    WITH_RETRY(create_once(s, q, ev));
    return rc;
}

static int get_once(toro_store_t *s, const char *question_id, toro_question_t *out)
{
    PGconn *c = conn(s);
    int rc = TORO_EIO;
    if (!c)
        return rc;
    const char *p[] = {question_id};
    PGresult *r = run(c, "SELECT " COLS " FROM questions WHERE question_id = $1", 1, p, &rc);
    if (!r)
        return rc;
    if (PQntuples(r) == 1)
        row_to_question(r, 0, out);
    else
        rc = TORO_ENOTFOUND;
    PQclear(r);
    return rc;
}

static int s_get(toro_store_t *s, const char *question_id, toro_question_t *out)
{
    int rc;
    WITH_RETRY(get_once(s, question_id, out));
    return rc;
}

static int list_once(toro_store_t *s, const char *user_id, int limit, const char *cursor, toro_question_t **items,
                     size_t *n, char **next)
{
    PGconn *c = conn(s);
    int64_t c_at = 0;
    char c_qid[64] = "", at[24], lim[24];
    toro_question_t *arr = NULL;
    size_t count = 0;
    int rc = TORO_EIO;
    *items = NULL;
    *n = 0;
    *next = NULL;
    if (cursor && toro_history_cursor_decode(cursor, &c_at, c_qid) != 0)
        return TORO_EINVAL;
    if (!c)
        return TORO_EIO;
    fmt_i64(at, c_at);
    fmt_i64(lim, (int64_t)limit + 1);
    PGresult *r;
    if (cursor) {
        const char *p[] = {user_id, at, c_qid, lim};
        r = run(c,
                "SELECT " COLS " FROM questions WHERE user_id = $1 AND (created_at, question_id) < ($2::bigint, $3)"
                " ORDER BY created_at DESC, question_id DESC LIMIT $4",
                4, p, &rc);
    } else {
        const char *p[] = {user_id, lim};
        r = run(c, "SELECT " COLS " FROM questions WHERE user_id = $1 ORDER BY created_at DESC, question_id DESC"
                   " LIMIT $2",
                2, p, &rc);
    }
    if (!r)
        return rc;
    int rows = PQntuples(r);
    arr = calloc((size_t)rows + 1, sizeof *arr);
    if (!arr) {
        PQclear(r);
        return TORO_ENOMEM;
    }
    for (int i = 0; i < rows; i++)
        row_to_question(r, i, &arr[count++]);
    PQclear(r);
    if (count > (size_t)limit) {
        toro_question_clear(&arr[limit]);
        count = (size_t)limit;
        *next = toro_history_cursor_encode(&arr[count - 1]);
    }
    *items = arr;
    *n = count;
    return 0;
}

static int s_list(toro_store_t *s, const char *user_id, int limit, const char *cursor, toro_question_t **items,
                  size_t *n, char **next)
{
    int rc;
    WITH_RETRY(list_once(s, user_id, limit, cursor, items, n, next));
    return rc;
}

/* Locks the row for the rest of the transaction and reads its status. */
static int lock_status(PGconn *c, const char *user_id, const char *question_id, toro_status_t *status, int *attempts)
{
    int rc;
    const char *p[] = {user_id, question_id};
    PGresult *r = run(c, "SELECT status, attempts FROM questions WHERE user_id = $1 AND question_id = $2 FOR UPDATE",
                      2, p, &rc);
    if (!r)
        return rc;
    if (PQntuples(r) != 1) {
        rc = TORO_ENOTFOUND;
    } else {
        rc = toro_status_parse(PQgetvalue(r, 0, 0), status);
        if (attempts)
            *attempts = (int)val_i64(r, 0, 1);
    }
    PQclear(r);
    return rc;
}

/* An UPDATE whose WHERE also carries the status guard; 0 rows = ECONFLICT. */
static int guarded_update(PGconn *c, const char *sql, int n, const char *const *p)
{
    int rc;
    PGresult *r = run(c, sql, n, p, &rc);
    if (!r)
        return rc;
    rc = strcmp(PQcmdTuples(r), "1") == 0 ? 0 : TORO_ECONFLICT;
    PQclear(r);
    return rc;
}

static int start_once(toro_store_t *s, const char *user_id, const char *question_id, const toro_event_t *ev,
                      bool *first, int *attempts)
{
    PGconn *c = conn(s);
    toro_status_t cur;
    int rc = begin(c);
    if (rc)
        return rc;
    rc = lock_status(c, user_id, question_id, &cur, attempts);
    if (rc)
        goto out;
    if (!toro_status_can_move(cur, TORO_STATUS_PROCESSING)) {
        rc = TORO_ECONFLICT;
        goto out;
    }
    char now[24];
    fmt_i64(now, toro_now_ms());
    const char *p[] = {user_id, question_id, now};
    rc = guarded_update(c,
                        "UPDATE questions SET status = 'processing', attempts = attempts + 1, updated_at = $3,"
                        " processing_started_at = coalesce(processing_started_at, $3)"
                        " WHERE user_id = $1 AND question_id = $2 AND status IN ('pending', 'processing')",
                        3, p);
    if (rc)
        goto out;
    *first = cur == TORO_STATUS_PENDING;
    *attempts += 1;
    rc = *first ? outbox_put(c, ev) : 0;
out:
    return finish(c, rc);
}

static int s_start(toro_store_t *s, const char *user_id, const char *question_id, const toro_event_t *ev, bool *first,
                   int *attempts)
{
    int rc;
    WITH_RETRY(start_once(s, user_id, question_id, ev, first, attempts));
    return rc;
}

static int complete_once(toro_store_t *s, const toro_question_t *q, const toro_event_t *ev)
{
    PGconn *c = conn(s);
    char *sources = NULL;
    toro_status_t cur;
    int rc = begin(c);
    if (rc)
        return rc;
    rc = lock_status(c, q->user_id, q->question_id, &cur, NULL);
    if (rc)
        goto out;
    if (cur != TORO_STATUS_PROCESSING) {
        rc = TORO_ECONFLICT;
        goto out;
    }
    sources = toro_sources_dump(q->sources, q->n_sources);
    if (!sources) {
        rc = TORO_ENOMEM;
        goto out;
    }
    char now[24];
    fmt_i64(now, toro_now_ms());
    const char *p[] = {q->user_id, q->question_id, q->answer ? q->answer : "", sources,
                       q->found_relevant_docs ? "true" : "false", q->model, q->kb_version, now};
    rc = guarded_update(c,
                        "UPDATE questions SET status = 'completed', answer = $3, sources = $4,"
                        " found_relevant_docs = $5, model = $6, kb_version = $7, error_message = NULL,"
                        " updated_at = $8, processed_at = $8"
                        " WHERE user_id = $1 AND question_id = $2 AND status = 'processing'",
                        8, p);
    if (rc == 0)
        rc = outbox_put(c, ev);
out:
    free(sources);
    return finish(c, rc);
}

static int s_complete(toro_store_t *s, const toro_question_t *q, const toro_event_t *ev)
{
    int rc;
    WITH_RETRY(complete_once(s, q, ev));
    return rc;
}

static int fail_once(toro_store_t *s, const char *user_id, const char *question_id, const char *message,
                     const toro_event_t *ev)
{
    PGconn *c = conn(s);
    toro_status_t cur;
    int rc = begin(c);
    if (rc)
        return rc;
    rc = lock_status(c, user_id, question_id, &cur, NULL);
    if (rc)
        goto out;
    if (!toro_status_can_move(cur, TORO_STATUS_ERROR)) {
        rc = TORO_ECONFLICT;
        goto out;
    }
    char now[24];
    fmt_i64(now, toro_now_ms());
    const char *p[] = {user_id, question_id, message, now};
    rc = guarded_update(c,
                        "UPDATE questions SET status = 'error', error_message = $3, updated_at = $4, processed_at = $4"
                        " WHERE user_id = $1 AND question_id = $2 AND status IN ('pending', 'processing')",
                        4, p);
    if (rc == 0)
        rc = outbox_put(c, ev);
out:
    return finish(c, rc);
}

static int s_fail(toro_store_t *s, const char *user_id, const char *question_id, const char *message,
                  const toro_event_t *ev)
{
    int rc;
    WITH_RETRY(fail_once(s, user_id, question_id, message, ev));
    return rc;
}

static int simple_once(toro_store_t *s, const char *sql, int n, const char *const *p)
{
    PGconn *c = conn(s);
    return c ? exec0(c, sql, n, p) : TORO_EIO;
}

static int s_put_conn(toro_store_t *s, const toro_connection_t *cn)
{
    char at[24];
    fmt_i64(at, cn->connected_at);
    const char *p[] = {cn->connection_id, cn->user_id, cn->node, at};
    int rc;
    WITH_RETRY(simple_once(s,
                           "INSERT INTO connections(connection_id, user_id, node, connected_at) VALUES ($1, $2, $3, $4)"
                           " ON CONFLICT (connection_id) DO UPDATE SET user_id = EXCLUDED.user_id,"
                           " node = EXCLUDED.node, connected_at = EXCLUDED.connected_at",
                           4, p));
    return rc;
}

static int s_del_conn(toro_store_t *s, const char *id)
{
    const char *p[] = {id};
    int rc;
    WITH_RETRY(simple_once(s, "DELETE FROM connections WHERE connection_id = $1", 1, p));
    return rc;
}

static int s_del_node(toro_store_t *s, const char *node)
{
    const char *p[] = {node};
    int rc;
    WITH_RETRY(simple_once(s, "DELETE FROM connections WHERE node = $1", 1, p));
    return rc;
}

static int list_conn_once(toro_store_t *s, const char *user_id, toro_connection_t **out, size_t *n)
{
    PGconn *c = conn(s);
    int rc = TORO_EIO;
    *out = NULL;
    *n = 0;
    if (!c)
        return rc;
    const char *p[] = {user_id};
    PGresult *r = run(c,
                      "SELECT connection_id, user_id, node, connected_at FROM connections WHERE user_id = $1"
                      " ORDER BY connected_at",
                      1, p, &rc);
    if (!r)
        return rc;
    int rows = PQntuples(r);
    toro_connection_t *arr = calloc((size_t)rows + 1, sizeof *arr);
    if (!arr) {
        PQclear(r);
        return TORO_ENOMEM;
    }
    for (int i = 0; i < rows; i++) {
        arr[i].connection_id = val_dup(r, i, 0);
        arr[i].user_id = val_dup(r, i, 1);
        arr[i].node = val_dup(r, i, 2);
        arr[i].connected_at = val_i64(r, i, 3);
    }
    PQclear(r);
    *out = arr;
    *n = (size_t)rows;
    return 0;
}

static int s_list_conn(toro_store_t *s, const char *user_id, toro_connection_t **out, size_t *n)
{
    int rc;
    WITH_RETRY(list_conn_once(s, user_id, out, n));
    return rc;
}

static int count_once(toro_store_t *s, long counts[TORO_STATUS_COUNT])
{
    PGconn *c = conn(s);
    int rc = TORO_EIO;
    for (int i = 0; i < TORO_STATUS_COUNT; i++)
        counts[i] = 0;
    if (!c)
        return rc;
    PGresult *r = run(c, "SELECT status, count(*) FROM questions GROUP BY status", 0, NULL, &rc);
    if (!r)
        return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        toro_status_t st;
        if (toro_status_parse(PQgetvalue(r, i, 0), &st) == 0)
            counts[st] = (long)val_i64(r, i, 1);
    }
    PQclear(r);
    return 0;
}

static int s_count(toro_store_t *s, long counts[TORO_STATUS_COUNT])
{
    int rc;
    WITH_RETRY(count_once(s, counts));
    return rc;
}

static int ping_once(toro_store_t *s)
{
    PGconn *c = conn(s);
    return c ? exec0(c, "SELECT 1 FROM questions LIMIT 1", 0, NULL) : TORO_EIO;
}

static int s_ping(toro_store_t *s)
{
    int rc;
    WITH_RETRY(ping_once(s));
    return rc;
}

static void s_close(toro_store_t *s)
{
    pg_store_t *ps = (pg_store_t *)s;
    pg_conn_slot_t *slot = ps->slots;
    while (slot) {
        pg_conn_slot_t *next = slot->next;
        if (slot->conn)
            PQfinish(slot->conn);
        free(slot);
        slot = next;
    }
    pthread_key_delete(ps->key);
    pthread_mutex_destroy(&ps->lock);
    free(ps->conninfo);
    free(ps);
}

static const toro_store_ops_t pg_ops = {
    .name = "postgres",
    .create_question = s_create,
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

int toro_store_postgres_open(const char *url, toro_store_t **out, char **err)
{
    pg_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return TORO_ENOMEM;
    s->conninfo = strdup(url);
    if (!s->conninfo || pthread_key_create(&s->key, NULL) != 0) {
        free(s->conninfo);
        free(s);
        return TORO_ENOMEM;
    }
    pthread_mutex_init(&s->lock, NULL);
    s->super.ops = &pg_ops;
    /* Reject a malformed URL now; an unreachable server is fine (retried). */
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &perr);
    if (!opts) {
        if (err) {
            char buf[512];
            snprintf(buf, sizeof buf, "bad --store URL: %s", perr ? perr : "unparseable");
            *err = strdup(buf);
        }
        PQfreemem(perr);
        s_close(&s->super);
        return TORO_EINVAL;
    }
    PQconninfoFree(opts);
    *out = &s->super;
    return 0;
}

int toro_store_postgres_migrate(const char *url, int *from, int *to, char **err)
{
    PGconn *c = PQconnectdb(url);
    int rc = TORO_EIO, version = 0;
    PGresult *r = NULL;
    if (!c || PQstatus(c) != CONNECTION_OK)
        goto out;
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    /* one migrator at a time across every process */
    if ((rc = exec0(c, "CREATE TABLE IF NOT EXISTS schema_migrations(version integer NOT NULL)", 0, NULL)) ||
        (rc = exec0(c, "SELECT pg_advisory_lock(7470726)", 0, NULL)))
        goto out;
    rc = TORO_EIO;
    r = run(c, "SELECT coalesce(max(version), 0) FROM schema_migrations", 0, NULL, &rc);
    if (!r)
        goto unlock;
    version = (int)val_i64(r, 0, 0);
    if (from)
        *from = version;
    for (int v = version + 1; v <= N_MIGRATIONS; v++) {
        char vs[24];
        fmt_i64(vs, v);
        const char *p[] = {vs};
        if ((rc = exec0(c, "BEGIN", 0, NULL)) == 0) {
            PGresult *mr = PQexec(c, migrations[v - 1]);
            rc = PQresultStatus(mr) == PGRES_COMMAND_OK ? 0 : TORO_EIO;
            if (rc)
                toro_log_error("store", NULL, "migration %d failed: %s", v, PQerrorMessage(c));
            PQclear(mr);
            if (rc == 0)
                rc = exec0(c, "INSERT INTO schema_migrations(version) VALUES ($1::integer)", 1, p);
            rc = finish(c, rc);
        }
        if (rc)
            goto unlock;
        version = v;
    }
    rc = 0;
unlock:
    exec0(c, "SELECT pg_advisory_unlock(7470726)", 0, NULL);
out:
    if (to)
        *to = version;
    if (rc && err && c)
        *err = strdup(PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return rc;
}

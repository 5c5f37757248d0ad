/* postgres.c: the distributed store (the DynamoDB boxes on PostgreSQL).
 * Tables questions and connections, plus an outbox table: every guarded
 * status change (transition()) inserts its event into outbox in the same
 * transaction. No NOTIFY: it serializes every committing transaction on one
 * database-wide lock (held through the WAL flush), and the relays need none
 * (each is woken by its own process's kicks, and polls for the rest). The
 * outbox is read back
 * through bus/outbox.h: the relay (bus/relay.c) claims rows with a lease
 * (FOR UPDATE SKIP LOCKED, so relays of several processes share the table),
 * or takes those its own process committed straight from memory (the
 * hand-over, below), publishes them and marks them published, which deletes
 * them. So a row and
 * the event announcing it are never separated, even when NATS is down.
 *
 * Connections: one PGconn per calling thread (pthread key), opened lazily,
 * reset when PostgreSQL drops it, so a database restart is survived: while it
 * is down, calls return TORO_EIO and ping() fails (/healthz unhealthy).
 * The schema is created and migrated by toro_store_postgres_migrate (`toro db
 * migrate`), never implicitly by open. It does not publish anything itself. */
#include <assert.h>
#include <libpq-events.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
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
    /* 2: the outbox as a queue of its own (leases, delayed retries, dead letters) */
    "ALTER TABLE outbox ADD COLUMN IF NOT EXISTS available_at bigint NOT NULL DEFAULT 0;"
    "ALTER TABLE outbox ADD COLUMN IF NOT EXISTS leased_until bigint NOT NULL DEFAULT 0;"
    "ALTER TABLE outbox ADD COLUMN IF NOT EXISTS deliveries integer NOT NULL DEFAULT 0;"
    "CREATE INDEX IF NOT EXISTS outbox_by_topic ON outbox(topic, id);"
    "CREATE TABLE IF NOT EXISTS outbox_dead(id bigint PRIMARY KEY, msg_id uuid NOT NULL, topic text NOT NULL,"
    " payload text NOT NULL, created_at bigint NOT NULL, dead_at bigint NOT NULL, deliveries integer NOT NULL,"
    " reason text);",
    /* 3: feedback on answers (issue 17), and the index `toro feedback export` reads */
    "ALTER TABLE questions ADD COLUMN IF NOT EXISTS feedback_rating text CHECK (feedback_rating IN ('up','down'));"
    "ALTER TABLE questions ADD COLUMN IF NOT EXISTS feedback_comment text;"
    "ALTER TABLE questions ADD COLUMN IF NOT EXISTS feedback_at bigint;"
    "CREATE INDEX IF NOT EXISTS questions_feedback ON questions(feedback_at, question_id)"
    " WHERE feedback_rating IS NOT NULL;",
    /* 4: conversations: the conversation of each question, the query a follow-up was answered with */
    "ALTER TABLE questions ADD COLUMN IF NOT EXISTS conversation_id text COLLATE \"C\";"
    "ALTER TABLE questions ADD COLUMN IF NOT EXISTS retrieval_query text;"
    "CREATE INDEX IF NOT EXISTS questions_conversation ON questions(user_id, conversation_id, created_at,"
    " question_id);",
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

typedef struct pg_conn_slot {
    PGconn *conn;
    struct pg_conn_slot *next; /* registry of every slot, freed by close */
} pg_conn_slot_t;

typedef struct pg_store {
    toro_store_t super;
    toro_outbox_t outbox;    /* this store's outbox interface */
    char *conninfo;          /* owned: libpq URI or keyword string */
    pthread_key_t key;       /* -> this thread's pg_conn_slot_t */
    pthread_mutex_t lock;    /* guards slots */
    pg_conn_slot_t *slots;   /* owned */
    /* Hand-over to this process's relay (see "The outbox" below). */
    atomic_int lease_ms;         /* 0 until the first claim; then the lease of the events committed here */
    pthread_mutex_t handed_lock; /* guards handed, n_handed */
    toro_outbox_event_t *handed; /* owned: committed here, leased to our relay, not claimed yet */
    size_t n_handed;             /* <= HANDED_MAX */
    int64_t sql_claimed_at;      /* toro_mono_ms() of the last claim that read the table (guarded); TABLE_DUE: read it next */
} pg_store_t;

#define COLS                                                                                                           \
    "user_id, question_id, question, status, answer, sources, found_relevant_docs, model, kb_version,"                 \
    " error_message, attempts, created_at, updated_at, processing_started_at, processed_at,"                        \
    " feedback_rating, feedback_comment, feedback_at, conversation_id, retrieval_query"
#define COL_FEEDBACK 15     /* the first of the three feedback columns in COLS */
#define COL_CONVERSATION 18 /* conversation_id, then retrieval_query */

/* Prepared statements: run() prepares each statement once per connection
 * (PQprepare) and from then on sends only its name and parameters
 * (PQexecPrepared): no parsing or planning per call on the server. The
 * cache is libpq instance data of the event procedure on_conn_event, so it
 * lives with its PGconn: PQreset (the server forgot the statements) empties
 * it and PQfinish frees it. Keys are SQL texts; the pointer finds the entry
 * and a copy of the text confirms it, so a buffer reused for another text
 * runs unprepared rather than as the wrong statement. A connection without
 * the cache (migrate) runs every statement unprepared. */
#define PREPARED_MAX 64
typedef struct pg_prepared {
    size_t n;
    const char *key[PREPARED_MAX]; /* borrowed: the caller's SQL pointer */
    char *text[PREPARED_MAX];      /* owned: the text prepared as "toro_<index>" */
} pg_prepared_t;

static void prepared_clear(pg_prepared_t *pp)
{
    for (size_t i = 0; pp && i < pp->n; i++)
        free(pp->text[i]);
    if (pp)
        pp->n = 0;
}

static int on_conn_event(PGEventId id, void *info, void *pass)
{
    (void)pass;
    if (id == PGEVT_CONNRESET) {
        prepared_clear(PQinstanceData(((PGEventConnReset *)info)->conn, on_conn_event));
    } else if (id == PGEVT_CONNDESTROY) {
        pg_prepared_t *pp = PQinstanceData(((PGEventConnDestroy *)info)->conn, on_conn_event);
        prepared_clear(pp);
        free(pp);
    }
    return 1;
}

/* The name sql is prepared under on c (preparing it now if it is new), in
 * name[24]; false: run it unprepared (no cache, cache full, a reused
 * buffer, or PQprepare failed: PQexecParams then reports the error). */
static bool prepared_name(PGconn *c, const char *sql, int n, char name[24])
{
    pg_prepared_t *pp = PQinstanceData(c, on_conn_event);
    if (!pp)
        return false;
    for (size_t i = 0; i < pp->n; i++) {
        if (pp->key[i] == sql) {
            snprintf(name, 24, "toro_%u", (unsigned)i);
            return strcmp(pp->text[i], sql) == 0;
        }
    }
    if (pp->n == PREPARED_MAX || !(pp->text[pp->n] = strdup(sql)))
        return false;
    snprintf(name, 24, "toro_%u", (unsigned)pp->n);
    toro_metrics_inc(TORO_CTR_STORE_STATEMENTS);
    PGresult *r = PQprepare(c, name, sql, n, NULL);
    bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) { /* logged here: inside a transaction the unprepared run only sees it aborted */
        toro_log_warn("store", NULL, "postgres: cannot prepare a statement: %s", PQerrorMessage(c));
        free(pp->text[pp->n]);
        return false;
    }
    pp->key[pp->n++] = sql;
    return true;
}

/* The session settings of every store connection, after each (re)connect:
 * warnings only; and generic plans for the prepared statements, because
 * every statement here finds its rows by key and a custom plan would be
 * planned again at each bind (bench/dist_cost.sh: bind was a third of the
 * backends' time). A failure only costs that time: ignored. */
static void session_setup(PGconn *c)
{
    if (PQstatus(c) == CONNECTION_OK)
        PQclear(PQexec(c, "SET client_min_messages = warning; SET plan_cache_mode = force_generic_plan"));
}

static PGconn *open_conn(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    if (!c)
        return NULL;
    pg_prepared_t *pp = calloc(1, sizeof *pp);
    if (pp && PQregisterEventProc(c, on_conn_event, "toro-prepared", NULL) && PQsetInstanceData(c, on_conn_event, pp))
        pp = NULL; /* the connection owns it now */
    free(pp);
    session_setup(c);
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
    if (!slot->conn) {
        slot->conn = open_conn(ps->conninfo);
    } else if (PQstatus(slot->conn) != CONNECTION_OK) {
        PQreset(slot->conn);
        session_setup(slot->conn);
    }
    if (!slot->conn || PQstatus(slot->conn) != CONNECTION_OK)
        return NULL;
    if (PQtransactionStatus(slot->conn) != PQTRANS_IDLE) /* a failed call left a transaction open */
        PQclear(PQexec(slot->conn, "ROLLBACK"));
    return slot->conn;
}

/* Runs a parameterized statement, prepared on c the first time (see
 * prepared_name). Returns the result (caller PQclear) or NULL after
 * logging, with *rc set: TORO_ECONFLICT on a unique violation, TORO_EIO
 * otherwise. */
static PGresult *run(PGconn *c, const char *sql, int n, const char *const *params, int *rc)
{
    char name[24];
    bool prepared = prepared_name(c, sql, n, name);
    toro_metrics_inc(TORO_CTR_STORE_STATEMENTS); /* each one round trip */
    PGresult *r = prepared ? PQexecPrepared(c, name, n, params, NULL, NULL, 0)
                           : PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
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

static char *val_dup(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}

static int64_t val_i64(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* The outbox hand-over. Once this process's relay has claimed (lease_ms
 * set), each event committed here is inserted already leased to it for
 * lease_ms (its first delivery), and its row, as RETURNING gives it, is
 * kept here; the relay's next claim takes it from memory instead of from
 * the table: one UPDATE fewer per event, no scan of the table while this
 * process's own events keep the relay busy. A claim still reads the table
 * the first time, at least every SQL_CLAIM_MS, and right after a release
 * here, for the events of other processes (their relay gone) and those
 * released after a failed publish; a relay that polls every SQL_CLAIM_MS
 * or more reads it each time. If this process dies before its relay published an event, the
 * row stays leased until lease_ms ends and then any relay claims it, as
 * after a claim whose publish never came. */
#define HANDED_MAX 4096
#define SQL_CLAIM_MS 500
#define TABLE_DUE (INT64_MIN / 2) /* a sql_claimed_at long ago */

/* The leased_until of the events of a statement about to run, in out:
 * "0" (unleased) until the relay claimed, or while the hand-over is full. */
static void handed_lease(pg_store_t *ps, char out[24])
{
    int lease = atomic_load(&ps->lease_ms);
    pthread_mutex_lock(&ps->handed_lock);
    bool room = ps->n_handed < HANDED_MAX;
    pthread_mutex_unlock(&ps->handed_lock);
    fmt_i64(out, lease > 0 && room ? toro_now_ms() + lease : 0);
}

/* Keeps the committed event of row `row` of r (id, msg_id, topic, payload
 * from column col) for the relay, when it was inserted leased (lease is
 * not "0"). One that cannot be kept (no memory; full, as two threads may
 * both have seen room) is claimed from the table when its lease ends. One
 * inserted unleased (the relay's first claim had not begun when the
 * statement was sent, or the hand-over was full) makes the next claim read
 * the table, so that it goes out with, not after, the events handed over
 * after it. */
static void hand_over(pg_store_t *ps, const char *lease, PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return;
    if (strcmp(lease, "0") == 0) {
        pthread_mutex_lock(&ps->handed_lock);
        ps->sql_claimed_at = TABLE_DUE;
        pthread_mutex_unlock(&ps->handed_lock);
        return;
    }
    toro_outbox_event_t e = {.id = val_i64(r, row, col),
                             .topic = val_dup(r, row, col + 2),
                             .payload = val_dup(r, row, col + 3),
                             .deliveries = 1,
                             .created_at = toro_now_ms()};
    snprintf(e.msg_id, sizeof e.msg_id, "%s", PQgetvalue(r, row, col + 1));
    pthread_mutex_lock(&ps->handed_lock);
    if (e.topic && e.payload && ps->n_handed < HANDED_MAX) {
        ps->handed[ps->n_handed++] = e;
        e.topic = e.payload = NULL;
    }
    pthread_mutex_unlock(&ps->handed_lock);
    toro_outbox_events_clear(&e, 1);
}

/* Moves up to max handed events of topic (NULL: any) to out; returns how
 * many. *read_table: the claim should also read the table (see above). */
static size_t take_handed(pg_store_t *ps, const char *topic, int max, toro_outbox_event_t *out, bool *read_table)
{
    size_t n = 0, keep = 0;
    int64_t now = toro_mono_ms();
    pthread_mutex_lock(&ps->handed_lock);
    for (size_t i = 0; i < ps->n_handed; i++) {
        if (n < (size_t)max && (!topic || strcmp(topic, ps->handed[i].topic) == 0))
            out[n++] = ps->handed[i];
        else
            ps->handed[keep++] = ps->handed[i];
    }
    ps->n_handed = keep;
    *read_table = n < (size_t)max && now - ps->sql_claimed_at >= SQL_CLAIM_MS;
    if (*read_table)
        ps->sql_claimed_at = now;
    pthread_mutex_unlock(&ps->handed_lock);
    return n;
}

/* The question of COLS in columns base.. of row `row` of r (caller clears q). */
static void row_to_question_at(PGresult *r, int row, int base, toro_question_t *q)
{
    memset(q, 0, sizeof *q);
    q->user_id = val_dup(r, row, base + 0);
    q->question_id = val_dup(r, row, base + 1);
    q->question = val_dup(r, row, base + 2);
    if (toro_status_parse(PQgetvalue(r, row, base + 3), &q->status) != 0)
        q->status = TORO_STATUS_ERROR;
    q->answer = val_dup(r, row, base + 4);
    const char *sources = PQgetisnull(r, row, base + 5) ? NULL : PQgetvalue(r, row, base + 5);
    if (toro_sources_load(sources, &q->sources, &q->n_sources) == TORO_EFORMAT)
        toro_log_warn("store", q->question_id, "stored sources are not a JSON array; shown as none");
    q->found_relevant_docs = !PQgetisnull(r, row, base + 6) && PQgetvalue(r, row, base + 6)[0] == 't';
    q->model = val_dup(r, row, base + 7);
    q->kb_version = val_dup(r, row, base + 8);
    q->error_message = val_dup(r, row, base + 9);
    q->attempts = (int)val_i64(r, row, base + 10);
    q->created_at = val_i64(r, row, base + 11);
    q->updated_at = val_i64(r, row, base + 12);
    q->processing_started_at = val_i64(r, row, base + 13);
    q->processed_at = val_i64(r, row, base + 14);
    if (!PQgetisnull(r, row, base + COL_FEEDBACK) &&
        toro_rating_parse(PQgetvalue(r, row, base + COL_FEEDBACK), &q->feedback.rating) == 0) {
        q->feedback.comment = val_dup(r, row, base + COL_FEEDBACK + 1);
        q->feedback.at = val_i64(r, row, base + COL_FEEDBACK + 2);
    }
    q->conversation_id = val_dup(r, row, base + COL_CONVERSATION);
    q->retrieval_query = val_dup(r, row, base + COL_CONVERSATION + 1);
}

static void row_to_question(PGresult *r, int row, toro_question_t *q) { row_to_question_at(r, row, 0, q); }

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

/* Group commit: the questions of a batch and their events in one statement
 * (one round trip, one transaction). ON CONFLICT DO NOTHING skips an id that
 * exists, or that an earlier item of the batch takes; the statement returns
 * the ordinals (1-based) of the items it inserted (ord set, id NULL), and
 * writes the events of those only, in batch order (a data-modifying WITH
 * runs whether or not it is read), returning each (ord NULL, then id,
 * msg_id, topic, payload: the hand-over). $1..$7 are arrays of the items'
 * columns, $8 the time of the events, $9 their leased_until (0: none). */
static const char create_sql[] =
    "WITH v AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[],"
    " $7::text[]) WITH ORDINALITY AS v(user_id, question_id, question, created_at, conversation_id, topic, payload,"
    " ord)),"
    " ins AS (INSERT INTO questions(user_id, question_id, question, status, attempts, created_at, updated_at,"
    " conversation_id) SELECT user_id, question_id, question, 'pending', 0, created_at, created_at, conversation_id"
    " FROM v ORDER BY ord ON CONFLICT DO NOTHING RETURNING question_id),"
    " got AS (SELECT min(v.ord) AS ord FROM v JOIN ins USING (question_id) GROUP BY v.question_id),"
    " ob AS (INSERT INTO outbox(topic, payload, created_at, available_at, leased_until, deliveries)"
    " SELECT v.topic, v.payload, $8, $8, $9, CASE WHEN $9::bigint > 0 THEN 1 ELSE 0 END"
    " FROM v JOIN got USING (ord) ORDER BY v.ord RETURNING id, msg_id, topic, payload)"
    " SELECT ord, NULL::bigint, NULL::uuid, NULL::text, NULL::text FROM got"
    " UNION ALL SELECT NULL, id, msg_id, topic, payload FROM ob";

/* The PostgreSQL array literal of vals[0..n) (NULL elements allowed):
 * quoted elements with " and \ escaped. Caller frees; NULL: no memory. */
static char *array_literal(const char *const *vals, size_t n)
{
    size_t cap = 3;
    for (size_t i = 0; i < n; i++)
        cap += vals[i] ? 2 * strlen(vals[i]) + 3 : 5;
    char *out = malloc(cap), *w = out;
    if (!out)
        return NULL;
    *w++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            *w++ = ',';
        if (!vals[i]) {
            memcpy(w, "NULL", 4);
            w += 4;
            continue;
        }
        *w++ = '"';
        for (const char *r = vals[i]; *r; r++) {
            if (*r == '"' || *r == '\\')
                *w++ = '\\';
            *w++ = *r;
        }
        *w++ = '"';
    }
    *w++ = '}';
    *w = '\0';
    return out;
}

#define CREATE_COLS 7

/* The 7 array parameters of create_sql for qs/evs[0..n), in arr (caller
 * frees each). TORO_ENOMEM: arr holds what was made (free it all). */
static int create_params(const toro_question_t *qs, const toro_event_t *evs, size_t n, char *arr[CREATE_COLS])
{
    const char **col = calloc(n ? n : 1, sizeof *col);
    char *at = calloc(n ? n : 1, 24);
    int rc = col && at ? 0 : TORO_ENOMEM;
    for (int k = 0; rc == 0 && k < CREATE_COLS; k++) {
        for (size_t i = 0; i < n; i++) {
            const toro_question_t *q = &qs[i];
            if (k == 3)
                fmt_i64(at + 24 * i, q->created_at);
            const char *v[CREATE_COLS] = {q->user_id, q->question_id, q->question, at + 24 * i, q->conversation_id,
                                          evs[i].topic, evs[i].payload};
            col[i] = v[k];
        }
        if (!(arr[k] = array_literal(col, n)))
            rc = TORO_ENOMEM;
    }
    free(col);
    free(at);
    return rc;
}

/* results[i]: 0 for the items r (create_sql) says it inserted, TORO_ECONFLICT for the others. */
static void create_results(PGresult *r, size_t n, int *results)
{
    for (size_t i = 0; i < n; i++)
        results[i] = TORO_ECONFLICT;
    for (int row = 0; row < PQntuples(r); row++) {
        int64_t ord = val_i64(r, row, 0);
        if (ord >= 1 && (size_t)ord <= n)
            results[ord - 1] = 0;
    }
}

static int create_once(toro_store_t *s, const char *const *p, size_t n, int *results)
{
    PGconn *c = conn(s);
    int rc = TORO_EIO;
    if (!c)
        return rc;
    PGresult *r = run(c, create_sql, CREATE_COLS + 2, p, &rc);
    if (!r)
        return rc;
    create_results(r, n, results);
    for (int row = 0; row < PQntuples(r); row++)
        hand_over((pg_store_t *)s, p[CREATE_COLS + 1], r, row, 1);
    PQclear(r);
    return 0;
}

/* create_questions (store.h): one statement, all items or none written; an
 * item whose id exists (or repeats an earlier item's) gets TORO_ECONFLICT
 * and the others are written, as n single creates would report. A failure
 * of the statement gives every item its code. Returns 0 when every item was
 * written, else the first error. */
static int s_create_many(toro_store_t *s, const toro_question_t *qs, const toro_event_t *evs, size_t n, int *results)
{
    char *arr[CREATE_COLS] = {0}, now[24], lease[24];
    int rc = create_params(qs, evs, n, arr);
    if (rc == 0) {
        fmt_i64(now, toro_now_ms());
        handed_lease((pg_store_t *)s, lease);
        const char *p[CREATE_COLS + 2] = {arr[0], arr[1], arr[2], arr[3], arr[4], arr[5], arr[6], now, lease};
        WITH_RETRY(create_once(s, p, n, results));
    }
    for (int k = 0; k < CREATE_COLS; k++)
        free(arr[k]);
    for (size_t i = 0; rc && i < n; i++)
        results[i] = rc;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = results[i];
    return rc;
}

static int s_create(toro_store_t *s, const toro_question_t *q, const toro_event_t *ev)
{
    int result = 0;
    return s_create_many(s, q, ev, 1, &result);
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

/* Conversations (store.h, version 4). Rows written before migration 4 have
 * no conversation_id and belong to none. */

/* A page from r (limit + 1 rows asked): at most limit items, *next the
 * cursor of the last when there were more. Clears r. */
static int page_of_questions(PGresult *r, int limit, toro_question_t **items, size_t *n, char **next)
{
    int rows = PQntuples(r);
    toro_question_t *arr = calloc((size_t)rows + 1, sizeof *arr);
    size_t count = 0;
    if (!arr) {
        PQclear(r);
        return TORO_ENOMEM;
    }
    for (int i = 0; i < rows && i <= limit; i++)
        row_to_question(r, i, &arr[count++]);
    PQclear(r);
    return toro_store_questions_page(arr, count, limit, items, n, next);
}

/* [0] oldest first, [1] newest first; $3 NULL = from the start. */
static const char *const turns_sql[2] = {
    "SELECT " COLS " FROM questions WHERE user_id = $1 AND conversation_id = $2 AND ($3::bigint IS NULL OR"
    " (created_at, question_id) > ($3::bigint, $4)) ORDER BY created_at, question_id LIMIT $5",
    "SELECT " COLS " FROM questions WHERE user_id = $1 AND conversation_id = $2 AND ($3::bigint IS NULL OR"
    " (created_at, question_id) < ($3::bigint, $4)) ORDER BY created_at DESC, question_id DESC LIMIT $5",
};

static int turns_once(toro_store_t *s, const char *user_id, const char *conversation_id, bool newest_first,
                      int limit, const char *cursor, toro_question_t **items, size_t *n, char **next)
{
    PGconn *c = conn(s);
    int64_t c_at = 0;
    char c_qid[64] = "", at[24], lim[24];
    int rc = TORO_EIO;
    if (cursor && toro_history_cursor_decode(cursor, &c_at, c_qid) != 0)
        return TORO_EINVAL;
    if (!c)
        return rc;
    fmt_i64(at, c_at);
    fmt_i64(lim, (int64_t)limit + 1);
    const char *p[] = {user_id, conversation_id, cursor ? at : NULL, c_qid, lim};
    PGresult *r = run(c, turns_sql[newest_first], 5, p, &rc);
    return r ? page_of_questions(r, limit, items, n, next) : rc;
}

static int s_list_turns(toro_store_t *s, const char *user_id, const char *conversation_id, bool newest_first,
                        int limit, const char *cursor, toro_question_t **items, size_t *n, char **next)
{
    int rc;
    WITH_RETRY(turns_once(s, user_id, conversation_id, newest_first, limit, cursor, items, n, next));
    return rc;
}

/* A page of conversations from r (limit + 1 rows asked). Clears r. */
static int page_of_conversations(PGresult *r, const char *user_id, int limit, toro_conversation_t **items, size_t *n,
                                 char **next)
{
    size_t count = (size_t)PQntuples(r);
    toro_conversation_t *arr = calloc(count + 1, sizeof *arr);
    for (size_t i = 0; arr && i < count; i++) {
        arr[i].conversation_id = val_dup(r, (int)i, 0);
        arr[i].user_id = strdup(user_id);
        arr[i].created_at = val_i64(r, (int)i, 1);
        arr[i].last_activity_at = val_i64(r, (int)i, 2);
        arr[i].n_questions = (long)val_i64(r, (int)i, 3);
        arr[i].title = val_dup(r, (int)i, 4);
    }
    PQclear(r);
    return arr ? toro_store_conversations_page(arr, count, limit, items, n, next) : TORO_ENOMEM;
}

static int conversations_once(toro_store_t *s, const char *user_id, int limit, const char *cursor,
                              toro_conversation_t **items, size_t *n, char **next)
{
    PGconn *c = conn(s);
    int64_t c_at = 0;
    char c_id[64] = "", at[24], lim[24];
    int rc = TORO_EIO;
    if (cursor && toro_history_cursor_decode(cursor, &c_at, c_id) != 0)
        return TORO_EINVAL;
    if (!c)
        return rc;
    fmt_i64(at, c_at);
    fmt_i64(lim, (int64_t)limit + 1);
    const char *p[] = {user_id, cursor ? at : NULL, c_id, lim};
    PGresult *r = run(c,
                      "SELECT conversation_id, min(created_at), max(created_at) AS last, count(*),"
                      " (SELECT t.question FROM questions t WHERE t.user_id = $1 AND"
                      " t.conversation_id = g.conversation_id ORDER BY t.created_at, t.question_id LIMIT 1)"
                      " FROM questions g WHERE user_id = $1 AND conversation_id IS NOT NULL"
                      " GROUP BY conversation_id HAVING $2::bigint IS NULL OR"
                      " (max(created_at), conversation_id) < ($2::bigint, $3::text)"
                      " ORDER BY last DESC, conversation_id DESC LIMIT $4",
                      4, p, &rc);
    return r ? page_of_conversations(r, user_id, limit, items, n, next) : rc;
}

static int s_list_conversations(toro_store_t *s, const char *user_id, int limit, const char *cursor,
                                toro_conversation_t **items, size_t *n, char **next)
{
    int rc;
    WITH_RETRY(conversations_once(s, user_id, limit, cursor, items, n, next));
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

/* The guarded status change of each target status, with its event, in one
 * statement (one round trip, one transaction): o locks the row and reads
 * the status and attempts before (READ COMMITTED: the newest committed
 * version, waited for if another transaction holds it); u updates it only
 * when that status may move (toro_status_can_move, repeated in SQL); e
 * writes the event only when u did, and not when ev_if_pending and the
 * question was not pending, leased as the hand-over says. Returns no row
 * when the question does not exist, else (status before, attempts before,
 * moved, then the event's id, msg_id, topic, payload: NULL when none was
 * written). $1 user_id, $2 question_id, $3 now, $4 topic (NULL: no event),
 * $5 payload, $6 ev_if_pending, $7 leased_until (0: none), $8..
 * toro_transition_args. `also` adds to o's columns (evaluated once, with
 * the row); `ret` is what u returns; `cols` and `join` add the question
 * after the move (COLS, NULL when it did not move) after the event's. */
#define TRANSITION_SQL(also, set, guard, ret, cols, join)                                                              \
    "WITH o AS (SELECT status, attempts" also " FROM questions WHERE user_id = $1 AND question_id = $2 FOR UPDATE),"   \
    " u AS (UPDATE questions q SET " set " FROM o WHERE q.user_id = $1 AND q.question_id = $2 AND o.status IN " guard  \
    " RETURNING " ret "),"                                                                                             \
    " e AS (INSERT INTO outbox(topic, payload, created_at, available_at, leased_until, deliveries)"                    \
    " SELECT $4::text, $5::text, $3::bigint, $3::bigint, $7::bigint, CASE WHEN $7::bigint > 0 THEN 1 ELSE 0 END"       \
    " FROM o WHERE $4::text IS NOT NULL AND EXISTS (SELECT 1 FROM u)"                                                  \
    " AND (NOT $6::boolean OR o.status = 'pending') RETURNING id, msg_id, topic, payload)"                            \
    " SELECT o.status, o.attempts, EXISTS (SELECT 1 FROM u), e.id, e.msg_id, e.topic, e.payload" cols                  \
    " FROM o LEFT JOIN e ON true" join
#define TRANSITION_ARGS 7    /* $1..$7 before toro_transition_args */
#define TRANSITION_COL_ROW 7 /* the first column of the question after the move (to PROCESSING) */

/* The move to processing commits without waiting for its WAL flush
 * (synchronous_commit off for its transaction only): one flush wait per
 * question fewer for the process worker, which was its throughput limit
 * (bench/dist_cost.sh). A crash of PostgreSQL may forget it, and that is
 * harmless: the process event stays unacknowledged until the answer's
 * commit, which waits for the flush (and so flushes this one too, written
 * before it); if the move was forgotten, the question is pending again,
 * the answer's commit is refused, and the process stage, seeing the
 * question has not ended, leaves the event for redelivery instead of
 * acking it (process.c, commit_answer). The asker may have seen
 * "processing" already, and sees it again. Completed and error wait for
 * the flush: the event is acknowledged right after them; accepted
 * questions (create) are durable. */
static const char *const transition_sql[TORO_STATUS_COUNT] = {
    [TORO_STATUS_PROCESSING] = TRANSITION_SQL(", set_config('synchronous_commit', 'off', true)",
                                              "status = 'processing', attempts = q.attempts + 1, updated_at = $3,"
                                              " processing_started_at = coalesce(q.processing_started_at, $3)",
                                              "('pending', 'processing')", "q.*", ", x.*",
                                              " LEFT JOIN (SELECT " COLS " FROM u) x ON true"),
    [TORO_STATUS_COMPLETED] = TRANSITION_SQL("", "status = 'completed', answer = $8, sources = $9,"
                                             " found_relevant_docs = $10, model = $11, kb_version = $12,"
                                             " retrieval_query = $13, error_message = NULL, updated_at = $3,"
                                             " processed_at = $3",
                                             "('processing')", "1", "", ""),
    [TORO_STATUS_ERROR] = TRANSITION_SQL("", "status = 'error', error_message = $8, updated_at = $3, processed_at = $3",
                                         "('pending', 'processing')", "1", "", ""),
};

static int transition_once(toro_store_t *s, toro_transition_t *t, const char *const *p, int n)
{
    PGconn *c = conn(s);
    int rc = TORO_EIO;
    if (!c)
        return rc;
    PGresult *r = run(c, transition_sql[t->to], n, p, &rc);
    if (!r)
        return rc;
    if (PQntuples(r) != 1) {
        rc = TORO_ENOTFOUND;
    } else if ((rc = toro_status_parse(PQgetvalue(r, 0, 0), &t->from)) == 0) {
        t->attempts = (int)val_i64(r, 0, 1);
        rc = PQgetvalue(r, 0, 2)[0] == 't' ? 0 : TORO_ECONFLICT;
        assert(toro_status_can_move(t->from, t->to) == (rc == 0));
        hand_over((pg_store_t *)s, p[TRANSITION_ARGS - 1], r, 0, 3);
        if (rc == 0 && t->question && PQnfields(r) > TRANSITION_COL_ROW && !PQgetisnull(r, 0, TRANSITION_COL_ROW + 1))
            row_to_question_at(r, 0, TRANSITION_COL_ROW, t->question);
    }
    PQclear(r);
    return rc;
}

/* The guarded status change (store.h, toro_transition_t): one statement
 * (transition_sql), retried once on a dropped connection (a commit that did
 * land turns into ECONFLICT, never into a second change). On failure
 * nothing was written. */
static int s_transition(toro_store_t *s, toro_transition_t *t)
{
    const char *args[TORO_TRANSITION_MAX_ARGS];
    const char *p[TRANSITION_ARGS + TORO_TRANSITION_MAX_ARGS];
    char *owned = NULL, now[24], lease[24];
    int rc;
    assert(t->to < TORO_STATUS_COUNT && transition_sql[t->to]);
    int n_args = toro_transition_args(t, "true", "false", args, &owned);
    if (n_args < 0)
        return n_args;
    fmt_i64(now, toro_now_ms());
    p[0] = t->user_id;
    p[1] = t->question_id;
    p[2] = now;
    p[3] = t->ev ? t->ev->topic : NULL;
    p[4] = t->ev ? t->ev->payload : NULL;
    p[5] = t->ev_if_pending ? "true" : "false";
    handed_lease((pg_store_t *)s, lease);
    p[6] = lease;
    for (int i = 0; i < n_args; i++)
        p[TRANSITION_ARGS + i] = args[i];
    WITH_RETRY(transition_once(s, t, p, TRANSITION_ARGS + n_args));
    free(owned);
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

/* get_question_and_connections (store.h): one statement, a row per
 * connection of user_id (the question repeated; one row with NULL
 * connection columns when there is none; no row when the question does not
 * exist). The connection columns follow COLS. */
#define COL_CONN 20
static const char get_conns_sql[] =
    "SELECT q.*, c.connection_id, c.user_id, c.node, c.connected_at FROM (SELECT " COLS
    " FROM questions WHERE question_id = $1) q LEFT JOIN connections c ON c.user_id = $2 ORDER BY c.connected_at";

static int get_conns_once(toro_store_t *s, const char *question_id, const char *user_id, toro_question_t *q,
                          toro_connection_t **conns, size_t *n)
{
    PGconn *c = conn(s);
    int rc = TORO_EIO;
    if (!c)
        return rc;
    const char *p[] = {question_id, user_id};
    PGresult *r = run(c, get_conns_sql, 2, p, &rc);
    if (!r)
        return rc;
    int rows = PQntuples(r);
    toro_connection_t *arr = rows ? calloc((size_t)rows, sizeof *arr) : NULL;
    if (rows == 0 || !arr) {
        PQclear(r);
        return rows == 0 ? TORO_ENOTFOUND : TORO_ENOMEM;
    }
    size_t count = 0;
    for (int i = 0; i < rows; i++) {
        if (PQgetisnull(r, i, COL_CONN))
            continue;
        arr[count].connection_id = val_dup(r, i, COL_CONN);
        arr[count].user_id = val_dup(r, i, COL_CONN + 1);
        arr[count].node = val_dup(r, i, COL_CONN + 2);
        arr[count++].connected_at = val_i64(r, i, COL_CONN + 3);
    }
    row_to_question(r, 0, q);
    PQclear(r);
    *conns = arr;
    *n = count;
    return 0;
}

static int s_get_conns(toro_store_t *s, const char *question_id, const char *user_id, toro_question_t *q,
                       toro_connection_t **conns, size_t *n)
{
    int rc;
    WITH_RETRY(get_conns_once(s, question_id, user_id, q, conns, n));
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

/* The outbox (bus/outbox.h). */
static toro_store_t *of_outbox(toro_outbox_t *o)
{
    return &((pg_store_t *)(void *)((char *)o - offsetof(pg_store_t, outbox)))->super;
}

static int claim_once(toro_store_t *s, const char *topic, int max, int lease_ms, toro_outbox_event_t *out, size_t *n)
{
    PGconn *c = conn(s);
    char until[24], now[24], lim[24];
    int rc = TORO_EIO;
    if (!c)
        return rc;
    int64_t t = toro_now_ms();
    fmt_i64(until, t + lease_ms);
    fmt_i64(now, t);
    fmt_i64(lim, max);
    const char *p[] = {until, topic, now, lim};
    PGresult *r = run(c,
                      "UPDATE outbox SET leased_until = $1, deliveries = deliveries + 1 WHERE id IN ("
                      "SELECT id FROM outbox WHERE ($2::text IS NULL OR topic = $2) AND available_at <= $3"
                      " AND leased_until <= $3 ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)"
                      " RETURNING id, msg_id, topic, payload, deliveries, created_at",
                      4, p, &rc);
    if (!r)
        return rc;
    for (int i = 0; i < PQntuples(r) && *n < (size_t)max; i++) {
        toro_outbox_event_t *e = &out[(*n)++];
        e->id = val_i64(r, i, 0);
        snprintf(e->msg_id, sizeof e->msg_id, "%s", PQgetvalue(r, i, 1));
        e->topic = val_dup(r, i, 2);
        e->payload = val_dup(r, i, 3);
        e->deliveries = (int)val_i64(r, i, 4);
        e->created_at = val_i64(r, i, 5);
        if (!e->topic || !e->payload)
            rc = TORO_ENOMEM;
    }
    PQclear(r);
    return rc;
}

/* claim (outbox.h): the events handed over by this process's commits
 * first, then the table's (take_handed says when). A failed read of the
 * table still returns the handed events. */
static int o_claim(toro_outbox_t *o, const char *topic, int max, int lease_ms, toro_outbox_event_t *out, size_t *n)
{
    toro_store_t *s = of_outbox(o);
    pg_store_t *ps = (pg_store_t *)s;
    bool read_table;
    size_t got = 0;
    int rc = 0;
    assert(max > 0 && out && n);
    atomic_store(&ps->lease_ms, lease_ms > 0 ? lease_ms : 1);
    size_t handed = take_handed(ps, topic, max, out, &read_table);
    if (read_table) {
        WITH_RETRY(claim_once(s, topic, max - (int)handed, lease_ms, out + handed, &got));
        if (rc) { /* rows leased by a half-read claim come back when the lease ends */
            toro_outbox_events_clear(out + handed, got);
            got = 0;
        }
    }
    *n = handed + got;
    toro_outbox_events_sort(out, *n); /* RETURNING has no order */
    return *n ? 0 : rc;
}

/* The bigint[] literal of ids[0..n). Caller frees; NULL: no memory. */
static char *id_array(const int64_t *ids, size_t n)
{
    size_t cap = n * 21 + 3, len = 0;
    char *list = malloc(cap);
    if (!list)
        return NULL;
    list[len++] = '{';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(list + len, cap - len, "%s%lld", i ? "," : "", (long long)ids[i]);
    snprintf(list + len, cap - len, "}");
    return list;
}

/* Runs sql with the ids as $1 (bigint[]), retried once on a dropped connection. */
static int with_ids(toro_store_t *s, const char *sql, const int64_t *ids, size_t n)
{
    char *list = id_array(ids, n);
    int rc;
    if (!list)
        return TORO_ENOMEM;
    const char *p[] = {list};
    WITH_RETRY(simple_once(s, sql, 1, p));
    free(list);
    return rc;
}

static int o_mark(toro_outbox_t *o, const int64_t *ids, size_t n)
{
    return with_ids(of_outbox(o), "DELETE FROM outbox WHERE id = ANY($1::bigint[])", ids, n);
}

/* At close: the events handed over and never claimed (the relay stopped
 * first) are released, so that any relay claims them now rather than when
 * their lease ends; if that fails they wait for the lease. */
static void release_handed(pg_store_t *ps)
{
    int64_t *ids = ps->n_handed ? calloc(ps->n_handed, sizeof *ids) : NULL;
    for (size_t i = 0; ids && i < ps->n_handed; i++)
        ids[i] = ps->handed[i].id;
    if (ids && with_ids(&ps->super, "UPDATE outbox SET leased_until = 0 WHERE id = ANY($1::bigint[])", ids,
                        ps->n_handed) != 0)
        toro_log_warn("store", NULL, "postgres: %zu events of this process go out when their lease ends",
                      ps->n_handed);
    free(ids);
    toro_outbox_events_clear(ps->handed, ps->n_handed);
    ps->n_handed = 0;
}

static int o_release(toro_outbox_t *o, int64_t id, int delay_ms)
{
    toro_store_t *s = of_outbox(o);
    char ids[24], at[24];
    int rc;
    fmt_i64(ids, id);
    fmt_i64(at, toro_now_ms() + (delay_ms > 0 ? delay_ms : 0));
    const char *p[] = {ids, at};
    if (id == 0)
        WITH_RETRY(simple_once(s, "UPDATE outbox SET leased_until = 0 WHERE leased_until > 0", 0, NULL));
    else
        WITH_RETRY(simple_once(s, "UPDATE outbox SET available_at = $2, leased_until = 0 WHERE id = $1", 2, p));
    pg_store_t *ps = (pg_store_t *)s;
    pthread_mutex_lock(&ps->handed_lock);
    ps->sql_claimed_at = TABLE_DUE; /* the next claim reads the table */
    pthread_mutex_unlock(&ps->handed_lock);
    return rc;
}

static int bury_once(toro_store_t *s, const char *id, const char *reason)
{
    PGconn *c = conn(s);
    char now[24];
    int rc = begin(c);
    if (rc)
        return rc;
    fmt_i64(now, toro_now_ms());
    const char *p[] = {id, now, reason};
    rc = exec0(c,
               "INSERT INTO outbox_dead(id, msg_id, topic, payload, created_at, dead_at, deliveries, reason)"
               " SELECT id, msg_id, topic, payload, created_at, $2, deliveries, $3 FROM outbox WHERE id = $1"
               " ON CONFLICT (id) DO NOTHING",
               3, p);
    if (rc == 0)
        rc = exec0(c, "DELETE FROM outbox WHERE id = $1", 1, p);
    return finish(c, rc);
}

static int o_bury(toro_outbox_t *o, int64_t id, const char *reason)
{
    toro_store_t *s = of_outbox(o);
    char ids[24];
    int rc;
    fmt_i64(ids, id);
    WITH_RETRY(bury_once(s, ids, reason ? reason : ""));
    return rc;
}

static int depth_once(toro_store_t *s, const char *topic, long *out)
{
    PGconn *c = conn(s);
    int rc = TORO_EIO;
    if (!c)
        return rc;
    const char *p[] = {topic};
    PGresult *r = run(c, "SELECT count(*) FROM outbox WHERE topic = $1", 1, p, &rc);
    if (!r)
        return rc;
    *out = (long)val_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

static int o_depth(toro_outbox_t *o, const char *topic, long *out)
{
    toro_store_t *s = of_outbox(o);
    int rc;
    WITH_RETRY(depth_once(s, topic, out));
    return rc;
}

static const toro_outbox_ops_t pg_outbox_ops = {
    .version = TORO_OUTBOX_OPS_VERSION,
    .claim = o_claim,
    .mark_published = o_mark,
    .release = o_release,
    .bury = o_bury,
    .depth = o_depth,
    .wait = NULL, /* the default: the relay is woken by its own process's kicks, else polls */
};

static toro_outbox_t *s_outbox(toro_store_t *s) { return &((pg_store_t *)s)->outbox; }

static void s_close(toro_store_t *s)
{
    pg_store_t *ps = (pg_store_t *)s;
    if (ps->handed)
        release_handed(ps);
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
    free(ps->handed);
    pthread_mutex_destroy(&ps->handed_lock);
    free(ps->conninfo);
    free(ps);
}

/* Feedback (store.h, set_feedback): one guarded UPDATE; when it matches no
 * row, the status says whether the question is missing or not completed. */
static int feedback_once(toro_store_t *s, const char *user_id, const char *question_id, const toro_feedback_t *fb)
{
    PGconn *c = conn(s);
    char at[24];
    int rc = TORO_EIO;
    if (!c)
        return rc;
    fmt_i64(at, fb->at);
    const char *p[] = {user_id, question_id, toro_rating_name(fb->rating), fb->comment, at};
    rc = guarded_update(c,
                        "UPDATE questions SET feedback_rating = $3, feedback_comment = $4, feedback_at = $5"
                        " WHERE user_id = $1 AND question_id = $2 AND status = 'completed'",
                        5, p);
    if (rc != TORO_ECONFLICT)
        return rc;
    PGresult *r = run(c, "SELECT status FROM questions WHERE user_id = $1 AND question_id = $2", 2, p, &rc);
    if (r && PQntuples(r) == 0)
        rc = TORO_ENOTFOUND;
    else if (r)
        rc = TORO_ECONFLICT;
    PQclear(r);
    return rc;
}

static int s_set_feedback(toro_store_t *s, const char *user_id, const char *question_id, const toro_feedback_t *fb)
{
    int rc;
    WITH_RETRY(feedback_once(s, user_id, question_id, fb)); /* the same values twice: idempotent */
    return rc;
}

static int list_feedback_once(toro_store_t *s, const toro_feedback_query_t *q, toro_question_t **items, size_t *n)
{
    PGconn *c = conn(s);
    char since[24], after[24], lim[24];
    int rc = TORO_EIO;
    if (!c)
        return rc;
    fmt_i64(since, q->since);
    fmt_i64(after, q->after_id ? q->after_at : INT64_MIN);
    fmt_i64(lim, q->limit);
    const char *p[] = {toro_rating_name(q->rating), since, after, q->after_id ? q->after_id : "", lim};
    PGresult *r = run(c,
                      "SELECT " COLS " FROM questions WHERE feedback_rating IS NOT NULL"
                      " AND ($1::text IS NULL OR feedback_rating = $1) AND feedback_at >= $2::bigint"
                      " AND (feedback_at, question_id) > ($3::bigint, $4) ORDER BY feedback_at, question_id LIMIT $5",
                      5, p, &rc);
    if (!r)
        return rc;
    size_t rows = (size_t)PQntuples(r);
    toro_question_t *arr = calloc(rows + 1, sizeof *arr);
    for (size_t i = 0; arr && i < rows; i++)
        row_to_question(r, (int)i, &arr[i]);
    PQclear(r);
    *items = arr;
    *n = arr ? rows : 0;
    return arr ? 0 : TORO_ENOMEM;
}

static int s_list_feedback(toro_store_t *s, const toro_feedback_query_t *q, toro_question_t **items, size_t *n)
{
    int rc;
    WITH_RETRY(list_feedback_once(s, q, items, n));
    return rc;
}

static const toro_store_ops_t pg_ops = {
    .name = "postgres",
    .version = TORO_STORE_OPS_VERSION,
    .outbox = s_outbox,
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
    .set_feedback = s_set_feedback,
    .list_feedback = s_list_feedback,
    .list_conversations = s_list_conversations,
    .list_turns = s_list_turns,
    .get_question_and_connections = s_get_conns,
};

int toro_store_postgres_open(const char *url, toro_store_t **out, char **err)
{
    pg_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return TORO_ENOMEM;
    s->conninfo = strdup(url);
    s->handed = calloc(HANDED_MAX, sizeof *s->handed);
    if (!s->conninfo || !s->handed || pthread_key_create(&s->key, NULL) != 0) {
        free(s->handed);
        free(s->conninfo);
        free(s);
        return TORO_ENOMEM;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->handed_lock, NULL);
    s->sql_claimed_at = TABLE_DUE;
    s->super.ops = &pg_ops;
    s->outbox.ops = &pg_outbox_ops;
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

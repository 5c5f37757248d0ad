/* store.h: the two tables of toro (the DynamoDB boxes of the reference):
 * questions, keyed by (user_id, question_id), and connections, plus the
 * outbox each store owns. Every status change is guarded (see
 * toro_status_can_move) and is written in one transaction with the event
 * that announces it, so a crash can never keep one without the other; the
 * events are read back through toro_store_outbox (bus/outbox.h).
 * Implementations: sqlite.c, postgres.c, dynamodb.c. All calls are safe from several
 * threads at once. Call sites use the toro_store_* wrappers below, never
 * s->ops->fn(s, ...); optional methods get their default there.
 * Unless a comment says otherwise, a failed call changed nothing and left
 * its outputs empty (NULL / 0). */
#ifndef TORO_STORE_STORE_H
#define TORO_STORE_STORE_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus/outbox.h"
#include "core/error.h"
#include "core/question.h"

typedef struct toro_store toro_store_t;

typedef struct toro_event {
    const char *topic;   /* TORO_TOPIC_PROCESS or TORO_TOPIC_NOTIFY */
    const char *payload; /* toro_event_encode() */
} toro_event_t;

typedef struct toro_connection {
    char *connection_id;
    char *user_id;
    char *node;          /* gateway node that holds the socket */
    int64_t connected_at;
} toro_connection_t;

/* A guarded status change and its event, one transaction: the store reads
 * the status, refuses a move toro_status_can_move forbids (TORO_ECONFLICT),
 * writes the change and, with it, ev. The engines differ only in SQL. */
typedef struct toro_transition {
    const char *user_id, *question_id;
    toro_status_t to;              /* PROCESSING, COMPLETED or ERROR */
    const toro_question_t *result; /* to COMPLETED: answer, sources, found_relevant_docs, model, kb_version,
                                    * retrieval_query */
    const char *message;           /* to ERROR: error_message */
    const toro_event_t *ev;        /* written with the change; NULL: none */
    bool ev_if_pending;            /* write ev only when the question was pending */
    toro_status_t from;            /* out: the status before (0 and ECONFLICT) */
    int attempts;                  /* out: attempts before (0 and ECONFLICT) */
    toro_question_t *question;     /* optional out (NULL: not wanted; caller clears): the question as the move
                                    * left it, on 0 when the store can give it with the move (PostgreSQL, to
                                    * PROCESSING); left untouched otherwise */
} toro_transition_t;

/* Version 2: create_questions reports results; transition replaces
 * start_processing, complete and fail; outbox (and set_urgent, removed
 * when SQLite's writes moved to one writer thread).
 * Version 3: set_feedback and list_feedback (optional).
 * Version 4: list_conversations and list_turns (conversations; optional).
 * Version 5: get_question_and_connections (optional). */
#define TORO_STORE_OPS_VERSION 5

/* Which rated questions list_feedback returns, oldest rating first: rating
 * (NONE: both), rated at or after since (ms), and after the key (after_at,
 * after_id) of the previous page (after_id NULL: the first page). */
typedef struct toro_feedback_query {
    toro_rating_t rating;
    int64_t since;
    int64_t after_at;
    const char *after_id;
    int limit;            /* > 0 */
} toro_feedback_query_t;

typedef struct toro_store_ops {
    const char *name;
    int version; /* TORO_STORE_OPS_VERSION the table was written for */
    /* Insert a new pending question and its process event atomically.
     * TORO_ECONFLICT when the id exists. */
    int (*create_question)(toro_store_t *s, const toro_question_t *q, const toro_event_t *ev);
    /* Optional: n questions and their events in one transaction (group
     * commit of the gateway). An item whose id exists or repeats an earlier
     * item's never overwrites; the store either fails the batch (all or
     * none, every results[i] the same code: SQLite) or gives that item
     * TORO_ECONFLICT and writes the others, as n single creates would
     * (PostgreSQL). Default: one create_question each (results[i] per item). */
    int (*create_questions)(toro_store_t *s, const toro_question_t *qs, const toro_event_t *evs, size_t n,
                            int *results);
    /* Fetch by question id (ids are globally unique). TORO_ENOTFOUND. */
    int (*get_question)(toro_store_t *s, const char *question_id, toro_question_t *out);
    /* History newest first. cursor NULL = first page; *next (caller frees) is
     * NULL on the last page. TORO_EINVAL for a cursor this store never made. */
    int (*list_questions)(toro_store_t *s, const char *user_id, int limit, const char *cursor,
                          toro_question_t **items, size_t *n, char **next);
    /* The one guarded status change (see toro_transition_t); the stages call
     * it through toro_store_start_processing / _complete / _fail. */
    int (*transition)(toro_store_t *s, toro_transition_t *t);
    int (*put_connection)(toro_store_t *s, const toro_connection_t *c);
    int (*delete_connection)(toro_store_t *s, const char *connection_id);
    int (*list_connections)(toro_store_t *s, const char *user_id, toro_connection_t **out, size_t *n);
    /* Drops the rows of a gateway node that restarted (its sockets are gone). */
    int (*delete_node_connections)(toro_store_t *s, const char *node);
    int (*count_by_status)(toro_store_t *s, long counts[TORO_STATUS_COUNT]);
    int (*ping)(toro_store_t *s);
    void (*close)(toro_store_t *s);
    /* The store's outbox (borrowed; lives as long as the store). */
    toro_outbox_t *(*outbox)(toro_store_t *s);
    /* Optional (default: TORO_ENOTSUP): the asker's feedback on a completed
     * question, replacing any earlier one; fb->at is the time stored.
     * TORO_ENOTFOUND when user_id has no such question, TORO_ECONFLICT when
     * it is not completed. */
    int (*set_feedback)(toro_store_t *s, const char *user_id, const char *question_id, const toro_feedback_t *fb);
    /* Optional (default: TORO_ENOTSUP): one page (at most q->limit) of rated
     * questions of every user, ordered by (feedback.at, question_id). */
    int (*list_feedback)(toro_store_t *s, const toro_feedback_query_t *q, toro_question_t **items, size_t *n);
    /* Optional (version 4; default TORO_ENOTSUP): the user's conversations
     * (questions sharing conversation_id), latest activity first; cursor and
     * *next as list_questions (toro_conversation_cursor_encode). */
    int (*list_conversations)(toro_store_t *s, const char *user_id, int limit, const char *cursor,
                              toro_conversation_t **items, size_t *n, char **next);
    /* Optional (version 4; default TORO_ENOTSUP): the questions of one
     * conversation of user_id, oldest first (newest first when
     * newest_first); a cursor (toro_history_cursor_encode of a question)
     * starts after that question in that order. Another user's conversation
     * has no questions for this user (0 with *n 0). */
    int (*list_turns)(toro_store_t *s, const char *user_id, const char *conversation_id, bool newest_first,
                      int limit, const char *cursor, toro_question_t **items, size_t *n, char **next);
    /* Optional (version 5; default: get_question, then list_connections):
     * the question and the connections of user_id in one read, as those two
     * calls would give them (the notify stage, once per event).
     * TORO_ENOTFOUND (no connections read) when the question does not exist. */
    int (*get_question_and_connections)(toro_store_t *s, const char *question_id, const char *user_id,
                                        toro_question_t *q, toro_connection_t **conns, size_t *n);
} toro_store_ops_t;

struct toro_store {
    const toro_store_ops_t *ops; /* first field of every implementation */
};

/* Frees items[0..n) and the array; NULL is a no-op (store.c). */
void toro_connections_free(toro_connection_t *items, size_t n);

/* How hard SQLite syncs its log: NORMAL survives a process crash, FULL also
 * a power loss. */
typedef enum { TORO_DB_SYNC_NORMAL, TORO_DB_SYNC_FULL } toro_db_sync_t;

/* Why: `toro serve` keeps its tables and its outbox in DIR/toro.db. On
 * failure *out is untouched and *err (caller frees) says why. */
int toro_store_sqlite_open(const char *path, toro_db_sync_t sync, toro_store_t **out, char **err);

/* Why: `toro api` and `toro worker` share PostgreSQL (url: postgres://...).
 * Connects lazily per thread; an unreachable server is not an error here. */
int toro_store_postgres_open(const char *url, toro_store_t **out, char **err);
/* Why: `toro db migrate`: creates or upgrades the schema (idempotent, safe to
 * run from several processes at once). *from / *to get the schema versions;
 * after a failure *to is the last version applied. */
int toro_store_postgres_migrate(const char *url, int *from, int *to, char **err);

/* Why: `toro lambda` keeps the reference's DynamoDB tables (url:
 * dynamodb://REGION?endpoint=URL&questions=T&connections=T&outbox=T; see
 * dynamodb.c). Credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
 * AWS_SESSION_TOKEN. Sends nothing: an unreachable endpoint is not an error
 * here. TORO_EINVAL (with *err) for a bad URL or missing credentials. */
int toro_store_dynamodb_open(const char *url, toro_store_t **out, char **err);
/* Why: `toro db migrate --store dynamodb://...`: creates the three tables
 * (pay per request) that do not exist yet and waits until they are active.
 * *created (optional) counts the tables created, also after a failure. */
int toro_store_dynamodb_migrate(const char *url, int *created, char **err);

/* The default of create_questions: one create_question per item. */
int toro_store_create_each(toro_store_t *s, const toro_question_t *qs, const toro_event_t *evs, size_t n,
                           int *results);

/* The update arguments of t for an engine (store.c): to COMPLETED answer,
 * sources (JSON, *owned: caller frees), found (yes / no), model, kb_version,
 * retrieval_query (may be NULL); to ERROR message; none to PROCESSING.
 * Returns the count, or TORO_ENOMEM (then *owned is NULL). */
#define TORO_TRANSITION_MAX_ARGS 6
int toro_transition_args(const toro_transition_t *t, const char *yes, const char *no,
                         const char *args[TORO_TRANSITION_MAX_ARGS], char **owned);

/* Why: the engines end a page alike (store.c): arr holds count rows of a
 * query that asked for limit + 1. Keeps at most limit, sets *next to the
 * cursor of the last kept when there were more, and hands arr to *items and
 * *n. TORO_ENOMEM: arr is freed, the outputs stay empty. */
int toro_store_questions_page(toro_question_t *arr, size_t count, int limit, toro_question_t **items, size_t *n,
                              char **next);
int toro_store_conversations_page(toro_conversation_t *arr, size_t count, int limit, toro_conversation_t **items,
                                  size_t *n, char **next);

/* Why: the process stage's three moves (store.c), over ops->transition.
 * start: pending|processing -> processing, attempts + 1; writes ev (NULL:
 * none, when the stage pushes processing itself) only on the first move
 * (*first). TORO_ECONFLICT when terminal; *attempts then
 * holds the stored count. complete: processing -> completed with the
 * answer fields of result. fail: pending|processing -> error. */
int toro_store_start_processing(toro_store_t *s, const char *user_id, const char *question_id,
                                const toro_event_t *ev, bool *first, int *attempts);
/* Why: the process stage reads the question it starts on; a store that
 * gives it with the move saves a round trip (toro_transition_t.question).
 * As toro_store_start_processing; on 0, *q (clear on entry; caller clears)
 * holds the question, read with get_question when the store did not give
 * it (if that read fails, its code is returned and *q stays clear: the
 * move stands, and a redelivery moves it again). */
int toro_store_start_processing_get(toro_store_t *s, const char *user_id, const char *question_id,
                                    const toro_event_t *ev, bool *first, int *attempts, toro_question_t *q);
int toro_store_complete(toro_store_t *s, const toro_question_t *result, const toro_event_t *ev);
int toro_store_fail(toro_store_t *s, const char *user_id, const char *question_id, const char *message,
                    const toro_event_t *ev);

/* Wrappers (curl style: the NULL check of an optional method lives here). */
static inline int toro_store_create_question(toro_store_t *s, const toro_question_t *q, const toro_event_t *ev)
{
    assert(s && s->ops && q && ev);
    return s->ops->create_question(s, q, ev);
}
/* Returns 0 when every item was committed, else the first error. */
static inline int toro_store_create_questions(toro_store_t *s, const toro_question_t *qs, const toro_event_t *evs,
                                              size_t n, int *results)
{
    assert(s && s->ops && (n == 0 || (qs && evs && results)));
    if (s->ops->version >= 2 && s->ops->create_questions && n > 1)
        return s->ops->create_questions(s, qs, evs, n, results);
    return toro_store_create_each(s, qs, evs, n, results);
}
static inline int toro_store_get_question(toro_store_t *s, const char *question_id, toro_question_t *out)
{
    assert(s && question_id && out);
    return s->ops->get_question(s, question_id, out);
}
/* Why: the notify stage reads both for every event; a store that can
 * serves them in one round trip (PostgreSQL). On failure q is left clear
 * and *conns NULL. */
static inline int toro_store_get_question_and_connections(toro_store_t *s, const char *question_id,
                                                          const char *user_id, toro_question_t *q,
                                                          toro_connection_t **conns, size_t *n)
{
    assert(s && question_id && user_id && q && conns && n);
    *conns = NULL;
    *n = 0;
    if (s->ops->version >= 5 && s->ops->get_question_and_connections)
        return s->ops->get_question_and_connections(s, question_id, user_id, q, conns, n);
    int rc = s->ops->get_question(s, question_id, q);
    if (rc == 0 && (rc = s->ops->list_connections(s, user_id, conns, n)) != 0)
        toro_question_clear(q);
    return rc;
}
static inline int toro_store_list_questions(toro_store_t *s, const char *user_id, int limit, const char *cursor,
                                            toro_question_t **items, size_t *n, char **next)
{
    assert(s && user_id && limit > 0 && items && n && next);
    return s->ops->list_questions(s, user_id, limit, cursor, items, n, next);
}
static inline int toro_store_put_connection(toro_store_t *s, const toro_connection_t *c)
{
    assert(s && c && c->connection_id && c->user_id && c->node);
    return s->ops->put_connection(s, c);
}
static inline int toro_store_delete_connection(toro_store_t *s, const char *connection_id)
{
    assert(s && connection_id);
    return s->ops->delete_connection(s, connection_id);
}
static inline int toro_store_list_connections(toro_store_t *s, const char *user_id, toro_connection_t **out,
                                              size_t *n)
{
    assert(s && user_id && out && n);
    return s->ops->list_connections(s, user_id, out, n);
}
static inline int toro_store_delete_node_connections(toro_store_t *s, const char *node)
{
    assert(s && node);
    return s->ops->delete_node_connections(s, node);
}
static inline int toro_store_count_by_status(toro_store_t *s, long counts[TORO_STATUS_COUNT])
{
    assert(s && counts);
    return s->ops->count_by_status(s, counts);
}
static inline int toro_store_ping(toro_store_t *s) { return s->ops->ping(s); }
static inline toro_outbox_t *toro_store_outbox(toro_store_t *s)
{
    assert(s && s->ops->outbox);
    return s->ops->outbox(s);
}
/* Why: POST /questions/{id}/feedback and `toro feedback export`; stores
 * without the methods (ops version < 3 or NULL) answer TORO_ENOTSUP. */
static inline int toro_store_set_feedback(toro_store_t *s, const char *user_id, const char *question_id,
                                          const toro_feedback_t *fb)
{
    assert(s && user_id && question_id && fb && fb->rating != TORO_RATING_NONE);
    if (s->ops->version >= 3 && s->ops->set_feedback)
        return s->ops->set_feedback(s, user_id, question_id, fb);
    return TORO_ENOTSUP;
}
static inline int toro_store_list_feedback(toro_store_t *s, const toro_feedback_query_t *q, toro_question_t **items,
                                           size_t *n)
{
    assert(s && q && q->limit > 0 && items && n);
    *items = NULL;
    *n = 0;
    if (s->ops->version >= 3 && s->ops->list_feedback)
        return s->ops->list_feedback(s, q, items, n);
    return TORO_ENOTSUP;
}
/* Why: ingest gives a new question a conversation only where it is kept. */
static inline bool toro_store_has_conversations(const toro_store_t *s)
{
    return s->ops->version >= 4 && s->ops->list_turns && s->ops->list_conversations;
}
/* TORO_ENOTSUP when the store keeps no conversations (routes answer 501). */
static inline int toro_store_list_conversations(toro_store_t *s, const char *user_id, int limit, const char *cursor,
                                                toro_conversation_t **items, size_t *n, char **next)
{
    assert(s && user_id && limit > 0 && items && n && next);
    *items = NULL;
    *n = 0;
    *next = NULL;
    if (s->ops->version < 4 || !s->ops->list_conversations)
        return TORO_ENOTSUP;
    return s->ops->list_conversations(s, user_id, limit, cursor, items, n, next);
}
static inline int toro_store_list_turns(toro_store_t *s, const char *user_id, const char *conversation_id,
                                        bool newest_first, int limit, const char *cursor, toro_question_t **items,
                                        size_t *n, char **next)
{
    assert(s && user_id && conversation_id && limit > 0 && items && n && next);
    *items = NULL;
    *n = 0;
    *next = NULL;
    if (s->ops->version < 4 || !s->ops->list_turns)
        return TORO_ENOTSUP;
    return s->ops->list_turns(s, user_id, conversation_id, newest_first, limit, cursor, items, n, next);
}
static inline void toro_store_close(toro_store_t *s)
{
    if (s)
        s->ops->close(s);
}

#endif

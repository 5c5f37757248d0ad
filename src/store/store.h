/* store.h: the two tables of toro (the DynamoDB boxes of the reference):
 * questions, keyed by (user_id, question_id), and connections. Every status
 * change is guarded (see toro_status_can_move) and is written in one
 * transaction with the event that announces it (outbox), so a crash can never
 * keep one without the other. Implementations: sqlite.c, postgres.c. All calls are safe
 * from several threads at once. */
#ifndef TORO_STORE_STORE_H
#define TORO_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/db.h"
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

typedef struct toro_store_ops {
    const char *name;
    /* Insert a new pending question and its process event atomically. */
    int (*create_question)(toro_store_t *s, const toro_question_t *q, const toro_event_t *ev);
    /* Optional (NULL = not supported): n questions and their events in one
     * transaction, all or none (group commit of the gateway). */
    int (*create_questions)(toro_store_t *s, const toro_question_t *qs, const toro_event_t *evs, size_t n);
    /* Fetch by question id (ids are globally unique). TORO_ENOTFOUND. */
    int (*get_question)(toro_store_t *s, const char *question_id, toro_question_t *out);
    /* History newest first. cursor NULL = first page; *next (caller frees) is
     * NULL on the last page. TORO_EINVAL for a cursor this store never made. */
    int (*list_questions)(toro_store_t *s, const char *user_id, int limit, const char *cursor,
                          toro_question_t **items, size_t *n, char **next);
    /* pending|processing -> processing, attempts + 1. Writes ev only when the
     * question was pending (*first = true). TORO_ECONFLICT when terminal. */
    int (*start_processing)(toro_store_t *s, const char *user_id, const char *question_id, const toro_event_t *ev,
                            bool *first, int *attempts);
    /* processing -> completed with the answer fields of result. ECONFLICT otherwise. */
    int (*complete)(toro_store_t *s, const toro_question_t *result, const toro_event_t *ev);
    /* pending|processing -> error. ECONFLICT when already terminal. */
    int (*fail)(toro_store_t *s, const char *user_id, const char *question_id, const char *message,
                const toro_event_t *ev);
    int (*put_connection)(toro_store_t *s, const toro_connection_t *c);
    int (*delete_connection)(toro_store_t *s, const char *connection_id);
    int (*list_connections)(toro_store_t *s, const char *user_id, toro_connection_t **out, size_t *n);
    /* Drops the rows of a gateway node that restarted (its sockets are gone). */
    int (*delete_node_connections)(toro_store_t *s, const char *node);
    int (*count_by_status)(toro_store_t *s, long counts[TORO_STATUS_COUNT]);
    int (*ping)(toro_store_t *s);
    void (*close)(toro_store_t *s);
} toro_store_ops_t;

struct toro_store {
    const toro_store_ops_t *ops; /* first field of every implementation */
};

void toro_questions_free(toro_question_t *items, size_t n);
void toro_connections_free(toro_connection_t *items, size_t n);

/* Why: `toro serve` keeps its tables in DIR/toro.db. */
int toro_store_sqlite_open(const char *path, toro_db_sync_t sync, toro_store_t **out, char **err);

/* Why: `toro api` and `toro worker` share PostgreSQL (url: postgres://...).
 * Connects lazily per thread; an unreachable server is not an error here. */
int toro_store_postgres_open(const char *url, toro_store_t **out, char **err);
/* Why: `toro db migrate`: creates or upgrades the schema (idempotent, safe to
 * run from several processes at once). *from / *to get the schema versions. */
int toro_store_postgres_migrate(const char *url, int *from, int *to, char **err);
/* The NOTIFY channel that wakes outbox relays (bus/relay.c). */
#define TORO_OUTBOX_CHANNEL "toro_outbox"

static inline void toro_store_close(toro_store_t *s)
{
    if (s)
        s->ops->close(s);
}

#endif

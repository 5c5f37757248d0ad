/* stages.h: the three "Lambdas" of the reference, free of any transport.
 * ingest turns a request body into a durable pending question and its process
 * event; process answers it (guarded, retried with backoff, dead-lettered);
 * notify pushes each status change to every connection of the asker. They get
 * their collaborators in toro_stage_ctx_t, so tests run them with the
 * embedded backends and no network. */
#ifndef TORO_STAGES_STAGES_H
#define TORO_STAGES_STAGES_H

#include <stdatomic.h>
#include <stddef.h>

#include "answer/answer.h"
#include "bus/bus.h"
#include "bus/post.h" /* toro_post_fn: how notify reaches a socket */
#include "store/store.h"

typedef struct toro_stage_ctx {
    toro_store_t *store;        /* borrowed */
    toro_bus_t *bus;            /* borrowed */
    toro_answerer_t *answerer;  /* borrowed; process stage only */
    toro_post_fn post;          /* notify stage only */
    void *post_ctx;
    int max_attempts;           /* answerer attempts before the question is marked error */
    int backoff_base_ms;        /* first retry delay; doubles each attempt */
    int backoff_max_ms;         /* cap of one delay */
    int max_deliveries;         /* a message delivered more often than this is dead-lettered */
} toro_stage_ctx_t;

/* Fills the defaults above (3 attempts, 200 ms, 5000 ms, 10 deliveries);
 * collaborators are NULL (stage.c). */
void toro_stage_ctx_defaults(toro_stage_ctx_t *ctx);

/* Why: POST /questions. auth_user is the bearer token's subject (NULL when
 * the gateway runs without authentication: then the body names the user).
 * On 0, qid holds the new id and *user_id (caller frees) the user; the
 * question and its event are committed. TORO_EINVAL: *err is the validation
 * message; TORO_EFORBIDDEN: the body names another user than the token;
 * other codes are store failures. */
int toro_stage_ingest(toro_stage_ctx_t *ctx, const char *body, size_t len, const char *auth_user, char qid[37],
                      char **user_id, const char **err);

/* A validated question not yet committed: the gateway validates each POST
 * at once and commits the questions of one event-loop round together
 * (group commit: one transaction, one write to the log, for many 202s). */
typedef struct toro_ingest_item {
    toro_question_t q; /* user_id, question_id, question, created_at, conversation_id (owned) */
    char *payload;     /* its process event (owned) */
} toro_ingest_item_t;

/* Why: the validation half of toro_stage_ingest; same codes, plus (a body
 * with conversation_id) TORO_ENOTFOUND for a conversation the user does not
 * have and TORO_ENOTSUP for a store without conversations. The caller
 * clears item (toro_ingest_item_clear) whatever happens next. */
int toro_stage_ingest_prepare(toro_stage_ctx_t *ctx, const char *body, size_t len, const char *auth_user,
                              toro_ingest_item_t *item, const char **err);
/* Why: the durable half: commits n prepared items and wakes the process
 * workers. results[i] is 0 or the store's error for item i (a store with
 * create_questions commits all or none; otherwise one by one). Returns 0
 * when every item was committed. */
int toro_stage_ingest_commit(toro_stage_ctx_t *ctx, toro_ingest_item_t *items, size_t n, int *results);
void toro_ingest_item_clear(toro_ingest_item_t *item);

/* Why: one delivery of a process / notify event. The stage acks, nacks or
 * dead-letters the message itself. Returns 0 or a negative code for logs. */
int toro_stage_process(toro_stage_ctx_t *ctx, const toro_bus_msg_t *msg);
int toro_stage_notify(toro_stage_ctx_t *ctx, const toro_bus_msg_t *msg);

/* Why: the retry delay for attempt n (1-based), exponential with jitter,
 * shared by process and notify (stage.c). */
int toro_stage_backoff_ms(const toro_stage_ctx_t *ctx, int attempt);

/* A worker thread: fetches `topic` until *stop, runs the stage on each message. */
typedef struct toro_worker {
    toro_stage_ctx_t *ctx;
    const char *topic;     /* TORO_TOPIC_PROCESS or TORO_TOPIC_NOTIFY */
    atomic_int *stop;      /* set to 1 to end the loop after the current message */
} toro_worker_t;

void *toro_worker_main(void *arg);

/* The message pushed on the WebSocket for one status change (caller frees). */
char *toro_stage_update_message(const toro_question_t *q, toro_status_t status);

#endif

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
#include "core/strbuf.h"
#include "store/store.h"

typedef struct toro_stage_ctx {
    toro_store_t *store;        /* borrowed */
    toro_bus_t *bus;            /* borrowed */
    toro_answerer_t *answerer;  /* borrowed; process stage only */
    toro_post_fn post;          /* notify; process: deltas and the processing update (NULL: announced by event) */
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
    int nice;              /* added to the thread's nice value at start (0 = unchanged) */
} toro_worker_t;

void *toro_worker_main(void *arg);

/* Streamed answer text forwarded by the process stage to the asker's
 * sockets through ctx->post (delta.c): {"type":"answer_delta","question_id",
 * "user_id","attempt","seq","text"}, seq 1, 2, ... within one attempt.
 * Best-effort and never stored: the completed update that follows is the
 * answer. Coalesced: a message when TORO_DELTA_MIN_BYTES are pending or
 * TORO_DELTA_MIN_MS passed since the last one. */
#define TORO_DELTA_MIN_MS 50
#define TORO_DELTA_MIN_BYTES 200
typedef struct toro_delta_fwd {
    toro_stage_ctx_t *ctx;          /* borrowed; no post: nothing is sent */
    const char *uid, *qid;          /* borrowed */
    int attempt;
    int seq;                        /* messages sent */
    toro_strbuf_t pending;          /* text not sent yet */
    int64_t last_ms;                /* monotonic time of the last message */
    bool loaded;                    /* conns read (once, at the first message) */
    toro_connection_t *conns;
    size_t n_conns;
    bool *dead;                     /* a post failed: skipped from then on */
} toro_delta_fwd_t;

void toro_delta_fwd_init(toro_delta_fwd_t *f, toro_stage_ctx_t *ctx, const char *uid, const char *qid, int attempt);
/* Why: the toro_answer_delta_fn handed to the answerer (ud is the forwarder). */
void toro_delta_fwd_add(void *ud, const char *text, size_t len);
/* Why: the "processing" update (toro_stage_update_message of q, status)
 * posted best-effort to the asker's connections, read now and kept for the
 * deltas; no event, no retry: the durable updates are the final ones.
 * Needs ctx->post. */
void toro_delta_fwd_status(toro_delta_fwd_t *f, const toro_question_t *q, toro_status_t status);
/* Why: sends what is pending (the complete UTF-8 part) now; call before the
 * answer is committed, so every delta precedes the completed update. */
void toro_delta_fwd_flush(toro_delta_fwd_t *f);
void toro_delta_fwd_clear(toro_delta_fwd_t *f);

/* The message pushed on the WebSocket for one status change (caller frees). */
char *toro_stage_update_message(const toro_question_t *q, toro_status_t status);

#endif

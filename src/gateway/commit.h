/* commit.h: the group commit of POST /questions: the questions validated
 * during one round of the event loop are committed in one transaction at
 * its end (toro_stage_ingest_commit), then each waiting socket gets its 202
 * (or 503) and goes on with the requests it has queued. While its question
 * waits, a socket's input is held (conn->waiting).
 * The transaction runs on committer threads of their own (gw_commit_start),
 * so the loop reads, parses and answers the next requests while SQLite
 * writes the WAL: up to GW_FLIGHTS batches are in flight (one per
 * committer) while the next one collects, so that the store's writer
 * (store/db.c) finds the next batch queued when it ends one; the loop
 * answers a batch when its committer wakes it (gw_commit_landed).
 * Without the thread (not started, or it could not start) the loop commits
 * at the end of each round itself. Every function but the committer's own
 * loop runs on the loop thread. */
#ifndef TORO_GATEWAY_COMMIT_H
#define TORO_GATEWAY_COMMIT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/client.h"
#include "gateway/conn.h"
#include "gateway/http.h"
#include "stages/stages.h"

#define GW_BATCH_MAX 512
#define GW_FLIGHTS 2 /* batches in flight at once (committer threads) */

/* A validated question waiting for the end of the round. */
typedef struct gw_deferred {
    gw_client_t *cl;          /* NULL when the socket closed meanwhile */
    gw_response_t resp;       /* headers so far (CORS, close) */
    toro_ingest_item_t item;  /* the question to commit (owned) */
    char request_id[65];
    int64_t t0;               /* request parsed (monotonic ms), for the HTTP histogram */
} gw_deferred_t;

typedef struct gw_commit gw_commit_t;

/* One batch in the air and the committer thread that commits it. */
typedef struct gw_flight {
    gw_commit_t *gc;          /* its owner */
    pthread_t thread;
    bool has_work;            /* guarded by gc->mu: the batch waits for the committer */
    atomic_bool landed;       /* the committer finished the batch; the loop answers it */
    gw_deferred_t *batch;     /* GW_BATCH_MAX entries, n used */
    size_t n;                 /* 0 = nothing in flight (loop thread) */
    toro_ingest_item_t *items; /* the batch's items (shallow copies) for the committer */
    int *results;             /* their results, written by the committer */
} gw_flight_t;

struct gw_commit {
    gw_conns_t *conns;        /* set by the owner */
    toro_stage_ctx_t *ctx;    /* set by the owner (borrowed) */
    gw_deferred_t batch[GW_BATCH_MAX]; /* collecting this round */
    size_t n;
    /* the committer threads (gw_commit_start); unused while !started */
    void (*wake)(void *);     /* wakes the loop (gw_loop_wake), set by gw_commit_start */
    void *wake_arg;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* work for a committer, or a landed flight for gw_commit_flush */
    bool stopping;            /* guarded by mu */
    gw_flight_t flights[GW_FLIGHTS];
};

/* Why: starts the committer thread (wake(arg) wakes the loop; the loop then
 * calls gw_commit_landed). 0, or -1 (the loop keeps committing itself). */
int gw_commit_start(gw_commit_t *gc, void (*wake)(void *), void *arg);
/* Why: the loop's end of round: hands the collected batch to a committer
 * when one is free (without the threads: gw_commit_flush). */
void gw_commit_round(gw_commit_t *gc);
/* Why: the loop was woken: answers the flights that landed, sends the next. */
void gw_commit_landed(gw_commit_t *gc);
/* Why: shutdown: commits and answers everything, then ends the threads. */
void gw_commit_stop(gw_commit_t *gc);

/* Why: answered after the commit: queues item (ownership taken) with resp
 * for cl and holds cl's input; with a full batch commits it alone now and
 * answers. 0, or -1 when cl must close now. */
int gw_commit_defer(gw_commit_t *gc, gw_client_t *cl, gw_response_t *resp, toro_ingest_item_t *item,
                    const char *request_id, int64_t t0);
/* Why: the fuzz harness's pump, shutdown, and the end of a round without the
 * committer threads: waits for the flights in the air and answers them, commits the
 * batch on this thread, answers each socket, resumes the input it held;
 * repeats while that input queued more. */
void gw_commit_flush(gw_commit_t *gc);
/* cl is closing: its question is still committed; there is just nobody to answer. */
void gw_commit_forget(gw_commit_t *gc, gw_client_t *cl);
/* The response to a POST /questions once its commit result rc is known
 * (item NULL: it never reached the commit): 202 with the ids, or 503. */
void gw_commit_answer(gw_response_t *r, const toro_ingest_item_t *item, int rc);

#endif

/* commit.h: the group commit of POST /questions: the questions validated
 * during one round of the event loop are committed in one transaction at
 * its end (toro_stage_ingest_commit), then each waiting socket gets its 202
 * (or 503) and goes on with the requests it has queued. While its question
 * waits, a socket's input is held (conn->waiting). Loop thread only. */
#ifndef TORO_GATEWAY_COMMIT_H
#define TORO_GATEWAY_COMMIT_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/client.h"
#include "gateway/conn.h"
#include "gateway/http.h"
#include "stages/stages.h"

#define GW_BATCH_MAX 512

/* A validated question waiting for the end of the round. */
typedef struct gw_deferred {
    gw_client_t *cl;          /* NULL when the socket closed meanwhile */
    gw_response_t resp;       /* headers so far (CORS, close) */
    toro_ingest_item_t item;  /* the question to commit (owned) */
    char request_id[65];
    int64_t t0;               /* request parsed (monotonic ms), for the HTTP histogram */
} gw_deferred_t;

typedef struct gw_commit {
    gw_conns_t *conns;        /* set by the owner */
    toro_stage_ctx_t *ctx;    /* set by the owner (borrowed) */
    gw_deferred_t batch[GW_BATCH_MAX];
    size_t n;
} gw_commit_t;

/* Why: answered after the commit: queues item (ownership taken) with resp
 * for cl and holds cl's input; with a full batch commits it alone now and
 * answers. 0, or -1 when cl must close now. */
int gw_commit_defer(gw_commit_t *gc, gw_client_t *cl, gw_response_t *resp, toro_ingest_item_t *item,
                    const char *request_id, int64_t t0);
/* Why: the end of a round (and the fuzz harness's pump): commits the batch,
 * answers each socket, resumes the input it held; repeats while that input
 * queued more. */
void gw_commit_flush(gw_commit_t *gc);
/* cl is closing: its question is still committed; there is just nobody to answer. */
void gw_commit_forget(gw_commit_t *gc, gw_client_t *cl);
/* The response to a POST /questions once its commit result rc is known
 * (item NULL: it never reached the commit): 202 with the ids, or 503. */
void gw_commit_answer(gw_response_t *r, const toro_ingest_item_t *item, int rc);

#endif

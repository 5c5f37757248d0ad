/* lambda_handlers.h: the functions `toro lambda` runs, one per Lambda
 * function of deploy/aws/template.yaml, chosen by the handler name:
 *   ingest     API Gateway REST proxy: POST /questions, GET /questions,
 *              GET /questions/{id}, served by the gateway's own routes
 *              (same validation, same JWT rules, same answers)
 *   websocket  API Gateway WebSocket routes $connect (token in the query:
 *              a bad one is refused), register (only for the token's own
 *              user), $disconnect; the connection rows live in the store
 *   process    SQS batch of process events: the process stage per record
 *   notify     SQS batch of notify events: the notify stage per record,
 *              pushing through the API Gateway Management API
 *   relay      publishes the store's outbox to SNS (scheduled; ingest and
 *              process also drain it before they answer)
 * No dual write: a question and its process event commit in one store
 * transaction (the outbox); only the relay publishes, and marks published
 * after SNS accepted; a crash in between re-publishes, and the idempotent,
 * guarded stages absorb the duplicate.
 * SQS batches answer {"batchItemFailures": [...]} (ReportBatchItemFailures):
 * a record the stage nacked or dead-lettered is listed, so SQS redelivers
 * only it (and its redrive policy moves it to the dead-letter queue after
 * maxReceiveCount). */
#ifndef TORO_CLI_LAMBDA_HANDLERS_H
#define TORO_CLI_LAMBDA_HANDLERS_H

#include <jansson.h>

#include "bus/bus.h"
#include "bus/post.h"
#include "embed/embed.h"
#include "gateway/config.h"
#include "gateway/limits.h"
#include "kb/kb.h"
#include "stages/stages.h"

#define TORO_LAMBDA_NODE "apigw" /* the node of every connection row: API Gateway holds the sockets */

/* The bus the stages see inside one SQS batch: ack / nack / dead record the
 * outcome of the record in hand (SQS and Lambda delete or redeliver it; a
 * nack also sets the record's visibility to its backoff); publish and depth
 * go to the real bus. */
typedef struct toro_lambda_batch_bus {
    toro_bus_t super;  /* first */
    toro_bus_t *real;  /* borrowed */
    int outcome;       /* TORO_LAMBDA_* below, for the record in hand */
    const char *receipt_handle; /* the record in hand's (borrowed from the event) */
} toro_lambda_batch_bus_t;

enum { TORO_LAMBDA_NONE, TORO_LAMBDA_ACK, TORO_LAMBDA_RETRY, TORO_LAMBDA_DEAD };

/* What one `toro lambda` process opened for its handler (lambda_cmd.c fills
 * it; fields a handler does not need stay NULL). */
typedef struct toro_lambda {
    const char *handler;          /* "ingest", "websocket", "process", "notify", "relay" */
    toro_store_t *store;          /* owned */
    toro_bus_t *bus;              /* owned; sns:// */
    toro_kb_t *kb;                /* owned; process */
    toro_embedder_t *embedder;    /* owned; process */
    toro_answerer_t *answerer;    /* owned; process */
    toro_apigw_t *apigw;          /* owned; notify */
    toro_gateway_config_t gcfg;   /* auth (ingest, websocket) and rate budgets */
    toro_limits_t *rate, *read_rate; /* owned; per execution environment */
    toro_stage_ctx_t ctx;         /* bus = &batch.super for process / notify */
    toro_lambda_batch_bus_t batch;
} toro_lambda_t;

/* Why: lambda_cmd.c wires the stages to the batch bus. */
void toro_lambda_batch_init(toro_lambda_batch_bus_t *b, toro_bus_t *real);

/* Each handler answers one invocation: 0 with *out (caller frees) the JSON
 * result, or a negative code with *out NULL and *why (static) the reason:
 * the runtime reports an invocation error (Lambda retries it, or SQS
 * redelivers the whole batch). */
int toro_lambda_ingest(toro_lambda_t *L, json_t *ev, char **out, const char **why);
int toro_lambda_websocket(toro_lambda_t *L, json_t *ev, char **out, const char **why);
int toro_lambda_sqs(toro_lambda_t *L, json_t *ev, char **out, const char **why); /* process, notify */
int toro_lambda_relay(toro_lambda_t *L, json_t *ev, char **out, const char **why);

/* Why: ingest and process leave events in the outbox; they publish them
 * before answering. Returns events published, or a negative code (the
 * scheduled relay publishes them later). */
int toro_lambda_drain(toro_lambda_t *L);

#endif

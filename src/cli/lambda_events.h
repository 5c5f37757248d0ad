/* lambda_events.h: the shapes of the events AWS hands to toro's functions
 * and of what they answer, as AWS documents them (recorded samples in
 * tests/e2e/lambda_events/): API Gateway REST proxy requests (to a
 * gw_request_t the gateway's routes serve, and their gw_response_t back to
 * {statusCode, headers, body}), API Gateway WebSocket route events, and
 * SQS batches (records from an SNS subscription, raw or enveloped). Only
 * decoding and encoding: no store, bus or handler logic. */
#ifndef TORO_CLI_LAMBDA_EVENTS_H
#define TORO_CLI_LAMBDA_EVENTS_H

#include <jansson.h>
#include <stdbool.h>

#include "gateway/http.h"

/* A REST proxy event as a request. Strings point into the event (borrowed)
 * or into query (owned here). */
typedef struct toro_lev_http {
    gw_request_t req;
    char query[4096]; /* queryStringParameters re-encoded as a raw query string */
} toro_lev_http_t;

/* Why: the ingest function serves the gateway's own routes. Fills out from
 * ev (borrowed: must outlive out). Returns 0, or TORO_EINVAL when ev has no
 * httpMethod/path or its query does not fit (out is zeroed). A base64 body
 * (isBase64Encoded) is refused with TORO_EINVAL: the API sends JSON. */
int toro_lev_http_decode(json_t *ev, toro_lev_http_t *out);

/* Why: the answer API Gateway expects from a proxy integration:
 * {"statusCode", "headers", "body"}; the header lines of r->extra become
 * headers. Caller frees; NULL on ENOMEM. */
char *toro_lev_http_encode(const gw_response_t *r);

/* A WebSocket route event. Strings borrowed from the event; NULL when absent. */
typedef struct toro_lev_ws {
    const char *route_key;     /* "$connect", "$disconnect", "register", "$default" */
    const char *connection_id;
    const char *token;         /* queryStringParameters token or access_token ($connect) */
    const char *body;          /* the client's message (routes other than $connect/$disconnect) */
} toro_lev_ws_t;

/* Returns 0, or TORO_EINVAL when routeKey or connectionId is missing. */
int toro_lev_ws_decode(json_t *ev, toro_lev_ws_t *out);

/* {"statusCode": status, "body": body} (body may be NULL). Caller frees. */
char *toro_lev_status(int status, const char *body);

/* One SQS record. Strings borrowed from the event. */
typedef struct toro_lev_sqs {
    const char *message_id; /* the itemIdentifier of a batch item failure */
    const char *payload;    /* the toro event: the body, or an SNS envelope's Message */
    int deliveries;         /* attributes.ApproximateReceiveCount (1 when absent) */
} toro_lev_sqs_t;

/* Why: process and notify read their events from SQS. The records of ev
 * (an array, possibly empty); NULL when ev has no Records array. */
json_t *toro_lev_sqs_records(json_t *ev);
/* Decodes one record; an SNS envelope (a subscription without raw message
 * delivery) is unwrapped, *envelope (caller decrefs, may be NULL) keeping
 * the Message alive. TORO_EINVAL when messageId or body is missing. */
int toro_lev_sqs_decode(json_t *rec, toro_lev_sqs_t *out, json_t **envelope);

#endif

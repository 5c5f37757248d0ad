/* post.h: how a stage reaches a WebSocket: post one update message to
 * connection_id, held by the gateway `node` (notify: the final updates;
 * process: the best-effort processing update and answer deltas). Not a
 * topic (no durability, no redelivery: notify's own event is redelivered
 * when a post fails), so it is its own small interface, a function and its
 * context:
 * - in one process (`toro serve`) it is a direct call, toro_gateway_post;
 * - across processes it is a NATS request to the `toro api` that holds the
 *   node (toro_bus_nats_post below), which answers with toro_gateway_post;
 * - on AWS the WebSockets live in API Gateway: toro_apigw_post (apigw_post.c)
 *   calls its Management API, whatever the node. */
#ifndef TORO_BUS_POST_H
#define TORO_BUS_POST_H

#include "bus/bus.h"

/* Delivers message to connection_id on node. 0 delivered; TORO_ENOTFOUND
 * when the connection or the node is gone (the caller deletes its row);
 * other codes: not confirmed (try again later). Safe from any thread. */
typedef int (*toro_post_fn)(void *ctx, const char *connection_id, const char *node, const char *message);

/* Why: the notify worker's post across processes: a request to the
 * `toro api` that holds node. TORO_EIO on timeout. ctx is a nats bus. */
int toro_bus_nats_post(void *ctx, const char *connection_id, const char *node, const char *message);
/* Why: `toro api` answers those requests by calling fn(ctx, ...) (the local
 * gateway post) from a NATS thread. bus is a nats bus; on failure nothing
 * is subscribed. */
int toro_bus_nats_serve_node(toro_bus_t *bus, const char *node, toro_post_fn fn, void *ctx);
/* Why: while an api is cut off from NATS, notify workers see "no responders"
 * and delete its connection rows; after a reconnect the api writes them back
 * (fn runs on a NATS thread). */
void toro_bus_nats_on_reconnect(toro_bus_t *bus, void (*fn)(void *ctx), void *ctx);

/* Why: toro on AWS pushes through API Gateway's Management API:
 * POST {endpoint}/@connections/{id} signed for "execute-api". endpoint is the
 * WebSocket API's https://{api-id}.execute-api.{region}.amazonaws.com/{stage}
 * (or a local peer); region NULL takes AWS_REGION. Credentials from
 * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN. On failure
 * (TORO_EINVAL: no region or credentials, bad endpoint; TORO_ENOMEM) *out is
 * untouched and *err (caller frees) says why. */
typedef struct toro_apigw toro_apigw_t;
int toro_apigw_new(const char *endpoint, const char *region, toro_apigw_t **out, char **err);
/* NULL is a no-op. */
void toro_apigw_free(toro_apigw_t *a);
/* A toro_post_fn with ctx a toro_apigw_t; node is ignored. 410 Gone:
 * TORO_ENOTFOUND; 429 and 5xx: TORO_ERETRY; no answer or another status:
 * TORO_EIO (both retried by notify's redelivery). */
int toro_apigw_post(void *ctx, const char *connection_id, const char *node, const char *message);

#endif

/* gateway.h: the API Gateway box: one port serving the REST API, the
 * WebSocket API and the web UI. One event-loop thread (epoll) owns every
 * socket; other threads reach a socket only through toro_gateway_post(),
 * which queues the message and wakes the loop. It runs ingest inline (a
 * durable write) and never runs process or notify. */
#ifndef TORO_GATEWAY_GATEWAY_H
#define TORO_GATEWAY_GATEWAY_H

#include <stddef.h>

#include "gateway/config.h"
#include "stages/stages.h"

typedef struct toro_gateway toro_gateway_t;

/* Why: binds the port now so a failure is reported before workers start;
 * with cfg->tls_cert it also loads the certificate and key, so an unusable
 * file or a key that does not match fails here, not at the first client.
 * ctx is borrowed (ingest runs with it). *err (caller frees) says why. */
int toro_gateway_new(const toro_gateway_config_t *cfg, toro_stage_ctx_t *ctx, toro_gateway_t **out, char **err);
/* The bound port (useful with port 0). */
int toro_gateway_port(const toro_gateway_t *gw);
/* Whether the port speaks TLS (https/wss), for the "listening on" line. */
int toro_gateway_tls(const toro_gateway_t *gw);
/* Runs the event loop until toro_gateway_stop(), then commits and answers
 * every question already validated (the store and the bus must still be open). */
int toro_gateway_run(toro_gateway_t *gw);
/* Thread- and async-signal-safe. */
void toro_gateway_stop(toro_gateway_t *gw);
void toro_gateway_free(toro_gateway_t *gw);

/* Why: after the bus reconnects, rewrite the connections table rows of
 * every registered socket of this gateway (notify workers may have deleted
 * them as gone meanwhile). Thread-safe. Returns the number of rows written. */
int toro_gateway_resync_connections(toro_gateway_t *gw);

/* toro_post_fn for the notify stage: thread-safe; TORO_ENOTFOUND when the
 * connection is not (or no longer) held by this gateway. */
int toro_gateway_post(void *gw, const char *connection_id, const char *node, const char *message);

#endif

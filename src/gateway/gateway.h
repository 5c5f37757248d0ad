/* gateway.h: the API Gateway box: one port serving the REST API, the
 * WebSocket API and the web UI. One event-loop thread (epoll) owns every
 * socket; other threads reach a socket only through toro_gateway_post(),
 * which queues the message and wakes the loop. It runs ingest inline (a
 * durable write) and never runs process or notify. */
#ifndef TORO_GATEWAY_GATEWAY_H
#define TORO_GATEWAY_GATEWAY_H

#include <stddef.h>

#include "stages/stages.h"

typedef struct toro_gateway_config {
    const char *host;          /* listen address, default 127.0.0.1 */
    int port;                  /* 0 = any free port */
    const char *node;          /* this gateway's name in the connections table */
    const char *kb_version;    /* reported by /healthz; may be NULL */
    size_t max_body;           /* request body cap in bytes (413 beyond) */
    size_t max_header;         /* request head cap in bytes (431 beyond) */
    size_t max_ws_message;     /* WebSocket message cap (close 1009 beyond) */
    size_t max_ws_backlog;     /* unsent bytes allowed per socket before it is dropped */
    int header_timeout_ms;     /* a request head must arrive within this (slowloris) */
    int idle_timeout_ms;       /* keep-alive idle limit */
    int ws_ping_ms;            /* server ping period */
    int ws_dead_ms;            /* a socket silent for this long is closed */
    int max_connections;       /* sockets of all kinds */
} toro_gateway_config_t;

typedef struct toro_gateway toro_gateway_t;

void toro_gateway_config_defaults(toro_gateway_config_t *cfg);

/* Why: binds the port now so a failure is reported before workers start.
 * ctx is borrowed (ingest runs with it). *err (caller frees) says why. */
int toro_gateway_new(const toro_gateway_config_t *cfg, toro_stage_ctx_t *ctx, toro_gateway_t **out, char **err);
/* The bound port (useful with port 0). */
int toro_gateway_port(const toro_gateway_t *gw);
/* Runs the event loop until toro_gateway_stop(). */
int toro_gateway_run(toro_gateway_t *gw);
/* Thread- and async-signal-safe. */
void toro_gateway_stop(toro_gateway_t *gw);
void toro_gateway_free(toro_gateway_t *gw);

/* toro_post_fn for the notify stage: thread-safe; TORO_ENOTFOUND when the
 * connection is not (or no longer) held by this gateway. */
int toro_gateway_post(void *gw, const char *connection_id, const char *node, const char *message);

#endif

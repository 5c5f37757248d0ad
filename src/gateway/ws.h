/* ws.h: the gateway's WebSocket layer (RFC 6455). ws_frame.c: the frame
 * codec on a client socket (masked client frames, fragmentation, control
 * frames, the close handshake, the message size cap, the per-socket
 * backlog of server pushes); ws.c: the session: the upgrade of an HTTP
 * request, the client messages of the contract (register, ping), the
 * registry of sockets by user and the delivery of posted messages. It
 * knows no REST route and no stage. Loop thread only. */
#ifndef TORO_GATEWAY_WS_H
#define TORO_GATEWAY_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/client.h"
#include "gateway/config.h"
#include "gateway/conn.h"
#include "gateway/http.h"
#include "gateway/limits.h"
#include "gateway/registry.h"
#include "store/store.h"

/* ws_frame.c */
/* The Sec-WebSocket-Accept value of a client key. 0, or -1 for an empty or over-long key. */
int gw_ws_accept_key(const char *client_key, char out[64]);
/* Why: every byte a WebSocket is sent counts toward its backlog cap
 * (cfg->max_ws_backlog: a client that falls that far behind is dropped)
 * and its session's access-log bytes. 0, or -1 when cl must close. */
int gw_ws_write(gw_conns_t *cs, gw_client_t *cl, const char *data, size_t len);
/* Sends one unfragmented frame (1 text, 8 close, 9 ping, 0xA pong). 0 or -1 as gw_ws_write. */
int gw_ws_send(gw_conns_t *cs, gw_client_t *cl, int opcode, const char *data, size_t len);
/* Sends a close frame (code, reason cut at 120 bytes) and marks cl closing. Returns 0. */
int gw_ws_close_with(gw_conns_t *cs, gw_client_t *cl, int code, const char *why);
/* A complete text message of cl: 0, or -1 when cl must close now. */
typedef int gw_ws_message_fn(void *arg, gw_client_t *cl, const char *data, size_t len);
/* Why: consumes the complete frames in cl's input (not while closing or
 * over the output budget): answers pings and closes itself, assembles
 * fragments up to max_message bytes, refuses binary messages (1003) and
 * protocol violations (1002, 1007, 1009 with a close frame), and hands each
 * text message to fn. 0, or -1 when cl must close now. */
int gw_ws_on_frames(gw_conns_t *cs, gw_client_t *cl, size_t max_message, gw_ws_message_fn *fn, void *arg);

/* ws.c: what the session needs of the gateway. The owner fills every field. */
typedef struct gw_ws {
    gw_conns_t *conns;
    const toro_gateway_config_t *cfg; /* auth, message size and rate, sockets per user */
    toro_store_t *store;      /* the connections table */
    toro_limits_t *per_user;  /* registered sockets per user */
    gw_registry_t *registry;
    char *node;               /* this gateway's name in the connections table (the gateway's buffer) */
} gw_ws_t;

/* Why: a client written for an API Gateway stage URL opens its WebSocket on
 * the root; with --auth none (the reference behaviour) a WebSocket upgrade
 * of "/" is served as /ws. Anything else on "/" is the web UI. */
bool gw_ws_root_upgrade(const toro_gateway_config_t *cfg, const gw_request_t *req);
/* Why: GET /ws: checks the handshake, the origin and the credentials in the
 * query, answers 101 and turns cl into a WebSocket (registered when the
 * query named its user), or answers the refusal and closes. 0, or -1 when
 * cl must close now. */
int gw_ws_upgrade(gw_ws_t *ws, gw_client_t *cl, gw_request_t *req);
/* Registers cl for user_id (already authenticated); false when refused (an
 * error message was sent and, for a limit, the socket is closing). */
bool gw_ws_register(gw_ws_t *ws, gw_client_t *cl, const char *user_id);
/* Consumes cl's input (frames, then messages). 0, or -1 when cl must close now. */
int gw_ws_on_input(gw_ws_t *ws, gw_client_t *cl);
/* The once-a-second checks: a silent socket is closed, a ping is due. May close cl. */
void gw_ws_tick(gw_ws_t *ws, gw_client_t *cl, int64_t now_ms);
/* cl is closing: its session line, its registration and its row go. */
void gw_ws_on_close(gw_ws_t *ws, gw_client_t *cl);
/* Why: the loop's wake-up: writes every message other threads posted to
 * the sockets still open (a socket that cannot take one is closed). */
void gw_ws_deliver(gw_ws_t *ws);
/* Why: WebSocket {"type":"error"} messages carry a code like HTTP errors;
 * this maps the gateway's own fixed messages (ws.c, auth.c) to it. */
const char *gw_ws_error_code(const char *message);

#endif

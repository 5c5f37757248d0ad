/* client.h: the record of one client socket of the gateway: the connection
 * (conn.h) extended with what the protocol on it keeps: which protocol it
 * speaks now, the access-log record of the request being answered (http.c)
 * and, after an upgrade, the WebSocket session (ws.c, registry.c). Data
 * only. A gw_conn_t of the gateway's set is always a gw_client_t. */
#ifndef TORO_GATEWAY_CLIENT_H
#define TORO_GATEWAY_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/conn.h"
#include "gateway/route.h"

typedef enum { GW_CLIENT_HTTP, GW_CLIENT_WS } gw_client_kind_t;

typedef struct gw_client {
    gw_conn_t conn;           /* first member: (gw_client_t *)conn */
    gw_client_kind_t kind;
    struct {
        char method[8];       /* of the request being answered, "" before one is parsed */
        char path[8];         /* "/ws" or "/" for an upgraded socket */
        gw_route_t route;     /* gw_route_template of the path: the label of a refusal before routing */
        char request_id[65];
        int64_t started_ms;   /* monotonic */
        uint64_t bytes_out;   /* WebSocket: bytes queued during the session */
    } acc;                    /* access-log record (access_log.c) */
    /* WebSocket session (after the upgrade) */
    char connection_id[37];
    char *user_id;            /* registered user (owned), NULL before register */
    bool in_map;              /* listed in the registry (registry.c) */
    struct gw_client *map_next; /* chain in the registry */
    int64_t last_ping_ms;
    double ws_tokens;         /* client message bucket */
    int64_t ws_refill_ms;
    char *frag;               /* fragmented message being assembled (owned) */
    size_t frag_len;
    int frag_opcode;
} gw_client_t;

static inline gw_client_t *gw_client_of(gw_conn_t *c) { return (gw_client_t *)c; }

#endif

/* ws_upgrade.c: the HTTP request that opens a WebSocket (RFC 6455 4.2):
 * the handshake headers, the Origin, the credentials in the query
 * (access_token, user_id), then 101 and the socket becomes a WebSocket
 * (see ws.h). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/metrics.h"
#include "core/question.h"
#include "core/util.h"
#include "gateway/ws.h"

bool gw_ws_root_upgrade(const toro_gateway_config_t *cfg, const gw_request_t *req)
{
    if (cfg->auth_mode != TORO_AUTH_NONE || strcmp(req->path, "/") != 0)
        return false;
    const char *up = gw_header(req, "Upgrade");
    for (; up && *up; up++)
        if (strncasecmp(up, "websocket", 9) == 0)
            return true; /* gw_ws_upgrade checks the rest of the handshake */
    return false;
}

/* Answers a refused upgrade and closes. */
static int refuse(gw_ws_t *ws, gw_client_t *cl, gw_request_t *req, int status, const char *why, const char *extra)
{
    gw_response_t r = {0};
    gw_json_error(&r, status, why);
    if (extra)
        snprintf(r.extra, sizeof r.extra, "%s", extra);
    r.close = true;
    r.route = GW_ROUTE_WS;
    return gw_http_send(ws->conns, cl, &r, req->request_id);
}

/* The user named by the query: uid (the token's subject when a token is
 * given) and 1, 0 for none, or the status to refuse with and *why. */
static int query_user(gw_ws_t *ws, const gw_request_t *req, char uid[256], const char **why)
{
    char token[4200], sub[160];
    int has_uid = gw_query_get(req->query, "user_id", uid, 256);
    int has_token = gw_query_get(req->query, "access_token", token, sizeof token);
    if (has_uid < 0 || (has_uid == 1 && !toro_user_id_is_valid(uid))) {
        *why = "user_id must be at most 128 characters of letters, digits and . _ - @ :";
        return -400;
    }
    if (has_token < 0) {
        *why = "access_token is not valid";
        return -401;
    }
    if (has_token == 1 && ws->cfg->auth_mode != TORO_AUTH_NONE) {
        if (toro_auth_verify(&ws->cfg->auth, token, toro_now_ms() / 1000, sub, sizeof sub, why) != 0)
            return -401;
        if (has_uid == 1 && strcmp(uid, sub) != 0) {
            *why = "user_id differs from the authenticated user";
            return -403;
        }
        snprintf(uid, 256, "%s", sub);
        return 1;
    }
    if (has_uid == 1 && ws->cfg->auth_mode != TORO_AUTH_NONE) {
        *why = "registering a user needs its access_token";
        return -401;
    }
    return has_uid == 1;
}

int gw_ws_upgrade(gw_ws_t *ws, gw_client_t *cl, gw_request_t *req)
{
    const char *key = gw_header(req, "Sec-WebSocket-Key");
    const char *ver = gw_header(req, "Sec-WebSocket-Version");
    char accept[64];
    if (strcmp(req->method, "GET") != 0 || !gw_header_has_token(gw_header(req, "Upgrade"), "websocket") ||
        !gw_header_has_token(gw_header(req, "Connection"), "upgrade") || !key || !ver || strcmp(ver, "13") != 0 ||
        gw_ws_accept_key(key, accept) != 0)
        return refuse(ws, cl, req, 400,
                      "expected a WebSocket upgrade (GET, Upgrade: websocket, Sec-WebSocket-Version: 13)",
                      "Sec-WebSocket-Version: 13\r\n");
    const char *origin = gw_header(req, "Origin");
    if (origin && !gw_origin_allowed(ws->cfg, req, origin))
        return refuse(ws, cl, req, 403, "origin not allowed", NULL);
    char uid[256];
    const char *why = NULL;
    int named = query_user(ws, req, uid, &why);
    if (named < 0)
        return refuse(ws, cl, req, -named, why, NULL);
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    gw_access_upgrade(cl, named ? uid : NULL, (size_t)n);
    cl->kind = GW_CLIENT_WS;
    cl->conn.half_close_ok = false;
    cl->conn.rmax = ws->cfg->max_ws_message + 16 + 4096; /* one frame, whatever its header */
    toro_uuid4(cl->connection_id);
    cl->last_ping_ms = toro_mono_ms();
    toro_metrics_ws_delta(1);
    if (gw_ws_write(ws->conns, cl, head, (size_t)n) != 0)
        return -1;
    if (named)
        gw_ws_register(ws, cl, uid);
    return 0;
}

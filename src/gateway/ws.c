/* ws.c: the WebSocket session (see ws.h): the upgrade of GET /ws, the
 * client messages of the contract (register and ping) with their rate
 * limit, registration (per-user cap, connections table, registry), the
 * once-a-second ping and silence checks, and the delivery of messages
 * posted by other threads. Frames are ws_frame.c's. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/question.h"
#include "core/util.h"
#include "gateway/ws.h"

const char *gw_ws_error_code(const char *message)
{
    static const gw_code_prefix_t table[] = {
        {"this connection is already registered", "already_registered"},
        {"too many connections", "too_many_connections"},
        {"could not register", "unavailable"},
        {"expected a JSON object", "invalid_message"},
        {"register needs a user_id", "invalid_user_id"},
        {"user_id differs", "user_mismatch"},
        {"unknown action", "unknown_action"},
        {"register needs a token", "unauthorized"},
        {"invalid token", "unauthorized"},
        {"unsupported token", "unauthorized"},
        {"token ", "unauthorized"},
    };
    return gw_code_by_prefix(table, sizeof table / sizeof table[0], message, "invalid_request");
}

static int send_json(gw_ws_t *ws, gw_client_t *cl, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!s)
        return -1;
    int rc = gw_ws_send(ws->conns, cl, 1, s, strlen(s));
    free(s);
    return rc;
}

static int send_error(gw_ws_t *ws, gw_client_t *cl, const char *message)
{
    const char *code = gw_ws_error_code(message);
    return send_json(ws, cl, json_pack("{s:s, s:s, s:s}", "type", "error", "error", message, "code", code));
}

static int send_registered(gw_ws_t *ws, gw_client_t *cl, const char *user_id)
{
    return send_json(ws, cl,
                     json_pack("{s:s, s:s, s:s}", "type", "registered", "connection_id", cl->connection_id, "user_id",
                               user_id));
}

bool gw_ws_register(gw_ws_t *ws, gw_client_t *cl, const char *user_id)
{
    if (cl->user_id) {
        if (strcmp(cl->user_id, user_id) != 0) {
            send_error(ws, cl, "this connection is already registered for another user");
            return false;
        }
        send_registered(ws, cl, user_id);
        return true;
    }
    if (toro_limits_count(ws->per_user, user_id, 1) > ws->cfg->max_ws_per_user) {
        toro_limits_count(ws->per_user, user_id, -1);
        send_error(ws, cl, "too many connections for this user");
        gw_ws_close_with(ws->conns, cl, 1008, "too many connections for this user");
        return false;
    }
    cl->user_id = strdup(user_id);
    toro_connection_t row = {
        .connection_id = cl->connection_id, .user_id = cl->user_id, .node = ws->node, .connected_at = toro_now_ms()};
    if (!cl->user_id || toro_store_put_connection(ws->store, &row) != 0) {
        toro_limits_count(ws->per_user, user_id, -1);
        free(cl->user_id);
        cl->user_id = NULL;
        send_error(ws, cl, "could not register the connection; try again");
        return false;
    }
    gw_registry_add(ws->registry, cl);
    toro_log_field_t f[] = {TORO_LOG_STR("connection_id", cl->connection_id), TORO_LOG_STR("user_id", user_id)};
    toro_log_fields(TORO_LOG_INFO, "gateway", "WebSocket registered", f, 2);
    send_registered(ws, cl, user_id);
    return true;
}

/* A client message costs one token; an empty bucket closes the socket. */
static bool take_message_token(gw_ws_t *ws, gw_client_t *cl)
{
    int64_t now = toro_mono_ms();
    if (cl->ws_refill_ms == 0) {
        cl->ws_tokens = ws->cfg->ws_msg_burst;
        cl->ws_refill_ms = now;
    }
    cl->ws_tokens += ws->cfg->ws_msg_rate * (double)(now - cl->ws_refill_ms) / 1000.0;
    if (cl->ws_tokens > ws->cfg->ws_msg_burst)
        cl->ws_tokens = ws->cfg->ws_msg_burst;
    cl->ws_refill_ms = now;
    if (cl->ws_tokens < 1.0)
        return false;
    cl->ws_tokens -= 1.0;
    return true;
}

/* {"action":"register", "user_id"?, "token"?}: the token's subject (or,
 * without auth, the user_id) is registered. */
static int on_register(gw_ws_t *ws, gw_client_t *cl, json_t *o)
{
    json_t *u = json_object_get(o, "user_id"), *t = json_object_get(o, "token");
    const char *uid = json_is_string(u) ? json_string_value(u) : NULL;
    char *trimmed = uid ? toro_trim_dup(uid) : NULL;
    char sub[160];
    const char *why = NULL;
    int rc = 0;
    if (uid && (!trimmed || !toro_user_id_is_valid(trimmed))) {
        rc = send_error(ws, cl, "register needs a user_id of at most 128 letters, digits and . _ - @ :");
    } else if (ws->cfg->auth_mode == TORO_AUTH_NONE) {
        if (!trimmed)
            rc = send_error(ws, cl, "register needs a user_id");
        else
            gw_ws_register(ws, cl, trimmed);
    } else if (!json_is_string(t) || toro_auth_verify(&ws->cfg->auth, json_string_value(t), toro_now_ms() / 1000, sub,
                                                      sizeof sub, &why) != 0) {
        rc = send_error(ws, cl, why ? why : "register needs a token");
    } else if (trimmed && strcmp(trimmed, sub) != 0) {
        rc = send_error(ws, cl, "user_id differs from the authenticated user");
    } else {
        gw_ws_register(ws, cl, sub);
    }
    free(trimmed);
    return rc;
}

static int on_message(void *arg, gw_client_t *cl, const char *data, size_t len)
{
    gw_ws_t *ws = arg;
    if (!take_message_token(ws, cl))
        return gw_ws_close_with(ws->conns, cl, 1008, "too many messages");
    if (toro_utf8_count(data, len) < 0)
        return gw_ws_close_with(ws->conns, cl, 1007, "invalid UTF-8");
    json_error_t jerr;
    json_t *o = json_loadb(data, len, 0, &jerr);
    const char *action = NULL;
    if (!o || !json_is_object(o) || json_unpack(o, "{s:s}", "action", &action) != 0) {
        json_decref(o);
        return send_error(ws, cl, "expected a JSON object with an \"action\" (register or ping)");
    }
    int rc;
    if (strcmp(action, "register") == 0)
        rc = on_register(ws, cl, o);
    else if (strcmp(action, "ping") == 0)
        rc = send_json(ws, cl, json_pack("{s:s}", "type", "pong"));
    else
        rc = send_error(ws, cl, "unknown action (expected register or ping)");
    json_decref(o);
    return rc;
}

int gw_ws_on_input(gw_ws_t *ws, gw_client_t *cl)
{
    return gw_ws_on_frames(ws->conns, cl, ws->cfg->max_ws_message, on_message, ws);
}

void gw_ws_tick(gw_ws_t *ws, gw_client_t *cl, int64_t now)
{
    if (now - cl->conn.last_read_ms > ws->cfg->ws_dead_ms) {
        toro_log_info("gateway", NULL, "closing silent WebSocket %s", cl->connection_id);
        gw_conn_close(ws->conns, &cl->conn);
    } else if (now - cl->last_ping_ms >= ws->cfg->ws_ping_ms) {
        cl->last_ping_ms = now;
        if (gw_ws_send(ws->conns, cl, 9, "toro", 4) != 0)
            gw_conn_close(ws->conns, &cl->conn);
    }
}

void gw_ws_on_close(gw_ws_t *ws, gw_client_t *cl)
{
    gw_access_ws_end(cl);
    toro_metrics_ws_delta(-1);
    if (cl->user_id) {
        toro_limits_count(ws->per_user, cl->user_id, -1);
        gw_registry_remove(ws->registry, cl);
        toro_store_delete_connection(ws->store, cl->connection_id);
    }
    free(cl->user_id);
    cl->user_id = NULL;
    free(cl->frag);
    cl->frag = NULL;
}

void gw_ws_deliver(gw_ws_t *ws)
{
    gw_client_t *cl;
    gw_posted_t *m;
    while ((m = gw_registry_pop(ws->registry, &cl)) != NULL) {
        if (cl && !cl->conn.closing) {
            if (gw_ws_send(ws->conns, cl, 1, m->text, strlen(m->text)) != 0)
                gw_conn_close(ws->conns, &cl->conn);
            else
                toro_metrics_inc(TORO_CTR_WS_MESSAGES_SENT);
        }
        gw_posted_free(m);
    }
}

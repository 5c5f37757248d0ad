/* access_log.c: the gateway's access log and request ids. One JSON line at
 * info level per HTTP response and per WebSocket session end, with method,
 * route (the template, as in /metrics), status, bytes, duration_ms, user_id,
 * request_id and the remote address as fields; and the per-route HTTP
 * metrics count, so logs and /metrics always agree. It does not write files
 * or rotate anything: lines go to the structured logger (stderr). */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "gateway/http.h"

/* Client request ids are echoed in a header and in logs: keep them to a safe
 * alphabet and a bounded length, or replace them. */
#define REQUEST_ID_MAX 64

static bool request_id_ok(const char *v)
{
    size_t n = 0;
    for (; v[n]; n++) {
        char ch = v[n];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                  ch == '_' || ch == '.' || ch == ':' || ch == '/' || ch == '+' || ch == '=';
        if (!ok || n >= REQUEST_ID_MAX)
            return false;
    }
    return n > 0;
}

void gw_access_begin(gw_client_t *cl, gw_request_t *req)
{
    _Static_assert(sizeof req->request_id > REQUEST_ID_MAX, "request id buffer too small");
    _Static_assert(sizeof cl->acc.request_id == sizeof req->request_id, "request id buffers differ");
    const char *given = gw_header(req, "X-Request-Id");
    if (given && request_id_ok(given))
        snprintf(req->request_id, sizeof req->request_id, "%s", given);
    else
        toro_uuid4(req->request_id);
    snprintf(cl->acc.method, sizeof cl->acc.method, "%s", req->method);
    snprintf(cl->acc.path, sizeof cl->acc.path, "%s", req->path);
    cl->acc.route = gw_route_template(req->path);
    memcpy(cl->acc.request_id, req->request_id, sizeof cl->acc.request_id);
    cl->acc.started_ms = cl->conn.request_started_ms ? cl->conn.request_started_ms : toro_mono_ms();
}

void gw_access_http(gw_client_t *cl, const gw_response_t *r, size_t bytes)
{
    const char *method = cl->acc.method[0] ? cl->acc.method : NULL;
    int64_t started = cl->acc.started_ms ? cl->acc.started_ms : cl->conn.request_started_ms;
    int64_t ms = started ? toro_mono_ms() - started : 0;
    /* a request refused before routing (411, 413...) still has its path's label */
    gw_route_t rt = r->route != GW_ROUTE_OTHER ? r->route : cl->acc.route;
    gw_route_count(rt, method, r->status);
    const char *route = gw_route_name(rt);
    char message[96];
    snprintf(message, sizeof message, "%s %s %d", method ? method : "-", route, r->status);
    toro_log_field_t f[] = {
        TORO_LOG_STR("method", method),
        TORO_LOG_STR("route", route),
        TORO_LOG_NUM("status", r->status),
        TORO_LOG_NUM("bytes", bytes),
        TORO_LOG_NUM("duration_ms", ms < 0 ? 0 : ms),
        TORO_LOG_STR("user_id", r->user_id[0] ? r->user_id : NULL),
        TORO_LOG_STR("request_id", cl->acc.request_id[0] ? cl->acc.request_id : NULL),
        TORO_LOG_STR("remote", cl->conn.peer),
    };
    toro_log_fields(TORO_LOG_INFO, "access", message, f, sizeof f / sizeof f[0]);
    if (r->status != 101) /* a 101's record stays with the socket for its session-end line */
        memset(&cl->acc, 0, sizeof cl->acc);
}

void gw_access_upgrade(gw_client_t *cl, const char *user_id, size_t bytes)
{
    gw_response_t r = {.status = 101, .route = GW_ROUTE_WS};
    if (user_id)
        snprintf(r.user_id, sizeof r.user_id, "%s", user_id);
    gw_access_http(cl, &r, bytes);
}

void gw_access_ws_end(gw_client_t *cl)
{
    int64_t ms = toro_mono_ms() - cl->conn.opened_ms;
    toro_log_field_t f[] = {
        TORO_LOG_STR("method", "GET"),
        TORO_LOG_STR("route", gw_route_name(GW_ROUTE_WS)),
        TORO_LOG_STR("path", cl->acc.path[0] ? cl->acc.path : NULL),
        TORO_LOG_NUM("status", 101),
        TORO_LOG_NUM("bytes", cl->acc.bytes_out),
        TORO_LOG_NUM("duration_ms", ms < 0 ? 0 : ms),
        TORO_LOG_STR("user_id", cl->user_id),
        TORO_LOG_STR("request_id", cl->acc.request_id[0] ? cl->acc.request_id : NULL),
        TORO_LOG_STR("connection_id", cl->connection_id),
        TORO_LOG_STR("remote", cl->conn.peer),
    };
    toro_log_fields(TORO_LOG_INFO, "access", "WebSocket session ended", f, sizeof f / sizeof f[0]);
}

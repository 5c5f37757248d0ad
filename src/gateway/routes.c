/* routes.c: routing (see routes.h): method and path to handler,
 * authentication and the rate budgets, CORS, and the serve callback that
 * sends the response or hands it to the group commit. Every error is
 * {success:false, error, code} (http_response.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/metrics.h"
#include "core/util.h"
#include "gateway/routes.h"

static void method_not_allowed(gw_response_t *r, const char *allow)
{
    gw_json_error(r, 405, "method not allowed");
    gw_add_header(r, "Allow: %s", allow);
}

/* Authenticates an API request and takes one token of `budget` (asking or
 * reading, see gateway.h) for its user (or address without auth). Returns
 * true with *user set (NULL when auth is off); false when r already holds
 * the 401 or 429 to send. The user is recorded in r for the access log. */
static bool authenticate(gw_routes_t *rt, gw_request_t *req, gw_response_t *r, char sub[160], const char **user,
                         toro_limits_t *budget)
{
    *user = NULL;
    const char *key = req->peer;
    if (rt->cfg->auth_mode != TORO_AUTH_NONE) {
        const char *h = gw_header(req, "Authorization");
        const char *why = "missing bearer token";
        if (!h || strncasecmp(h, "Bearer ", 7) != 0 ||
            toro_auth_verify_cached(&rt->cfg->auth, rt->auth_cache, h + 7, toro_now_ms() / 1000, sub, 160, &why) != 0) {
            gw_json_error(r, 401, why);
            gw_add_header(r, "WWW-Authenticate: Bearer realm=\"toro\"%s", h ? ", error=\"invalid_token\"" : "");
            return false;
        }
        *user = sub;
        key = sub;
        snprintf(r->user_id, sizeof r->user_id, "%s", sub);
    }
    int wait = toro_limits_take_kind(budget, *user ? "user" : "ip", key, toro_mono_ms());
    if (wait) {
        gw_json_error(r, 429, "too many requests; slow down");
        gw_add_header(r, "Retry-After: %d", wait);
        return false;
    }
    return true;
}

/* CORS preflight: only for allowed origins, never "*". */
static void preflight(gw_response_t *r, bool cors_ok)
{
    if (!cors_ok) {
        gw_json_error(r, 403, "origin not allowed");
        return;
    }
    r->status = 204;
    gw_add_header(r, "Access-Control-Allow-Methods: GET, POST, OPTIONS");
    gw_add_header(r, "Access-Control-Allow-Headers: Authorization, Content-Type, X-Request-Id");
    gw_add_header(r, "Access-Control-Max-Age: 600");
}

/* /questions and /questions/{id}: true when the request was deferred. */
static bool questions(gw_routes_t *rt, gw_request_t *req, gw_response_t *r, toro_ingest_item_t *item)
{
    const char *m = req->method, *p = req->path;
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0, deferred = false;
    char sub[160];
    const char *user = NULL;
    if (r->route == GW_ROUTE_QUESTION) {
        if (!get)
            method_not_allowed(r, "GET");
        else if (authenticate(rt, req, r, sub, &user, rt->read_rate))
            gw_route_get_question(rt, req, user, p + 11, r);
    } else if (strcmp(m, "POST") == 0) {
        if (authenticate(rt, req, r, sub, &user, rt->rate))
            gw_route_post_question(rt, req, user, r, item, &deferred);
    } else if (get) {
        if (authenticate(rt, req, r, sub, &user, rt->read_rate))
            gw_route_list_questions(rt, req, user, r);
    } else {
        method_not_allowed(r, "GET, POST");
    }
    return deferred;
}

/* /questions/{id}/feedback: POST only, on the reading budget (a click
 * on a thumb must not cost a question). */
static void feedback(gw_routes_t *rt, gw_request_t *req, gw_response_t *r)
{
    char sub[160], qid[64];
    const char *user = NULL, *id = req->path + 11;
    size_t n = (size_t)(strchr(id, '/') - id);
    snprintf(qid, sizeof qid, "%.*s", (int)(n < sizeof qid ? n : sizeof qid - 1), id);
    if (strcmp(req->method, "POST") != 0)
        method_not_allowed(r, "POST");
    else if (authenticate(rt, req, r, sub, &user, rt->read_rate))
        gw_route_post_feedback(rt, req, user, qid, r);
}

/* POST /admin/kb/reload: authenticated (reading budget), then the role. */
static void admin(gw_routes_t *rt, gw_request_t *req, gw_response_t *r)
{
    char sub[160];
    const char *user = NULL;
    if (strcmp(req->method, "POST") != 0) {
        method_not_allowed(r, "POST");
        return;
    }
    if (authenticate(rt, req, r, sub, &user, rt->read_rate)) {
        const char *h = gw_header(req, "Authorization");
        gw_route_admin_kb_reload(rt, user, user && h ? h + 7 : NULL, r);
    }
}

/* /conversations and /conversations/{id}: reads only. */
static void conversations(gw_routes_t *rt, gw_request_t *req, gw_response_t *r)
{
    const char *m = req->method;
    char sub[160];
    const char *user = NULL;
    if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0)
        method_not_allowed(r, "GET");
    else if (!authenticate(rt, req, r, sub, &user, rt->read_rate))
        return;
    else if (r->route == GW_ROUTE_CONVERSATION)
        gw_route_get_conversation(rt, req, user, req->path + 15, r);
    else
        gw_route_list_conversations(rt, req, user, r);
}

/* The routes without a user: dev-login, healthz, metrics, the web UI. */
static void service(gw_routes_t *rt, gw_request_t *req, gw_response_t *r)
{
    const char *m = req->method, *p = req->path;
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
    if (r->route == GW_ROUTE_DEV_LOGIN) {
        if (strcmp(m, "POST") == 0)
            gw_route_dev_login(rt, req, r);
        else
            method_not_allowed(r, "POST");
    } else if (r->route == GW_ROUTE_HEALTHZ || r->route == GW_ROUTE_METRICS) {
        if (!get)
            method_not_allowed(r, "GET");
        else if (r->route == GW_ROUTE_HEALTHZ)
            gw_route_healthz(rt, r);
        else
            gw_route_metrics(rt, r);
    } else if (get && gw_route_static(p, r)) {
        r->route = GW_ROUTE_STATIC;
    } else {
        gw_json_error(r, 404, "not found");
    }
}

bool gw_route(gw_routes_t *rt, gw_request_t *req, gw_response_t *r, toro_ingest_item_t *item)
{
    const char *origin = gw_header(req, "Origin");
    bool cors_ok = origin && gw_origin_allowed(rt->cfg, req, origin);
    bool deferred = false;
    gw_route_t route = gw_route_template(req->path);
    r->route = route == GW_ROUTE_WS ? GW_ROUTE_OTHER : route; /* /ws served here is not the upgrade */
    if (strcmp(req->method, "OPTIONS") == 0) {
        r->route = route;
        preflight(r, cors_ok);
    } else if (route == GW_ROUTE_QUESTIONS || route == GW_ROUTE_QUESTION) {
        deferred = questions(rt, req, r, item);
    } else if (route == GW_ROUTE_FEEDBACK) {
        feedback(rt, req, r);
    } else if (route == GW_ROUTE_ADMIN_KB) {
        admin(rt, req, r);
    } else if (route == GW_ROUTE_CONVERSATIONS || route == GW_ROUTE_CONVERSATION) {
        conversations(rt, req, r);
    } else {
        service(rt, req, r);
    }
    if (cors_ok && (strncmp(req->path, "/questions", 10) == 0 || strncmp(req->path, "/conversations", 14) == 0)) {
        gw_add_header(r, "Access-Control-Allow-Origin: %s", origin);
        gw_add_header(r, "Vary: Origin");
        gw_add_header(r, "Access-Control-Expose-Headers: X-Request-Id, Retry-After");
    }
    if (strcmp(req->method, "HEAD") == 0)
        r->head_only = true; /* same headers as GET, no body */
    return deferred;
}

int gw_routes_serve(void *routes, gw_client_t *cl, gw_request_t *req)
{
    gw_routes_t *rt = routes;
    int64_t t0 = toro_mono_ms();
    int rc;
    if (strcmp(req->path, "/ws") == 0 || gw_ws_root_upgrade(rt->cfg, req)) {
        rc = gw_ws_upgrade(rt->ws, cl, req);
    } else {
        gw_response_t resp = {0};
        toro_ingest_item_t item = {0};
        const char *conn_hdr = gw_header(req, "Connection");
        resp.close = req->minor_version == 0 ? !gw_header_has_token(conn_hdr, "keep-alive")
                                             : gw_header_has_token(conn_hdr, "close");
        if (gw_route(rt, req, &resp, &item))
            return gw_commit_defer(rt->commit, cl, &resp, &item, req->request_id, t0);
        rc = gw_http_send(rt->conns, cl, &resp, req->request_id);
    }
    toro_metrics_observe_ms(TORO_HIST_HTTP, (double)(toro_mono_ms() - t0));
    return rc;
}

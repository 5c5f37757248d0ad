/* routes.c: the REST contract of DESIGN.md on top of the stages and the
 * store: POST /questions, GET /questions, GET /questions/{id}, /healthz,
 * /metrics and the embedded web UI. Every error is {success:false, error,
 * code}: `code` is one of a fixed list (openapi.yaml, ErrorCode) that
 * clients map to their own wording; `error` is English text for people. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "core/health.h"
#include "core/log.h"
#include "core/util.h"
#include "gateway/internal.h"
#include "gateway/web.h"

void gw_add_header(gw_response_t *r, const char *fmt, ...)
{
    size_t n = strlen(r->extra);
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(r->extra + n, sizeof r->extra - n, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w + 2 >= sizeof r->extra - n) {
        r->extra[n] = '\0'; /* does not fit: drop it whole rather than send half a line */
        return;
    }
    memcpy(r->extra + n + w, "\r\n", 3);
}

static void set_json(gw_response_t *r, int status, json_t *o)
{
    free(r->body);
    r->status = status;
    r->content_type = "application/json";
    r->body = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    r->body_len = r->body ? strlen(r->body) : 0;
    json_decref(o);
    if (!strstr(r->extra, "Cache-Control:"))
        gw_add_header(r, "Cache-Control: no-store");
}

/* The code of an error that has no more specific one: one per status. */
static const char *status_code(int status)
{
    switch (status) {
    case 400: return "invalid_request";
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 408: return "request_timeout";
    case 411: return "length_required";
    case 413: return "payload_too_large";
    case 414: return "uri_too_long";
    case 415: return "unsupported_media_type";
    case 421: return "misdirected_request";
    case 429: return "rate_limited";
    case 431: return "headers_too_large";
    case 501: return "not_implemented";
    case 503: return "unavailable";
    default: return "internal_error";
    }
}

void gw_json_error_code(gw_response_t *r, int status, const char *code, const char *message)
{
    set_json(r, status,
             json_pack("{s:b, s:s, s:s}", "success", 0, "error", message, "code", code ? code : status_code(status)));
}

void gw_json_error(gw_response_t *r, int status, const char *message)
{
    gw_json_error_code(r, status, NULL, message);
}

const char *gw_ws_error_code(const char *message)
{
    static const struct {
        const char *prefix, *code;
    } table[] = {
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
    for (size_t i = 0; message && i < sizeof table / sizeof table[0]; i++)
        if (strncmp(message, table[i].prefix, strlen(table[i].prefix)) == 0)
            return table[i].code;
    return "invalid_request";
}

/* The code of a question the ingest stage refused, from its message (the
 * messages are core/question.c's own, fixed strings). */
static const char *ingest_code(int rc, const char *err)
{
    static const struct {
        const char *prefix, *code;
    } table[] = {
        {"request body is not valid JSON", "invalid_json"},
        {"question must not be empty", "question_empty"},
        {"question must be at most", "question_too_long"},
        {"question is required", "question_missing"},
        {"question must be", "question_invalid"},
        {"user_id differs", "user_mismatch"},
        {"user_id", "invalid_user_id"},
    };
    for (size_t i = 0; err && i < sizeof table / sizeof table[0]; i++)
        if (strncmp(err, table[i].prefix, strlen(table[i].prefix)) == 0)
            return table[i].code;
    return rc == TORO_EFORBIDDEN ? "forbidden" : "invalid_request";
}

static void ok(gw_response_t *r, int status, json_t *data)
{
    set_json(r, status, json_pack("{s:b, s:o}", "success", 1, "data", data));
}

static bool is_json_type(const char *ct)
{
    if (!ct)
        return false;
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static void post_question(toro_gateway_t *gw, gw_request_t *req, const char *user, gw_response_t *r)
{
    if (!is_json_type(gw_header(req, "Content-Type"))) {
        gw_json_error(r, 415, "Content-Type must be application/json");
        return;
    }
    if (req->body_len == 0) {
        gw_json_error(r, 400, "request body is required");
        return;
    }
    const char *err = NULL;
    int rc = toro_stage_ingest_prepare(gw->ctx, req->body, req->body_len, user, &r->item, &err);
    if (rc == TORO_EINVAL)
        gw_json_error_code(r, 400, ingest_code(rc, err), err);
    else if (rc == TORO_EFORBIDDEN)
        gw_json_error_code(r, 403, ingest_code(rc, err), err);
    else if (rc)
        gw_finish_ingest(r, NULL, rc);
    else
        r->deferred = true; /* answered by the server loop after the group commit */
}

void gw_finish_ingest(gw_response_t *r, const toro_ingest_item_t *item, int rc)
{
    r->route = TORO_ROUTE_QUESTIONS;
    if (rc || !item) {
        toro_log_ratelimited(TORO_LOG_ERROR, "gateway", "ingest", "ingest failed: %s", toro_strerror(rc));
        gw_json_error(r, 503, "the question could not be stored; try again");
        gw_add_header(r, "Retry-After: 1");
        return;
    }
    ok(r, 202, json_pack("{s:s, s:s, s:s}", "user_id", item->q.user_id, "question_id", item->q.question_id, "status",
                         "pending"));
}

/* Rejects query parameters the route does not define (a misspelt
 * "limt=5" should not silently return the default page). */
static bool query_only(const char *query, const char *const *allowed, gw_response_t *r)
{
    for (const char *p = query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;
        bool ok = len == 0; /* "a=1&&b=2" */
        for (int i = 0; !ok && allowed[i]; i++)
            ok = strlen(allowed[i]) == klen && strncmp(allowed[i], p, klen) == 0;
        if (!ok) {
            gw_json_error_code(r, 400, "unknown_parameter", "unknown query parameter");
            return false;
        }
        p = amp ? amp + 1 : NULL;
    }
    return true;
}

/* The user a read is for: the token's subject; a user_id in the query must
 * name the same user (403 otherwise). Without auth, the query names it. */
static bool query_user(gw_request_t *req, const char *user, char uid[256], gw_response_t *r, bool required)
{
    int has_uid = gw_query_get(req->query, "user_id", uid, 256);
    if (has_uid < 0) {
        gw_json_error_code(r, 400, "invalid_user_id", "user_id is not valid");
        return false;
    }
    if (has_uid == 1 && !*uid) {
        gw_json_error_code(r, 400, "invalid_user_id", "user_id must not be empty");
        return false;
    }
    if (has_uid == 1) {
        char *trimmed = toro_trim_dup(uid);
        bool valid = trimmed && toro_user_id_is_valid(trimmed);
        if (valid)
            snprintf(uid, 256, "%s", trimmed);
        free(trimmed);
        if (!valid) {
            gw_json_error_code(r, 400, "invalid_user_id",
                               "user_id must be at most 128 characters of letters, digits and . _ - @ :");
            return false;
        }
        if (user && strcmp(uid, user) != 0) {
            gw_json_error_code(r, 403, "user_mismatch", "user_id differs from the authenticated user");
            return false;
        }
        return true;
    }
    if (user) {
        snprintf(uid, 256, "%s", user);
        return true;
    }
    uid[0] = '\0';
    if (required)
        gw_json_error_code(r, 400, "invalid_user_id", "user_id query parameter is required");
    return !required;
}

static void list_questions(toro_gateway_t *gw, gw_request_t *req, const char *user, gw_response_t *r)
{
    char uid[256], lim[32], token[256];
    int has_lim = gw_query_get(req->query, "limit", lim, sizeof lim);
    int has_tok = gw_query_get(req->query, "next_token", token, sizeof token);
    long limit = 20;
    static const char *const params[] = {"user_id", "limit", "next_token", NULL};
    if (!query_only(req->query, params, r) || !query_user(req, user, uid, r, true))
        return;
    if (has_lim < 0 || (has_lim == 1 && toro_parse_long(lim, 1, 100, &limit) != 0)) {
        gw_json_error_code(r, 400, "invalid_parameter", "limit must be an integer from 1 to 100");
        return;
    }
    if (has_tok < 0) {
        gw_json_error_code(r, 400, "invalid_parameter", "next_token is not valid");
        return;
    }
    toro_question_t *items = NULL;
    size_t n = 0;
    char *next = NULL;
    int rc = gw->ctx->store->ops->list_questions(gw->ctx->store, uid, (int)limit, has_tok == 1 && *token ? token : NULL,
                                                 &items, &n, &next);
    if (rc == TORO_EINVAL) {
        gw_json_error_code(r, 400, "invalid_parameter", "next_token is not valid");
        return;
    }
    if (rc) {
        gw_json_error(r, 503, "history is unavailable right now; try again");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, toro_question_to_json(&items[i]));
    ok(r, 200, json_pack("{s:o, s:o}", "items", arr, "next_token", next ? json_string(next) : json_null()));
    toro_questions_free(items, n);
    free(next);
}

static void get_question(toro_gateway_t *gw, gw_request_t *req, const char *user, const char *qid,
                         gw_response_t *r)
{
    char uid[256];
    static const char *const params[] = {"user_id", NULL};
    if (!query_only(req->query, params, r) || !query_user(req, user, uid, r, false))
        return;
    if (strlen(qid) != 36) {
        gw_json_error(r, 404, "question not found");
        return;
    }
    toro_question_t q = {0};
    int rc = gw->ctx->store->ops->get_question(gw->ctx->store, qid, &q);
    /* another user's question does not exist for this caller */
    if (rc == 0 && uid[0] && strcmp(uid, q.user_id) != 0)
        rc = TORO_ENOTFOUND;
    if (rc == TORO_ENOTFOUND)
        gw_json_error(r, 404, "question not found");
    else if (rc)
        gw_json_error(r, 503, "the question is unavailable right now; try again");
    else
        ok(r, 200, toro_question_to_json(&q));
    toro_question_clear(&q);
}

static void healthz(toro_gateway_t *gw, gw_response_t *r)
{
    long depth = 0;
    bool store_ok = gw->ctx->store->ops->ping(gw->ctx->store) == 0;
    bool bus_ok = toro_bus_depth(gw->ctx->bus, TORO_TOPIC_PROCESS, &depth) == 0;
    static const char *const modes[] = {"auto", "none", "dev", "jwt"};
    json_t *d = json_pack("{s:s, s:s, s:s, s:s?, s:s, s:s, s:b}", "status", store_ok && bus_ok ? "ok" : "unhealthy",
                          "store", store_ok ? "ok" : "unreachable", "bus", bus_ok ? "ok" : "unreachable", "kb_version",
                          gw->cfg.kb_version, "node", gw->node, "auth", modes[gw->cfg.auth_mode], "tls",
                          toro_gateway_tls(gw));
    char why[256];
    int64_t since = 0;
    if (store_ok && bus_ok && toro_health_degraded(why, sizeof why, &since)) {
        char at[32];
        toro_iso8601(since, at);
        json_object_set_new(d, "status", json_string("degraded"));
        json_object_set_new(d, "reason", json_string(why));
        json_object_set_new(d, "degraded_since", json_string(at));
        ok(r, 200, d); /* 200: the node still serves reads, and a balancer keeps it in to see it recover */
    } else if (store_ok && bus_ok)
        ok(r, 200, d);
    else
        set_json(r, 503, json_pack("{s:b, s:s, s:s, s:o}", "success", 0, "error", "a dependency is unreachable", "code",
                                   "unavailable", "data", d));
}

static void metrics(toro_gateway_t *gw, gw_response_t *r)
{
    size_t cap = 64 * 1024;
    char *buf = malloc(cap);
    if (!buf) {
        gw_json_error(r, 500, "out of memory");
        return;
    }
    long n = toro_metrics_render(buf, cap);
    long counts[TORO_STATUS_COUNT];
    long dp = 0, dn = 0;
    if (n >= 0 && gw->ctx->store->ops->count_by_status(gw->ctx->store, counts) == 0) {
        n += snprintf(buf + n, cap - (size_t)n, "# HELP toro_questions Questions by status.\n# TYPE toro_questions gauge\n");
        for (int i = 0; i < TORO_STATUS_COUNT && (size_t)n < cap; i++)
            n += snprintf(buf + n, cap - (size_t)n, "toro_questions{status=\"%s\"} %ld\n", toro_status_name(i),
                          counts[i]);
    }
    if (n >= 0 && (size_t)n < cap && toro_bus_depth(gw->ctx->bus, TORO_TOPIC_PROCESS, &dp) == 0 &&
        toro_bus_depth(gw->ctx->bus, TORO_TOPIC_NOTIFY, &dn) == 0)
        n += snprintf(buf + n, cap - (size_t)n,
                      "# HELP toro_queue_depth Events waiting or in flight per topic.\n# TYPE toro_queue_depth gauge\n"
                      "toro_queue_depth{topic=\"process\"} %ld\ntoro_queue_depth{topic=\"notify\"} %ld\n",
                      dp, dn);
    if (n < 0 || (size_t)n >= cap) {
        free(buf);
        gw_json_error(r, 500, "metrics do not fit the buffer");
        return;
    }
    r->status = 200;
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
    r->body = buf;
    r->body_len = (size_t)n;
}

static bool serve_static(const char *path, gw_response_t *r)
{
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    for (const toro_web_asset_t *a = toro_web_assets; a->path; a++) {
        if (strcmp(a->path, path) == 0) {
            r->status = 200;
            r->content_type = a->mime;
            r->static_body = a->data;
            r->body_len = a->len;
            gw_add_header(r, "Cache-Control: no-cache");
            gw_add_header(r, "Content-Security-Policy: default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' "
                             "data:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
                             "frame-ancestors 'none'");
            gw_add_header(r, "Referrer-Policy: no-referrer");
            return true;
        }
    }
    return false;
}

static void method_not_allowed(gw_response_t *r, const char *allow)
{
    gw_json_error(r, 405, "method not allowed");
    gw_add_header(r, "Allow: %s", allow);
}

bool gw_origin_allowed(toro_gateway_t *gw, const gw_request_t *req, const char *origin)
{
    const char *host = gw_header(req, "Host");
    if (host) {
        const char *o = strstr(origin, "://");
        if (o && strcmp(o + 3, host) == 0)
            return true; /* same origin */
    }
    const char *list = gw->cfg.cors_origins;
    size_t ol = strlen(origin);
    while (list && *list) {
        const char *comma = strchr(list, ',');
        size_t len = comma ? (size_t)(comma - list) : strlen(list);
        while (len && *list == ' ') {
            list++;
            len--;
        }
        while (len && list[len - 1] == ' ')
            len--;
        if (len == ol && strncmp(list, origin, len) == 0)
            return true;
        list = comma ? comma + 1 : NULL;
    }
    return false;
}

/* Authenticates an API request and takes one token of `budget` (asking or
 * reading, see gateway.h) for its user (or address without auth). Returns
 * true with *user set (NULL when auth is off); false when r already holds
 * the 401 or 429 to send. The user is recorded in r for the access log. */
static bool authenticate(toro_gateway_t *gw, gw_request_t *req, gw_response_t *r, char sub[160], const char **user,
                         toro_limits_t *budget)
{
    *user = NULL;
    const char *key = req->peer;
    if (gw->cfg.auth_mode != TORO_AUTH_NONE) {
        const char *h = gw_header(req, "Authorization");
        const char *why = "missing bearer token";
        if (!h || strncasecmp(h, "Bearer ", 7) != 0 ||
            toro_auth_verify(&gw->cfg.auth, h + 7, toro_now_ms() / 1000, sub, 160, &why) != 0) {
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

static void dev_login(toro_gateway_t *gw, gw_request_t *req, gw_response_t *r)
{
    if (gw->cfg.auth_mode != TORO_AUTH_DEV) {
        gw_json_error(r, 404, "not found");
        return;
    }
    int wait = toro_limits_take_kind(gw->read_rate, "ip", req->peer, toro_mono_ms());
    if (wait) {
        gw_json_error(r, 429, "too many requests; slow down");
        gw_add_header(r, "Retry-After: %d", wait);
        return;
    }
    if (!is_json_type(gw_header(req, "Content-Type"))) {
        gw_json_error(r, 415, "Content-Type must be application/json");
        return;
    }
    json_t *o = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, NULL);
    json_t *u = json_is_object(o) ? json_object_get(o, "user_id") : NULL;
    char *uid = json_is_string(u) ? toro_trim_dup(json_string_value(u)) : NULL;
    if (!uid || !toro_user_id_is_valid(uid) || json_object_size(o) != 1) {
        gw_json_error(r, 400, "body must be {\"user_id\": \"...\"} with 1 to 128 letters, digits and . _ - @ :");
    } else {
        int64_t now = toro_now_ms() / 1000;
        char *token = toro_auth_issue(&gw->cfg.auth, uid, now, gw->cfg.auth.dev_ttl_s);
        char exp[32];
        toro_iso8601((now + gw->cfg.auth.dev_ttl_s) * 1000, exp);
        snprintf(r->user_id, sizeof r->user_id, "%s", uid);
        if (token)
            ok(r, 200, json_pack("{s:s, s:s, s:s, s:s}", "token", token, "token_type", "Bearer", "user_id", uid,
                                 "expires_at", exp));
        else
            gw_json_error(r, 500, "could not issue a token");
        free(token);
    }
    free(uid);
    json_decref(o);
}

toro_route_t gw_route_template(const char *path)
{
    if (strcmp(path, "/questions") == 0)
        return TORO_ROUTE_QUESTIONS;
    if (strncmp(path, "/questions/", 11) == 0 && !strchr(path + 11, '/'))
        return TORO_ROUTE_QUESTION;
    if (strcmp(path, "/auth/dev-login") == 0)
        return TORO_ROUTE_DEV_LOGIN;
    if (strcmp(path, "/healthz") == 0)
        return TORO_ROUTE_HEALTHZ;
    if (strcmp(path, "/metrics") == 0)
        return TORO_ROUTE_METRICS;
    if (strcmp(path, "/ws") == 0)
        return TORO_ROUTE_WS;
    return TORO_ROUTE_OTHER;
}

bool gw_root_upgrade(const toro_gateway_t *gw, const gw_request_t *req)
{
    if (gw->cfg.auth_mode != TORO_AUTH_NONE || strcmp(req->path, "/") != 0)
        return false;
    const char *up = gw_header(req, "Upgrade");
    for (; up && *up; up++)
        if (strncasecmp(up, "websocket", 9) == 0)
            return true; /* upgrade_ws checks the rest of the handshake */
    return false;
}

void gw_route(toro_gateway_t *gw, gw_request_t *req, gw_response_t *r)
{
    const char *m = req->method, *p = req->path;
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
    const char *origin = gw_header(req, "Origin");
    bool cors_ok = origin && gw_origin_allowed(gw, req, origin);
    char sub[160];
    const char *user = NULL;
    r->route = TORO_ROUTE_OTHER;
    if (strcmp(m, "OPTIONS") == 0) {
        r->route = gw_route_template(p);
        /* CORS preflight: only for allowed origins, never "*" */
        if (!cors_ok) {
            gw_json_error(r, 403, "origin not allowed");
        } else {
            r->status = 204;
            gw_add_header(r, "Access-Control-Allow-Methods: GET, POST, OPTIONS");
            gw_add_header(r, "Access-Control-Allow-Headers: Authorization, Content-Type, X-Request-Id");
            gw_add_header(r, "Access-Control-Max-Age: 600");
        }
    } else if (strcmp(p, "/questions") == 0) {
        r->route = TORO_ROUTE_QUESTIONS;
        if (strcmp(m, "POST") == 0) {
            if (authenticate(gw, req, r, sub, &user, gw->rate))
                post_question(gw, req, user, r);
        } else if (get) {
            if (authenticate(gw, req, r, sub, &user, gw->read_rate))
                list_questions(gw, req, user, r);
        } else {
            method_not_allowed(r, "GET, POST");
        }
    } else if (strncmp(p, "/questions/", 11) == 0 && !strchr(p + 11, '/')) {
        r->route = TORO_ROUTE_QUESTION;
        if (!get)
            method_not_allowed(r, "GET");
        else if (authenticate(gw, req, r, sub, &user, gw->read_rate))
            get_question(gw, req, user, p + 11, r);
    } else if (strcmp(p, "/auth/dev-login") == 0) {
        r->route = TORO_ROUTE_DEV_LOGIN;
        if (strcmp(m, "POST") == 0)
            dev_login(gw, req, r);
        else
            method_not_allowed(r, "POST");
    } else if (strcmp(p, "/healthz") == 0) {
        r->route = TORO_ROUTE_HEALTHZ;
        if (get)
            healthz(gw, r);
        else
            method_not_allowed(r, "GET");
    } else if (strcmp(p, "/metrics") == 0) {
        r->route = TORO_ROUTE_METRICS;
        if (get)
            metrics(gw, r);
        else
            method_not_allowed(r, "GET");
    } else if (get && serve_static(p, r)) {
        r->route = TORO_ROUTE_STATIC;
    } else {
        gw_json_error(r, 404, "not found");
    }
    if (cors_ok && strncmp(p, "/questions", 10) == 0) {
        gw_add_header(r, "Access-Control-Allow-Origin: %s", origin);
        gw_add_header(r, "Vary: Origin");
        gw_add_header(r, "Access-Control-Expose-Headers: X-Request-Id, Retry-After");
    }
    if (strcmp(m, "HEAD") == 0)
        r->head_only = true; /* same headers as GET, no body */
}

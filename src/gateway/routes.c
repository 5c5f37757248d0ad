/* routes.c: the REST contract of DESIGN.md on top of the stages and the
 * store: POST /questions, GET /questions, GET /questions/{id}, /healthz,
 * /metrics and the embedded web UI. Every error is {success:false, error}. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "gateway/internal.h"
#include "gateway/web.h"

static void set_json(gw_response_t *r, int status, json_t *o)
{
    r->status = status;
    r->content_type = "application/json";
    r->body = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    r->body_len = r->body ? strlen(r->body) : 0;
    json_decref(o);
    snprintf(r->extra, sizeof r->extra, "Cache-Control: no-store\r\n");
}

void gw_json_error(gw_response_t *r, int status, const char *message)
{
    set_json(r, status, json_pack("{s:b, s:s}", "success", 0, "error", message));
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

static void post_question(toro_gateway_t *gw, gw_request_t *req, gw_response_t *r)
{
    if (!is_json_type(gw_header(req, "Content-Type"))) {
        gw_json_error(r, 415, "Content-Type must be application/json");
        return;
    }
    if (req->body_len == 0) {
        gw_json_error(r, 400, "request body is required");
        return;
    }
    char qid[37];
    char *uid = NULL;
    const char *err = NULL;
    int rc = toro_stage_ingest(gw->ctx, req->body, req->body_len, qid, &uid, &err);
    if (rc == TORO_EINVAL) {
        gw_json_error(r, 400, err);
    } else if (rc) {
        toro_log_error("gateway", NULL, "ingest failed: %s (request %s)", toro_strerror(rc), req->request_id);
        gw_json_error(r, 503, "the question could not be stored; try again");
    } else {
        ok(r, 202, json_pack("{s:s, s:s, s:s}", "user_id", uid, "question_id", qid, "status", "pending"));
    }
    free(uid);
}

static void list_questions(toro_gateway_t *gw, gw_request_t *req, gw_response_t *r)
{
    char uid[256], lim[32], token[256];
    int has_uid = gw_query_get(req->query, "user_id", uid, sizeof uid);
    int has_lim = gw_query_get(req->query, "limit", lim, sizeof lim);
    int has_tok = gw_query_get(req->query, "next_token", token, sizeof token);
    long limit = 20;
    if (has_uid != 1 || !*uid) {
        gw_json_error(r, 400, "user_id query parameter is required");
        return;
    }
    char *trimmed = toro_trim_dup(uid);
    bool valid = trimmed && toro_user_id_is_valid(trimmed);
    if (valid)
        snprintf(uid, sizeof uid, "%s", trimmed);
    free(trimmed);
    if (!valid) {
        gw_json_error(r, 400, "user_id must be at most 128 characters of letters, digits and . _ - @ :");
        return;
    }
    if (has_lim < 0 || (has_lim == 1 && toro_parse_long(lim, 1, 100, &limit) != 0)) {
        gw_json_error(r, 400, "limit must be an integer from 1 to 100");
        return;
    }
    if (has_tok < 0) {
        gw_json_error(r, 400, "next_token is not valid");
        return;
    }
    toro_question_t *items = NULL;
    size_t n = 0;
    char *next = NULL;
    int rc = gw->ctx->store->ops->list_questions(gw->ctx->store, uid, (int)limit, has_tok == 1 && *token ? token : NULL,
                                                 &items, &n, &next);
    if (rc == TORO_EINVAL) {
        gw_json_error(r, 400, "next_token is not valid");
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

static void get_question(toro_gateway_t *gw, gw_request_t *req, const char *qid, gw_response_t *r)
{
    char uid[256];
    int has_uid = gw_query_get(req->query, "user_id", uid, sizeof uid);
    if (has_uid < 0) {
        gw_json_error(r, 400, "user_id is not valid");
        return;
    }
    if (strlen(qid) != 36) {
        gw_json_error(r, 404, "question not found");
        return;
    }
    toro_question_t q = {0};
    int rc = gw->ctx->store->ops->get_question(gw->ctx->store, qid, &q);
    if (rc == 0 && has_uid == 1 && strcmp(uid, q.user_id) != 0)
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
    json_t *d = json_pack("{s:s, s:s, s:s, s:s?, s:s}", "status", store_ok && bus_ok ? "ok" : "unhealthy", "store",
                          store_ok ? "ok" : "unreachable", "bus", bus_ok ? "ok" : "unreachable", "kb_version",
                          gw->cfg.kb_version, "node", gw->node);
    if (store_ok && bus_ok)
        ok(r, 200, d);
    else
        set_json(r, 503, json_pack("{s:b, s:s, s:o}", "success", 0, "error", "a dependency is unreachable", "data", d));
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
            snprintf(r->extra, sizeof r->extra,
                     "Cache-Control: no-cache\r\n"
                     "Content-Security-Policy: default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:;"
                     " style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'\r\n"
                     "Referrer-Policy: no-referrer\r\n");
            return true;
        }
    }
    return false;
}

static void method_not_allowed(gw_response_t *r, const char *allow)
{
    gw_json_error(r, 405, "method not allowed");
    size_t n = strlen(r->extra);
    snprintf(r->extra + n, sizeof r->extra - n, "Allow: %s\r\n", allow);
}

void gw_route(toro_gateway_t *gw, gw_request_t *req, gw_response_t *r)
{
    const char *m = req->method, *p = req->path;
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
    r->route = TORO_ROUTE_OTHER;
    if (strcmp(p, "/questions") == 0) {
        if (strcmp(m, "POST") == 0) {
            r->route = TORO_ROUTE_POST_QUESTIONS;
            post_question(gw, req, r);
        } else if (get) {
            r->route = TORO_ROUTE_LIST_QUESTIONS;
            list_questions(gw, req, r);
        } else {
            method_not_allowed(r, "GET, POST");
        }
    } else if (strncmp(p, "/questions/", 11) == 0 && !strchr(p + 11, '/')) {
        r->route = TORO_ROUTE_GET_QUESTION;
        if (get)
            get_question(gw, req, p + 11, r);
        else
            method_not_allowed(r, "GET");
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
    if (strcmp(m, "HEAD") == 0) {
        r->head_only = true; /* same headers as GET, no body */
    }
}

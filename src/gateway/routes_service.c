/* routes_service.c: the routes that serve the service rather than a user's
 * questions: /auth/dev-login (the simulated login of development mode),
 * /healthz, /metrics (Prometheus text) and the embedded web UI (see routes.h). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/health.h"
#include "core/kbinfo.h"
#include "core/metrics.h"
#include "core/question.h"
#include "core/util.h"
#include "gateway/routes.h"
#include "gateway/web.h"

void gw_route_dev_login(gw_routes_t *rt, gw_request_t *req, gw_response_t *r)
{
    if (rt->cfg->auth_mode != TORO_AUTH_DEV) {
        gw_json_error(r, 404, "not found");
        return;
    }
    int wait = toro_limits_take_kind(rt->read_rate, "ip", req->peer, toro_mono_ms());
    if (wait) {
        gw_json_error(r, 429, "too many requests; slow down");
        gw_add_header(r, "Retry-After: %d", wait);
        return;
    }
    if (!gw_route_is_json(gw_header(req, "Content-Type"))) {
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
        char *token = toro_auth_issue(&rt->cfg->auth, uid, now, rt->cfg->auth.dev_ttl_s);
        char exp[32];
        toro_iso8601((now + rt->cfg->auth.dev_ttl_s) * 1000, exp);
        snprintf(r->user_id, sizeof r->user_id, "%s", uid);
        if (token)
            gw_http_ok(r, 200, json_pack("{s:s, s:s, s:s, s:s}", "token", token, "token_type", "Bearer", "user_id", uid,
                                 "expires_at", exp));
        else
            gw_json_error(r, 500, "could not issue a token");
        free(token);
    }
    free(uid);
    json_decref(o);
}

void gw_route_healthz(gw_routes_t *rt, gw_response_t *r)
{
    long depth = 0;
    bool store_ok = toro_store_ping(rt->ctx->store) == 0;
    bool bus_ok = toro_bus_depth(rt->ctx->bus, TORO_TOPIC_PROCESS, &depth) == 0;
    static const char *const modes[] = {"auto", "none", "dev", "jwt"};
    char kbv[128];
    const char *kb_version = toro_kbinfo_get(kbv, sizeof kbv) ? kbv : rt->cfg->kb_version; /* changes on reload */
    json_t *d = json_pack("{s:s, s:s, s:s, s:s?, s:s, s:s, s:b}", "status", store_ok && bus_ok ? "ok" : "unhealthy",
                          "store", store_ok ? "ok" : "unreachable", "bus", bus_ok ? "ok" : "unreachable", "kb_version",
                          kb_version, "node", rt->node, "auth", modes[rt->cfg->auth_mode], "tls",
                          rt->tls);
    char why[256];
    int64_t since = 0;
    if (store_ok && bus_ok && toro_health_degraded(why, sizeof why, &since)) {
        char at[32];
        toro_iso8601(since, at);
        json_object_set_new(d, "status", json_string("degraded"));
        json_object_set_new(d, "reason", json_string(why));
        json_object_set_new(d, "degraded_since", json_string(at));
        gw_http_ok(r, 200, d); /* 200: the node still serves reads, and a balancer keeps it in to see it recover */
    } else if (store_ok && bus_ok)
        gw_http_ok(r, 200, d);
    else
        gw_http_json(r, 503, json_pack("{s:b, s:s, s:s, s:o}", "success", 0, "error", "a dependency is unreachable", "code",
                                   "unavailable", "data", d));
}

void gw_route_metrics(gw_routes_t *rt, gw_response_t *r)
{
    size_t cap = 64 * 1024;
    char *buf = malloc(cap);
    if (!buf) {
        gw_json_error(r, 500, "out of memory");
        return;
    }
    long n = gw_route_render(buf, cap); /* the HTTP counts first, as ever */
    if (n >= 0) {
        long more = toro_metrics_render(buf + n, cap - (size_t)n);
        n = more < 0 ? -1 : n + more;
    }
    if (n >= 0) {
        long more = toro_kbinfo_render(buf + n, cap - (size_t)n);
        n = more < 0 ? -1 : n + more;
    }
    long counts[TORO_STATUS_COUNT];
    long dp = 0, dn = 0;
    if (n >= 0 && toro_store_count_by_status(rt->ctx->store, counts) == 0) {
        n += snprintf(buf + n, cap - (size_t)n, "# HELP toro_questions Questions by status.\n# TYPE toro_questions gauge\n");
        for (int i = 0; i < TORO_STATUS_COUNT && (size_t)n < cap; i++)
            n += snprintf(buf + n, cap - (size_t)n, "toro_questions{status=\"%s\"} %ld\n", toro_status_name(i),
                          counts[i]);
    }
    if (n >= 0 && (size_t)n < cap && toro_bus_depth(rt->ctx->bus, TORO_TOPIC_PROCESS, &dp) == 0 &&
        toro_bus_depth(rt->ctx->bus, TORO_TOPIC_NOTIFY, &dn) == 0)
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

bool gw_route_static(const char *path, gw_response_t *r)
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

/* server.c: the gateway object: builds the layers and wires them together
 * (loop, connection set, listener, HTTP, WebSocket, routes, group commit,
 * registry), runs the loop, stops on a signal, and is the entry point of
 * other threads (toro_gateway_post, toro_gateway_resync_connections). It
 * parses nothing itself. See gateway.h. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "gateway/accept.h"
#include "gateway/commit.h"
#include "gateway/http.h"
#include "gateway/registry.h"
#include "gateway/routes.h"
#include "gateway/server.h"
#include "gateway/ws.h"

struct toro_gateway {
    toro_gateway_config_t cfg;
    toro_stage_ctx_t *ctx;         /* borrowed */
    char node[128];
    int port;
    gw_loop_t *loop;
    gw_conns_t conns;              /* every socket */
    gw_listener_t listener;
    gw_http_t http;
    gw_ws_t ws;
    gw_routes_t routes;
    toro_auth_cache_t *auth_cache; /* tokens accepted before (the loop's only) */
    gw_commit_t commit;
    gw_registry_t registry;        /* the only state other threads touch */
    gw_tls_ctx_t *tls;             /* TLS context (owned), NULL when the port speaks plain HTTP */
    toro_limits_t *rate;           /* questions asked per user */
    toro_limits_t *read_rate;      /* reads per user, dev-logins per IP */
    toro_limits_t *ws_per_user;    /* registered WebSockets per user */
};

static void on_open(void *owner, gw_conn_t *c)
{
    toro_gateway_t *gw = owner;
    gw_client_of(c)->kind = GW_CLIENT_HTTP;
    c->half_close_ok = true;
    c->rmax = gw->cfg.max_header + gw->cfg.max_body + 4096;
}

/* HTTP until an upgrade; the bytes after the upgrade's request are frames. */
static int on_input(void *owner, gw_conn_t *c)
{
    toro_gateway_t *gw = owner;
    gw_client_t *cl = gw_client_of(c);
    if (cl->kind == GW_CLIENT_HTTP) {
        int rc = gw_http_on_input(&gw->http, cl);
        if (rc != 0 || cl->kind != GW_CLIENT_WS || c->rlen == 0)
            return rc;
    }
    return gw_ws_on_input(&gw->ws, cl);
}

static void on_close(void *owner, gw_conn_t *c)
{
    toro_gateway_t *gw = owner;
    gw_client_t *cl = gw_client_of(c);
    gw_commit_forget(&gw->commit, cl);
    if (cl->kind == GW_CLIENT_WS)
        gw_ws_on_close(&gw->ws, cl);
}

static void on_stalled(void *owner, gw_conn_t *c)
{
    toro_gateway_t *gw = owner;
    bool ws = gw_client_of(c)->kind == GW_CLIENT_WS;
    if (ws)
        toro_metrics_inc(TORO_CTR_WS_DROPPED);
    toro_log_ratelimited(TORO_LOG_WARN, "gateway", "slow-client", "closing a %s socket from %s: %zu bytes unsent for %d ms",
                         ws ? "WebSocket" : "HTTP", c->peer, gw_conn_unsent(c), gw->cfg.send_timeout_ms);
}

static void tick(void *owner, gw_conn_t *c, int64_t now)
{
    toro_gateway_t *gw = owner;
    gw_client_t *cl = gw_client_of(c);
    if (cl->kind == GW_CLIENT_HTTP)
        gw_http_tick(&gw->http, cl, now);
    else
        gw_ws_tick(&gw->ws, cl, now);
}

static const gw_conn_ops_t conn_ops = {
    .on_open = on_open, .on_input = on_input, .on_close = on_close, .on_stalled = on_stalled, .tick = tick};

static void after_round(void *data) { gw_commit_round(&((toro_gateway_t *)data)->commit); }

static void on_wake(void *data)
{
    toro_gateway_t *gw = data;
    gw_ws_deliver(&gw->ws);
    gw_commit_landed(&gw->commit);
}

static void wake_loop(void *loop) { gw_loop_wake(loop); }
static void on_sweep(void *data) { gw_conns_sweep(&((toro_gateway_t *)data)->conns); }

/* Points each layer at what it needs of the gateway (after cfg, ctx, node, limits and loop are set). */
static void wire(toro_gateway_t *gw)
{
    gw->conns = (gw_conns_t){.loop = gw->loop, .cfg = &gw->cfg, .tls = gw->tls, .ops = &conn_ops, .owner = gw,
                             .conn_size = sizeof(gw_client_t)};
    gw->http = (gw_http_t){.conns = &gw->conns, .cfg = &gw->cfg, .serve = gw_routes_serve, .owner = &gw->routes};
    gw->ws = (gw_ws_t){.conns = &gw->conns, .cfg = &gw->cfg, .store = gw->ctx->store, .per_user = gw->ws_per_user,
                       .registry = &gw->registry, .node = gw->node};
    gw->commit.conns = &gw->conns;
    gw->commit.ctx = gw->ctx;
    gw->routes = (gw_routes_t){.conns = &gw->conns, .cfg = &gw->cfg, .ctx = gw->ctx, .rate = gw->rate,
                               .read_rate = gw->read_rate, .node = gw->node, .tls = gw->tls != NULL, .ws = &gw->ws,
                               .commit = &gw->commit, .auth_cache = gw->auth_cache};
    gw_loop_after_round(gw->loop, after_round, gw);
    gw_loop_on_wake(gw->loop, on_wake, gw);
}

/* Everything toro_gateway_new opens before the port; 0, or -1 with msg set. */
static int open_parts(toro_gateway_t *gw, char *msg, size_t cap)
{
    const toro_gateway_config_t *cfg = &gw->cfg;
    gw->rate = toro_limits_new(cfg->user_rate_per_min / 60.0, cfg->user_burst, 100000);
    gw->read_rate = toro_limits_new(cfg->read_rate_per_min / 60.0, cfg->read_burst, 100000);
    gw->ws_per_user = toro_limits_new(0, 1, (size_t)cfg->max_connections + 16);
    gw->auth_cache = toro_auth_cache_new();
    if (!gw->rate || !gw->read_rate || !gw->ws_per_user || !gw->auth_cache) {
        snprintf(msg, cap, "out of memory");
        return -1;
    }
    int err = gw_loop_new(&gw->loop);
    if (err) {
        snprintf(msg, cap, "cannot create event loop: %s", strerror(-err));
        return -1;
    }
    if (cfg->tls_cert && gw_tls_ctx_new(cfg->tls_cert, cfg->tls_key, &gw->tls, msg, cap) != 0)
        return -1;
    return 0;
}

int toro_gateway_new(const toro_gateway_config_t *cfg, toro_stage_ctx_t *ctx, toro_gateway_t **out, char **err)
{
    toro_gateway_t *gw = calloc(1, sizeof *gw);
    if (!gw)
        return TORO_ENOMEM;
    gw->cfg = *cfg;
    gw->ctx = ctx;
    gw->listener.watch.fd = gw->listener.reserve_fd = -1;
    gw_registry_init(&gw->registry);
    char msg[1024];
    gw->cfg.max_connections = gw_fit_open_files(cfg->max_connections);
    gw->listener.max_connections = gw->cfg.max_connections;
    if (open_parts(gw, msg, sizeof msg) != 0)
        goto fail;
    wire(gw);
    if (gw_listener_open(&gw->listener, &gw->conns, cfg->host, cfg->port, &gw->port, msg, sizeof msg) != 0)
        goto fail;
    if (cfg->node)
        snprintf(gw->node, sizeof gw->node, "%s", cfg->node);
    else
        snprintf(gw->node, sizeof gw->node, "%s:%d", cfg->host, gw->port);
    gw->cfg.node = gw->node;
    /* sockets of a previous run of this node are gone */
    toro_store_delete_node_connections(ctx->store, gw->node);
    *out = gw;
    return 0;
fail:
    if (err)
        *err = strdup(msg);
    toro_gateway_free(gw);
    return TORO_EIO;
}

int toro_gateway_port(const toro_gateway_t *gw) { return gw->port; }

int toro_gateway_tls(const toro_gateway_t *gw) { return gw->tls != NULL; }

void toro_gateway_stop(toro_gateway_t *gw) { gw_loop_stop(gw->loop); }

int toro_gateway_run(toro_gateway_t *gw)
{
    toro_log_info("gateway", NULL, "listening on %s://%s:%d (node %s, TLS %s)", gw->tls ? "https" : "http",
                  gw->cfg.host, gw->port, gw->node, gw->tls ? "on: https and wss" : "off");
    /* once a second: slow requests, idle sockets, silent WebSockets, pings */
    if (gw_loop_timer(gw->loop, toro_mono_ms() + 1000, 1000, on_sweep, gw) < 0)
        return TORO_EIO;
    if (!gw->commit.started)
        gw_commit_start(&gw->commit, wake_loop, gw->loop); /* else the loop commits itself */
    int rc = gw_loop_run(gw->loop);
    /* every question validated is committed and answered now, while the
     * store and the bus its commit kicks are still open (the caller closes
     * the bus before it frees the gateway) */
    gw_commit_stop(&gw->commit);
    return rc;
}

void toro_gateway_free(toro_gateway_t *gw)
{
    if (!gw)
        return;
    gw_commit_stop(&gw->commit); /* a no-op after toro_gateway_run */
    if (gw->loop)
        gw_conns_close_all(&gw->conns);
    gw_listener_close(&gw->listener);
    gw_loop_free(gw->loop);
    gw_registry_destroy(&gw->registry);
    gw_tls_ctx_free(gw->tls);
    toro_limits_free(gw->rate);
    toro_limits_free(gw->read_rate);
    toro_limits_free(gw->ws_per_user);
    toro_auth_cache_free(gw->auth_cache);
    free(gw);
}

int toro_gateway_resync_connections(toro_gateway_t *gw)
{
    return gw_registry_resync(&gw->registry, gw->ctx->store, gw->node);
}

int toro_gateway_post(void *arg, const char *connection_id, const char *node, const char *message)
{
    toro_gateway_t *gw = arg;
    if (node && strcmp(node, gw->node) != 0)
        return TORO_ENOTFOUND; /* embedded mode: one gateway; a row of another node is stale */
    int rc = gw_registry_post(&gw->registry, connection_id, message);
    if (rc == 0)
        gw_loop_wake(gw->loop);
    return rc;
}

gw_conns_t *gw_server_conns(toro_gateway_t *gw) { return &gw->conns; }

bool gw_server_pump(toro_gateway_t *gw, gw_conn_t *c)
{
    gw_commit_flush(&gw->commit);
    if (!gw_conn_listed(&gw->conns, c))
        return false;
    if (gw_conn_flush(&gw->conns, c) != 0) {
        gw_conn_close(&gw->conns, c);
        return false;
    }
    gw_conn_resume(&gw->conns, c);
    return gw_conn_listed(&gw->conns, c);
}

/* lambda_handlers.c: the functions of `toro lambda` (see lambda_handlers.h). */
#include "cli/lambda_handlers.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "bus/relay.h"
#include "cli/lambda_events.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "gateway/commit.h"
#include "gateway/routes.h"
#include "store/store.h"

#define DRAIN_MAX_BATCHES 16 /* bounds the time one invocation spends publishing */

/* ---- the bus of one SQS batch ---- */

static toro_lambda_batch_bus_t *bb(toro_bus_t *b) { return (toro_lambda_batch_bus_t *)b; }

static int b_fetch(toro_bus_t *b, const char *t, int ms, toro_bus_msg_t *m)
{
    (void)b, (void)t, (void)ms;
    memset(m, 0, sizeof *m);
    return TORO_EEMPTY; /* SQS hands the records to the function: nothing to fetch */
}
static int b_ack(toro_bus_t *b, const char *t, const toro_bus_msg_t *m)
{
    (void)t, (void)m;
    bb(b)->outcome = TORO_LAMBDA_ACK;
    return 0;
}
static int b_nack(toro_bus_t *b, const char *t, const toro_bus_msg_t *m, int delay_ms)
{
    (void)m;
    bb(b)->outcome = TORO_LAMBDA_RETRY;
    /* visible again after the backoff; if this fails, after the queue's visibility timeout */
    if (bb(b)->receipt_handle && toro_bus_sns_retry_in(bb(b)->real, t, bb(b)->receipt_handle, delay_ms) != 0)
        toro_log_warn("lambda", NULL, "%s retry: the backoff could not be set; the queue's timeout applies", t);
    return 0;
}
static int b_dead(toro_bus_t *b, const char *t, const toro_bus_msg_t *m, const char *reason)
{
    toro_log_error("lambda", NULL, "%s event left to the dead-letter queue (%s): %.200s", t, reason, m->payload);
    bb(b)->outcome = TORO_LAMBDA_DEAD;
    return 0;
}
static void b_kick(toro_bus_t *b, const char *t) { (void)b, (void)t; }
static int b_depth(toro_bus_t *b, const char *t, long *n) { return toro_bus_depth(bb(b)->real, t, n); }
static void b_interrupt(toro_bus_t *b) { (void)b; }
static void b_close(toro_bus_t *b) { (void)b; } /* the real bus is closed by its owner */
static int b_publish(toro_bus_t *b, const char *t, const char *payload, const char *id)
{
    return toro_bus_publish(bb(b)->real, t, payload, id);
}

static const toro_bus_ops_t BATCH_OPS = {.name = "lambda-batch",
                                         .fetch = b_fetch,
                                         .ack = b_ack,
                                         .nack = b_nack,
                                         .dead = b_dead,
                                         .kick = b_kick,
                                         .depth = b_depth,
                                         .interrupt = b_interrupt,
                                         .close = b_close,
                                         .publish = b_publish};

void toro_lambda_batch_init(toro_lambda_batch_bus_t *b, toro_bus_t *real)
{
    assert(b && real);
    *b = (toro_lambda_batch_bus_t){.super = {.ops = &BATCH_OPS}, .real = real};
}

/* ---- outbox ---- */

int toro_lambda_drain(toro_lambda_t *L)
{
    int total = 0;
    for (int i = 0; i < DRAIN_MAX_BATCHES; i++) {
        int n = toro_relay_drain_once(toro_store_outbox(L->store), L->bus);
        if (n < 0) {
            toro_log_warn("lambda", NULL, "outbox not published now (%s); the relay function retries",
                          toro_strerror(n));
            return total ? total : n;
        }
        if (n == 0)
            break;
        total += n;
    }
    return total;
}

int toro_lambda_relay(toro_lambda_t *L, json_t *ev, char **out, const char **why)
{
    (void)ev;
    int n = toro_lambda_drain(L);
    if (n < 0) {
        *why = "the outbox or the bus is unreachable";
        return n;
    }
    json_t *j = json_pack("{s:i}", "published", n);
    *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return *out ? 0 : TORO_ENOMEM;
}

/* ---- ingest: the REST API ---- */

/* Serves req with the gateway's routes; a POST is committed here (one
 * question per invocation) and its event published before the 202. */
static void serve_rest(toro_lambda_t *L, gw_request_t *req, gw_response_t *r)
{
    gw_routes_t rt = {.cfg = &L->gcfg, .ctx = &L->ctx, .rate = L->rate, .read_rate = L->read_rate, .node = TORO_LAMBDA_NODE};
    toro_ingest_item_t item = {0};
    gw_route_t route = gw_route_template(req->path);
    if (route != GW_ROUTE_QUESTIONS && route != GW_ROUTE_QUESTION && route != GW_ROUTE_FEEDBACK &&
        route != GW_ROUTE_CONVERSATIONS && route != GW_ROUTE_CONVERSATION) {
        r->route = route;
        gw_json_error(r, 404, "not found"); /* the web UI, dev-login and metrics are not on this API */
        return;
    }
    if (gw_route(&rt, req, r, &item)) {
        int result = 0;
        toro_stage_ingest_commit(&L->ctx, &item, 1, &result);
        gw_commit_answer(r, &item, result);
        if (result == 0)
            toro_lambda_drain(L);
    }
    toro_ingest_item_clear(&item);
}

int toro_lambda_ingest(toro_lambda_t *L, json_t *ev, char **out, const char **why)
{
    toro_lev_http_t h;
    gw_response_t r = {0};
    if (toro_lev_http_decode(ev, &h) != 0)
        gw_json_error(&r, 400, "not an API Gateway REST proxy request");
    else
        serve_rest(L, &h.req, &r);
    *out = toro_lev_http_encode(&r);
    free(r.body);
    *why = "out of memory";
    return *out ? 0 : TORO_ENOMEM;
}

/* ---- websocket: $connect, register, $disconnect ---- */

/* The token's subject in sub, or NULL (why set). */
static const char *verify(toro_lambda_t *L, const char *token, char sub[160], const char **why)
{
    *why = "missing token";
    if (!token || !*token)
        return NULL;
    if (L->gcfg.auth_mode == TORO_AUTH_NONE) {
        *why = "authentication is off: register with a user_id";
        return NULL;
    }
    return toro_auth_verify(&L->gcfg.auth, token, toro_now_ms() / 1000, sub, 160, why) == 0 ? sub : NULL;
}

static int put_connection(toro_lambda_t *L, const char *connection_id, const char *user)
{
    toro_connection_t c = {(char *)connection_id, (char *)user, (char *)TORO_LAMBDA_NODE, toro_now_ms()};
    return toro_store_put_connection(L->store, &c);
}

/* Whether connection_id already has a row under user. */
static int holds(toro_lambda_t *L, const char *user, const char *connection_id, bool *yes)
{
    toro_connection_t *cs = NULL;
    size_t n = 0;
    *yes = false;
    int rc = toro_store_list_connections(L->store, user, &cs, &n);
    for (size_t i = 0; rc == 0 && i < n; i++)
        *yes = *yes || strcmp(cs[i].connection_id, connection_id) == 0;
    toro_connections_free(cs, n);
    return rc;
}

/* $connect: a valid token's user owns the connection (401 refuses it). */
static char *ws_connect(toro_lambda_t *L, const toro_lev_ws_t *w)
{
    char sub[160];
    const char *why = NULL, *user = NULL;
    if (L->gcfg.auth_mode != TORO_AUTH_NONE && !(user = verify(L, w->token, sub, &why))) {
        toro_log_warn("lambda", NULL, "websocket %s refused: %s", w->connection_id, why);
        return toro_lev_status(401, "{\"type\":\"error\",\"code\":\"unauthorized\"}");
    }
    if (user && put_connection(L, w->connection_id, user) != 0)
        return toro_lev_status(503, "{\"type\":\"error\",\"code\":\"unavailable\"}");
    return toro_lev_status(200, NULL);
}

/* The answer to a register message: {"type":"registered"} or an error. */
static char *registered(int status, const char *user, const char *code)
{
    json_t *j = status == 200 ? json_pack("{s:s, s:s}", "type", "registered", "user_id", user)
                              : json_pack("{s:s, s:s}", "type", "error", "code", code);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    char *s = body ? toro_lev_status(status, body) : NULL;
    free(body);
    return s;
}

/* register {"user_id", "token"?}: a connection registers only for the user
 * of its token (given at $connect, or here); without authentication the
 * message names the user, as in the reference. */
static char *ws_register(toro_lambda_t *L, const toro_lev_ws_t *w)
{
    json_t *msg = w->body ? json_loads(w->body, 0, NULL) : NULL;
    json_t *u = json_object_get(msg, "user_id"), *t = json_object_get(msg, "token");
    const char *user = json_is_string(u) ? json_string_value(u) : NULL;
    const char *token = json_is_string(t) ? json_string_value(t) : NULL;
    char sub[160];
    const char *why = NULL;
    char *out = NULL;
    bool ok = false;
    if (token || (L->gcfg.auth_mode != TORO_AUTH_NONE && !user)) {
        const char *owner = verify(L, token, sub, &why);
        if (!owner)
            out = registered(401, NULL, "unauthorized");
        else if (user && strcmp(user, owner) != 0)
            out = registered(403, NULL, "user_mismatch");
        else if (put_connection(L, w->connection_id, owner) != 0)
            out = registered(503, NULL, "unavailable");
        else
            out = registered(200, owner, NULL);
    } else if (!user || !toro_user_id_is_valid(user)) {
        out = registered(400, NULL, "invalid_user_id");
    } else if (L->gcfg.auth_mode == TORO_AUTH_NONE) {
        out = registered(put_connection(L, w->connection_id, user) == 0 ? 200 : 503, user, "unavailable");
    } else if (holds(L, user, w->connection_id, &ok) != 0) {
        out = registered(503, NULL, "unavailable");
    } else {
        if (!ok)
            toro_log_warn("lambda", NULL, "websocket %s refused to register for another user", w->connection_id);
        out = registered(ok ? 200 : 403, user, "user_mismatch");
    }
    json_decref(msg);
    return out;
}

int toro_lambda_websocket(toro_lambda_t *L, json_t *ev, char **out, const char **why)
{
    toro_lev_ws_t w;
    *out = NULL;
    if (toro_lev_ws_decode(ev, &w) != 0) {
        *why = "not an API Gateway WebSocket event";
        return TORO_EINVAL;
    }
    if (strcmp(w.route_key, "$connect") == 0) {
        *out = ws_connect(L, &w);
    } else if (strcmp(w.route_key, "$disconnect") == 0) {
        toro_store_delete_connection(L->store, w.connection_id); /* a lost row is removed at the next 410 */
        *out = toro_lev_status(200, NULL);
    } else if (strcmp(w.route_key, "register") == 0) {
        *out = ws_register(L, &w);
    } else {
        *out = toro_lev_status(400, "{\"type\":\"error\",\"code\":\"unknown_action\"}");
    }
    *why = "out of memory";
    return *out ? 0 : TORO_ENOMEM;
}

/* ---- process, notify: SQS batches ---- */

/* Runs the stage on one record; true when SQS may delete it. */
static bool run_record(toro_lambda_t *L, json_t *rec)
{
    toro_lev_sqs_t s;
    json_t *envelope = NULL;
    if (toro_lev_sqs_decode(rec, &s, &envelope) != 0)
        return false;
    toro_bus_msg_t msg = {.id = 1, .payload = strdup(s.payload), .deliveries = s.deliveries,
                          .enqueued_at = toro_now_ms()};
    L->batch.outcome = TORO_LAMBDA_NONE;
    L->batch.receipt_handle = json_string_value(json_object_get(rec, "receiptHandle"));
    if (msg.payload && strcmp(L->handler, "process") == 0)
        toro_stage_process(&L->ctx, &msg);
    else if (msg.payload)
        toro_stage_notify(&L->ctx, &msg);
    toro_bus_msg_clear(&msg);
    L->batch.receipt_handle = NULL;
    json_decref(envelope);
    return L->batch.outcome == TORO_LAMBDA_ACK;
}

int toro_lambda_sqs(toro_lambda_t *L, json_t *ev, char **out, const char **why)
{
    json_t *records = toro_lev_sqs_records(ev);
    *out = NULL;
    if (!records) {
        *why = "not an SQS event (no Records)";
        return TORO_EINVAL;
    }
    json_t *failures = json_array();
    size_t i;
    json_t *rec;
    json_array_foreach(records, i, rec)
    {
        json_t *mid = json_object_get(rec, "messageId");
        if (!run_record(L, rec) && json_is_string(mid))
            json_array_append_new(failures, json_pack("{s:O}", "itemIdentifier", mid));
    }
    if (strcmp(L->handler, "process") == 0)
        toro_lambda_drain(L); /* the notify events of the answers */
    json_t *j = json_pack("{s:o}", "batchItemFailures", failures);
    *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    *why = "out of memory";
    return *out ? 0 : TORO_ENOMEM;
}

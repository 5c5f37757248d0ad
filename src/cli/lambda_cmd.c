/* lambda_cmd.c: `toro lambda [HANDLER]`: the toro binary as an AWS Lambda
 * custom runtime (provided.al2023: the zip's `bootstrap` execs it). It
 * reads its configuration from the function's environment, opens what the
 * handler needs once per execution environment, then loops on the Runtime
 * API: next invocation, handler, response (or invocation error). A failure
 * to start is reported as an init error. The handlers: lambda_handlers.h.
 *
 * Environment: _HANDLER (the function's Handler: ingest, websocket,
 * process, notify, relay; an argument overrides it), AWS_LAMBDA_RUNTIME_API,
 * TORO_STORE (the store URL: dynamodb://… on AWS, or postgres://…),
 * TORO_BUS (sns://REGION?prefix=…), TORO_KB and TORO_ANSWERER (process),
 * TORO_APIGW_ENDPOINT (notify: https://{api}.execute-api.{region}.
 * amazonaws.com/{stage}), TORO_AUTH / TORO_JWT_SECRET (ingest, websocket:
 * jwt unless TORO_AUTH=none), TORO_MAX_ATTEMPTS, TORO_MAX_DELIVERIES,
 * TORO_RETRY_BASE_MS / TORO_RETRY_MAX_MS (a retried record's backoff: 1 s
 * doubling up to 60 s), TORO_LOG_LEVEL; AWS_REGION and the credentials for the AWS calls. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer/factory.h"
#include "answer/faulty.h"
#include "bus/open.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/kb_opts.h"
#include "cli/lambda_handlers.h"
#include "cli/lambda_runtime.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "store/open.h"

typedef int (*handler_fn)(toro_lambda_t *L, json_t *ev, char **out, const char **why);

static const struct {
    const char *name;
    handler_fn fn;
    unsigned needs; /* NEED_* bits */
} HANDLERS[] = {
    {"ingest", toro_lambda_ingest, 1 | 2 | 4},
    {"websocket", toro_lambda_websocket, 1 | 4},
    {"process", toro_lambda_sqs, 1 | 2 | 8},
    {"notify", toro_lambda_sqs, 1 | 2 | 16},
    {"relay", toro_lambda_relay, 1 | 2},
};
enum { NEED_STORE = 1, NEED_BUS = 2, NEED_AUTH = 4, NEED_ANSWERER = 8, NEED_APIGW = 16 };

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static long env_long(const char *name, long lo, long hi, long dflt)
{
    long v;
    return env(name) && toro_parse_long(env(name), lo, hi, &v) == 0 ? v : dflt;
}

/* Store and bus by URL, like every other command. 0 or -1 (*err says why). */
static int open_backends(toro_lambda_t *L, unsigned needs, char **err)
{
    const char *store = env("TORO_STORE"), *bus = env("TORO_BUS");
    if (!store) {
        *err = strdup("TORO_STORE is not set (dynamodb://… or postgres://…)");
        return -1;
    }
    if (toro_store_open(store, TORO_DB_SYNC_NORMAL, &L->store, err) != 0)
        return -1;
    if (!(needs & NEED_BUS))
        return 0;
    if (!bus || toro_bus_url_kind(bus) != TORO_BUS_URL_SNS) {
        *err = strdup("TORO_BUS must be sns://REGION?prefix=… (SNS topics read through SQS)");
        return -1;
    }
    if (toro_bus_open(bus, NULL, &L->bus, err) != 0)
        return -1;
    toro_lambda_batch_init(&L->batch, L->bus);
    return 0;
}

/* TORO_FAULT_ANSWERER (tests only), as in every other command. 0 or -1. */
static int wrap_faulty(toro_lambda_t *L, char **err)
{
    const char *spec = env("TORO_FAULT_ANSWERER");
    toro_answerer_t *wrapped = NULL;
    if (!spec)
        return 0;
    if (toro_answerer_faulty_new(L->answerer, spec, &wrapped) != 0) {
        *err = strdup("TORO_FAULT_ANSWERER: bad spec (KIND:N:MARKER;...)");
        return -1;
    }
    L->answerer = wrapped;
    toro_log_warn("lambda", NULL, "fault injection is on (TORO_FAULT_ANSWERER=%s); for tests only", spec);
    return 0;
}

/* The answerer of process, the Management API of notify, the JWT rules of
 * ingest and websocket. 0 or -1 (*err says why). */
static int open_parts(toro_lambda_t *L, unsigned needs, char **err)
{
    toro_kb_opts_t kopts = {0};
    if ((needs & NEED_ANSWERER) &&
        (toro_kb_opts_open(env("TORO_KB") ? env("TORO_KB") : "kb.toro", &kopts, &L->kb, &L->embedder, err) != 0 ||
         toro_answerer_create(env("TORO_ANSWERER"), L->kb, &L->answerer, err) != 0 || wrap_faulty(L, err) != 0))
        return -1;
    if (needs & NEED_APIGW) {
        const char *ep = env("TORO_APIGW_ENDPOINT");
        if (!ep) {
            *err = strdup("TORO_APIGW_ENDPOINT is not set (the WebSocket API's https://…/STAGE)");
            return -1;
        }
        if (toro_apigw_new(ep, NULL, &L->apigw, err) != 0)
            return -1;
    }
    toro_gateway_config_defaults(&L->gcfg);
    L->gcfg.host = "0.0.0.0"; /* not loopback: jwt unless TORO_AUTH says otherwise */
    if ((needs & NEED_AUTH) && toro_gateway_config_finish(&L->gcfg) != 0) {
        *err = strdup("authentication is not configured (TORO_JWT_SECRET, or TORO_AUTH=none)");
        return -1;
    }
    L->rate = toro_limits_new(L->gcfg.user_rate_per_min / 60.0, L->gcfg.user_burst, 10000);
    L->read_rate = toro_limits_new(L->gcfg.read_rate_per_min / 60.0, L->gcfg.read_burst, 10000);
    if (!L->rate || !L->read_rate) {
        *err = strdup("out of memory");
        return -1;
    }
    return 0;
}

static void fill_ctx(toro_lambda_t *L)
{
    toro_stage_ctx_defaults(&L->ctx);
    L->ctx.store = L->store;
    L->ctx.bus = L->bus ? &L->batch.super : NULL;
    L->ctx.answerer = L->answerer;
    L->ctx.post = L->apigw ? toro_apigw_post : NULL; /* process has none: processing goes by notify event */
    L->ctx.post_ctx = L->apigw;
    L->ctx.max_attempts = (int)env_long("TORO_MAX_ATTEMPTS", 1, 100, 3);
    L->ctx.max_deliveries = (int)env_long("TORO_MAX_DELIVERIES", 1, 1000, 4);
    L->ctx.backoff_base_ms = (int)env_long("TORO_RETRY_BASE_MS", 1, 600000, 1000);
    L->ctx.backoff_max_ms = (int)env_long("TORO_RETRY_MAX_MS", L->ctx.backoff_base_ms, 43200000, 60000);
}

static void close_all(toro_lambda_t *L)
{
    toro_bus_close(L->bus);
    toro_apigw_free(L->apigw);
    toro_answerer_free(L->answerer);
    toro_store_close(L->store);
    toro_kb_close(L->kb);
    toro_embedder_free(L->embedder);
    toro_limits_free(L->rate);
    toro_limits_free(L->read_rate);
}

/* Serves invocations until the Runtime API stops answering. */
static int serve(toro_lambda_t *L, toro_lrt_t *rt, handler_fn fn)
{
    for (;;) {
        toro_lrt_invocation_t inv;
        if (toro_lrt_next(rt, &inv) != 0) {
            toro_log_error("lambda", NULL, "the Runtime API did not hand out an invocation; exiting");
            return 1;
        }
        json_t *ev = json_loadb(inv.event, inv.event_len, 0, NULL);
        char *out = NULL;
        const char *why = "the event is not JSON";
        int rc = ev ? fn(L, ev, &out, &why) : TORO_EINVAL;
        if (rc == 0)
            toro_lrt_respond(rt, inv.request_id, out);
        else
            toro_lrt_error(rt, inv.request_id, "Toro.HandlerError", why);
        free(out);
        json_decref(ev);
        toro_lrt_invocation_clear(&inv);
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: toro lambda [ingest|websocket|process|notify|relay]\n"
               "  an AWS Lambda custom runtime (provided.al2023); the handler defaults to $_HANDLER.\n"
               "  configuration from the environment: AWS_LAMBDA_RUNTIME_API, TORO_STORE, TORO_BUS,\n"
               "  TORO_KB, TORO_ANSWERER, TORO_APIGW_ENDPOINT, TORO_JWT_SECRET (see README, Run on AWS)\n");
}

int toro_cmd_lambda(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    const char *name = argc > 1 ? argv[1] : env("_HANDLER");
    size_t h = 0, nh = sizeof HANDLERS / sizeof HANDLERS[0];
    while (name && h < nh && strcmp(HANDLERS[h].name, name) != 0)
        h++;
    toro_lrt_t *rt = NULL;
    if (toro_lrt_new(env("AWS_LAMBDA_RUNTIME_API"), &rt) != 0)
        return toro_cli_fail("toro lambda", "AWS_LAMBDA_RUNTIME_API (host:port) is not set");
    if (toro_cli_log_level("toro lambda", "TORO_LOG_LEVEL", env("TORO_LOG_LEVEL"))) {
        toro_lrt_free(rt);
        return 2;
    }
    toro_lambda_t L = {.handler = name};
    char *err = NULL;
    int rc = 1;
    if (h == nh) {
        err = strdup("unknown handler (_HANDLER must be ingest, websocket, process, notify or relay)");
    } else if (open_backends(&L, HANDLERS[h].needs, &err) == 0 && open_parts(&L, HANDLERS[h].needs, &err) == 0) {
        fill_ctx(&L);
        toro_log_info("lambda", NULL, "toro lambda %s ready", name);
        rc = serve(&L, rt, HANDLERS[h].fn);
    }
    if (err) {
        fprintf(stderr, "toro lambda: %s\n", err);
        toro_lrt_init_error(rt, "Toro.InitError", err);
    }
    free(err);
    close_all(&L);
    toro_lrt_free(rt);
    return rc;
}

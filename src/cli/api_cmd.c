/* api_cmd.c: `toro api`, the API Gateway box of the distributed mode: REST,
 * WebSocket and web UI on one port over PostgreSQL and NATS, with no stage
 * workers. It keeps no state but its open sockets, so any number run behind
 * a TCP load balancer. Notifications for its sockets arrive as NATS requests
 * on <prefix>.gw.<node> and are posted to the local gateway; an outbox relay
 * thread publishes the events its ingest commits. SIGINT/SIGTERM stop it:
 * the gateway stops, the relay and the NATS subscription end, exit 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/relay.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/kb_opts.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "gateway/gateway.h"
#include "kb/kb.h"
#include "stages/stages.h"

static void api_usage(FILE *f)
{
    fprintf(f, "usage: toro api [options]\n"
               "  --store URL        postgres://HOST:PORT/DB (env TORO_STORE)\n"
               "  --bus URL          nats://HOST:PORT[?prefix=NAME] (env TORO_BUS)\n"
               "  --port N           listen port (default 8080, env TORO_PORT; 0 = any free port)\n"
               "  --host ADDR        listen address (default 127.0.0.1, env TORO_HOST)\n"
               "  --node NAME        this instance's name for routing notifications (default host:port)\n"
               "  --auth, --jwt-*, --rate-limit, ...   gateway options as in `toro serve --help`;\n"
               "                     every instance needs the same TORO_JWT_SECRET\n"
               "  --tls-cert F --tls-key F   serve https and wss (PEM files; env TORO_TLS_CERT/KEY)\n"
               "  --kb FILE          knowledge-base snapshot, only to report its version (env TORO_KB)\n"
               "  --embedder SPEC, --min-relevance X\n"
               "                     checked against the snapshot at start (answers come from the workers)\n"
               "  --log-level LEVEL  debug|info|warn|error (env TORO_LOG_LEVEL)\n");
}

/* After a NATS outage, put back the rows of this api's sockets. */
static void resync_connections(void *gw) { toro_gateway_resync_connections(gw); }

int toro_cmd_api(int argc, char **argv)
{
    const char *kb_path = getenv("TORO_KB"), *env_port = getenv("TORO_PORT");
    long port;
    toro_gateway_config_t gcfg;
    toro_gateway_config_defaults(&gcfg);
    gcfg.host = getenv("TORO_HOST") && *getenv("TORO_HOST") ? getenv("TORO_HOST") : "127.0.0.1";
    if (env_port && *env_port) {
        if (toro_parse_long(env_port, 0, 65535, &port) != 0) {
            fprintf(stderr, "toro api: TORO_PORT needs an integer from 0 to 65535, not '%s'\n", env_port);
            return 2;
        }
        gcfg.port = (int)port;
    }
    toro_dist_t dist;
    toro_dist_defaults(&dist);
    const char *lvl = getenv("TORO_LOG_LEVEL");
    toro_kb_opts_t kopts = {0};
    const toro_opt_t opts[] = {
        {"--store", NULL, TORO_OPT_STR, &dist.store_url, "URL", 0, 0, NULL},
        {"--bus", NULL, TORO_OPT_STR, &dist.bus_url, "URL", 0, 0, NULL},
        {"--kb", NULL, TORO_OPT_STR, &kb_path, "FILE", 0, 0, NULL},
        TORO_KB_OPTS_ROWS(&kopts),
        {"--log-level", NULL, TORO_OPT_STR, &lvl, "LEVEL", 0, 0, NULL},
        {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
    };
    const toro_cmd_t cmd = {.name = "toro api", .usage = api_usage, .opts = opts,
                            .extra = toro_cli_gateway_option, .extra_ud = &gcfg};
    int prc = toro_cli_parse(&cmd, argc - 1, argv + 1, NULL);
    if (prc != TORO_CLI_OK)
        return prc == TORO_CLI_HELP ? 0 : 2;
    if (toro_cli_log_level("toro api", "--log-level", lvl && *lvl ? lvl : NULL))
        return 2;
    if (toro_gateway_config_finish(&gcfg) != 0)
        return 2;
    if (gcfg.auth_mode == TORO_AUTH_DEV && gcfg.auth.dev_key_random) /* nodes cannot share a random key */
        toro_log_warn("api", NULL,
                      "no shared secret (TORO_DEV_SECRET in development mode, --jwt-secret-file FILE or "
                      "TORO_JWT_SECRET in jwt mode): this api signs tokens with a random key of its own, so other "
                      "api nodes reject the tokens it issues and it rejects theirs; give every api node the same secret");
    const char *node = gcfg.node;

    int status = 1;
    char *err = NULL, *kb_version = NULL, node_buf[256];
    toro_gateway_t *gw = NULL;
    if (kb_path && *kb_path) {
        toro_kb_t *kb = NULL;
        if (toro_kb_open(kb_path, &kb, &err) != 0) {
            toro_cli_print_err("toro api", err, "cannot open the knowledge base");
            free(err);
            return 1;
        }
        toro_embedder_t *emb = NULL;
        if ((kopts.embedder || kopts.min_relevance) && toro_kb_opts_apply(&kopts, kb, &emb, &err) != 0) {
            fprintf(stderr, "toro api: knowledge base %s: %s\n", kb_path, err ? err : "unknown error");
            free(err);
            toro_kb_close(kb);
            return 1;
        }
        kb_version = strdup(toro_kb_version(kb));
        toro_kb_close(kb);
        toro_embedder_free(emb);
    }
    int orc = toro_dist_open(&dist, "toro api");
    if (orc) {
        free(kb_version);
        return orc;
    }
    toro_stage_ctx_t ctx;
    toro_stage_ctx_defaults(&ctx);
    ctx.store = dist.store;
    ctx.bus = dist.bus;
    gcfg.kb_version = kb_version;
    if (toro_gateway_new(&gcfg, &ctx, &gw, &err) != 0) {
        fprintf(stderr, "toro api: %s\n", err ? err : "cannot start the gateway");
        goto out;
    }
    if (!node) {
        snprintf(node_buf, sizeof node_buf, "%s:%d", gcfg.host, toro_gateway_port(gw));
        node = node_buf;
    }
    if (toro_bus_nats_serve_node(dist.bus, node, toro_gateway_post, gw) != 0) {
        fprintf(stderr, "toro api: cannot subscribe to notifications for node %s\n", node);
        goto out;
    }
    toro_bus_nats_on_reconnect(dist.bus, resync_connections, gw);
    toro_log_info("api", NULL, "toro api on http://%s:%d (node %s, store %s, bus %s)", gcfg.host,
                  toro_gateway_port(gw), node, dist.store_url, dist.bus_url);
    toro_gateway_config_announce(&gcfg);
    printf("listening on %s://%s:%d\n", toro_gateway_tls(gw) ? "https" : "http", gcfg.host, toro_gateway_port(gw));
    fflush(stdout);
    status = toro_gateway_run_until_signal(gw) == 0 ? 0 : 1;
    toro_log_info("api", NULL, "stopped");
out:
    /* the bus first: its NATS thread may still be posting into the gateway;
     * then the gateway, whose open sockets delete their rows from the store;
     * then the store */
    toro_relay_stop(dist.relay);
    dist.relay = NULL;
    toro_bus_close(dist.bus);
    dist.bus = NULL;
    toro_gateway_free(gw);
    toro_dist_close(&dist);
    free(kb_version);
    free(err);
    return status;
}

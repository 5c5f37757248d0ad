/* api_cmd.c: `toro api`, the API Gateway box of the distributed mode: REST,
 * WebSocket and web UI on one port over PostgreSQL and NATS, with no stage
 * workers. It keeps no state but its open sockets, so any number run behind
 * a TCP load balancer. Notifications for its sockets arrive as NATS requests
 * on <prefix>.gw.<node> and are posted to the local gateway; an outbox relay
 * thread publishes the events its ingest commits. SIGINT/SIGTERM stop it:
 * the gateway stops, the relay and the NATS subscription end, exit 0. The
 * wiring (options, backends, shutdown) is cli/wiring.c. */
#include <stdio.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/wiring.h"
#include "core/log.h"

static void api_usage(FILE *f)
{
    fprintf(f, "usage: toro api [options]\n"
               "  --store URL        postgres://HOST:PORT/DB (env TORO_STORE)\n"
               "  --bus URL          nats://HOST:PORT[?prefix=NAME] (env TORO_BUS, default nats://127.0.0.1:4222)\n"
               "                     (sqlite:// and local are refused: they belong to one `toro serve` process)\n"
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

int toro_cmd_api(int argc, char **argv)
{
    toro_wiring_t w;
    int rc = toro_wiring_setup(&w, TORO_ROLE_API, "toro api", api_usage, argc - 1, argv + 1);
    if (rc >= 0)
        return rc;
    toro_node_t n;
    int status = toro_node_open(&n, &w);
    if (status == 0) {
        toro_log_info("api", NULL, "toro api on http://%s:%d (node %s, store %s, bus %s)", w.gcfg.host,
                      toro_gateway_port(n.gw), n.node, w.store_url, w.bus_url);
        toro_node_announce(&n);
        status = toro_node_run(&n);
    }
    toro_node_close(&n);
    return status;
}

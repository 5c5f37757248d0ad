/* serve_cmd.c: `toro serve`, the whole system in one process: the gateway
 * (REST, WebSocket, web UI) on one port, process and notify workers as
 * threads and the knowledge-base snapshot. By default on embedded backends
 * (SQLite store and local bus in DIR/toro.db); with --store postgres://…
 * --bus nats://… the same process is one node of a distributed deployment
 * (outbox relay included). SIGINT/SIGTERM stop it cleanly: the gateway stops
 * accepting, each worker finishes the message in hand, and whatever is still
 * queued stays durable for the next start. The wiring is cli/wiring.c. */
#include <stdio.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/wiring.h"
#include "core/kbinfo.h"
#include "core/log.h"

static void serve_usage(FILE *f)
{
    fprintf(f, "usage: toro serve [options]\n"
               "  --port N              listen port (default 8080, env TORO_PORT; 0 = any free port)\n"
               "  --host ADDR           listen address (default 127.0.0.1, env TORO_HOST)\n"
               "  --data DIR            data directory for toro.db (default ./data, env TORO_DATA);\n"
               "                        the same as --store sqlite://DIR/toro.db\n"
               "  --store URL           sqlite://PATH (embedded, the default) or postgres://HOST:PORT/DB\n"
               "  --bus URL             local (the default with sqlite://) or nats://HOST:PORT[?prefix=NAME]\n"
               "                        (the default with postgres://: env TORO_BUS, else nats://127.0.0.1:4222);\n"
               "                        postgres:// + nats:// make this process one node of a cluster\n"
               "  --kb FILE             knowledge-base snapshot (env TORO_KB; build with `toro kb build`);\n"
               "                        SIGHUP or POST /admin/kb/reload re-reads it while serving\n"
               "  --kb-watch SECONDS    also re-read --kb when the file there changes (checked every\n"
               "                        SECONDS; default 0 = off)\n"
               "  --embedder SPEC       query embedder: e5, e5:FILE, openai+http://HOST:PORT/v1?model=M, none\n"
               "                        (default: e5 when built in and the snapshot has its vectors, else none)\n"
               "  --min-relevance X     relevance threshold 0..1 for found_relevant_docs (default 0.5)\n"
               "  --process-workers N   process stage threads (default 2)\n"
               "  --notify-workers N    notify stage threads (default 1)\n"
               "  --worker-nice N       nice increment of the process stage threads, 0-19 (default 10):\n"
               "                        under overload the HTTP loop gets the CPU first\n"
               "  --max-attempts N      answerer attempts before a question is marked error (default 3)\n"
               "  --retry-base-ms N     first retry delay, doubled per attempt (default 200)\n"
               "  --max-deliveries N    deliveries before an event is dead-lettered (default 10)\n"
               "  --sync normal|full    SQLite durability: normal survives process crashes (default),\n"
               "                        full also survives power loss (fsync per commit)\n"
               "  --node NAME           gateway node name (default host:port)\n"
               "  --auth dev|jwt|none   dev (default on loopback without a JWT secret): bearer tokens from\n"
               "                        POST /auth/dev-login, signed with its own key (or TORO_DEV_SECRET);\n"
               "                        jwt (default elsewhere, or with a secret): HS256 tokens signed with it;\n"
               "                        none: no authentication (reference behaviour, not for real users)\n"
               "  --jwt-secret-file F   HS256 secret (or env TORO_JWT_SECRET), 32-256 bytes\n"
               "  --jwt-issuer ISS      required iss claim (env TORO_JWT_ISSUER)\n"
               "  --jwt-audience AUD    required aud claim (env TORO_JWT_AUDIENCE)\n"
               "  --rate-limit N        questions asked per user per minute (default 120; 0 = unlimited)\n"
               "  --read-rate-limit N   history reads per user and dev-logins per address per minute\n"
               "                        (default 600; 0 = unlimited)\n"
               "  --max-ws-per-user N   concurrent WebSockets per user (default 10)\n"
               "  --max-connections N   open sockets per process (default 20000)\n"
               "  --max-body BYTES      request body limit (default 65536)\n"
               "  --header-timeout-ms N a request must arrive within N ms of its first byte (default 10000)\n"
               "  --idle-timeout-ms N   idle keep-alive connections are closed after N ms (default 75000)\n"
               "  --send-timeout-ms N   a client that reads none of its responses for N ms is closed (default 30000)\n"
               "  --cors-origins LIST   comma-separated origins allowed to call the API cross-origin\n"
               "  --allowed-hosts LIST  Host names accepted (421 otherwise; * = any); default on loopback:\n"
               "                        localhost, the bind address and the hosts of --cors-origins\n"
               "  --tls-cert FILE       serve https and wss with this PEM certificate chain (env TORO_TLS_CERT)\n"
               "  --tls-key FILE        the certificate's unencrypted PEM private key (env TORO_TLS_KEY)\n"
               "  --answerer NAME       extractive|openai|bedrock|bedrock-kb (default extractive, env\n"
               "                        TORO_ANSWERER; an unconfigured provider falls back to extractive)\n"
               "  --log-level LEVEL     debug|info|warn|error (default info, env TORO_LOG_LEVEL)\n");
}

int toro_cmd_serve(int argc, char **argv)
{
    toro_wiring_t w;
    int rc = toro_wiring_setup(&w, TORO_ROLE_SERVE, "toro serve", serve_usage, argc - 1, argv + 1);
    if (rc >= 0)
        return rc;
    toro_node_t n;
    int status = toro_node_open(&n, &w);
    if (status == 0 && toro_node_start_workers(&n) != 0)
        status = 1;
    if (status == 0) {
        char kbv[128];
        toro_kbinfo_get(kbv, sizeof kbv);
        toro_log_info("serve", NULL,
                      "toro serving on http://%s:%d (store %s, bus %s, kb %s version %s, %ld process + %ld notify "
                      "workers)",
                      w.gcfg.host, toro_gateway_port(n.gw), w.store_url, w.bus_url, w.kb_path,
                      kbv, w.n_process, w.n_notify);
        toro_node_announce(&n);
        status = toro_node_run(&n);
    }
    toro_node_close(&n);
    return status;
}

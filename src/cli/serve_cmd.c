/* serve_cmd.c: `toro serve`, the whole system in one process on embedded
 * defaults: SQLite store and local bus in DIR/toro.db, the knowledge-base
 * snapshot, process and notify workers as threads, and the gateway (REST,
 * WebSocket, web UI) on one port. SIGINT/SIGTERM stop it cleanly: the
 * gateway stops accepting, each worker finishes the message in hand, and
 * whatever is still queued stays durable for the next start. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "answer/answer.h"
#include "answer/factory.h"
#include "answer/faulty.h"
#include "bus/bus.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/kb_opts.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "gateway/gateway.h"
#include "kb/kb.h"
#include "stages/stages.h"
#include "store/store.h"

#define MAX_WORKERS 64

static void serve_usage(FILE *f)
{
    fprintf(f, "usage: toro serve [options]\n"
               "  --port N              listen port (default 8080, env TORO_PORT; 0 = any free port)\n"
               "  --host ADDR           listen address (default 127.0.0.1, env TORO_HOST)\n"
               "  --data DIR            data directory for toro.db (default ./data, env TORO_DATA)\n"
               "  --kb FILE             knowledge-base snapshot (env TORO_KB; build with `toro kb build`)\n"
               "  --embedder SPEC       query embedder: e5, e5:FILE, openai+http://HOST:PORT/v1?model=M, none\n"
               "                        (default: e5 when built in and the snapshot has its vectors, else none)\n"
               "  --min-relevance X     relevance threshold 0..1 for found_relevant_docs (default 0.5)\n"
               "  --process-workers N   process stage threads (default 2)\n"
               "  --notify-workers N    notify stage threads (default 1)\n"
               "  --max-attempts N      answerer attempts before a question is marked error (default 3)\n"
               "  --retry-base-ms N     first retry delay, doubled per attempt (default 200)\n"
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

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

int toro_cmd_serve(int argc, char **argv)
{
    const char *data = env_or("TORO_DATA", "data"), *kb_path = env_or("TORO_KB", NULL);
    const char *sync_name = "normal";
    const char *answerer_name = NULL; /* NULL: $TORO_ANSWERER or extractive */
    long n_process = 2, n_notify = 1, max_attempts = 3, retry_base = 200;
    toro_gateway_config_t gcfg;
    toro_gateway_config_defaults(&gcfg);
    gcfg.host = env_or("TORO_HOST", "127.0.0.1");
    long env_port;
    if (getenv("TORO_PORT")) {
        if (toro_parse_long(getenv("TORO_PORT"), 0, 65535, &env_port) != 0) {
            fprintf(stderr, "toro serve: TORO_PORT needs an integer from 0 to 65535, not '%s'\n", getenv("TORO_PORT"));
            return 2;
        }
        gcfg.port = (int)env_port;
    }
    toro_kb_opts_t kopts = {0};
    toro_embedder_t *embedder = NULL; /* attached to kb; freed after it */
    const char *lvl = env_or("TORO_LOG_LEVEL", NULL);
    const toro_opt_t opts[] = {
        {"--data", NULL, TORO_OPT_STR, &data, "DIR", 0, 0, NULL},
        {"--kb", NULL, TORO_OPT_STR, &kb_path, "FILE", 0, 0, NULL},
        TORO_KB_OPTS_ROWS(&kopts),
        {"--process-workers", NULL, TORO_OPT_LONG, &n_process, "N", 1, MAX_WORKERS, NULL},
        {"--notify-workers", NULL, TORO_OPT_LONG, &n_notify, "N", 1, MAX_WORKERS, NULL},
        {"--max-attempts", NULL, TORO_OPT_LONG, &max_attempts, "N", 1, 100, NULL},
        {"--retry-base-ms", NULL, TORO_OPT_LONG, &retry_base, "MS", 1, 600000, NULL},
        {"--sync", NULL, TORO_OPT_CHOICE, &sync_name, "MODE", 0, 0, "normal|full"},
        {"--answerer", NULL, TORO_OPT_STR, &answerer_name, "NAME", 0, 0, NULL},
        {"--log-level", NULL, TORO_OPT_STR, &lvl, "LEVEL", 0, 0, NULL},
        {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
    };
    const toro_cmd_t cmd = {.name = "toro serve", .usage = serve_usage, .opts = opts,
                            .extra = toro_cli_gateway_option, .extra_ud = &gcfg};
    int prc = toro_cli_parse(&cmd, argc - 1, argv + 1, NULL);
    if (prc != TORO_CLI_OK)
        return prc == TORO_CLI_HELP ? 0 : 2;
    if (toro_cli_log_level("toro serve", "--log-level", lvl))
        return 2;
    if (toro_gateway_config_finish(&gcfg) != 0)
        return 2;
    if (!kb_path)
        return toro_cli_fail("toro serve", "missing --kb FILE (build one with: toro kb build kb/docs -o kb.toro)");

    int status = 1, lock_fd = -1, started_process = 0, started_notify = 0;
    char *err = NULL;
    toro_kb_t *kb = NULL;
    toro_store_t *store = NULL;
    toro_bus_t *bus = NULL;
    toro_answerer_t *answerer = NULL;
    toro_gateway_t *gw = NULL;
    pthread_t threads[2 * MAX_WORKERS];
    toro_worker_t workers[2];
    atomic_int stop = 0;
    char path[4096];

    if (mkdir(data, 0750) != 0 && errno != EEXIST) {
        fprintf(stderr, "toro serve: cannot create data directory %s: %s\n", data, strerror(errno));
        goto out;
    }
    if (toro_cli_check_dir("toro serve", data))
        goto out;
    snprintf(path, sizeof path, "%s/toro.lock", data);
    lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (lock_fd < 0) { /* say what is wrong: only a held lock means another process */
        int e = errno;
        fprintf(stderr, "toro serve: cannot use data directory %s: %s\n", data,
                e == ENOTDIR ? "it is not a directory"
                : e == EROFS ? "it is on a read-only file system"
                : e == EACCES || e == EPERM ? "it is not writable by this user (permission denied)"
                             : strerror(e));
        goto out;
    }
    if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "toro serve: data directory %s is in use by another toro process (%s)\n", data,
                errno == EWOULDBLOCK ? "its toro.lock is held" : strerror(errno));
        goto out;
    }
    if (toro_kb_opts_open(kb_path, &kopts, &kb, &embedder, &err) != 0) {
        toro_cli_print_err("toro serve", err, "cannot open the knowledge base");
        goto out;
    }
    snprintf(path, sizeof path, "%s/toro.db", data);
    toro_db_sync_t sync = strcmp(sync_name, "full") == 0 ? TORO_DB_SYNC_FULL : TORO_DB_SYNC_NORMAL;
    if (toro_store_sqlite_open(path, sync, &store, &err) != 0 || toro_bus_local_open(toro_store_outbox(store), 60000, &bus, &err) != 0) {
        fprintf(stderr, "toro serve: %s\n", err ? err : "cannot open the data file");
        goto out;
    }
    if (toro_answerer_create(answerer_name, kb, &answerer, &err) != 0) {
        fprintf(stderr, "toro serve: %s\n", err ? err : "cannot create the answerer");
        goto out;
    }
    const char *fault = getenv("TORO_FAULT_ANSWERER");
    if (fault && *fault) {
        toro_answerer_t *wrapped = NULL;
        if (toro_answerer_faulty_new(answerer, fault, &wrapped) != 0) {
            fprintf(stderr, "toro serve: TORO_FAULT_ANSWERER: bad spec '%s' (KIND:N:MARKER;...)\n", fault);
            goto out;
        }
        answerer = wrapped;
        toro_log_warn("serve", NULL, "fault injection is on (TORO_FAULT_ANSWERER=%s); for tests only", fault);
    }

    toro_stage_ctx_t ctx;
    toro_stage_ctx_defaults(&ctx);
    ctx.store = store;
    ctx.bus = bus;
    ctx.answerer = answerer;
    ctx.max_attempts = (int)max_attempts;
    ctx.backoff_base_ms = (int)retry_base;

    gcfg.kb_version = toro_kb_version(kb);
    if (toro_gateway_new(&gcfg, &ctx, &gw, &err) != 0) {
        fprintf(stderr, "toro serve: %s\n", err ? err : "cannot start the gateway");
        goto out;
    }
    ctx.post = toro_gateway_post;
    ctx.post_ctx = gw;

    workers[0] = (toro_worker_t){.ctx = &ctx, .topic = TORO_TOPIC_PROCESS, .stop = &stop};
    workers[1] = (toro_worker_t){.ctx = &ctx, .topic = TORO_TOPIC_NOTIFY, .stop = &stop};
    for (; started_process < n_process; started_process++)
        if (pthread_create(&threads[started_process], NULL, toro_worker_main, &workers[0]) != 0)
            goto stop_workers;
    for (; started_notify < n_notify; started_notify++)
        if (pthread_create(&threads[MAX_WORKERS + started_notify], NULL, toro_worker_main, &workers[1]) != 0)
            goto stop_workers;

    toro_log_info("serve", NULL, "toro serving on http://%s:%d (data %s, kb %s version %s, %ld process + %ld notify workers)",
                  gcfg.host, toro_gateway_port(gw), data, kb_path, toro_kb_version(kb), n_process, n_notify);
    toro_gateway_config_announce(&gcfg);
    /* a parseable line on stdout for scripts that start us on port 0 */
    printf("listening on %s://%s:%d\n", toro_gateway_tls(gw) ? "https" : "http", gcfg.host, toro_gateway_port(gw));
    fflush(stdout);
    status = toro_gateway_run_until_signal(gw) == 0 ? 0 : 1;
    toro_log_info("serve", NULL, "shutting down: finishing messages in hand");

stop_workers:
    atomic_store(&stop, 1);
    toro_bus_interrupt(bus);
    for (int i = 0; i < started_process; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < started_notify; i++)
        pthread_join(threads[MAX_WORKERS + i], NULL);
    toro_log_info("serve", NULL, "stopped");
out:
    toro_gateway_free(gw);
    toro_answerer_free(answerer);
    toro_bus_close(bus);
    toro_store_close(store);
    toro_kb_close(kb);
    toro_embedder_free(embedder);
    free(err);
    if (lock_fd >= 0)
        close(lock_fd);
    return status;
}

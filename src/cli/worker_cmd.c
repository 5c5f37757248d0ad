/* worker_cmd.c: `toro worker process|notify`, one stage of the distributed
 * mode as its own process (the Lambdas of the reference): N worker threads
 * fetch the stage's JetStream consumer, the store is PostgreSQL, and an
 * outbox relay thread publishes the events this process commits. A process
 * worker opens the knowledge-base snapshot; a notify worker routes each
 * update to the `toro api` holding the socket through NATS. Losing
 * PostgreSQL or NATS never ends the process: fetches and writes fail, the
 * optional --health-port answers 503, and work resumes when they return.
 *
 * Also here: the helpers `toro api` shares (options, opening the store, bus
 * and relay, the health answer). SIGINT/SIGTERM: each thread finishes the
 * message in hand, the relay stops, exit 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "answer/answer.h"
#include "answer/faulty.h"
#include "bus/relay.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/kb_opts.h"
#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "kb/kb.h"
#include "stages/stages.h"

#if defined(__has_include)
#if __has_include("answer/factory.h")
#include "answer/factory.h"
#define HAVE_ANSWER_FACTORY 1
#endif
#endif

#define MAX_CONCURRENCY 64

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

void toro_dist_defaults(toro_dist_t *d)
{
    memset(d, 0, sizeof *d);
    d->store_url = env_or("TORO_STORE", NULL);
    d->bus_url = env_or("TORO_BUS", "nats://127.0.0.1:4222");
}

int toro_dist_open(toro_dist_t *d, const char *cmd)
{
    char *err = NULL;
    if (!d->store_url || (strncmp(d->store_url, "postgres://", 11) != 0 &&
                          strncmp(d->store_url, "postgresql://", 13) != 0)) {
        fprintf(stderr, "%s: --store postgres://HOST:PORT/DB is required (or env TORO_STORE)\n", cmd);
        return 2;
    }
    if (strncmp(d->bus_url, "nats://", 7) != 0) {
        fprintf(stderr, "%s: --bus nats://HOST:PORT is required (or env TORO_BUS)\n", cmd);
        return 2;
    }
    if (toro_store_postgres_open(d->store_url, &d->store, &err) != 0 ||
        toro_bus_nats_open(d->bus_url, &d->bus, &err) != 0 ||
        toro_relay_start(toro_store_outbox(d->store), d->bus, &d->relay, &err) != 0) {
        fprintf(stderr, "%s: %s\n", cmd, err ? err : "cannot open the store or the bus");
        free(err);
        toro_dist_close(d);
        return 1;
    }
    if (d->store->ops->ping(d->store) != 0)
        toro_log_warn(cmd, NULL, "PostgreSQL is not reachable (or `toro db migrate` has not run); retrying");
    return 0;
}

void toro_dist_close(toro_dist_t *d)
{
    toro_relay_stop(d->relay);
    d->relay = NULL;
    toro_bus_close(d->bus);
    d->bus = NULL;
    toro_store_close(d->store);
    d->store = NULL;
}

int toro_dist_health(toro_dist_t *d, char *buf, size_t cap)
{
    long depth = 0;
    bool store_ok = d->store->ops->ping(d->store) == 0;
    bool bus_ok = toro_bus_depth(d->bus, TORO_TOPIC_PROCESS, &depth) == 0;
    bool ok = store_ok && bus_ok;
    snprintf(buf, cap, "{\"success\":%s,\"data\":{\"status\":\"%s\",\"store\":\"%s\",\"bus\":\"%s\"}}",
             ok ? "true" : "false", ok ? "ok" : "unhealthy", store_ok ? "ok" : "unreachable",
             bus_ok ? "ok" : "unreachable");
    return ok ? 200 : 503;
}

/* A minimal HTTP responder for GET /healthz and GET /metrics of a worker (no
 * gateway here): the stage, answerer and refusal figures of a distributed
 * deployment live in the worker processes and are scraped from here. */
typedef struct health_srv {
    toro_dist_t *dist;
    int fd;
    atomic_int *stop;
} health_srv_t;

#define HEALTH_METRICS_CAP (64 * 1024)

/* Writes the whole of buf to the client socket (blocking; the worker's
 * health port serves one scraper at a time). */
static void send_all(int c, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = send(c, buf, len, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        buf += w;
        len -= (size_t)w;
    }
}

/* Answers one request line: /healthz (JSON), /metrics (Prometheus text), 404. */
static void health_answer(health_srv_t *h, int c, const char *req)
{
    char small[256], head[256];
    char *body = small;
    const char *type = "application/json";
    int status = 404;
    snprintf(small, sizeof small, "{\"success\":false,\"error\":\"not found\",\"code\":\"not_found\"}");
    if (strncmp(req, "GET /healthz", 12) == 0) {
        status = toro_dist_health(h->dist, small, sizeof small);
    } else if (strncmp(req, "GET /metrics", 12) == 0 && (req[12] == ' ' || req[12] == '?')) {
        char *buf = malloc(HEALTH_METRICS_CAP);
        long len = buf ? toro_metrics_render(buf, HEALTH_METRICS_CAP) : -1;
        if (len >= 0) {
            body = buf;
            status = 200;
            type = "text/plain; version=0.0.4; charset=utf-8";
        } else {
            free(buf);
            status = 500;
            snprintf(small, sizeof small,
                     "{\"success\":false,\"error\":\"metrics do not fit\",\"code\":\"internal_error\"}");
        }
    }
    size_t blen = strlen(body);
    int len = snprintf(head, sizeof head,
                       "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                       status,
                       status == 200   ? "OK"
                       : status == 503 ? "Service Unavailable"
                       : status == 500 ? "Internal Server Error"
                                       : "Not Found",
                       type, blen);
    if (len > 0 && (size_t)len < sizeof head) {
        send_all(c, head, (size_t)len);
        send_all(c, body, blen);
    }
    if (body != small)
        free(body);
}

static void *health_main(void *arg)
{
    health_srv_t *h = arg;
    while (!atomic_load(h->stop)) {
        struct pollfd p = {.fd = h->fd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0)
            continue;
        int c = accept(h->fd, NULL, NULL);
        if (c < 0)
            continue;
        struct timeval tv = {.tv_sec = 2};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        char req[1024];
        ssize_t n = recv(c, req, sizeof req - 1, 0);
        if (n > 0) {
            req[n] = '\0';
            health_answer(h, c, req);
        }
        close(c);
    }
    return NULL;
}

static int listen_on(const char *host, int port, int *out_port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 16) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    socklen_t alen = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &alen);
    *out_port = ntohs(addr.sin_port);
    return fd;
}

static void worker_usage(FILE *f)
{
    fprintf(f, "usage: toro worker process|notify [options]\n"
               "  --store URL          postgres://HOST:PORT/DB (env TORO_STORE)\n"
               "  --bus URL            nats://HOST:PORT[?prefix=NAME&ack_wait_ms=N] (env TORO_BUS)\n"
               "  --kb FILE            knowledge-base snapshot (process workers; env TORO_KB)\n"
               "  --embedder SPEC      query embedder: e5, e5:FILE, openai+http://HOST:PORT/v1?model=M, none\n"
               "                       (default: e5 when built in and the snapshot has its vectors, else none)\n"
               "  --min-relevance X    relevance threshold 0..1 for found_relevant_docs (default 0.5)\n"
               "  --concurrency N      worker threads (default 2)\n"
               "  --max-attempts N     answerer attempts before a question is marked error (default 3)\n"
               "  --retry-base-ms N    first retry delay, doubled per attempt (default 200)\n"
               "  --max-deliveries N   deliveries before an event is dead-lettered (default 10)\n"
               "  --health-port N      serve GET /healthz and GET /metrics on 127.0.0.1:N (0 = any free port;\n"
               "                       default off)\n"
               "  --log-level LEVEL    debug|info|warn|error (env TORO_LOG_LEVEL)\n");
}

int toro_cmd_worker(int argc, char **argv)
{
    if (argc < 2 || toro_cli_is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        if (argc < 2)
            fprintf(stderr, "toro worker: missing stage (process or notify)\n");
        worker_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "process") != 0 && strcmp(argv[1], "notify") != 0)
        return toro_cli_fail("toro worker", "unknown stage '%s' (process or notify)", argv[1]);
    bool is_process = strcmp(argv[1], "process") == 0;
    const char *name = is_process ? "toro worker process" : "toro worker notify";
    const char *kb_path = env_or("TORO_KB", NULL), *lvl = env_or("TORO_LOG_LEVEL", NULL);
    long concurrency = 2, max_attempts = 3, retry_base = 200, max_deliveries = 10, health_port = -1;
    toro_dist_t dist;
    toro_dist_defaults(&dist);
    toro_kb_opts_t kopts = {0};
    toro_embedder_t *embedder = NULL; /* attached to kb; freed after it */
    const toro_opt_t opts[] = {
        {"--store", NULL, TORO_OPT_STR, &dist.store_url, "URL", 0, 0, NULL},
        {"--bus", NULL, TORO_OPT_STR, &dist.bus_url, "URL", 0, 0, NULL},
        {"--kb", NULL, TORO_OPT_STR, &kb_path, "FILE", 0, 0, NULL},
        TORO_KB_OPTS_ROWS(&kopts),
        {"--concurrency", NULL, TORO_OPT_LONG, &concurrency, "N", 1, MAX_CONCURRENCY, NULL},
        {"--max-attempts", NULL, TORO_OPT_LONG, &max_attempts, "N", 1, 100, NULL},
        {"--retry-base-ms", NULL, TORO_OPT_LONG, &retry_base, "MS", 1, 600000, NULL},
        {"--max-deliveries", NULL, TORO_OPT_LONG, &max_deliveries, "N", 1, 1000, NULL},
        {"--health-port", NULL, TORO_OPT_LONG, &health_port, "PORT", 0, 65535, NULL},
        {"--log-level", NULL, TORO_OPT_STR, &lvl, "LEVEL", 0, 0, NULL},
        {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
    };
    const toro_cmd_t cmd = {.name = name, .usage = worker_usage, .opts = opts};
    int prc = toro_cli_parse(&cmd, argc - 2, argv + 2, NULL);
    if (prc != TORO_CLI_OK)
        return prc == TORO_CLI_HELP ? 0 : 2;
    if (toro_cli_log_level(name, "--log-level", lvl))
        return 2;
    if (is_process && !kb_path)
        return toro_cli_fail(name, "missing --kb FILE (the knowledge-base snapshot; or env TORO_KB)");

    /* Signals are taken by sigwait in this thread only: block them before
     * any thread (NATS, relay, workers) is created so they inherit the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int status = 1, started = 0, health_fd = -1, bound = 0;
    bool health_started = false;
    char *err = NULL;
    toro_kb_t *kb = NULL;
    toro_answerer_t *answerer = NULL;
    pthread_t threads[MAX_CONCURRENCY], health_thread;
    atomic_int stop = 0;
    health_srv_t hs = {.dist = &dist, .stop = &stop};

    if (is_process && toro_kb_opts_open(kb_path, &kopts, &kb, &embedder, &err) != 0) {
        toro_cli_print_err(name, err, "cannot open the knowledge base");
        goto out;
    }
    if (is_process) {
#ifdef HAVE_ANSWER_FACTORY
        char *aerr = NULL;
        if (toro_answerer_create(NULL, kb, &answerer, &aerr) != 0) {
            fprintf(stderr, "toro worker: cannot create the answerer: %s\n", aerr ? aerr : "unknown error");
            free(aerr);
            goto out;
        }
        free(aerr);
#else
        if (toro_answerer_extractive_new(kb, &answerer) != 0) {
            fprintf(stderr, "toro worker: cannot create the answerer\n");
            goto out;
        }
#endif
        const char *fault = getenv("TORO_FAULT_ANSWERER");
        if (fault && *fault) {
            toro_answerer_t *wrapped = NULL;
            if (toro_answerer_faulty_new(answerer, fault, &wrapped) != 0) {
                fprintf(stderr, "toro worker: TORO_FAULT_ANSWERER: bad spec '%s'\n", fault);
                goto out;
            }
            answerer = wrapped;
            toro_log_warn("worker", NULL, "fault injection is on (TORO_FAULT_ANSWERER=%s); for tests only", fault);
        }
    }
    int orc = toro_dist_open(&dist, "toro worker");
    if (orc) {
        status = orc;
        goto out;
    }
    if (health_port >= 0) {
        health_fd = listen_on("127.0.0.1", (int)health_port, &bound);
        if (health_fd < 0) {
            fprintf(stderr, "toro worker: cannot listen on 127.0.0.1:%ld: %s\n", health_port, strerror(errno));
            goto out;
        }
        hs.fd = health_fd;
        if (pthread_create(&health_thread, NULL, health_main, &hs) != 0)
            goto out;
        health_started = true;
    }

    toro_stage_ctx_t ctx;
    toro_stage_ctx_defaults(&ctx);
    ctx.store = dist.store;
    ctx.bus = dist.bus;
    ctx.answerer = answerer;
    ctx.max_attempts = (int)max_attempts;
    ctx.backoff_base_ms = (int)retry_base;
    ctx.max_deliveries = (int)max_deliveries;
    ctx.post = toro_bus_nats_post;
    ctx.post_ctx = dist.bus;
    toro_worker_t w = {.ctx = &ctx, .topic = is_process ? TORO_TOPIC_PROCESS : TORO_TOPIC_NOTIFY, .stop = &stop};
    for (; started < concurrency; started++)
        if (pthread_create(&threads[started], NULL, toro_worker_main, &w) != 0)
            break;
    toro_log_info("worker", NULL, "%s worker running with %d threads (store %s, bus %s)", argv[1], started,
                  dist.store_url, dist.bus_url);
    if (health_started)
        printf("health on http://127.0.0.1:%d/healthz\n", bound);
    printf("worker %s ready\n", argv[1]);
    fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    toro_log_info("worker", NULL, "signal %d: finishing messages in hand", sig);
    atomic_store(&stop, 1);
    toro_bus_interrupt(dist.bus);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    status = started == concurrency ? 0 : 1;
out:
    atomic_store(&stop, 1);
    if (health_started)
        pthread_join(health_thread, NULL);
    if (health_fd >= 0)
        close(health_fd);
    toro_dist_close(&dist);
    toro_answerer_free(answerer);
    toro_kb_close(kb);
    toro_embedder_free(embedder);
    free(err);
    toro_log_info("worker", NULL, "stopped");
    return status;
}

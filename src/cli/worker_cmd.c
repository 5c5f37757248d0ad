/* worker_cmd.c: `toro worker process|notify`, one stage of the distributed
 * mode as its own process (the Lambdas of the reference): N worker threads
 * fetch the stage's JetStream consumer, the store is PostgreSQL, and an
 * outbox relay thread publishes the events this process commits. A process
 * worker opens the knowledge-base snapshot; a notify worker routes each
 * update to the `toro api` holding the socket through NATS. Losing
 * PostgreSQL or NATS never ends the process: fetches and writes fail, the
 * optional --health-port answers 503, and work resumes when they return.
 * The wiring (options, backends, shutdown) is cli/wiring.c; here is only
 * the worker's own health port. SIGINT/SIGTERM: each thread finishes the
 * message in hand, the relay stops, exit 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/wiring.h"
#include "core/log.h"
#include "core/kbinfo.h"
#include "core/metrics.h"

/* A minimal HTTP responder for GET /healthz and GET /metrics of a worker (no
 * gateway here): the stage, answerer and refusal figures of a distributed
 * deployment live in the worker processes and are scraped from here. */
typedef struct health_srv {
    toro_node_t *node; /* borrowed: its store, bus and stop flag */
    int fd;            /* listening socket; -1 = off */
    pthread_t thread;
    bool started;
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
        status = toro_node_health(h->node, small, sizeof small);
    } else if (strncmp(req, "GET /metrics", 12) == 0 && (req[12] == ' ' || req[12] == '?')) {
        char *buf = malloc(HEALTH_METRICS_CAP);
        long len = buf ? toro_metrics_render(buf, HEALTH_METRICS_CAP) : -1;
        long more = len >= 0 ? toro_kbinfo_render(buf + len, HEALTH_METRICS_CAP - (size_t)len) : -1;
        len = more < 0 ? -1 : len + more;
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
    while (!atomic_load(&h->node->stop)) {
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
               "  --bus URL            nats://HOST:PORT[?prefix=NAME&ack_wait_ms=N] (env TORO_BUS, default\n"
               "                       nats://127.0.0.1:4222; sqlite:// and local are refused: a worker in\n"
               "                       another process than the gateway needs PostgreSQL and NATS)\n"
               "  --kb FILE            knowledge-base snapshot (process workers; env TORO_KB); SIGHUP\n"
               "                       re-reads it (questions in flight finish on the old one)\n"
               "  --kb-watch SECONDS   also re-read --kb when the file there changes (checked every\n"
               "                       SECONDS; for a snapshot moved into a shared path; default 0 = off)\n"
               "  --embedder SPEC      query embedder: e5, e5:FILE, openai+http://HOST:PORT/v1?model=M, none\n"
               "                       (default: e5 when built in and the snapshot has its vectors, else none)\n"
               "  --min-relevance X    relevance threshold 0..1 for found_relevant_docs (default 0.5)\n"
               "  --concurrency N      worker threads (default 2)\n"
               "  --answerer NAME      extractive|openai|bedrock|bedrock-kb (process; env TORO_ANSWERER)\n"
               "  --max-attempts N     answerer attempts before a question is marked error (default 3)\n"
               "  --retry-base-ms N    first retry delay, doubled per attempt (default 200)\n"
               "  --max-deliveries N   deliveries before an event is dead-lettered (default 10)\n"
               "  --health-port N      serve GET /healthz and GET /metrics on 127.0.0.1:N (0 = any free port;\n"
               "                       default off)\n"
               "  --log-level LEVEL    debug|info|warn|error (env TORO_LOG_LEVEL)\n");
}

/* Starts the health port when --health-port asked for one. Returns 0 or 1
 * (message printed). */
static int health_start(health_srv_t *h, toro_node_t *n, long port, int *bound)
{
    h->node = n;
    h->fd = -1;
    if (port < 0)
        return 0;
    h->fd = listen_on("127.0.0.1", (int)port, bound);
    if (h->fd < 0) {
        fprintf(stderr, "%s: cannot listen on 127.0.0.1:%ld: %s\n", n->w->cmd, port, strerror(errno));
        return 1;
    }
    if (pthread_create(&h->thread, NULL, health_main, h) != 0)
        return 1;
    h->started = true;
    return 0;
}

/* Ends the health thread (the node's stop flag is set) and its socket. */
static void health_stop(health_srv_t *h)
{
    if (!h->node)
        return;
    toro_node_stop(h->node);
    if (h->started)
        pthread_join(h->thread, NULL);
    if (h->fd >= 0)
        close(h->fd);
    h->started = false;
    h->fd = -1;
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
    toro_wiring_t w;
    int rc = toro_wiring_setup(&w, is_process ? TORO_ROLE_PROCESS : TORO_ROLE_NOTIFY,
                               is_process ? "toro worker process" : "toro worker notify", worker_usage, argc - 2,
                               argv + 2);
    if (rc >= 0)
        return rc;
    toro_node_t n;
    health_srv_t hs = {.fd = -1};
    int bound = 0, status = toro_node_open(&n, &w);
    if (status == 0)
        status = health_start(&hs, &n, w.health_port, &bound);
    if (status == 0) {
        int failed = toro_node_start_workers(&n);
        toro_log_info("worker", NULL, "%s worker running with %d threads (store %s, bus %s)", argv[1], n.n_threads,
                      w.store_url, w.bus_url);
        if (hs.started)
            printf("health on http://127.0.0.1:%d/healthz\n", bound);
        printf("worker %s ready\n", argv[1]);
        fflush(stdout);
        status = toro_node_run(&n) == 0 && !failed ? 0 : 1;
    }
    health_stop(&hs);
    toro_node_close(&n);
    return status;
}

/* accept.c: the listening socket (see accept.h). */
#define _GNU_SOURCE /* accept4: the gateway is Linux-only (epoll) */
#include "gateway/accept.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"

#define BUSY_BODY "{\"success\":false,\"error\":\"too many open connections\",\"code\":\"unavailable\"}"
_Static_assert(sizeof BUSY_BODY - 1 == 74, "the Content-Length below is the body's length");
static const char busy_503[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                               "Content-Length: 74\r\nConnection: close\r\nRetry-After: 1\r\n\r\n" BUSY_BODY;

/* Refuses a client we cannot serve: a 503 in plain text (a TLS client would
 * read garbage, so it only sees the close), best effort, then closes. */
static void refuse_busy(gw_listener_t *l, int fd)
{
    if (!l->conns->tls) {
        ssize_t w = send(fd, busy_503, sizeof busy_503 - 1, MSG_NOSIGNAL);
        (void)w;
    }
    close(fd);
}

/* Out of descriptors (EMFILE/ENFILE): the level-triggered listening socket
 * would stay readable and spin the loop. Give up the reserve descriptor to
 * accept one waiting client and answer it 503, then stop polling the
 * listening socket for a back-off (100 ms doubling to 2 s while it lasts);
 * the other clients wait in the kernel's backlog meanwhile. */
static void accept_backoff(gw_listener_t *l, int err)
{
    if (l->reserve_fd >= 0) {
        close(l->reserve_fd);
        l->reserve_fd = -1;
        int fd = accept4(l->watch.fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            refuse_busy(l, fd);
        l->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    l->backoff_ms = l->backoff_ms ? l->backoff_ms * 2 : 100;
    if (l->backoff_ms > 2000)
        l->backoff_ms = 2000;
    gw_loop_timer_at(l->conns->loop, l->timer, toro_mono_ms() + l->backoff_ms);
    gw_loop_modify(l->conns->loop, &l->watch, 0);
    toro_log_ratelimited(TORO_LOG_WARN, "gateway", "accept-emfile",
                         "cannot accept connections: %s (%d open); pausing accept for %d ms", strerror(err),
                         l->conns->n, l->backoff_ms);
}

/* The accept back-off is over: poll the listening socket again. */
static void accept_resume(void *data)
{
    gw_listener_t *l = data;
    gw_loop_modify(l->conns->loop, &l->watch, GW_LOOP_READ);
}

static void on_accept(gw_watch_t *w, unsigned ready)
{
    (void)ready;
    gw_listener_t *l = w->data;
    for (;;) {
        struct sockaddr_in peer;
        socklen_t plen = sizeof peer;
        int fd = accept4(w->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                accept_backoff(l, errno);
            else if (errno != EAGAIN && errno != EWOULDBLOCK)
                toro_log_ratelimited(TORO_LOG_WARN, "gateway", "accept", "accept failed: %s", strerror(errno));
            return;
        }
        l->backoff_ms = 0;
        if (l->conns->n >= l->max_connections) {
            refuse_busy(l, fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char ip[48];
        if (!inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip))
            snprintf(ip, sizeof ip, "unknown");
        if (!gw_conn_adopt(l->conns, fd, ip))
            close(fd);
    }
}

int gw_listener_open(gw_listener_t *l, gw_conns_t *conns, const char *host, int port, int *bound, char *msg,
                     size_t cap)
{
    l->conns = conns;
    l->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        snprintf(msg, cap, "invalid listen address '%s' (an IPv4 address is expected)", host);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    l->watch.fd = fd;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 1024) != 0) {
        snprintf(msg, cap, "cannot listen on %s:%d: %s", host, port, strerror(errno));
        return -1;
    }
    socklen_t alen = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &alen);
    *bound = ntohs(addr.sin_port);
    l->timer = gw_loop_timer(conns->loop, 0, 0, accept_resume, l);
    if (l->timer < 0 || gw_loop_add(conns->loop, &l->watch, fd, GW_LOOP_READ, on_accept, l) != 0) {
        snprintf(msg, cap, "cannot create event loop: %s", strerror(errno));
        return -1;
    }
    return 0;
}

void gw_listener_close(gw_listener_t *l)
{
    if (l->watch.fd >= 0)
        close(l->watch.fd);
    if (l->reserve_fd >= 0)
        close(l->reserve_fd);
    l->watch.fd = l->reserve_fd = -1;
}

int gw_fit_open_files(int max_connections)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return max_connections;
    rlim_t was = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = was;
    }
    long limit = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1000000 ? 1000000 : (long)rl.rlim_cur;
    long reserve = limit >= 256 ? 64 : limit / 2;
    int fitted = max_connections;
    if (max_connections > limit - reserve)
        fitted = limit - reserve > 1 ? (int)(limit - reserve) : 1;
    toro_log_info("gateway", NULL, "open files limit %ld (soft was %ld, hard %ld); max connections %d%s", limit,
                  (long)(was == RLIM_INFINITY ? -1 : (long)was),
                  (long)(rl.rlim_max == RLIM_INFINITY ? -1 : (long)rl.rlim_max), fitted,
                  max_connections != fitted ? " (clamped to the limit minus a reserve of descriptors)" : "");
    return fitted;
}

/* ws_client.c: the WebSocket capacity client of bench/run.sh, in C so that
 * the client's own cost does not dominate the delivery time (a Python asyncio
 * client reads only ~10k frames/s). Opens N WebSockets to one server (one at a
 * time: connect, upgrade, wait for the "registered" frame), measures the
 * server's VmRSS (/proc/PID/status) before and after, then triggers one update
 * to every socket and times its arrival on each socket (epoll, one thread).
 *   toro:     POST /questions as the sockets' user; the update is the frame
 *             that contains "completed" (the "processing" update comes first)
 *   baseline: sends the text frame "fire" on socket 0; the server broadcasts
 * usage: ws_client PORT SERVER_PID N toro|baseline [TOKEN]
 * Prints one JSON line. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static long rss_kb(int pid)
{
    char p[64], line[256];
    snprintf(p, sizeof p, "/proc/%d/status", pid);
    FILE *f = fopen(p, "r");
    long v = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            v = atol(line + 6);
    if (f)
        fclose(f);
    return v;
}

static int tcp(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (int i = 0; i < 50; i++) {
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
            return fd;
        if (errno != ECONNREFUSED && errno != EAGAIN && errno != ETIMEDOUT)
            break;
        usleep(20000);
    }
    perror("connect");
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: ws_client PORT SERVER_PID N toro|baseline [TOKEN]\n");
        return 2;
    }
    int port = atoi(argv[1]), pid = atoi(argv[2]), n = atoi(argv[3]);
    int toro = !strcmp(argv[4], "toro");
    const char *token = argc > 5 ? argv[5] : "x";
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    int *fds = calloc((size_t)n, sizeof(int));
    double *got = calloc((size_t)n, sizeof(double));
    char (*tail)[16] = calloc((size_t)n, 16);
    long rss0 = rss_kb(pid);
    char req[4096], buf[65536];
    int rl_len = snprintf(req, sizeof req,
                          "GET /ws?access_token=%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n", token, port);
    double t0 = now();
    for (int i = 0; i < n; i++) {
        fds[i] = tcp(port);
        if (write(fds[i], req, (size_t)rl_len) != rl_len) {
            perror("write");
            return 1;
        }
        size_t have = 0;
        for (;;) {
            ssize_t r = read(fds[i], buf + have, sizeof buf - 1 - have);
            if (r <= 0) {
                fprintf(stderr, "ws_client: connection %d closed during handshake: %.*s\n", i, (int)have, buf);
                return 1;
            }
            have += (size_t)r;
            buf[have] = 0;
            if (strncmp(buf, "HTTP/1.1 101", 12) != 0 && have >= 12) {
                fprintf(stderr, "ws_client: upgrade refused: %.200s\n", buf);
                return 1;
            }
            if (memmem(buf, have, "registered", 10))
                break;
        }
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
    }
    double connect_s = now() - t0;
    sleep(1);
    long rss1 = rss_kb(pid);
    int ep = epoll_create1(0);
    for (int i = 0; i < n; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    double t_send = now(), t_202 = 0;
    int pfd = -1;
    if (toro) {
        const char *body = "{\"question\":\"Qual o limite de garantia do FGC?\"}";
        pfd = tcp(port);
        int l = snprintf(req, sizeof req,
                         "POST /questions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         "Authorization: Bearer %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                         token, strlen(body), body);
        t_send = now();
        if (write(pfd, req, (size_t)l) != l)
            return 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)n};
        fcntl(pfd, F_SETFL, O_NONBLOCK);
        epoll_ctl(ep, EPOLL_CTL_ADD, pfd, &ev);
    } else {
        unsigned char fr[10] = {0x81, 0x84, 1, 2, 3, 4, 'f' ^ 1, 'i' ^ 2, 'r' ^ 3, 'e' ^ 4};
        t_send = now();
        if (write(fds[0], fr, sizeof fr) != sizeof fr)
            return 1;
    }
    int done = 0;
    struct epoll_event evs[512];
    while (done < n && now() - t_send < 60) {
        int k = epoll_wait(ep, evs, 512, 1000);
        for (int e = 0; e < k; e++) {
            uint32_t i = evs[e].data.u32;
            if ((int)i == n) { /* the POST's response */
                ssize_t r;
                while ((r = read(pfd, buf, sizeof buf)) > 0)
                    if (!t_202 && memmem(buf, (size_t)r, " 202 ", 5))
                        t_202 = now();
                if (r == 0) {
                    epoll_ctl(ep, EPOLL_CTL_DEL, pfd, NULL);
                    close(pfd);
                }
                continue;
            }
            ssize_t r;
            while ((r = read(fds[i], buf + 15, sizeof buf - 15)) > 0) {
                if (got[i])
                    continue;
                memcpy(buf, tail[i], 15); /* carry 15 bytes over read boundaries */
                if (memmem(buf, (size_t)r + 15, "completed", 9)) {
                    got[i] = now();
                    done++;
                }
                memcpy(tail[i], buf + r, 15); /* the last 15 of the 15 + r bytes */
            }
        }
    }
    long rss2 = rss_kb(pid);
    double first = 0, last = 0;
    for (int i = 0; i < n; i++)
        if (got[i]) {
            if (!first || got[i] < first)
                first = got[i];
            if (got[i] > last)
                last = got[i];
        }
    printf("{\"mode\": \"%s\", \"client\": \"c\", \"connections\": %d, \"connect_s\": %.2f, \"rss_before_mb\": %.1f, "
           "\"rss_after_mb\": %.1f, \"rss_per_conn_kb\": %.2f, \"rss_after_update_mb\": %.1f, \"delivered\": %d, ",
           argv[4], n, connect_s, rss0 / 1024.0, rss1 / 1024.0, (double)(rss1 - rss0) / n, rss2 / 1024.0, done);
    if (t_202)
        printf("\"post_202_ms\": %.2f, ", (t_202 - t_send) * 1000);
    if (done)
        printf("\"post_to_first_ms\": %.2f, \"deliver_all_ms\": %.2f, \"first_to_last_ms\": %.2f}\n",
               (first - t_send) * 1000, (last - t_send) * 1000, (last - first) * 1000);
    else
        printf("\"deliver_all_ms\": null}\n");
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return 0;
}

/* fuzz_gateway.c: libFuzzer harness for the gateway's byte handling: HTTP/1.1
 * parsing and routing (REST handlers on a real SQLite store) and the
 * WebSocket frame parser and message handler after a valid upgrade. Output
 * goes to a socketpair. The first input byte chooses the mode:
 *   bit 0  upgrade to WebSocket first
 *   bit 1  never read: the peer reads nothing and the socket buffer is small,
 *          so output backs up past the budget and input must pause
 *   bit 2  partial reads: input arrives in pieces whose sizes the input
 *          chooses, and the peer reads only part of the output between them
 *   bit 3  half-close after the input (shutdown(SHUT_WR) of a client)
 * Between pieces the harness runs what the event loop would: the group
 * commit, then the flush and the input that waited for the budget. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus/bus.h"
#include "core/log.h"
#include "gateway/server.h"
#include "store/store.h"

static toro_gateway_t *gw;
static gw_conns_t *cs; /* the gateway's sockets */
static toro_stage_ctx_t ctx;
static char upgrade[1024];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    toro_log_set_level(TORO_LOG_ERROR);
    char dir[] = "/tmp/toro-fuzz-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    char path[128];
    snprintf(path, sizeof path, "%s/toro.db", dir);
    toro_store_t *store;
    toro_bus_t *bus;
    char *err = NULL;
    if (toro_store_sqlite_open(path, TORO_DB_SYNC_NORMAL, &store, &err) || toro_bus_local_open(toro_store_outbox(store), 1000, &bus, &err))
        abort();
    toro_stage_ctx_defaults(&ctx);
    ctx.store = store;
    ctx.bus = bus;
    toro_gateway_config_t cfg;
    toro_gateway_config_defaults(&cfg);
    cfg.port = 0;
    cfg.auth_mode = TORO_AUTH_DEV;
    memcpy(cfg.auth.secret, "fuzz-secret-0123456789abcdefghijklmnop", 38);
    cfg.auth.secret_len = 38;
    cfg.user_rate_per_min = 0;
    if (toro_gateway_new(&cfg, &ctx, &gw, &err))
        abort();
    cs = gw_server_conns(gw);
    char *tok = toro_auth_issue(&cfg.auth, "fuzzer", 4000000000LL - 100, 50);
    snprintf(upgrade, sizeof upgrade,
             "GET /ws?access_token=%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
             tok);
    free(tok);
    return 0;
}

/* Reads (and discards) up to max bytes of output, as a slow peer would. */
static void drain(int fd, size_t max)
{
    char buf[65536];
    while (max > 0) {
        ssize_t n = read(fd, buf, max < sizeof buf ? max : sizeof buf);
        if (n <= 0)
            break;
        max -= (size_t)n;
    }
}

/* Feeds bytes until all are taken, pumping between pauses (bounded). */
static int feed_all(gw_conn_t *c, const char *p, size_t n, int peer, int never_read)
{
    for (int round = 0; n > 0 && round < 64; round++) {
        long took = gw_conn_feed(cs, c, p, n);
        if (took < 0)
            return -1;
        p += took;
        n -= (size_t)took;
        if (!never_read)
            drain(peer, (size_t)-1);
        if (!gw_server_pump(gw, c))
            return -2; /* closed and freed by the gateway */
        if (never_read && took == 0)
            return 0; /* paused for good: the peer never reads; the rest stays unsent */
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int mode = data[0], split = data[1];
    data += 2;
    size -= 2;
    int never_read = mode & 2, partial = mode & 4, half_close = mode & 8;
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) != 0)
        return 0;
    int sz = never_read ? 4096 : 1 << 20;
    setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    gw_conn_t *c = gw_conn_adopt(cs, fds[0], "127.0.0.1");
    if (!c) {
        close(fds[0]);
        close(fds[1]);
        return 0;
    }
    int rc = 0;
    if (mode & 1)
        rc = feed_all(c, upgrade, strlen(upgrade), fds[1], 0);
    /* pieces: two split where the input says, or many of input-chosen sizes */
    size_t off = 0;
    for (int piece = 0; rc == 0 && off < size && piece < 256; piece++) {
        size_t n = size - off;
        if (!partial && piece == 0)
            n = split % (size + 1);
        else if (partial)
            n = 1 + (size_t)((split * (piece + 7)) % 97);
        if (n > size - off)
            n = size - off;
        rc = feed_all(c, (const char *)data + off, n, fds[1], never_read);
        off += n;
        if (partial && !never_read)
            drain(fds[1], (size_t)(split + 1) * 64); /* a peer that reads slowly */
    }
    if (rc == 0 && half_close) {
        if (!gw_conn_feed_eof(cs, c))
            rc = -2;
        for (int round = 0; rc == 0 && !never_read && round < 64; round++) {
            drain(fds[1], (size_t)-1); /* a half-closed client still gets its answers */
            if (!gw_server_pump(gw, c))
                rc = -2; /* all answered: the gateway closed it */
        }
    }
    if (rc != -2)
        gw_conn_close(cs, c); /* closes fds[0] */
    close(fds[1]);
    return 0;
}

/* harness.h: a connection set for the gateway's layer tests: a real loop,
 * a real gw_conns_t and one end of a socketpair adopted as a client, the
 * other end read by the test; ops the test chooses. Shared by test_http.c
 * and test_ws.c. */
#ifndef TORO_TEST_GATEWAY_HARNESS_H
#define TORO_TEST_GATEWAY_HARNESS_H

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "gateway/client.h"
#include "gateway/conn.h"
#include "gateway/config.h"

typedef struct harness {
    gw_loop_t *loop;
    toro_gateway_config_t cfg;
    gw_conns_t cs;
    gw_client_t *cl;   /* the adopted end, NULL once closed */
    int peer;          /* the test's end */
    char out[65536];   /* what the peer read so far */
    size_t out_len;
} harness_t;

static void harness_on_close(void *owner, gw_conn_t *c)
{
    harness_t *h = owner;
    if (h->cl == gw_client_of(c)) {
        free(h->cl->frag);
        free(h->cl->user_id);
        h->cl = NULL;
    }
}
static void harness_noop(void *owner, gw_conn_t *c) { (void)owner, (void)c; }
static void harness_tick(void *owner, gw_conn_t *c, int64_t now) { (void)owner, (void)c, (void)now; }

/* ops: on_open and on_input are the test's (their owner is h); on_close
 * forgets the client. */
static inline void harness_open(harness_t *h, gw_conn_ops_t *ops)
{
    toro_log_set_level(TORO_LOG_ERROR);
    memset(h, 0, sizeof *h);
    toro_gateway_config_defaults(&h->cfg);
    if (gw_loop_new(&h->loop) != 0)
        abort();
    ops->on_close = harness_on_close;
    ops->on_stalled = harness_noop;
    ops->tick = harness_tick;
    h->cs = (gw_conns_t){.loop = h->loop, .cfg = &h->cfg, .ops = ops, .owner = h, .conn_size = sizeof(gw_client_t)};
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) != 0)
        abort();
    h->peer = fds[1];
    h->cl = gw_client_of(gw_conn_adopt(&h->cs, fds[0], "127.0.0.1"));
    if (!h->cl)
        abort();
}

static inline void harness_close(harness_t *h)
{
    gw_conns_close_all(&h->cs);
    close(h->peer);
    gw_loop_free(h->loop);
}

/* Feeds bytes as if read from the socket; returns gw_conn_feed's result. */
static inline long harness_feed(harness_t *h, const void *data, size_t len)
{
    return gw_conn_feed(&h->cs, &h->cl->conn, data, len);
}

/* Reads what the server sent since the last call (appended to h->out, NUL-terminated). */
static inline size_t harness_read(harness_t *h)
{
    size_t before = h->out_len;
    for (;;) {
        ssize_t n = read(h->peer, h->out + h->out_len, sizeof h->out - 1 - h->out_len);
        if (n <= 0)
            break;
        h->out_len += (size_t)n;
    }
    h->out[h->out_len] = '\0';
    return h->out_len - before;
}

#endif

/* conn.h: the gateway's connection layer: one record per socket with its
 * input and output buffers, plain or TLS reads and writes, the output
 * budget (back-pressure: past cfg->max_output unsent bytes a socket's input
 * is neither parsed nor read), the send timeout, the half-close of a client
 * and the lingering close. It knows no protocol: what the input means is
 * the upper layers' (gw_conn_ops_t), who extend the record (gw_client_t in
 * client.h has a gw_conn_t as its first member). Loop thread only. */
#ifndef TORO_GATEWAY_CONN_H
#define TORO_GATEWAY_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"
#include "gateway/loop.h"
#include "gateway/tls.h"

typedef struct gw_conn {
    gw_watch_t watch;         /* registration in the loop; watch.fd is the socket */
    struct gw_conns *cs;      /* the set it belongs to */
    char *rbuf;               /* bytes read and not yet consumed */
    size_t rlen, rcap;        /* rcap grows up to rmax */
    size_t rmax;              /* input cap the upper layer sets (a request head + body, a frame) */
    char *wbuf;               /* bytes queued for the socket */
    size_t wlen, woff, wcap;
    int64_t opened_ms;        /* monotonic */
    int64_t request_started_ms; /* first byte of the current request (or the TLS handshake), 0 = idle */
    int64_t last_read_ms;
    int64_t last_progress_ms; /* last time the socket took output bytes, or unsent went from 0 to >0 */
    int64_t over_since_ms;    /* unsent passed the output budget at this time; 0 = within budget */
    bool want_write;          /* write interest wanted (unsent bytes the socket did not take) */
    bool half_close_ok;       /* the protocol answers after the client's FIN (HTTP); else a FIN closes */
    bool peer_eof;            /* the client half-closed (FIN read): answer what it sent, then close */
    bool waiting;             /* an upper layer holds the input (a request waits for the group commit) */
    bool closing;             /* close once wbuf is flushed */
    bool lingering;           /* FIN sent; input drained until the peer closes (gw_conn_finish) */
    int64_t linger_until;     /* monotonic deadline of the lingering close */
    gw_tls_t *ssl;            /* TLS session (owned), NULL on a plain-TCP gateway */
    bool tls_read_wants_write; /* the last read (handshake) needs the socket writable */
    bool tls_write_wants_read; /* the last write needs the socket readable */
    char peer[48];            /* client IP address */
    struct gw_conn *prev, *next; /* every socket of the set */
} gw_conn_t;

/* What the upper layers do with a socket; owner is gw_conns_t.owner. */
typedef struct gw_conn_ops {
    /* c was just adopted (zeroed beyond gw_conn_t): set rmax and what the protocol keeps. */
    void (*on_open)(void *owner, gw_conn_t *c);
    /* Consume what c->rbuf holds (as much as the output budget allows):
     * 0, or -1 when c must close now (the caller closes it). */
    int (*on_input)(void *owner, gw_conn_t *c);
    /* c is being closed: release what the upper layers hold for it. c and
     * its socket are still valid; nothing may be written. */
    void (*on_close)(void *owner, gw_conn_t *c);
    /* c is about to be closed for output that made no progress (send timeout). */
    void (*on_stalled)(void *owner, gw_conn_t *c);
    /* Once a second for each socket neither lingering nor stalled: the
     * protocol's own timeouts. May close c. */
    void (*tick)(void *owner, gw_conn_t *c, int64_t now_ms);
} gw_conn_ops_t;

/* Every socket of a gateway and what they share. The owner fills the
 * first six fields; list and n belong to conn.c. */
typedef struct gw_conns {
    gw_loop_t *loop;
    const toro_gateway_config_t *cfg; /* max_output, send_timeout_ms */
    gw_tls_ctx_t *tls;        /* every socket speaks TLS when set (borrowed) */
    const gw_conn_ops_t *ops;
    void *owner;
    size_t conn_size;         /* bytes of each record (>= sizeof(gw_conn_t)), zeroed at adoption */
    gw_conn_t *list;
    int n;
} gw_conns_t;

/* Why: the accept path and the fuzz harness make a connection of an fd:
 * watched for input, TLS session started when cs->tls is set. NULL when
 * out of memory or the loop refuses the fd (the caller still owns fd). */
gw_conn_t *gw_conn_adopt(gw_conns_t *cs, int fd, const char *peer);
/* Calls ops->on_close, stops watching, closes the socket, frees c. */
void gw_conn_close(gw_conns_t *cs, gw_conn_t *c);
/* Closes every socket (gateway shutdown). */
void gw_conns_close_all(gw_conns_t *cs);
/* Whether c is still one of cs's sockets (the fuzz harness's "still open?"). */
bool gw_conn_listed(const gw_conns_t *cs, const gw_conn_t *c);

/* Bytes queued and not yet taken by the socket. */
static inline size_t gw_conn_unsent(const gw_conn_t *c) { return c->wlen - c->woff; }
/* Why: one output budget for HTTP and WebSocket alike: while a socket holds
 * more unsent bytes than cfg->max_output its input is not parsed (nor read),
 * so a client that does not read its responses cannot grow the server. */
bool gw_conn_over_budget(const gw_conns_t *cs, const gw_conn_t *c);
/* Whether the socket's input is read now (see conn.c). */
bool gw_conn_wants_input(const gw_conns_t *cs, const gw_conn_t *c);
/* Registers the interest c's state asks for (after waiting or budget changes). */
void gw_conn_rearm(gw_conns_t *cs, gw_conn_t *c);
/* Sets whether c waits for writability, and rearms. */
void gw_conn_want_write(gw_conns_t *cs, gw_conn_t *c, bool want);
/* Whether the TLS handshake of c is still under way. */
bool gw_conn_handshaking(const gw_conn_t *c);

/* Queues data and sends what the socket takes now. 0, or -1 when the peer
 * is gone or memory ran out (the caller closes c; data may be partly queued). */
int gw_conn_write(gw_conns_t *cs, gw_conn_t *c, const char *data, size_t len);
/* Sends what the socket takes now; -1 when the peer is gone. */
int gw_conn_flush(gw_conns_t *cs, gw_conn_t *c);

/* The end of a socket we chose to close: FIN, then input drained for 2 s
 * (plain TCP) or an immediate close (TLS). Returns whether c is still open. */
bool gw_conn_finish(gw_conns_t *cs, gw_conn_t *c);
/* After output drained or a commit answered: closes a socket that is done.
 * Returns whether c is still open. */
bool gw_conn_settle(gw_conns_t *cs, gw_conn_t *c);
/* Output drained or a commit answered: parses the input that waited, and
 * with TLS reads what OpenSSL holds. Returns whether c is still open (false
 * also when c may have been closed: do not touch it again). */
bool gw_conn_resume(gw_conns_t *cs, gw_conn_t *c);

/* Once a second: lingering closes that expired, stalled output, then ops->tick. */
void gw_conns_sweep(gw_conns_t *cs);

/* conn_read.c */
/* Reads what the socket holds (plain or TLS) and hands it to ops->on_input. May close c. */
void gw_conn_on_readable(gw_conns_t *cs, gw_conn_t *c);
/* Why: the fuzz harness feeds bytes as if read from the socket. Returns the
 * bytes taken (fewer than len while the socket's input is paused: output
 * over budget, a commit pending, half-closed), or -1 when the connection
 * must be dropped (gw_conn_close). */
long gw_conn_feed(gw_conns_t *cs, gw_conn_t *c, const char *data, size_t len);
/* Why: the fuzz harness's half-close: what a read of EOF does. Returns
 * whether c is still open. */
bool gw_conn_feed_eof(gw_conns_t *cs, gw_conn_t *c);

#endif

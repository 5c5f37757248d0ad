/* conn_read.c: the connection layer's input: recv or SSL_read into the
 * socket's buffer (bounded by c->rmax), then ops->on_input; the client's
 * half-close; a plain HTTP request on the TLS port (see conn.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/util.h"
#include "gateway/conn.h"

/* Makes room for more input: false when the peer already sent more than any
 * valid request or message could hold. */
static bool grow_rbuf(gw_conn_t *c, size_t want)
{
    size_t limit = c->rmax;
    if (c->rlen + want <= c->rcap)
        return true;
    if (c->rlen + 1 > limit)
        return false;
    size_t ncap = c->rcap ? c->rcap : 4096;
    while (ncap < c->rlen + want && ncap < limit)
        ncap *= 2;
    if (ncap > limit)
        ncap = limit;
    char *nb = realloc(c->rbuf, ncap);
    if (!nb)
        return false;
    c->rbuf = nb;
    c->rcap = ncap;
    return true;
}

/* Handles bytes just appended to c->rbuf. -1: close the connection now;
 * 1: all said after a close decision, finish gracefully. */
static int after_read(gw_conns_t *cs, gw_conn_t *c)
{
    c->last_read_ms = toro_mono_ms();
    if (c->closing)
        c->rlen = 0; /* discard input after a close decision */
    else if (cs->ops->on_input(cs->owner, c) != 0)
        return -1;
    return c->closing && c->woff == c->wlen ? 1 : 0;
}

long gw_conn_feed(gw_conns_t *cs, gw_conn_t *c, const char *data, size_t len)
{
    size_t taken = 0;
    while (len > 0) {
        if (!gw_conn_wants_input(cs, c))
            return (long)taken; /* paused, as gw_conn_on_readable would be */
        if (!grow_rbuf(c, 1))
            return -1;
        size_t n = c->rcap - c->rlen < len ? c->rcap - c->rlen : len;
        memcpy(c->rbuf + c->rlen, data, n);
        c->rlen += n;
        data += n;
        len -= n;
        taken += n;
        if (after_read(cs, c) != 0)
            return -1;
    }
    return (long)taken;
}

/* The client sent FIN. A protocol that answers after it (HTTP: shutdown
 * (SHUT_WR) after its requests) still sends the responses to what was sent,
 * then the socket closes; otherwise the socket closes now. Returns whether
 * c is still open. */
static bool on_eof(gw_conns_t *cs, gw_conn_t *c)
{
    if (!c->half_close_ok || c->lingering || c->closing) {
        gw_conn_close(cs, c);
        return false;
    }
    c->peer_eof = true;
    gw_conn_rearm(cs, c);
    return gw_conn_settle(cs, c);
}

bool gw_conn_feed_eof(gw_conns_t *cs, gw_conn_t *c) { return on_eof(cs, c); }

/* A plain HTTP request reached the TLS port: answer in plain HTTP (as
 * nginx does) so the client sees why, then drain what it sent so the close
 * does not reset the connection before the answer is read. Best effort. */
static void refuse_plaintext(int fd)
{
    static const char body[] = "{\"success\":false,\"error\":\"this port speaks HTTPS (TLS); use https://\"}";
    char msg[512];
    int n = snprintf(msg, sizeof msg,
                     "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     sizeof body - 1, body);
    if (n <= 0 || (size_t)n >= sizeof msg || send(fd, msg, (size_t)n, MSG_NOSIGNAL) != n)
        return;
    shutdown(fd, SHUT_WR);
    char sink[4096];
    for (int i = 0; i < 16 && recv(fd, sink, sizeof sink, 0) > 0; i++)
        ;
}

/* One SSL_read's outcome other than bytes: 1 to stop reading for now, 0 after closing c. */
static int tls_read_stop(gw_conns_t *cs, gw_conn_t *c, int n)
{
    if (n == GW_TLS_WANT_READ) {
        if (c->tls_read_wants_write) {
            c->tls_read_wants_write = false;
            if (c->woff == c->wlen)
                gw_conn_want_write(cs, c, false);
        }
        return 1;
    }
    if (n == GW_TLS_WANT_WRITE) {
        c->tls_read_wants_write = true;
        gw_conn_want_write(cs, c, true);
        return 1;
    }
    if (n == GW_TLS_PLAINTEXT)
        refuse_plaintext(c->watch.fd);
    gw_conn_close(cs, c); /* close_notify, EOF or error */
    return 0;
}

/* Whether c may read now and has room for it: false after pausing it (the
 * loop reports the socket again once it may read) or closing it (a peer that
 * sends more than any valid request could hold). fresh: the loop reported
 * the socket readable (not a second pass after a read of ours). A socket
 * whose request waits for the group commit is paused lazily: a client that
 * sends nothing more until its 202 (the usual one) costs no epoll_ctl to
 * pause and resume; one that does is paused when the loop reports it. */
static bool read_room(gw_conns_t *cs, gw_conn_t *c, bool fresh)
{
    if (!gw_conn_wants_input(cs, c)) {
        if (!fresh && c->waiting && !c->peer_eof && !gw_conn_over_budget(cs, c))
            return false;
        gw_conn_rearm(cs, c);
        return false;
    }
    if (!grow_rbuf(c, 1)) {
        gw_conn_close(cs, c);
        return false;
    }
    return true;
}

/* The read path on a TLS socket: SSL_read, which also drives the
 * handshake. It runs until OpenSSL needs the socket, so records already
 * inside OpenSSL (SSL_pending) are consumed before going back to epoll,
 * which would not report them again. */
static void on_readable_tls(gw_conns_t *cs, gw_conn_t *c)
{
    if (c->tls_write_wants_read) { /* a write was waiting for this */
        c->tls_write_wants_read = false;
        if (gw_conn_flush(cs, c) != 0 || (c->closing && c->woff == c->wlen)) {
            gw_conn_close(cs, c);
            return;
        }
    }
    for (bool fresh = true;; fresh = false) {
        if (!read_room(cs, c, fresh))
            return; /* records left inside OpenSSL are read by gw_conn_resume */
        bool handshaking = gw_conn_handshaking(c);
        int n = gw_tls_read(c->ssl, c->rbuf + c->rlen, c->rcap - c->rlen);
        if (handshaking && !gw_conn_handshaking(c))
            c->request_started_ms = 0; /* handshake done: the head timeout now starts at the first byte */
        if (n <= 0) {
            tls_read_stop(cs, c, n);
            return;
        }
        c->rlen += (size_t)n;
        if (after_read(cs, c) != 0) {
            gw_conn_close(cs, c);
            return;
        }
    }
}

void gw_conn_on_readable(gw_conns_t *cs, gw_conn_t *c)
{
    if (c->ssl) {
        on_readable_tls(cs, c);
        return;
    }
    for (bool fresh = true;; fresh = false) {
        if (!read_room(cs, c, fresh))
            return;
        ssize_t n = recv(c->watch.fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
        if (n > 0) {
            c->rlen += (size_t)n;
            if (c->lingering) {
                c->rlen = 0; /* draining before the close */
                continue;
            }
            int r = after_read(cs, c);
            if (r < 0)
                gw_conn_close(cs, c);
            if (r < 0 || (r > 0 && !gw_conn_finish(cs, c)))
                return;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            on_eof(cs, c);
        else if (errno != EAGAIN && errno != EWOULDBLOCK)
            gw_conn_close(cs, c); /* error */
        return;
    }
}

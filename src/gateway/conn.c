/* conn.c: socket records, output (plain send or SSL_write, partial writes,
 * the output budget and the send timeout), the lingering close and the
 * sweep (see conn.h). Reading is conn_read.c; accepting is accept.c. The
 * plain-TCP path does exactly the syscalls it did before TLS existed: TLS
 * branches on c->ssl. */
#include "gateway/conn.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/util.h"

/* The loop's callback for a socket. */
static void on_ready(gw_watch_t *w, unsigned ready)
{
    gw_conn_t *c = w->data;
    gw_conns_t *cs = c->cs;
    if (ready & GW_LOOP_HUP) {
        gw_conn_close(cs, c);
        return;
    }
    if (ready & GW_LOOP_WRITE) {
        bool was_over = gw_conn_over_budget(cs, c);
        if (gw_conn_flush(cs, c) != 0) {
            gw_conn_close(cs, c);
            return;
        }
        if ((was_over || c->peer_eof || c->closing) && !gw_conn_resume(cs, c))
            return;
    }
    /* a TLS handshake read that waited for writability is retried too */
    if ((ready & GW_LOOP_READ) || (c->ssl && c->tls_read_wants_write))
        gw_conn_on_readable(cs, c);
}

gw_conn_t *gw_conn_adopt(gw_conns_t *cs, int fd, const char *peer)
{
    assert(cs->conn_size >= sizeof(gw_conn_t));
    gw_conn_t *c = calloc(1, cs->conn_size);
    if (!c)
        return NULL;
    c->cs = cs;
    c->opened_ms = c->last_read_ms = toro_mono_ms();
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    if (cs->tls) {
        if (!(c->ssl = gw_tls_new(cs->tls, fd))) {
            free(c);
            return NULL;
        }
        c->request_started_ms = c->opened_ms; /* the handshake is bounded like a request head */
    }
    c->last_progress_ms = c->opened_ms;
    if (gw_loop_add(cs->loop, &c->watch, fd, GW_LOOP_READ, on_ready, c) != 0) {
        gw_tls_free(c->ssl);
        free(c);
        return NULL;
    }
    cs->ops->on_open(cs->owner, c);
    assert(c->rmax > 0);
    cs->n++;
    c->next = cs->list;
    if (cs->list)
        cs->list->prev = c;
    cs->list = c;
    return c;
}

void gw_conn_close(gw_conns_t *cs, gw_conn_t *c)
{
    cs->ops->on_close(cs->owner, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        cs->list = c->next;
    if (c->next)
        c->next->prev = c->prev;
    gw_loop_del(cs->loop, &c->watch);
    if (c->ssl)
        gw_tls_free(c->ssl); /* close_notify, best effort; before the fd goes */
    close(c->watch.fd);
    cs->n--;
    free(c->rbuf);
    free(c->wbuf);
    free(c);
}

void gw_conns_close_all(gw_conns_t *cs)
{
    while (cs->list)
        gw_conn_close(cs, cs->list);
}

bool gw_conn_listed(const gw_conns_t *cs, const gw_conn_t *c)
{
    for (const gw_conn_t *x = cs->list; x; x = x->next)
        if (x == c)
            return true;
    return false;
}

bool gw_conn_over_budget(const gw_conns_t *cs, const gw_conn_t *c) { return gw_conn_unsent(c) > cs->cfg->max_output; }

/* Not while a request of it waits for the group commit, nor while its
 * unsent output is over the budget (the client must read first:
 * back-pressure), nor after the client's FIN. A lingering close drains
 * input; a TLS write that needs input keeps reading. */
bool gw_conn_wants_input(const gw_conns_t *cs, const gw_conn_t *c)
{
    if (c->lingering || (c->ssl && c->tls_write_wants_read))
        return true;
    return !c->peer_eof && !c->waiting && !gw_conn_over_budget(cs, c);
}

/* With no interest the loop still reports errors and hangups. */
void gw_conn_rearm(gw_conns_t *cs, gw_conn_t *c)
{
    unsigned want = (gw_conn_wants_input(cs, c) ? GW_LOOP_READ : 0) | (c->want_write ? GW_LOOP_WRITE : 0);
    gw_loop_modify(cs->loop, &c->watch, want);
}

void gw_conn_want_write(gw_conns_t *cs, gw_conn_t *c, bool want)
{
    c->want_write = want;
    gw_conn_rearm(cs, c);
}

bool gw_conn_handshaking(const gw_conn_t *c) { return c->ssl && !gw_tls_ready(c->ssl); }

/* The socket took output bytes: the send timeout starts again, and the
 * over-budget clock stops once the backlog is within the budget. */
static void note_progress(const gw_conns_t *cs, gw_conn_t *c, size_t n)
{
    c->woff += n;
    c->last_progress_ms = toro_mono_ms();
    if (c->over_since_ms && !gw_conn_over_budget(cs, c))
        c->over_since_ms = 0;
}

/* gw_conn_flush on a TLS socket: SSL_write with partial writes. A
 * WANT_WRITE arms write interest; a WANT_READ (the session needs input
 * first) waits for the read path, which retries. Write interest stays
 * armed while a handshake read is waiting for writability. */
static int flush_tls(gw_conns_t *cs, gw_conn_t *c)
{
    while (c->woff < c->wlen) {
        int n = gw_tls_write(c->ssl, c->wbuf + c->woff, c->wlen - c->woff);
        if (n > 0) {
            note_progress(cs, c, (size_t)n);
            continue;
        }
        if (n == GW_TLS_WANT_WRITE) {
            gw_conn_want_write(cs, c, true);
            return 0;
        }
        if (n == GW_TLS_WANT_READ) {
            c->tls_write_wants_read = true;
            gw_conn_want_write(cs, c, c->tls_read_wants_write);
            return 0;
        }
        return -1;
    }
    c->woff = c->wlen = 0;
    gw_conn_want_write(cs, c, c->tls_read_wants_write);
    return 0;
}

int gw_conn_flush(gw_conns_t *cs, gw_conn_t *c)
{
    if (c->ssl)
        return flush_tls(cs, c);
    while (c->woff < c->wlen) {
        ssize_t n = send(c->watch.fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (n > 0) {
            note_progress(cs, c, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            gw_conn_want_write(cs, c, true);
            return 0;
        }
        return -1;
    }
    c->woff = c->wlen = 0;
    gw_conn_want_write(cs, c, false);
    return 0;
}

/* Makes room for len more output bytes: compacts, then grows by doubling. */
static int reserve_output(gw_conn_t *c, size_t len)
{
    size_t unsent = gw_conn_unsent(c);
    if (c->wlen + len <= c->wcap)
        return 0;
    if (c->woff > 0) {
        memmove(c->wbuf, c->wbuf + c->woff, unsent);
        c->wlen = unsent;
        c->woff = 0;
    }
    if (c->wlen + len <= c->wcap)
        return 0;
    size_t ncap = c->wcap ? c->wcap : 4096;
    while (ncap < c->wlen + len)
        ncap *= 2;
    char *nb = realloc(c->wbuf, ncap);
    if (!nb)
        return -1;
    c->wbuf = nb;
    c->wcap = ncap;
    return 0;
}

int gw_conn_write(gw_conns_t *cs, gw_conn_t *c, const char *data, size_t len)
{
    if (c->woff > 0 && c->woff == c->wlen)
        c->woff = c->wlen = 0;
    bool was_empty = gw_conn_unsent(c) == 0;
    if (reserve_output(c, len) != 0)
        return -1;
    if (was_empty)
        c->last_progress_ms = toro_mono_ms(); /* the send timeout counts from the first unsent byte */
    memcpy(c->wbuf + c->wlen, data, len);
    c->wlen += len;
    if (!c->over_since_ms && gw_conn_over_budget(cs, c))
        c->over_since_ms = toro_mono_ms();
    return gw_conn_flush(cs, c);
}

/* Closing at once with unread input makes the kernel answer with a reset,
 * which can destroy our last bytes before the peer reads them: send FIN and
 * keep reading (and discarding) until the peer closes or 2 s pass. TLS
 * sockets close at once (close_notify ends their stream). */
bool gw_conn_finish(gw_conns_t *cs, gw_conn_t *c)
{
    if (c->ssl) {
        gw_conn_close(cs, c);
        return false;
    }
    if (!c->lingering) {
        shutdown(c->watch.fd, SHUT_WR);
        c->lingering = true;
        c->linger_until = toro_mono_ms() + 2000;
        c->rlen = 0;
    }
    return true;
}

/* All said after a close decision: graceful finish; half-closed client
 * with nothing left to answer: close. */
bool gw_conn_settle(gw_conns_t *cs, gw_conn_t *c)
{
    if (c->woff != c->wlen || c->lingering)
        return true;
    if (c->closing)
        return gw_conn_finish(cs, c);
    if (c->peer_eof && !c->waiting) {
        gw_conn_close(cs, c); /* what is left in rbuf is an incomplete request */
        return false;
    }
    return true;
}

bool gw_conn_resume(gw_conns_t *cs, gw_conn_t *c)
{
    if (!c->closing && !c->lingering && !c->waiting && !gw_conn_over_budget(cs, c) && c->rlen > 0) {
        if (cs->ops->on_input(cs->owner, c) != 0) {
            gw_conn_close(cs, c);
            return false;
        }
    }
    gw_conn_rearm(cs, c);
    if (!gw_conn_settle(cs, c))
        return false;
    if (c->ssl && !c->closing && gw_conn_wants_input(cs, c)) {
        gw_conn_on_readable(cs, c); /* records inside OpenSSL: epoll would not report them again */
        return false;               /* may have closed c: the caller does not touch it again */
    }
    return true;
}

void gw_conns_sweep(gw_conns_t *cs)
{
    int64_t now = toro_mono_ms();
    int timeout = cs->cfg->send_timeout_ms;
    gw_conn_t *next;
    for (gw_conn_t *c = cs->list; c; c = next) {
        next = c->next;
        if (c->lingering) {
            if (now > c->linger_until)
                gw_conn_close(cs, c);
            continue;
        }
        if (c->woff < c->wlen &&
            (now - c->last_progress_ms > timeout || (c->over_since_ms && now - c->over_since_ms > timeout))) {
            cs->ops->on_stalled(cs->owner, c);
            gw_conn_close(cs, c);
            continue;
        }
        cs->ops->tick(cs->owner, c, now);
    }
}

/* server.c: the gateway's event loop. Accepts sockets, reads and parses
 * HTTP/1.1 requests (keep-alive and pipelining, Content-Length bodies),
 * upgrades /ws to WebSocket, writes responses without blocking, enforces the
 * head/body/backlog caps and the slow-client and idle timeouts, and delivers
 * messages queued by other threads (toro_gateway_post). With a certificate
 * configured every socket is TLS (tls.c): the same loop reads with SSL_read
 * and writes with SSL_write, branching on c->ssl, so the plain-TCP path does
 * exactly the syscalls it did without TLS. */
#define _GNU_SOURCE /* accept4, memmem: the gateway is Linux-only (epoll) */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/error.h"
#include "core/health.h"
#include "core/log.h"
#include "core/util.h"
#include "gateway/internal.h"

static char listen_tag, wake_tag; /* epoll data pointers of the two special fds */

static unsigned hash_id(const char *s)
{
    unsigned h = 2166136261u;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h % MAP_BUCKETS;
}

void gw_map_add(toro_gateway_t *gw, gw_conn_t *c)
{
    pthread_mutex_lock(&gw->lock);
    unsigned h = hash_id(c->connection_id);
    c->map_next = gw->map[h];
    gw->map[h] = c;
    c->in_map = true;
    pthread_mutex_unlock(&gw->lock);
}

void gw_map_remove(toro_gateway_t *gw, gw_conn_t *c)
{
    if (!c->in_map)
        return;
    pthread_mutex_lock(&gw->lock);
    gw_conn_t **pp = &gw->map[hash_id(c->connection_id)];
    while (*pp && *pp != c)
        pp = &(*pp)->map_next;
    if (*pp)
        *pp = c->map_next;
    c->in_map = false;
    pthread_mutex_unlock(&gw->lock);
}

static gw_conn_t *map_find_locked(toro_gateway_t *gw, const char *id)
{
    for (gw_conn_t *c = gw->map[hash_id(id)]; c; c = c->map_next)
        if (strcmp(c->connection_id, id) == 0)
            return c;
    return NULL;
}

int toro_gateway_resync_connections(toro_gateway_t *gw)
{
    size_t n = 0, cap = 0;
    toro_connection_t *rows = NULL;
    pthread_mutex_lock(&gw->lock);
    for (int b = 0; b < MAP_BUCKETS; b++) {
        for (gw_conn_t *c = gw->map[b]; c; c = c->map_next) {
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                toro_connection_t *nr = realloc(rows, ncap * sizeof *nr);
                if (!nr)
                    break;
                rows = nr;
                cap = ncap;
            }
            /* copies: the loop thread may close c once the lock is released */
            rows[n].connection_id = strdup(c->connection_id);
            rows[n].user_id = strdup(c->user_id);
            rows[n].node = strdup(gw->node);
            rows[n].connected_at = toro_now_ms();
            n++;
        }
    }
    pthread_mutex_unlock(&gw->lock);
    int written = 0;
    for (size_t i = 0; i < n; i++)
        if (rows[i].connection_id && rows[i].user_id && rows[i].node &&
            gw->ctx->store->ops->put_connection(gw->ctx->store, &rows[i]) == 0)
            written++;
    toro_connections_free(rows, n);
    toro_log_info("gateway", NULL, "rewrote %d of %zu connection rows after a reconnect", written, n);
    return written;
}

int toro_gateway_post(void *arg, const char *connection_id, const char *node, const char *message)
{
    toro_gateway_t *gw = arg;
    if (node && strcmp(node, gw->node) != 0)
        return TORO_ENOTFOUND; /* embedded mode: one gateway; a row of another node is stale */
    pending_msg_t *m = calloc(1, sizeof *m);
    if (!m)
        return TORO_ENOMEM;
    snprintf(m->connection_id, sizeof m->connection_id, "%s", connection_id);
    m->text = strdup(message);
    if (!m->text) {
        free(m);
        return TORO_ENOMEM;
    }
    pthread_mutex_lock(&gw->lock);
    if (!map_find_locked(gw, connection_id)) {
        pthread_mutex_unlock(&gw->lock);
        free(m->text);
        free(m);
        return TORO_ENOTFOUND;
    }
    if (gw->pending_tail)
        gw->pending_tail->next = m;
    else
        gw->pending = m;
    gw->pending_tail = m;
    pthread_mutex_unlock(&gw->lock);
    uint64_t one = 1;
    ssize_t w = write(gw->wake_fd, &one, sizeof one);
    (void)w;
    return 0;
}

bool gw_conn_over_budget(const toro_gateway_t *gw, const gw_conn_t *c)
{
    return c->wlen - c->woff > gw->cfg.max_output;
}

/* Whether the socket's input is read now. Not while a request of it waits
 * for the group commit, nor while its unsent output is over the budget (the
 * client must read first: back-pressure), nor after the client's FIN. A
 * lingering close drains input; a TLS write that needs input keeps reading. */
static bool wants_input(const toro_gateway_t *gw, const gw_conn_t *c)
{
    if (c->lingering || (c->ssl && c->tls_write_wants_read))
        return true;
    return !c->peer_eof && !c->waiting && !gw_conn_over_budget(gw, c);
}

/* Registers the epoll interest the socket's state asks for (a syscall only
 * when it changes). With no interest epoll still reports errors and hangups. */
static void rearm(toro_gateway_t *gw, gw_conn_t *c)
{
    uint32_t want = (wants_input(gw, c) ? EPOLLIN | EPOLLRDHUP : 0) | (c->want_write ? EPOLLOUT : 0);
    if (want == c->events)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = c};
    epoll_ctl(gw->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = want;
}

static void set_events(toro_gateway_t *gw, gw_conn_t *c, bool want_write)
{
    c->want_write = want_write;
    rearm(gw, c);
}

static void conn_close(toro_gateway_t *gw, gw_conn_t *c)
{
    if (c->waiting) /* its question is still committed; there is just nobody to answer */
        for (size_t i = 0; i < gw->n_batch; i++)
            if (gw->batch[i].conn == c)
                gw->batch[i].conn = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        gw->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    epoll_ctl(gw->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->ssl)
        gw_tls_free(c->ssl); /* close_notify, best effort; before the fd goes */
    close(c->fd);
    if (c->kind == CONN_WS) {
        gw_access_ws_end(c);
        toro_metrics_ws_delta(-1);
        if (c->user_id) {
            toro_limits_count(gw->ws_per_user, c->user_id, -1);
            gw_map_remove(gw, c);
            gw->ctx->store->ops->delete_connection(gw->ctx->store, c->connection_id);
        }
    }
    gw->n_conns--;
    free(c->rbuf);
    free(c->wbuf);
    free(c->user_id);
    free(c->frag);
    free(c);
}

/* The socket took output bytes: the send timeout starts again, and the
 * over-budget clock stops once the backlog is within the budget. */
static void note_progress(const toro_gateway_t *gw, gw_conn_t *c)
{
    c->last_progress_ms = toro_mono_ms();
    if (c->over_since_ms && !gw_conn_over_budget(gw, c))
        c->over_since_ms = 0;
}

/* flush() on a TLS socket: SSL_write with partial writes. A WANT_WRITE
 * arms EPOLLOUT; a WANT_READ (the session needs input first) waits for
 * on_readable_tls, which retries. EPOLLOUT stays armed while a handshake
 * read is waiting for writability. */
static int flush_tls(toro_gateway_t *gw, gw_conn_t *c)
{
    while (c->woff < c->wlen) {
        int n = gw_tls_write(c->ssl, c->wbuf + c->woff, c->wlen - c->woff);
        if (n > 0) {
            c->woff += (size_t)n;
            note_progress(gw, c);
            continue;
        }
        if (n == GW_TLS_WANT_WRITE) {
            set_events(gw, c, true);
            return 0;
        }
        if (n == GW_TLS_WANT_READ) {
            c->tls_write_wants_read = true;
            set_events(gw, c, c->tls_read_wants_write);
            return 0;
        }
        return -1;
    }
    c->woff = c->wlen = 0;
    set_events(gw, c, c->tls_read_wants_write);
    return 0;
}

/* The end of a socket we chose to close after a last response or close
 * frame: send FIN and keep reading (and discarding) until the peer closes or
 * 2 s pass. Closing at once with unread input makes the kernel answer with a
 * reset, which can destroy our last bytes before the peer reads them. TLS
 * sockets close at once (close_notify ends their stream). Returns whether
 * c is still open. */
static bool conn_finish(toro_gateway_t *gw, gw_conn_t *c)
{
    if (c->ssl) {
        conn_close(gw, c);
        return false;
    }
    if (!c->lingering) {
        shutdown(c->fd, SHUT_WR);
        c->lingering = true;
        c->linger_until = toro_mono_ms() + 2000;
        c->rlen = 0;
    }
    return true;
}

/* Flushes what the socket takes now; -1 when the peer is gone. */
static int flush(toro_gateway_t *gw, gw_conn_t *c)
{
    if (c->ssl)
        return flush_tls(gw, c);
    while (c->woff < c->wlen) {
        ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (n > 0) {
            c->woff += (size_t)n;
            note_progress(gw, c);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_events(gw, c, true);
            return 0;
        }
        return -1;
    }
    c->woff = c->wlen = 0;
    set_events(gw, c, false);
    return 0;
}

int gw_conn_write(toro_gateway_t *gw, gw_conn_t *c, const char *data, size_t len)
{
    if (c->woff > 0 && c->woff == c->wlen)
        c->woff = c->wlen = 0;
    size_t unsent = c->wlen - c->woff;
    if (c->kind == CONN_WS && unsent + len > gw->cfg.max_ws_backlog) {
        toro_metrics_inc(TORO_CTR_WS_DROPPED);
        toro_log_ratelimited(TORO_LOG_WARN, "gateway", "ws-slow", "WebSocket %s is too slow (%zu bytes unsent); closing",
                             c->connection_id, unsent);
        return -1;
    }
    if (c->kind == CONN_WS)
        c->acc.bytes_out += len; /* for the session's access-log line */
    if (c->wlen + len > c->wcap) {
        if (c->woff > 0) { /* compact first */
            memmove(c->wbuf, c->wbuf + c->woff, unsent);
            c->wlen = unsent;
            c->woff = 0;
        }
        if (c->wlen + len > c->wcap) {
            size_t ncap = c->wcap ? c->wcap : 4096;
            while (ncap < c->wlen + len)
                ncap *= 2;
            char *nb = realloc(c->wbuf, ncap);
            if (!nb)
                return -1;
            c->wbuf = nb;
            c->wcap = ncap;
        }
    }
    if (unsent == 0)
        c->last_progress_ms = toro_mono_ms(); /* the send timeout counts from the first unsent byte */
    memcpy(c->wbuf + c->wlen, data, len);
    c->wlen += len;
    if (!c->over_since_ms && gw_conn_over_budget(gw, c))
        c->over_since_ms = toro_mono_ms();
    return flush(gw, c);
}

static const char *reason(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 421: return "Misdirected Request";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

static int send_response(toro_gateway_t *gw, gw_conn_t *c, gw_response_t *r, const char *request_id)
{
    char head[1024];
    const void *body = r->static_body ? (const void *)r->static_body : (const void *)r->body;
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: %s\r\n"
                     "X-Content-Type-Options: nosniff\r\nX-Request-Id: %s\r\n%s\r\n",
                     r->status, reason(r->status), r->content_type ? r->content_type : "application/json",
                     r->body_len, r->close ? "close" : "keep-alive", request_id ? request_id : "-", r->extra);
    int rc = -1;
    if (n > 0 && (size_t)n < sizeof head) {
        /* one buffer for head and body: one send() in the common case */
        size_t total = (size_t)n + (r->head_only ? 0 : r->body_len);
        char *all = malloc(total);
        if (all) {
            memcpy(all, head, (size_t)n);
            if (r->body_len && !r->head_only)
                memcpy(all + n, body, r->body_len);
            rc = gw_conn_write(gw, c, all, total);
            free(all);
            gw_access_http(c, r, total);
        }
    }
    free(r->body);
    r->body = NULL;
    if (r->close)
        c->closing = true;
    return rc;
}

/* Sends an error response for a request that could not be parsed, then closes. */
static int reject(toro_gateway_t *gw, gw_conn_t *c, int status, const char *message)
{
    gw_response_t r = {0};
    gw_json_error(&r, status, message);
    r.close = true;
    /* a request refused after its head was parsed answers with its id */
    return send_response(gw, c, &r, c->acc.request_id[0] ? c->acc.request_id : NULL);
}

const char *gw_header(const gw_request_t *req, const char *name)
{
    for (int i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int gw_query_get(const char *query, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    const char *p = query;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t plen = amp ? (size_t)(amp - p) : strlen(p);
        if (plen > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            const char *v = p + nlen + 1, *end = p + plen;
            size_t o = 0;
            while (v < end) {
                char ch = *v;
                if (ch == '%') {
                    if (end - v < 3 || hexval(v[1]) < 0 || hexval(v[2]) < 0)
                        return -1;
                    ch = (char)(hexval(v[1]) * 16 + hexval(v[2]));
                    v += 3;
                } else {
                    if (ch == '+')
                        ch = ' ';
                    v++;
                }
                if (o + 1 >= cap || ch == '\0')
                    return -1;
                out[o++] = ch;
            }
            out[o] = '\0';
            return 1;
        } else if (plen == nlen && strncmp(p, name, nlen) == 0) {
            out[0] = '\0';
            return 1;
        }
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}

/* Parses the head in c->rbuf[0..head_len) into req (with a private copy).
 * Returns 0, or an HTTP status to reject with. */
static int parse_head(const char *buf, size_t head_len, gw_request_t *req)
{
    memset(req, 0, sizeof *req);
    req->head = malloc(head_len + 1);
    if (!req->head)
        return 500;
    memcpy(req->head, buf, head_len);
    req->head[head_len] = '\0';
    char *line = req->head;
    char *eol = strstr(line, "\r\n");
    if (!eol)
        return 400;
    *eol = '\0';
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2)
        return 400;
    *sp1 = *sp2 = '\0';
    req->method = line;
    char *target = sp1 + 1;
    if (strncmp(sp2 + 1, "HTTP/1.", 7) != 0 || (sp2[8] != '0' && sp2[8] != '1') || sp2[9])
        return 400;
    req->minor_version = sp2[8] - '0';
    if (target[0] != '/')
        return 400;
    if (strlen(target) > 4096)
        return 414;
    char *q = strchr(target, '?');
    if (q) {
        *q = '\0';
        req->query = q + 1;
    } else {
        req->query = "";
    }
    req->path = target;
    for (const char *m = req->method; *m; m++)
        if (*m < 'A' || *m > 'Z')
            return 400;
    char *p = eol + 2;
    while (*p) {
        eol = strstr(p, "\r\n");
        if (!eol)
            return 400;
        *eol = '\0';
        if (p == eol)
            break;
        char *colon = strchr(p, ':');
        if (!colon || colon == p || req->n_headers >= GW_MAX_HEADERS)
            return colon ? 431 : 400;
        *colon = '\0';
        for (char *t = p; *t; t++)
            if (*t == ' ' || *t == '\t')
                return 400; /* no whitespace in field names */
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        char *e = v + strlen(v);
        while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
            *--e = '\0';
        req->headers[req->n_headers].name = p;
        req->headers[req->n_headers].value = v;
        req->n_headers++;
        p = eol + 2;
    }
    return 0;
}

static bool header_has_token(const char *value, const char *token)
{
    if (!value)
        return false;
    size_t tl = strlen(token);
    for (const char *p = value; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *te = e;
        while (te > p && te[-1] == ' ')
            te--;
        if ((size_t)(te - p) == tl && strncasecmp(p, token, tl) == 0)
            return true;
        p = e;
    }
    return false;
}

static int upgrade_ws(toro_gateway_t *gw, gw_conn_t *c, gw_request_t *req)
{
    const char *key = gw_header(req, "Sec-WebSocket-Key");
    const char *ver = gw_header(req, "Sec-WebSocket-Version");
    char accept[64];
    if (strcmp(req->method, "GET") != 0 || !header_has_token(gw_header(req, "Upgrade"), "websocket") ||
        !header_has_token(gw_header(req, "Connection"), "upgrade") || !key || !ver || strcmp(ver, "13") != 0 ||
        gw_ws_accept_key(key, accept) != 0) {
        gw_response_t r = {0};
        gw_json_error(&r, 400, "expected a WebSocket upgrade (GET, Upgrade: websocket, Sec-WebSocket-Version: 13)");
        snprintf(r.extra, sizeof r.extra, "Sec-WebSocket-Version: 13\r\n");
        r.close = true;
        r.route = TORO_ROUTE_WS;
        return send_response(gw, c, &r, req->request_id);
    }
    const char *origin = gw_header(req, "Origin");
    if (origin && !gw_origin_allowed(gw, req, origin)) {
        gw_response_t r = {0};
        gw_json_error(&r, 403, "origin not allowed");
        r.close = true;
        r.route = TORO_ROUTE_WS;
        return send_response(gw, c, &r, req->request_id);
    }
    char uid[256], token[4200], sub[160];
    int has_uid = gw_query_get(req->query, "user_id", uid, sizeof uid);
    int has_token = gw_query_get(req->query, "access_token", token, sizeof token);
    int status = 0;
    const char *why = NULL;
    if (has_uid < 0 || (has_uid == 1 && !toro_user_id_is_valid(uid))) {
        status = 400;
        why = "user_id must be at most 128 characters of letters, digits and . _ - @ :";
    } else if (has_token < 0) {
        status = 401;
        why = "access_token is not valid";
    } else if (has_token == 1 && gw->cfg.auth_mode != TORO_AUTH_NONE) {
        if (toro_auth_verify(&gw->cfg.auth, token, toro_now_ms() / 1000, sub, sizeof sub, &why) != 0)
            status = 401;
        else if (has_uid == 1 && strcmp(uid, sub) != 0) {
            status = 403;
            why = "user_id differs from the authenticated user";
        } else {
            snprintf(uid, sizeof uid, "%s", sub);
            has_uid = 1;
        }
    } else if (has_uid == 1 && gw->cfg.auth_mode != TORO_AUTH_NONE) {
        status = 401;
        why = "registering a user needs its access_token";
    }
    if (status) {
        gw_response_t r = {0};
        gw_json_error(&r, status, why);
        r.close = true;
        r.route = TORO_ROUTE_WS;
        return send_response(gw, c, &r, req->request_id);
    }
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    gw_access_upgrade(c, has_uid == 1 ? uid : NULL, (size_t)n);
    c->kind = CONN_WS;
    toro_uuid4(c->connection_id);
    c->last_ping_ms = toro_mono_ms();
    toro_metrics_ws_delta(1);
    if (gw_conn_write(gw, c, head, (size_t)n) != 0)
        return -1;
    if (has_uid == 1)
        gw_ws_register(gw, c, uid);
    return 0;
}

/* A group commit that failed for the store (not for a question's own
 * conflict) marks the process degraded for /healthz; one that wrote clears it. */
static void note_commit_health(const int *results, size_t n)
{
    bool wrote = false, failed = false;
    for (size_t i = 0; i < n; i++) {
        wrote |= results[i] == 0;
        failed |= results[i] == TORO_EIO || results[i] == TORO_EUNAVAIL;
    }
    if (failed)
        toro_health_fail("gateway");
    else if (wrote)
        toro_health_ok();
}

/* Handles as many complete requests as c->rbuf holds. -1: close now. */
static int on_http_data(toro_gateway_t *gw, gw_conn_t *c)
{
    /* pipelined requests are parsed only as fast as their responses drain */
    while (c->kind == CONN_HTTP && !c->closing && !c->waiting && !gw_conn_over_budget(gw, c) && c->rlen > 0) {
        if (!c->request_started_ms)
            c->request_started_ms = toro_mono_ms();
        /* skip blank lines between pipelined requests (RFC 9112 2.2) */
        size_t skip = 0;
        while (skip + 1 < c->rlen && c->rbuf[skip] == '\r' && c->rbuf[skip + 1] == '\n')
            skip += 2;
        if (skip) {
            memmove(c->rbuf, c->rbuf + skip, c->rlen - skip);
            c->rlen -= skip;
            continue;
        }
        char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
        if (!end) {
            if (c->rlen > gw->cfg.max_header)
                return reject(gw, c, 431, "request head too large");
            return 0;
        }
        size_t head_len = (size_t)(end - c->rbuf) + 4;
        if (head_len > gw->cfg.max_header)
            return reject(gw, c, 431, "request head too large");
        if (!gw_head_bytes_ok(c->rbuf, head_len))
            return reject(gw, c, 400, "control character in the request head");
        gw_request_t req;
        int bad = parse_head(c->rbuf, head_len, &req);
        if (bad) {
            free(req.head);
            return reject(gw, c, bad, bad == 414 ? "request target too long" : bad == 431 ? "too many headers" : "malformed request");
        }
        gw_access_begin(c, &req);
        req.peer = c->peer;
        size_t body_len = 0;
        const char *why = NULL;
        if (gw_header(&req, "Transfer-Encoding")) {
            free(req.head);
            return reject(gw, c, 411, "chunked request bodies are not supported; send Content-Length");
        }
        if ((bad = gw_framing_check(gw, &req, &body_len, &why)) != 0) {
            free(req.head);
            return reject(gw, c, bad, why);
        }
        if (c->rlen < head_len + body_len) {
            free(req.head);
            if (c->rcap < head_len + body_len) {
                char *nb = realloc(c->rbuf, head_len + body_len);
                if (!nb)
                    return -1;
                c->rbuf = nb;
                c->rcap = head_len + body_len;
            }
            return 0; /* wait for the rest of the body */
        }
        req.body = c->rbuf + head_len;
        req.body_len = body_len;
        int64_t t0 = toro_mono_ms();
        int rc = 0;
        if (strcmp(req.path, "/ws") == 0 || gw_root_upgrade(gw, &req)) {
            rc = upgrade_ws(gw, c, &req);
            toro_metrics_observe_ms(TORO_HIST_HTTP, (double)(toro_mono_ms() - t0));
        } else {
            gw_response_t resp = {0};
            const char *conn_hdr = gw_header(&req, "Connection");
            resp.close = req.minor_version == 0 ? !header_has_token(conn_hdr, "keep-alive")
                                                : header_has_token(conn_hdr, "close");
            gw_route(gw, &req, &resp);
            if (resp.deferred) {
                /* answered after the group commit at the end of this round;
                 * later requests of this socket wait their turn */
                if (gw->n_batch < GW_BATCH_MAX) {
                    gw_deferred_t *d = &gw->batch[gw->n_batch++];
                    d->conn = c;
                    d->resp = resp;
                    d->t0 = t0;
                    memcpy(d->request_id, req.request_id, sizeof d->request_id);
                    c->waiting = true;
                    rearm(gw, c); /* no reading until its 202 is sent */
                } else { /* a full round: this one commits alone, now */
                    int result = 0;
                    toro_stage_ingest_commit(gw->ctx, &resp.item, 1, &result);
                    note_commit_health(&result, 1);
                    gw_finish_ingest(&resp, &resp.item, result);
                    toro_ingest_item_clear(&resp.item);
                    rc = send_response(gw, c, &resp, req.request_id);
                    toro_metrics_observe_ms(TORO_HIST_HTTP, (double)(toro_mono_ms() - t0));
                }
            } else {
                rc = send_response(gw, c, &resp, req.request_id);
                toro_metrics_observe_ms(TORO_HIST_HTTP, (double)(toro_mono_ms() - t0));
            }
        }
        free(req.head);
        size_t used = head_len + body_len;
        memmove(c->rbuf, c->rbuf + used, c->rlen - used);
        c->rlen -= used;
        c->request_started_ms = c->rlen ? toro_mono_ms() : 0;
        if (rc)
            return -1;
    }
    if (c->kind == CONN_WS && c->rlen > 0)
        return gw_ws_on_data(gw, c);
    return 0;
}

/* Makes room for more input: false when the peer already sent more than any
 * valid request or message could hold. */
static bool grow_rbuf(toro_gateway_t *gw, gw_conn_t *c, size_t want)
{
    size_t limit = (c->kind == CONN_WS ? gw->cfg.max_ws_message + 16 : gw->cfg.max_header + gw->cfg.max_body) + 4096;
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

/* Handles bytes just appended to c->rbuf. -1: close the connection now. */
static int after_read(toro_gateway_t *gw, gw_conn_t *c)
{
    c->last_read_ms = toro_mono_ms();
    if (c->closing)
        c->rlen = 0; /* discard input after a close decision */
    else if ((c->kind == CONN_HTTP ? on_http_data(gw, c) : gw_ws_on_data(gw, c)) != 0)
        return -1;
    return c->closing && c->woff == c->wlen ? 1 : 0; /* 1: all said, close gracefully */
}

/* After output drained or a commit answered: closes a socket that is done
 * (all said after a close decision: graceful finish; half-closed client with
 * nothing left to answer: close). Returns whether c is still open. */
static bool conn_settle(toro_gateway_t *gw, gw_conn_t *c)
{
    if (c->woff != c->wlen || c->lingering)
        return true;
    if (c->closing)
        return conn_finish(gw, c);
    if (c->peer_eof && !c->waiting) {
        conn_close(gw, c); /* what is left in rbuf is an incomplete request */
        return false;
    }
    return true;
}

long gw_conn_feed(toro_gateway_t *gw, gw_conn_t *c, const char *data, size_t len)
{
    size_t taken = 0;
    while (len > 0) {
        if (!wants_input(gw, c))
            return (long)taken; /* paused, as on_readable would be */
        if (!grow_rbuf(gw, c, 1))
            return -1;
        size_t n = c->rcap - c->rlen < len ? c->rcap - c->rlen : len;
        memcpy(c->rbuf + c->rlen, data, n);
        c->rlen += n;
        data += n;
        len -= n;
        taken += n;
        if (after_read(gw, c) != 0)
            return -1;
    }
    return (long)taken;
}

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

/* on_readable() on a TLS socket: the same loop with SSL_read, which also
 * drives the handshake. It runs until OpenSSL needs the socket, so records
 * already inside OpenSSL (SSL_pending) are consumed before going back to
 * epoll, which would not report them again. */
static void on_readable_tls(toro_gateway_t *gw, gw_conn_t *c)
{
    if (c->tls_write_wants_read) { /* a write was waiting for this */
        c->tls_write_wants_read = false;
        if (flush_tls(gw, c) != 0 || (c->closing && c->woff == c->wlen)) {
            conn_close(gw, c);
            return;
        }
    }
    for (;;) {
        if (!wants_input(gw, c)) {
            rearm(gw, c); /* records left inside OpenSSL are read by resume_input */
            return;
        }
        if (!grow_rbuf(gw, c, 1)) {
            conn_close(gw, c);
            return;
        }
        bool handshaking = !gw_tls_ready(c->ssl);
        int n = gw_tls_read(c->ssl, c->rbuf + c->rlen, c->rcap - c->rlen);
        if (handshaking && gw_tls_ready(c->ssl))
            c->request_started_ms = 0; /* handshake done: the head timeout now starts at the first byte */
        if (n > 0) {
            c->rlen += (size_t)n;
            if (after_read(gw, c) != 0) {
                conn_close(gw, c);
                return;
            }
            continue;
        }
        if (n == GW_TLS_WANT_READ) {
            if (c->tls_read_wants_write) {
                c->tls_read_wants_write = false;
                if (c->woff == c->wlen)
                    set_events(gw, c, false);
            }
            return;
        }
        if (n == GW_TLS_WANT_WRITE) {
            c->tls_read_wants_write = true;
            set_events(gw, c, true);
            return;
        }
        if (n == GW_TLS_PLAINTEXT)
            refuse_plaintext(c->fd);
        conn_close(gw, c); /* close_notify, EOF or error */
        return;
    }
}

static void on_readable(toro_gateway_t *gw, gw_conn_t *c)
{
    if (c->ssl) {
        on_readable_tls(gw, c);
        return;
    }
    for (;;) {
        if (!wants_input(gw, c)) {
            rearm(gw, c); /* paused: epoll reports this socket again once it may read */
            return;
        }
        if (!grow_rbuf(gw, c, 1)) {
            conn_close(gw, c); /* a peer that sends more than any valid request could hold */
            return;
        }
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
        if (n > 0) {
            c->rlen += (size_t)n;
            if (c->lingering) {
                c->rlen = 0; /* draining before the close */
                continue;
            }
            int r = after_read(gw, c);
            if (r < 0) {
                conn_close(gw, c);
                return;
            }
            if (r > 0 && !conn_finish(gw, c))
                return;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n == 0 && c->kind == CONN_HTTP && !c->lingering && !c->closing) {
            /* half-closed (shutdown(SHUT_WR) after its requests): it still
             * gets the responses to what it sent, then the socket closes */
            c->peer_eof = true;
            rearm(gw, c);
            conn_settle(gw, c);
            return;
        }
        conn_close(gw, c); /* EOF or error */
        return;
    }
}

/* Output drained or a commit answered: parses the requests (or frames)
 * that waited in rbuf for the budget, and with TLS reads what OpenSSL holds
 * (epoll would not report it again). Returns whether c is still open. */
static bool resume_input(toro_gateway_t *gw, gw_conn_t *c)
{
    if (!c->closing && !c->lingering && !c->waiting && !gw_conn_over_budget(gw, c) && c->rlen > 0) {
        int rc = c->kind == CONN_HTTP ? on_http_data(gw, c) : gw_ws_on_data(gw, c);
        if (rc != 0) {
            conn_close(gw, c);
            return false;
        }
    }
    rearm(gw, c);
    if (!conn_settle(gw, c))
        return false;
    if (c->ssl && !c->closing && wants_input(gw, c)) {
        on_readable_tls(gw, c);
        return false; /* may have closed c: the caller does not touch it again */
    }
    return true;
}

gw_conn_t *gw_conn_adopt(toro_gateway_t *gw, int fd, const char *peer)
{
    gw_conn_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->fd = fd;
    c->opened_ms = c->last_read_ms = toro_mono_ms();
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    if (gw->tls) {
        if (!(c->ssl = gw_tls_new(gw->tls, fd))) {
            free(c);
            return NULL;
        }
        c->request_started_ms = c->opened_ms; /* the handshake is bounded like a request head */
    }
    c->last_progress_ms = c->opened_ms;
    c->events = EPOLLIN | EPOLLRDHUP;
    struct epoll_event ev = {.events = c->events, .data.ptr = c};
    if (epoll_ctl(gw->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        gw_tls_free(c->ssl);
        free(c);
        return NULL;
    }
    gw->n_conns++;
    c->next = gw->conns;
    if (gw->conns)
        gw->conns->prev = c;
    gw->conns = c;
    return c;
}

void gw_conn_drop(toro_gateway_t *gw, gw_conn_t *c) { conn_close(gw, c); }

#define BUSY_BODY "{\"success\":false,\"error\":\"too many open connections\",\"code\":\"unavailable\"}"
_Static_assert(sizeof BUSY_BODY - 1 == 74, "the Content-Length below is the body's length");
static const char busy_503[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                               "Content-Length: 74\r\nConnection: close\r\nRetry-After: 1\r\n\r\n" BUSY_BODY;

/* Refuses a client we cannot serve: a 503 in plain text (a TLS client would
 * read garbage, so it only sees the close), best effort, then closes. */
static void refuse_busy(toro_gateway_t *gw, int fd)
{
    if (!gw->tls) {
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
static void accept_backoff(toro_gateway_t *gw, int err)
{
    if (gw->reserve_fd >= 0) {
        close(gw->reserve_fd);
        gw->reserve_fd = -1;
        int fd = accept4(gw->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            refuse_busy(gw, fd);
        gw->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    gw->accept_backoff_ms = gw->accept_backoff_ms ? gw->accept_backoff_ms * 2 : 100;
    if (gw->accept_backoff_ms > 2000)
        gw->accept_backoff_ms = 2000;
    gw->accept_resume_ms = toro_mono_ms() + gw->accept_backoff_ms;
    struct epoll_event ev = {.events = 0, .data.ptr = &listen_tag};
    epoll_ctl(gw->epoll_fd, EPOLL_CTL_MOD, gw->listen_fd, &ev);
    toro_log_ratelimited(TORO_LOG_WARN, "gateway", "accept-emfile",
                         "cannot accept connections: %s (%d open); pausing accept for %d ms", strerror(err),
                         gw->n_conns, gw->accept_backoff_ms);
}

/* The accept back-off is over: poll the listening socket again. */
static void accept_resume(toro_gateway_t *gw)
{
    if (!gw->accept_resume_ms || toro_mono_ms() < gw->accept_resume_ms)
        return;
    gw->accept_resume_ms = 0;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listen_tag};
    epoll_ctl(gw->epoll_fd, EPOLL_CTL_MOD, gw->listen_fd, &ev);
}

static void on_accept(toro_gateway_t *gw)
{
    for (;;) {
        struct sockaddr_in peer;
        socklen_t plen = sizeof peer;
        int fd = accept4(gw->listen_fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                accept_backoff(gw, errno);
            else if (errno != EAGAIN && errno != EWOULDBLOCK)
                toro_log_ratelimited(TORO_LOG_WARN, "gateway", "accept", "accept failed: %s", strerror(errno));
            return;
        }
        gw->accept_backoff_ms = 0;
        if (gw->n_conns >= gw->cfg.max_connections) {
            refuse_busy(gw, fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char ip[48];
        if (!inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip))
            snprintf(ip, sizeof ip, "unknown");
        if (!gw_conn_adopt(gw, fd, ip))
            close(fd);
    }
}

/* Why: a --max-connections above the open-files limit turns into EMFILE
 * storms. Raises the soft RLIMIT_NOFILE to the hard limit and clamps the
 * connection cap to the limit minus a reserve for the store, the bus, the
 * log and the workers. Logs the result. */
static void fit_open_files(toro_gateway_t *gw)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t was = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = was;
    }
    long limit = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1000000 ? 1000000 : (long)rl.rlim_cur;
    long reserve = limit >= 256 ? 64 : limit / 2;
    int asked = gw->cfg.max_connections;
    if (gw->cfg.max_connections > limit - reserve)
        gw->cfg.max_connections = limit - reserve > 1 ? (int)(limit - reserve) : 1;
    toro_log_info("gateway", NULL, "open files limit %ld (soft was %ld, hard %ld); max connections %d%s", limit,
                  (long)(was == RLIM_INFINITY ? -1 : (long)was),
                  (long)(rl.rlim_max == RLIM_INFINITY ? -1 : (long)rl.rlim_max), gw->cfg.max_connections,
                  asked != gw->cfg.max_connections ? " (clamped to the limit minus a reserve of descriptors)" : "");
}

static void drain_pending(toro_gateway_t *gw)
{
    uint64_t v;
    ssize_t r = read(gw->wake_fd, &v, sizeof v);
    (void)r;
    for (;;) {
        pthread_mutex_lock(&gw->lock);
        pending_msg_t *m = gw->pending;
        if (m) {
            gw->pending = m->next;
            if (!gw->pending)
                gw->pending_tail = NULL;
        }
        gw_conn_t *c = m ? map_find_locked(gw, m->connection_id) : NULL;
        pthread_mutex_unlock(&gw->lock);
        if (!m)
            return;
        if (c && !c->closing) {
            if (gw_ws_send(gw, c, 1, m->text, strlen(m->text)) != 0)
                conn_close(gw, c);
            else
                toro_metrics_inc(TORO_CTR_WS_MESSAGES_SENT);
        }
        free(m->text);
        free(m);
    }
}

int toro_gateway_new(const toro_gateway_config_t *cfg, toro_stage_ctx_t *ctx, toro_gateway_t **out, char **err)
{
    toro_gateway_t *gw = calloc(1, sizeof *gw);
    if (!gw)
        return TORO_ENOMEM;
    gw->cfg = *cfg;
    gw->ctx = ctx;
    gw->listen_fd = gw->epoll_fd = gw->wake_fd = -1;
    pthread_mutex_init(&gw->lock, NULL);
    char msg[1024];
    fit_open_files(gw);
    gw->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    gw->rate = toro_limits_new(cfg->user_rate_per_min / 60.0, cfg->user_burst, 100000);
    gw->read_rate = toro_limits_new(cfg->read_rate_per_min / 60.0, cfg->read_burst, 100000);
    gw->ws_per_user = toro_limits_new(0, 1, (size_t)gw->cfg.max_connections + 16);
    if (!gw->rate || !gw->read_rate || !gw->ws_per_user) {
        snprintf(msg, sizeof msg, "out of memory");
        goto fail;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg->port)};
    if (inet_pton(AF_INET, cfg->host, &addr.sin_addr) != 1) {
        snprintf(msg, sizeof msg, "invalid listen address '%s' (an IPv4 address is expected)", cfg->host);
        goto fail;
    }
    if (cfg->tls_cert && gw_tls_ctx_new(cfg->tls_cert, cfg->tls_key, &gw->tls, msg, sizeof msg) != 0)
        goto fail;
    gw->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(gw->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (gw->listen_fd < 0 || bind(gw->listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(gw->listen_fd, 1024) != 0) {
        snprintf(msg, sizeof msg, "cannot listen on %s:%d: %s", cfg->host, cfg->port, strerror(errno));
        goto fail;
    }
    socklen_t alen = sizeof addr;
    getsockname(gw->listen_fd, (struct sockaddr *)&addr, &alen);
    gw->port = ntohs(addr.sin_port);
    if (cfg->node)
        snprintf(gw->node, sizeof gw->node, "%s", cfg->node);
    else
        snprintf(gw->node, sizeof gw->node, "%s:%d", cfg->host, gw->port);
    gw->cfg.node = gw->node;
    gw->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    gw->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (gw->epoll_fd < 0 || gw->wake_fd < 0) {
        snprintf(msg, sizeof msg, "cannot create event loop: %s", strerror(errno));
        goto fail;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listen_tag};
    epoll_ctl(gw->epoll_fd, EPOLL_CTL_ADD, gw->listen_fd, &ev);
    ev.data.ptr = &wake_tag;
    epoll_ctl(gw->epoll_fd, EPOLL_CTL_ADD, gw->wake_fd, &ev);
    /* sockets of a previous run of this node are gone */
    ctx->store->ops->delete_node_connections(ctx->store, gw->node);
    *out = gw;
    return 0;
fail:
    if (err)
        *err = strdup(msg);
    toro_gateway_free(gw);
    return TORO_EIO;
}

int toro_gateway_port(const toro_gateway_t *gw) { return gw->port; }

int toro_gateway_tls(const toro_gateway_t *gw) { return gw->tls != NULL; }

void toro_gateway_stop(toro_gateway_t *gw)
{
    gw->stopping = 1;
    uint64_t one = 1;
    ssize_t w = write(gw->wake_fd, &one, sizeof one);
    (void)w;
}

static void sweep(toro_gateway_t *gw);

/* The group commit: the questions validated during this round of the event
 * loop are committed in one transaction, then each waiting socket gets its
 * 202 (or 503) and goes on with the requests it has queued, which may
 * start the next batch. */
static void flush_batch(toro_gateway_t *gw)
{
    while (gw->n_batch > 0) {
        size_t n = gw->n_batch;
        toro_ingest_item_t *items = malloc(n * sizeof *items);
        int *results = malloc(n * sizeof *results);
        if (items && results) {
            for (size_t i = 0; i < n; i++)
                items[i] = gw->batch[i].resp.item; /* shallow: the batch keeps ownership */
            toro_stage_ingest_commit(gw->ctx, items, n, results);
            note_commit_health(results, n);
        } else if (results) {
            for (size_t i = 0; i < n; i++)
                results[i] = TORO_ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
            gw_deferred_t *d = &gw->batch[i];
            gw_finish_ingest(&d->resp, &d->resp.item, results ? results[i] : TORO_ENOMEM);
            toro_ingest_item_clear(&d->resp.item);
            gw_conn_t *c = d->conn;
            if (!c) {
                free(d->resp.body);
                continue;
            }
            c->waiting = false;
            int rc = send_response(gw, c, &d->resp, d->request_id);
            toro_metrics_observe_ms(TORO_HIST_HTTP, (double)(toro_mono_ms() - d->t0));
            if (rc != 0)
                conn_close(gw, c); /* nulls its entry */
        }
        free(items);
        free(results);
        /* the sockets answered go on with what they have queued */
        for (size_t i = 0; i < n; i++) {
            gw_conn_t *c = gw->batch[i].conn;
            if (!c)
                continue;
            gw->batch[i].conn = NULL;
            resume_input(gw, c);
        }
        memmove(gw->batch, gw->batch + n, (gw->n_batch - n) * sizeof *gw->batch);
        gw->n_batch -= n;
    }
}

static bool conn_listed(const toro_gateway_t *gw, const gw_conn_t *c)
{
    for (const gw_conn_t *x = gw->conns; x; x = x->next)
        if (x == c)
            return true;
    return false;
}

bool gw_conn_pump(toro_gateway_t *gw, gw_conn_t *c)
{
    flush_batch(gw);
    if (!conn_listed(gw, c))
        return false;
    if (flush(gw, c) != 0) {
        conn_close(gw, c);
        return false;
    }
    resume_input(gw, c);
    return conn_listed(gw, c);
}

bool gw_conn_feed_eof(toro_gateway_t *gw, gw_conn_t *c)
{
    if (c->kind != CONN_HTTP || c->lingering || c->closing) {
        conn_close(gw, c);
        return false;
    }
    c->peer_eof = true;
    rearm(gw, c);
    return conn_settle(gw, c);
}

static toro_gateway_t *volatile signalled_gateway;

static void on_stop_signal(int sig)
{
    (void)sig;
    toro_gateway_t *gw = signalled_gateway;
    if (gw)
        toro_gateway_stop(gw);
}

int toro_gateway_run_until_signal(toro_gateway_t *gw)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    signal(SIGPIPE, SIG_IGN); /* a peer that went away is an error code, not a signal */
    signalled_gateway = gw;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int rc = toro_gateway_run(gw);
    signalled_gateway = NULL; /* the handlers stay: a second signal during shutdown is ignored */
    return rc;
}

int toro_gateway_run(toro_gateway_t *gw)
{
    /* this thread's writes (ingest) go before the workers' (store/db.c) */
    toro_store_set_urgent(gw->ctx->store, true);
    struct epoll_event evs[256];
    int64_t last_sweep = toro_mono_ms();
    toro_log_info("gateway", NULL, "listening on %s://%s:%d (node %s, TLS %s)", gw->tls ? "https" : "http",
                  gw->cfg.host, gw->port, gw->node, gw->tls ? "on: https and wss" : "off");
    while (!gw->stopping) {
        int wait_ms = 1000;
        if (gw->accept_resume_ms) {
            int64_t left = gw->accept_resume_ms - toro_mono_ms();
            wait_ms = left < 0 ? 0 : left < wait_ms ? (int)left : wait_ms;
        }
        int n = epoll_wait(gw->epoll_fd, evs, 256, wait_ms);
        if (n < 0 && errno != EINTR) {
            toro_log_error("gateway", NULL, "epoll_wait failed: %s", strerror(errno));
            return TORO_EIO;
        }
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &listen_tag) {
                on_accept(gw);
            } else if (p == &wake_tag) {
                drain_pending(gw);
            } else {
                gw_conn_t *c = p;
                if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
                    conn_close(gw, c);
                    continue;
                }
                if (evs[i].events & EPOLLOUT) {
                    bool was_over = gw_conn_over_budget(gw, c);
                    if (flush(gw, c) != 0) {
                        conn_close(gw, c);
                        continue;
                    }
                    if (was_over || c->peer_eof || c->closing) {
                        if (!resume_input(gw, c))
                            continue;
                    }
                }
                /* a TLS handshake read that waited for writability is retried too */
                if ((evs[i].events & (EPOLLIN | EPOLLRDHUP)) || (c->ssl && c->tls_read_wants_write))
                    on_readable(gw, c);
            }
        }
        flush_batch(gw);
        accept_resume(gw);
        if (toro_mono_ms() - last_sweep >= 1000) {
            sweep(gw);
            last_sweep = toro_mono_ms();
        }
    }
    return 0;
}

/* Once a second: requests (and TLS handshakes) that take too long to
 * arrive (slowloris), idle keep-alive sockets, silent WebSockets and
 * WebSocket pings. */
static void sweep(toro_gateway_t *gw)
{
    int64_t now = toro_mono_ms();
    gw_conn_t *next;
    for (gw_conn_t *c = gw->conns; c; c = next) {
        next = c->next;
        if (c->lingering) {
            if (now > c->linger_until)
                conn_close(gw, c);
            continue;
        }
        if (c->woff < c->wlen && (now - c->last_progress_ms > gw->cfg.send_timeout_ms ||
                                  (c->over_since_ms && now - c->over_since_ms > gw->cfg.send_timeout_ms))) {
            if (c->kind == CONN_WS)
                toro_metrics_inc(TORO_CTR_WS_DROPPED);
            toro_log_ratelimited(TORO_LOG_WARN, "gateway", "slow-client",
                                 "closing a %s socket from %s: %zu bytes unsent for %d ms",
                                 c->kind == CONN_WS ? "WebSocket" : "HTTP", c->peer, c->wlen - c->woff,
                                 gw->cfg.send_timeout_ms);
            conn_close(gw, c);
            continue;
        }
        if (c->kind == CONN_HTTP) {
            if (!wants_input(gw, c))
                continue; /* paused for its output or its commit: the send timeout governs */
            if (c->request_started_ms && now - c->request_started_ms > gw->cfg.header_timeout_ms) {
                if (c->ssl && !gw_tls_ready(c->ssl)) {
                    toro_log_debug("gateway", NULL, "TLS handshake from %s not completed in time; closing", c->peer);
                    conn_close(gw, c); /* no 408 is possible before the handshake */
                } else if (reject(gw, c, 408, "request not received in time") != 0 || c->woff == c->wlen) {
                    conn_close(gw, c);
                }
            } else if (c->woff == c->wlen && now - c->last_read_ms > gw->cfg.idle_timeout_ms) {
                conn_close(gw, c);
            }
        } else if (now - c->last_read_ms > gw->cfg.ws_dead_ms) {
            toro_log_info("gateway", NULL, "closing silent WebSocket %s", c->connection_id);
            conn_close(gw, c);
        } else if (now - c->last_ping_ms >= gw->cfg.ws_ping_ms) {
            c->last_ping_ms = now;
            if (gw_ws_send(gw, c, 9, "toro", 4) != 0)
                conn_close(gw, c);
        }
    }
}

void toro_gateway_free(toro_gateway_t *gw)
{
    if (!gw)
        return;
    if (gw->listen_fd >= 0)
        close(gw->listen_fd);
    if (gw->epoll_fd >= 0)
        close(gw->epoll_fd);
    if (gw->wake_fd >= 0)
        close(gw->wake_fd);
    if (gw->reserve_fd >= 0)
        close(gw->reserve_fd);
    pending_msg_t *m = gw->pending;
    while (m) {
        pending_msg_t *next = m->next;
        free(m->text);
        free(m);
        m = next;
    }
    while (gw->conns)
        conn_close(gw, gw->conns);
    gw_tls_ctx_free(gw->tls);
    toro_limits_free(gw->rate);
    toro_limits_free(gw->read_rate);
    toro_limits_free(gw->ws_per_user);
    pthread_mutex_destroy(&gw->lock);
    free(gw);
}

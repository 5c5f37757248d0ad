/* http.c: HTTP/1.1 requests: the head parser, headers, query strings, the
 * pipelining loop that hands each complete request to the serve callback,
 * and the timeouts of an HTTP socket (see http.h). Responses are
 * http_response.c; the framing rules framing.c. */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/util.h"
#include "gateway/http.h"

const char *gw_header(const gw_request_t *req, const char *name)
{
    for (int i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

bool gw_header_has_token(const char *value, const char *token)
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

/* URL-decodes v[0..end) into out (cap bytes). 1, or -1 when bad or too long. */
static int url_decode(const char *v, const char *end, char *out, size_t cap)
{
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
}

int gw_query_get(const char *query, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    const char *p = query;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t plen = amp ? (size_t)(amp - p) : strlen(p);
        if (plen > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=')
            return url_decode(p + nlen + 1, p + plen, out, cap);
        if (plen == nlen && strncmp(p, name, nlen) == 0) {
            out[0] = '\0';
            return 1;
        }
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}

/* The request line in line (NUL-terminated). 0 or a status. */
static int parse_request_line(char *line, gw_request_t *req)
{
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
    return 0;
}

/* The header lines from p to the empty line. 0 or a status. */
static int parse_headers(char *p, gw_request_t *req)
{
    while (*p) {
        char *eol = strstr(p, "\r\n");
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

int gw_http_parse(const char *buf, size_t head_len, gw_request_t *req)
{
    memset(req, 0, sizeof *req);
    req->head = malloc(head_len + 1);
    if (!req->head)
        return 500;
    memcpy(req->head, buf, head_len);
    req->head[head_len] = '\0';
    char *eol = strstr(req->head, "\r\n");
    int bad = 400;
    if (eol) {
        *eol = '\0';
        bad = parse_request_line(req->head, req);
    }
    if (!bad)
        bad = parse_headers(eol + 2, req);
    return bad;
}

void gw_request_clear(gw_request_t *req)
{
    free(req->head);
    req->head = NULL;
}

static const char *refusal(int status)
{
    return status == 414 ? "request target too long" : status == 431 ? "too many headers" : "malformed request";
}

enum { NEXT_WAIT, NEXT_READY, NEXT_REFUSED };

/* The next request in cl's input, parsed into req with its body: NEXT_READY
 * (*used bytes), NEXT_WAIT (incomplete; *rc 0, or -1 when out of memory),
 * or NEXT_REFUSED (the error response is queued; *rc is its result). req
 * may own a head in every case (the caller clears it). */
static int next_request(gw_http_t *h, gw_client_t *cl, gw_request_t *req, size_t *used, int *rc)
{
    gw_conn_t *c = &cl->conn;
    char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
    size_t head_len = end ? (size_t)(end - c->rbuf) + 4 : c->rlen;
    size_t body_len = 0;
    const char *why = "request head too large";
    int bad = 0;
    if (head_len > h->cfg->max_header) {
        bad = 431;
    } else if (!end) {
        return NEXT_WAIT;
    } else if (!gw_head_bytes_ok(c->rbuf, head_len)) {
        bad = 400;
        why = "control character in the request head";
    } else if ((bad = gw_http_parse(c->rbuf, head_len, req)) != 0) {
        why = refusal(bad);
    }
    if (!bad) {
        gw_access_begin(cl, req);
        req->peer = c->peer;
        bad = gw_framing_check(h->cfg, req, &body_len, &why);
    }
    if (bad) {
        *rc = gw_http_reject(h->conns, cl, bad, why);
        return NEXT_REFUSED;
    }
    if (c->rlen < head_len + body_len) {
        if (c->rcap < head_len + body_len) {
            char *nb = realloc(c->rbuf, head_len + body_len);
            if (!nb) {
                *rc = -1;
                return NEXT_WAIT;
            }
            c->rbuf = nb;
            c->rcap = head_len + body_len;
        }
        return NEXT_WAIT; /* wait for the rest of the body */
    }
    req->body = c->rbuf + head_len;
    req->body_len = body_len;
    *used = head_len + body_len;
    return NEXT_READY;
}

static void consume(gw_conn_t *c, size_t n)
{
    memmove(c->rbuf, c->rbuf + n, c->rlen - n);
    c->rlen -= n;
}

int gw_http_on_input(gw_http_t *h, gw_client_t *cl)
{
    gw_conn_t *c = &cl->conn;
    int rc = 0;
    /* pipelined requests are parsed only as fast as their responses drain */
    while (rc == 0 && cl->kind == GW_CLIENT_HTTP && !c->closing && !c->waiting &&
           !gw_conn_over_budget(h->conns, c) && c->rlen > 0) {
        if (!c->request_started_ms)
            c->request_started_ms = toro_mono_ms();
        /* skip blank lines between pipelined requests (RFC 9112 2.2) */
        size_t skip = 0;
        while (skip + 1 < c->rlen && c->rbuf[skip] == '\r' && c->rbuf[skip + 1] == '\n')
            skip += 2;
        if (skip) {
            consume(c, skip);
            continue;
        }
        gw_request_t req = {0};
        size_t used = 0;
        int got = next_request(h, cl, &req, &used, &rc);
        if (got == NEXT_READY)
            rc = h->serve(h->owner, cl, &req);
        gw_request_clear(&req); /* the one place a request's head is freed */
        if (got != NEXT_READY)
            return rc;
        consume(c, used);
        c->request_started_ms = c->rlen ? toro_mono_ms() : 0;
    }
    return rc;
}

void gw_http_tick(gw_http_t *h, gw_client_t *cl, int64_t now)
{
    gw_conn_t *c = &cl->conn;
    if (!gw_conn_wants_input(h->conns, c))
        return; /* paused for its output or its commit: the send timeout governs */
    if (c->request_started_ms && now - c->request_started_ms > h->cfg->header_timeout_ms) {
        if (gw_conn_handshaking(c)) {
            toro_log_debug("gateway", NULL, "TLS handshake from %s not completed in time; closing", c->peer);
            gw_conn_close(h->conns, c); /* no 408 is possible before the handshake */
        } else if (gw_http_reject(h->conns, cl, 408, "request not received in time") != 0 || c->woff == c->wlen) {
            gw_conn_close(h->conns, c);
        }
    } else if (c->woff == c->wlen && now - c->last_read_ms > h->cfg->idle_timeout_ms) {
        gw_conn_close(h->conns, c);
    }
}

/* ws_frame.c: the WebSocket frame codec (RFC 6455 5 and 7): the handshake
 * key, sending frames under the backlog cap, parsing masked client frames
 * with fragmentation and control frames, and the close handshake as 5.5.1
 * and 7.4 say (codes, payload length, UTF-8 reason). What a message means
 * is ws.c's (see ws.h). */
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "gateway/ws.h"

int gw_ws_accept_key(const char *client_key, char out[64])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char buf[256];
    size_t kl = strlen(client_key);
    if (kl == 0 || kl > 128)
        return -1;
    memcpy(buf, client_key, kl);
    memcpy(buf + kl, guid, sizeof guid - 1);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1((unsigned char *)buf, kl + sizeof guid - 1, digest);
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
    return 0;
}

int gw_ws_write(gw_conns_t *cs, gw_client_t *cl, const char *data, size_t len)
{
    gw_conn_t *c = &cl->conn;
    size_t unsent = gw_conn_unsent(c);
    if (unsent + len > cs->cfg->max_ws_backlog) {
        toro_metrics_inc(TORO_CTR_WS_DROPPED);
        toro_log_ratelimited(TORO_LOG_WARN, "gateway", "ws-slow", "WebSocket %s is too slow (%zu bytes unsent); closing",
                             cl->connection_id, unsent);
        return -1;
    }
    cl->acc.bytes_out += len; /* for the session's access-log line */
    return gw_conn_write(cs, c, data, len);
}

int gw_ws_send(gw_conns_t *cs, gw_client_t *cl, int opcode, const char *data, size_t len)
{
    unsigned char head[10];
    size_t hl;
    head[0] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        head[1] = (unsigned char)len;
        hl = 2;
    } else if (len <= 0xffff) {
        head[1] = 126;
        head[2] = (unsigned char)(len >> 8);
        head[3] = (unsigned char)len;
        hl = 4;
    } else {
        head[1] = 127;
        for (int i = 0; i < 8; i++)
            head[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
        hl = 10;
    }
    char *frame = malloc(hl + len);
    if (!frame)
        return -1;
    memcpy(frame, head, hl);
    if (len)
        memcpy(frame + hl, data, len);
    int rc = gw_ws_write(cs, cl, frame, hl + len);
    free(frame);
    return rc;
}

int gw_ws_close_with(gw_conns_t *cs, gw_client_t *cl, int code, const char *why)
{
    char payload[128];
    payload[0] = (char)(code >> 8);
    payload[1] = (char)(code & 0xff);
    size_t wl = strlen(why);
    if (wl > 120)
        wl = 120;
    memcpy(payload + 2, why, wl);
    gw_ws_send(cs, cl, 8, payload, wl + 2);
    cl->conn.closing = true;
    return 0;
}

/* Close codes a peer may send (RFC 6455 7.4, IANA registry): 1000-1003,
 * 1007-1014, and 3000-4999 for libraries and applications. 1004-1006 and
 * 1015 are reserved or must never be sent; the rest is unassigned. */
static bool close_code_valid(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/* The peer's close frame: echo its code (or an empty close for an empty
 * payload) and finish; a malformed close is answered with 1002 or 1007. */
static int on_close_frame(gw_conns_t *cs, gw_client_t *cl, const unsigned char *data, size_t len)
{
    if (len == 1)
        return gw_ws_close_with(cs, cl, 1002, "close payload of one byte");
    if (len >= 2) {
        int code = data[0] << 8 | data[1];
        if (!close_code_valid(code))
            return gw_ws_close_with(cs, cl, 1002, "invalid close code");
        if (toro_utf8_count((const char *)data + 2, len - 2) < 0)
            return gw_ws_close_with(cs, cl, 1007, "close reason is not valid UTF-8");
    }
    gw_ws_send(cs, cl, 8, (const char *)data, len >= 2 ? 2 : 0);
    cl->conn.closing = true;
    return 0;
}

typedef struct frame {
    bool fin;
    int opcode;
    uint64_t plen;            /* payload length */
    size_t hl;                /* header length before the mask */
} frame_t;

static int violation(const char **why, const char *message, int code)
{
    *why = message;
    return code;
}

/* The header of the frame at p (avail bytes): 1 complete frame in *f, 0 more
 * bytes needed, or a close code (>= 1000) for a violation, with *why. */
static int frame_head(const unsigned char *p, size_t avail, size_t max, frame_t *f, const char **why)
{
    f->fin = p[0] & 0x80;
    f->opcode = p[0] & 0x0f;
    if (p[0] & 0x70)
        return violation(why, "reserved bits set", 1002);
    f->plen = p[1] & 0x7f;
    f->hl = 2;
    if (f->plen == 126) {
        if (avail < 4)
            return 0;
        f->plen = (uint64_t)p[2] << 8 | p[3];
        f->hl = 4;
    } else if (f->plen == 127) {
        if (avail < 10)
            return 0;
        f->plen = 0;
        for (int i = 0; i < 8; i++)
            f->plen = f->plen << 8 | p[2 + i];
        f->hl = 10;
    }
    if (!(p[1] & 0x80))
        return violation(why, "client frames must be masked", 1002);
    if (f->opcode >= 8 && (f->plen > 125 || !f->fin))
        return violation(why, f->plen > 125 ? "control frame over 125 bytes" : "fragmented control frame", 1002);
    if (f->plen > max)
        return violation(why, "message too big", 1009);
    return avail < f->hl + 4 + f->plen ? 0 : 1;
}

/* A text, binary or continuation frame: appended to the message being
 * assembled, which goes to fn once final. 0, or -1 to close now. */
static int data_frame(gw_conns_t *cs, gw_client_t *cl, const frame_t *f, const unsigned char *data, size_t max,
                      gw_ws_message_fn *fn, void *arg)
{
    if ((f->opcode == 0 && !cl->frag_opcode) || (f->opcode != 0 && cl->frag_opcode))
        return gw_ws_close_with(cs, cl, 1002, "bad fragmentation");
    if (f->opcode != 0)
        cl->frag_opcode = f->opcode;
    if (cl->frag_len + f->plen > max)
        return gw_ws_close_with(cs, cl, 1009, "message too big");
    if (f->plen) {
        char *nf = realloc(cl->frag, cl->frag_len + (size_t)f->plen);
        if (!nf)
            return -1;
        cl->frag = nf;
        memcpy(cl->frag + cl->frag_len, data, (size_t)f->plen);
        cl->frag_len += (size_t)f->plen;
    }
    if (!f->fin)
        return 0;
    int rc = cl->frag_opcode == 2 ? gw_ws_close_with(cs, cl, 1003, "binary messages are not supported")
                                  : fn(arg, cl, cl->frag ? cl->frag : "", cl->frag_len);
    free(cl->frag);
    cl->frag = NULL;
    cl->frag_len = 0;
    cl->frag_opcode = 0;
    return rc;
}

int gw_ws_on_frames(gw_conns_t *cs, gw_client_t *cl, size_t max_message, gw_ws_message_fn *fn, void *arg)
{
    gw_conn_t *c = &cl->conn;
    size_t off = 0;
    int rc = 0;
    while (rc == 0 && !c->closing && !gw_conn_over_budget(cs, c) && c->rlen - off >= 2) {
        unsigned char *p = (unsigned char *)c->rbuf + off;
        frame_t f;
        const char *why = NULL;
        int got = frame_head(p, c->rlen - off, max_message, &f, &why);
        if (got > 1)
            rc = gw_ws_close_with(cs, cl, got, why);
        if (got != 1)
            break;
        unsigned char *mask = p + f.hl, *data = p + f.hl + 4;
        for (uint64_t i = 0; i < f.plen; i++)
            data[i] ^= mask[i % 4];
        off += f.hl + 4 + (size_t)f.plen;
        if (f.opcode <= 2)
            rc = data_frame(cs, cl, &f, data, max_message, fn, arg);
        else if (f.opcode == 8) /* close: echo the code and finish */
            rc = on_close_frame(cs, cl, data, (size_t)f.plen);
        else if (f.opcode == 9) /* ping */
            rc = gw_ws_send(cs, cl, 0xA, (const char *)data, (size_t)f.plen);
        else if (f.opcode != 0xA) /* pong is ignored */
            rc = gw_ws_close_with(cs, cl, 1002, "unknown opcode");
    }
    if (off) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
    return rc;
}

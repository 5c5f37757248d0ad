/* ws.c: the WebSocket side of the gateway (RFC 6455): the handshake key,
 * frame parsing (masked client frames, fragmentation, control frames, size
 * cap), sending, the close handshake as RFC 6455 5.5.1 and 7.4 say (codes,
 * payload length, UTF-8 reason), and the client messages of the contract:
 * register and ping. */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "gateway/internal.h"
#include "store/store.h"

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

int gw_ws_send(toro_gateway_t *gw, gw_conn_t *c, int opcode, const char *data, size_t len)
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
    int rc = gw_conn_write(gw, c, frame, hl + len);
    free(frame);
    return rc;
}

static int send_json(toro_gateway_t *gw, gw_conn_t *c, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!s)
        return -1;
    int rc = gw_ws_send(gw, c, 1, s, strlen(s));
    free(s);
    return rc;
}

static int send_error(toro_gateway_t *gw, gw_conn_t *c, const char *message)
{
    const char *code = gw_ws_error_code(message);
    return send_json(gw, c, json_pack("{s:s, s:s, s:s}", "type", "error", "error", message, "code", code));
}

static int close_with(toro_gateway_t *gw, gw_conn_t *c, int code, const char *why)
{
    char payload[128];
    payload[0] = (char)(code >> 8);
    payload[1] = (char)(code & 0xff);
    size_t wl = strlen(why);
    if (wl > 120)
        wl = 120;
    memcpy(payload + 2, why, wl);
    gw_ws_send(gw, c, 8, payload, wl + 2);
    c->closing = true;
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
static int on_close_frame(toro_gateway_t *gw, gw_conn_t *c, const unsigned char *data, size_t len)
{
    if (len == 1)
        return close_with(gw, c, 1002, "close payload of one byte");
    if (len >= 2) {
        int code = data[0] << 8 | data[1];
        if (!close_code_valid(code))
            return close_with(gw, c, 1002, "invalid close code");
        if (toro_utf8_count((const char *)data + 2, len - 2) < 0)
            return close_with(gw, c, 1007, "close reason is not valid UTF-8");
    }
    gw_ws_send(gw, c, 8, (const char *)data, len >= 2 ? 2 : 0);
    c->closing = true;
    return 0;
}

bool gw_ws_register(toro_gateway_t *gw, gw_conn_t *c, const char *user_id)
{
    if (c->user_id) {
        if (strcmp(c->user_id, user_id) != 0) {
            send_error(gw, c, "this connection is already registered for another user");
            return false;
        }
        send_json(gw, c,
                  json_pack("{s:s, s:s, s:s}", "type", "registered", "connection_id", c->connection_id, "user_id",
                            user_id));
        return true;
    }
    if (toro_limits_count(gw->ws_per_user, user_id, 1) > gw->cfg.max_ws_per_user) {
        toro_limits_count(gw->ws_per_user, user_id, -1);
        send_error(gw, c, "too many connections for this user");
        close_with(gw, c, 1008, "too many connections for this user");
        return false;
    }
    c->user_id = strdup(user_id);
    toro_connection_t row = {
        .connection_id = c->connection_id, .user_id = c->user_id, .node = gw->node, .connected_at = toro_now_ms()};
    if (!c->user_id || gw->ctx->store->ops->put_connection(gw->ctx->store, &row) != 0) {
        toro_limits_count(gw->ws_per_user, user_id, -1);
        free(c->user_id);
        c->user_id = NULL;
        send_error(gw, c, "could not register the connection; try again");
        return false;
    }
    gw_map_add(gw, c);
    toro_log_field_t f[] = {TORO_LOG_STR("connection_id", c->connection_id), TORO_LOG_STR("user_id", user_id)};
    toro_log_fields(TORO_LOG_INFO, "gateway", "WebSocket registered", f, 2);
    send_json(gw, c,
              json_pack("{s:s, s:s, s:s}", "type", "registered", "connection_id", c->connection_id, "user_id", user_id));
    return true;
}

/* A client message costs one token; an empty bucket closes the socket. */
static bool take_message_token(toro_gateway_t *gw, gw_conn_t *c)
{
    int64_t now = toro_mono_ms();
    if (c->ws_refill_ms == 0) {
        c->ws_tokens = gw->cfg.ws_msg_burst;
        c->ws_refill_ms = now;
    }
    c->ws_tokens += gw->cfg.ws_msg_rate * (double)(now - c->ws_refill_ms) / 1000.0;
    if (c->ws_tokens > gw->cfg.ws_msg_burst)
        c->ws_tokens = gw->cfg.ws_msg_burst;
    c->ws_refill_ms = now;
    if (c->ws_tokens < 1.0)
        return false;
    c->ws_tokens -= 1.0;
    return true;
}

static int on_message(toro_gateway_t *gw, gw_conn_t *c, const char *data, size_t len)
{
    if (!take_message_token(gw, c))
        return close_with(gw, c, 1008, "too many messages");
    if (toro_utf8_count(data, len) < 0)
        return close_with(gw, c, 1007, "invalid UTF-8");
    json_error_t jerr;
    json_t *o = json_loadb(data, len, 0, &jerr);
    const char *action = NULL;
    if (!o || !json_is_object(o) || json_unpack(o, "{s:s}", "action", &action) != 0) {
        json_decref(o);
        return send_error(gw, c, "expected a JSON object with an \"action\" (register or ping)");
    }
    int rc = 0;
    if (strcmp(action, "register") == 0) {
        json_t *u = json_object_get(o, "user_id"), *t = json_object_get(o, "token");
        const char *uid = json_is_string(u) ? json_string_value(u) : NULL;
        char *trimmed = uid ? toro_trim_dup(uid) : NULL;
        char sub[160];
        const char *why = NULL;
        if (uid && (!trimmed || !toro_user_id_is_valid(trimmed))) {
            rc = send_error(gw, c, "register needs a user_id of at most 128 letters, digits and . _ - @ :");
        } else if (gw->cfg.auth_mode == TORO_AUTH_NONE) {
            if (!trimmed)
                rc = send_error(gw, c, "register needs a user_id");
            else
                gw_ws_register(gw, c, trimmed);
        } else if (!json_is_string(t) ||
                   toro_auth_verify(&gw->cfg.auth, json_string_value(t), toro_now_ms() / 1000, sub, sizeof sub,
                                    &why) != 0) {
            rc = send_error(gw, c, why ? why : "register needs a token");
        } else if (trimmed && strcmp(trimmed, sub) != 0) {
            rc = send_error(gw, c, "user_id differs from the authenticated user");
        } else {
            gw_ws_register(gw, c, sub);
        }
        free(trimmed);
    } else if (strcmp(action, "ping") == 0) {
        rc = send_json(gw, c, json_pack("{s:s}", "type", "pong"));
    } else {
        rc = send_error(gw, c, "unknown action (expected register or ping)");
    }
    json_decref(o);
    return rc;
}

int gw_ws_on_data(toro_gateway_t *gw, gw_conn_t *c)
{
    size_t off = 0;
    int rc = 0;
    while (!c->closing && !gw_conn_over_budget(gw, c) && c->rlen - off >= 2) {
        unsigned char *p = (unsigned char *)c->rbuf + off;
        size_t avail = c->rlen - off;
        int fin = p[0] & 0x80, opcode = p[0] & 0x0f, masked = p[1] & 0x80;
        if (p[0] & 0x70) {
            rc = close_with(gw, c, 1002, "reserved bits set");
            break;
        }
        uint64_t plen = p[1] & 0x7f;
        size_t hl = 2;
        if (plen == 126) {
            if (avail < 4)
                break;
            plen = (uint64_t)p[2] << 8 | p[3];
            hl = 4;
        } else if (plen == 127) {
            if (avail < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = plen << 8 | p[2 + i];
            hl = 10;
        }
        if (!masked) {
            rc = close_with(gw, c, 1002, "client frames must be masked");
            break;
        }
        if (opcode >= 8 && (plen > 125 || !fin)) {
            rc = close_with(gw, c, 1002, plen > 125 ? "control frame over 125 bytes" : "fragmented control frame");
            break;
        }
        if (plen > gw->cfg.max_ws_message) {
            rc = close_with(gw, c, 1009, "message too big");
            break;
        }
        if (avail < hl + 4 + plen)
            break;
        unsigned char *mask = p + hl, *data = p + hl + 4;
        for (uint64_t i = 0; i < plen; i++)
            data[i] ^= mask[i % 4];
        off += hl + 4 + (size_t)plen;
        switch (opcode) {
        case 0x0: /* continuation */
        case 0x1: /* text */
        case 0x2: /* binary */
            if ((opcode == 0 && !c->frag_opcode) || (opcode != 0 && c->frag_opcode)) {
                rc = close_with(gw, c, 1002, "bad fragmentation");
                break;
            }
            if (opcode != 0)
                c->frag_opcode = opcode;
            if (c->frag_len + plen > gw->cfg.max_ws_message) {
                rc = close_with(gw, c, 1009, "message too big");
                break;
            }
            if (plen) {
                char *nf = realloc(c->frag, c->frag_len + (size_t)plen);
                if (!nf)
                    return -1;
                c->frag = nf;
                memcpy(c->frag + c->frag_len, data, (size_t)plen);
                c->frag_len += (size_t)plen;
            }
            if (fin) {
                if (c->frag_opcode == 2)
                    rc = close_with(gw, c, 1003, "binary messages are not supported");
                else
                    rc = on_message(gw, c, c->frag ? c->frag : "", c->frag_len);
                free(c->frag);
                c->frag = NULL;
                c->frag_len = 0;
                c->frag_opcode = 0;
            }
            break;
        case 0x8: /* close: echo the code and finish */
            rc = on_close_frame(gw, c, data, (size_t)plen);
            break;
        case 0x9: /* ping */
            rc = gw_ws_send(gw, c, 0xA, (const char *)data, (size_t)plen);
            break;
        case 0xA: /* pong */
            break;
        default:
            rc = close_with(gw, c, 1002, "unknown opcode");
        }
        if (rc)
            break;
    }
    if (off) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
    return rc;
}

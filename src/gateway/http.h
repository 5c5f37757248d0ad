/* http.h: the gateway's HTTP/1.1 layer: the request head parser
 * (keep-alive, pipelining, Content-Length bodies; no chunked bodies), the
 * strict framing rules (framing.c), headers and query strings, responses
 * (http_response.c) and the access log (access_log.c). It hands each
 * complete request to the serve callback its owner sets (routes) and knows
 * no route, no stage and no WebSocket. Loop thread only. */
#ifndef TORO_GATEWAY_HTTP_H
#define TORO_GATEWAY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/client.h"
#include "gateway/config.h"
#include "gateway/conn.h"
#include "gateway/route.h"

typedef struct gw_header {
    const char *name, *value; /* NUL-terminated, inside the request's head copy */
} gw_header_t;

#define GW_MAX_HEADERS 64

typedef struct gw_request {
    char *head;             /* private copy of the request head, NUL-separated (owned; gw_request_clear) */
    const char *method;
    const char *path;       /* raw path without the query (not percent-decoded) */
    const char *query;      /* raw query string after '?', "" if none */
    int minor_version;      /* HTTP/1.x */
    gw_header_t headers[GW_MAX_HEADERS];
    int n_headers;
    const char *body;       /* inside the socket's input buffer: valid while the request is served */
    size_t body_len;
    char request_id[65];    /* the client's X-Request-Id (sanitized, at most 64) or a new UUID */
    const char *peer;       /* client IP address */
} gw_request_t;

typedef struct gw_response {
    int status;
    const char *content_type;
    char *body;             /* heap, freed by gw_http_send */
    size_t body_len;
    const unsigned char *static_body; /* or a borrowed body (embedded asset) */
    char extra[512];        /* extra header lines, each ending in \r\n */
    gw_route_t route;
    char user_id[160];      /* authenticated user (or dev-login's), "" = none: for the access log */
    bool close;
    bool head_only;         /* HEAD: send the head of the GET response only */
} gw_response_t;

/* The HTTP side of a gateway. The owner fills every field. */
typedef struct gw_http {
    gw_conns_t *conns;
    const toro_gateway_config_t *cfg; /* max_header, max_body, allowed hosts */
    /* Serves one complete request of cl (its body included): 0, or -1 when
     * cl must close now. It answers with gw_http_send, now or later (while
     * cl->conn.waiting holds further input), or takes the socket over (a
     * WebSocket upgrade changes cl->kind, which ends the HTTP loop). */
    int (*serve)(void *owner, gw_client_t *cl, gw_request_t *req);
    void *owner;
} gw_http_t;

/* http.c */
/* Why: the pipelining loop: parses and serves as many complete requests as
 * cl's input holds, as fast as their responses drain (not while over the
 * output budget, waiting, or closing). Refusals are answered here. 0, or
 * -1 when cl must close now. */
int gw_http_on_input(gw_http_t *h, gw_client_t *cl);
/* Parses head[0..head_len) (ending in CRLF CRLF) into req, which owns a
 * copy. 0, or the HTTP status to refuse with. Success or not, req may own
 * its copy: the caller frees it with gw_request_clear. */
int gw_http_parse(const char *head, size_t head_len, gw_request_t *req);
/* Frees what req owns; safe twice. */
void gw_request_clear(gw_request_t *req);
/* Why: the once-a-second timeouts of an HTTP socket: a request head (or TLS
 * handshake) that takes too long (408 or close), an idle keep-alive. May close cl. */
void gw_http_tick(gw_http_t *h, gw_client_t *cl, int64_t now_ms);
/* The value of header name (case-insensitive), NULL when absent. */
const char *gw_header(const gw_request_t *req, const char *name);
/* Whether a comma-separated header value lists token (case-insensitive). */
bool gw_header_has_token(const char *value, const char *token);
/* Finds name in a query string and URL-decodes its value into out. 1
 * found, 0 not, -1 bad or too long (out then holds a partial value). */
int gw_query_get(const char *query, const char *name, char *out, size_t cap);

/* http_response.c */
/* Why: a response made of a status line, fixed headers, r->extra and the
 * body, queued in one write; counts and logs it (access_log.c) and frees
 * r->body. r->close marks cl closing. 0, or -1 when cl must close now. */
int gw_http_send(gw_conns_t *cs, gw_client_t *cl, gw_response_t *r, const char *request_id);
/* Sends an error for a request that could not be served, then closes. */
int gw_http_reject(gw_conns_t *cs, gw_client_t *cl, int status, const char *message);
/* Appends one header line ("Name: value"); a line that does not fit is dropped whole. */
void gw_add_header(gw_response_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Why: every JSON response carries Cache-Control: no-store. Takes o (its
 * reference is consumed) as the body; a body that cannot be serialized is empty. */
struct json_t;
void gw_http_json(gw_response_t *r, int status, struct json_t *o);
/* Why: a body already serialized (the 202 of POST /questions, built without
 * a JSON tree): as gw_http_json, taking ownership of json (NULL: empty body). */
void gw_http_json_text(gw_response_t *r, int status, char *json);
/* {success:true, data} (data's reference is consumed). */
void gw_http_ok(gw_response_t *r, int status, struct json_t *data);
/* {success:false, error, code}: code is the status's generic one (openapi.yaml ErrorCode). */
void gw_json_error(gw_response_t *r, int status, const char *message);
/* The same with a specific machine code; NULL = the status's generic code. */
void gw_json_error_code(gw_response_t *r, int status, const char *code, const char *message);

/* Why: the stages and auth.c refuse with fixed English messages; clients
 * get a machine code too. One message prefix and its code: */
typedef struct gw_code_prefix {
    const char *prefix, *code;
} gw_code_prefix_t;
/* The code of the first entry whose prefix starts message; fallback when
 * none does or message is NULL. */
const char *gw_code_by_prefix(const gw_code_prefix_t *table, size_t n, const char *message, const char *fallback);

/* framing.c */
/* Why: RFC 9112 leaves no room for bare CR or LF, NUL or other control
 * bytes in a request head; each is a way to make two parsers disagree. */
bool gw_head_bytes_ok(const char *buf, size_t len);
/* Content-Length: 0 none, 1 one value in *out (identical repeats folded), -1 invalid. */
int gw_content_length(const gw_request_t *req, long long *out);
/* Why: DNS rebinding: a Host outside --allowed-hosts (default on loopback:
 * the bind address, localhost and the hosts of --cors-origins) is refused. */
bool gw_host_allowed(const toro_gateway_config_t *cfg, const char *host);
/* Whether origin may call the API: same origin as Host, or in cfg->cors_origins. */
bool gw_origin_allowed(const toro_gateway_config_t *cfg, const gw_request_t *req, const char *origin);
/* The framing rules for a parsed head: one Host (HTTP/1.1), allowed, no
 * Transfer-Encoding, a valid body length in *body_len. 0, or the status to
 * refuse with and *why (a static message). */
int gw_framing_check(const toro_gateway_config_t *cfg, const gw_request_t *req, size_t *body_len, const char **why);

/* access_log.c: the request being answered on a socket (requests of one
 * socket are answered in order, so one record per socket is enough). */
/* Why: sets req->request_id from a sane client X-Request-Id or a new id, and
 * records the method, start time and id on cl for the access log. */
void gw_access_begin(gw_client_t *cl, gw_request_t *req);
/* Why: one JSON access-log line and one metrics count per HTTP response;
 * called by gw_http_send with the bytes queued. */
void gw_access_http(gw_client_t *cl, const gw_response_t *r, size_t bytes);
/* Why: the upgrade is a request too: its 101 line (user_id when the query
 * named one); the socket keeps the record for the session-end line. */
void gw_access_upgrade(gw_client_t *cl, const char *user_id, size_t bytes);
/* Why: one access-log line when a WebSocket session ends. */
void gw_access_ws_end(gw_client_t *cl);

#endif

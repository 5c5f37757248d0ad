/* internal.h: what the gateway's files share: the socket record, the parsed
 * request, the response under construction. Not used outside gateway/. */
#ifndef TORO_GATEWAY_INTERNAL_H
#define TORO_GATEWAY_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/metrics.h"
#include "gateway/gateway.h"
#include "gateway/limits.h"
#include "gateway/tls.h"

typedef enum { CONN_HTTP, CONN_WS } conn_kind_t;

typedef struct gw_conn {
    int fd;
    conn_kind_t kind;
    char *rbuf;             /* bytes read and not yet consumed */
    size_t rlen, rcap;      /* rcap grows up to the head+body or frame cap */
    char *wbuf;             /* bytes queued for the socket */
    size_t wlen, woff, wcap;
    int64_t opened_ms;      /* monotonic */
    int64_t request_started_ms; /* first byte of the current request, 0 = idle */
    int64_t last_read_ms;
    int64_t last_ping_ms;
    bool want_write;        /* EPOLLOUT wanted (unsent bytes the socket did not take) */
    uint32_t events;        /* epoll interest currently registered */
    bool peer_eof;          /* the client half-closed (FIN read): answer what it sent, then close */
    int64_t last_progress_ms; /* last time the socket took output bytes, or unsent went from 0 to >0 */
    int64_t over_since_ms;  /* unsent passed the output budget at this time; 0 = within budget */
    bool waiting;           /* a POST /questions of it waits in the group commit */
    bool closing;           /* close once wbuf is flushed */
    bool lingering;         /* FIN sent; input drained until the peer closes (see conn_finish) */
    int64_t linger_until;   /* monotonic deadline of the lingering close */
    gw_tls_t *ssl;          /* TLS session (owned), NULL on a plain-TCP gateway */
    bool tls_read_wants_write; /* the last read (handshake) needs the socket writable */
    bool tls_write_wants_read; /* the last write needs the socket readable */
    /* WebSocket state */
    char connection_id[37];
    char *user_id;          /* registered user, NULL before register */
    bool in_map;            /* listed in the gateway's connection map */
    char peer[48];          /* client IP address */
    struct {
        char method[8];     /* of the request being answered, "" before one is parsed */
        char path[8];       /* "/ws" or "/" for an upgraded socket */
        toro_route_t route; /* gw_route_template of the path: the label of a refusal before routing */
        char request_id[65];
        int64_t started_ms; /* monotonic */
        uint64_t bytes_out; /* WebSocket: bytes queued during the session */
    } acc;                  /* access-log record (access_log.c) */
    double ws_tokens;       /* WebSocket message bucket */
    int64_t ws_refill_ms;
    char *frag;             /* fragmented message being assembled */
    size_t frag_len;
    int frag_opcode;
    struct gw_conn *map_next; /* chain in the connection map */
    struct gw_conn *prev, *next; /* every socket of the gateway (loop thread only) */
} gw_conn_t;

typedef struct gw_header {
    const char *name, *value; /* NUL-terminated, inside the request buffer copy */
} gw_header_t;

#define GW_MAX_HEADERS 64

typedef struct gw_request {
    char *head;             /* private copy of the request head, NUL-separated */
    const char *method;
    const char *path;       /* decoded? no: raw path without the query */
    const char *query;      /* raw query string after '?', "" if none */
    int minor_version;      /* HTTP/1.x */
    gw_header_t headers[GW_MAX_HEADERS];
    int n_headers;
    const char *body;
    size_t body_len;
    char request_id[65];    /* the client's X-Request-Id (sanitized, at most 64) or a new UUID */
    const char *peer;       /* client IP address */
} gw_request_t;

typedef struct gw_response {
    int status;
    const char *content_type;
    char *body;             /* heap, freed by the writer */
    size_t body_len;
    const unsigned char *static_body; /* or a borrowed body (embedded asset) */
    char extra[512];        /* extra header lines, each ending in \r\n */
    toro_route_t route;
    char user_id[160];      /* authenticated user (or dev-login's), "" = none: for the access log */
    bool close;
    bool head_only;         /* HEAD: send the head of the GET response only */
    bool deferred;          /* POST /questions validated: item waits for the group commit */
    toro_ingest_item_t item; /* with deferred: the question to commit (owned) */
} gw_response_t;

/* A validated question waiting for the end of the event-loop round, when
 * all of them are committed in one transaction and answered. */
typedef struct gw_deferred {
    gw_conn_t *conn;        /* NULL when the socket closed meanwhile */
    gw_response_t resp;     /* headers so far (CORS, close) and the item to commit */
    char request_id[65];
    int64_t t0;             /* request parsed (monotonic ms), for the HTTP histogram */
} gw_deferred_t;

#define GW_BATCH_MAX 512

#define MAP_BUCKETS 4096

typedef struct pending_msg {
    char connection_id[37];
    char *text;
    struct pending_msg *next;
} pending_msg_t;

struct toro_gateway {
    toro_gateway_config_t cfg;
    toro_stage_ctx_t *ctx;
    int listen_fd, epoll_fd, wake_fd;
    int port;
    int n_conns;
    volatile int stopping;
    pthread_mutex_t lock;          /* guards map and pending */
    gw_conn_t *map[MAP_BUCKETS];   /* registered WebSocket connections by id */
    pending_msg_t *pending, *pending_tail;
    char node[128];
    gw_conn_t *conns;              /* every open socket (loop thread only) */
    toro_limits_t *rate;           /* questions asked per user (loop thread only) */
    toro_limits_t *read_rate;      /* reads per user, dev-logins per IP (loop thread only) */
    toro_limits_t *ws_per_user;    /* registered WebSockets per user (loop thread only) */
    gw_tls_ctx_t *tls;             /* TLS context (owned), NULL when the port speaks plain HTTP */
    int reserve_fd;                /* spare descriptor given up to accept-and-503 one client on EMFILE */
    int64_t accept_resume_ms;      /* listening socket not polled until then (EMFILE back-off); 0 = polled */
    int accept_backoff_ms;         /* current back-off, doubled while EMFILE persists */
    gw_deferred_t batch[GW_BATCH_MAX]; /* group commit of this round (loop thread only) */
    size_t n_batch;
};

/* routes.c: the response to a POST /questions once its commit is known. */
void gw_finish_ingest(gw_response_t *r, const toro_ingest_item_t *item, int rc);

/* Appends one header line ("Name: value") to the response. */
void gw_add_header(gw_response_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Whether `origin` may call the API: same origin as Host, or in the allow-list. */
bool gw_origin_allowed(toro_gateway_t *gw, const gw_request_t *req, const char *origin);

const char *gw_header(const gw_request_t *req, const char *name);
/* Finds `name` in a query string and URL-decodes its value into out. 1 found, 0 not, -1 bad/too long. */
int gw_query_get(const char *query, const char *name, char *out, size_t cap);

void gw_route(toro_gateway_t *gw, gw_request_t *req, gw_response_t *resp);
/* Why: a client written for an API Gateway stage URL opens its WebSocket on
 * the root; with --auth none (the reference behaviour) a WebSocket upgrade
 * of "/" is served as /ws. Anything else on "/" is the web UI. */
bool gw_root_upgrade(const toro_gateway_t *gw, const gw_request_t *req);
/* Why: the route label of a path (API routes only; anything else, static
 * files included, is TORO_ROUTE_OTHER), for responses made before routing. */
toro_route_t gw_route_template(const char *path);
void gw_json_error(gw_response_t *resp, int status, const char *message);
/* The same with a specific machine code (openapi.yaml ErrorCode); NULL = the status's generic code. */
void gw_json_error_code(gw_response_t *resp, int status, const char *code, const char *message);

/* Why: WebSocket {"type":"error"} messages carry a code like HTTP errors;
 * this maps the gateway's own fixed messages (ws.c, auth.c) to it. */
const char *gw_ws_error_code(const char *message);

/* access_log.c: the request being answered on a connection (requests of one
 * connection are answered in order, so one record per connection is enough). */
/* Why: sets req->request_id from a sane client X-Request-Id or a new id, and
 * records the method, start time and id on c for the access log. */
void gw_access_begin(gw_conn_t *c, gw_request_t *req);
/* Why: one JSON access-log line and one metrics count per HTTP response;
 * called by send_response with the bytes queued. */
void gw_access_http(gw_conn_t *c, const gw_response_t *r, size_t bytes);
/* Why: the upgrade is a request too: its 101 line (user_id when the query
 * named one); the socket keeps the record for the session-end line. */
void gw_access_upgrade(gw_conn_t *c, const char *user_id, size_t bytes);
/* Why: one access-log line when a WebSocket session ends (conn_close). */
void gw_access_ws_end(gw_conn_t *c);

/* WebSocket helpers (ws.c) */
int gw_ws_accept_key(const char *client_key, char out[64]);
/* Consumes complete frames from c->rbuf; returns -1 when the connection must close. */
int gw_ws_on_data(toro_gateway_t *gw, gw_conn_t *c);
int gw_ws_send(toro_gateway_t *gw, gw_conn_t *c, int opcode, const char *data, size_t len);
/* Registers c for user_id (already authenticated); false when refused (an
 * error message was sent and, for a limit, the socket is closing). */
bool gw_ws_register(toro_gateway_t *gw, gw_conn_t *c, const char *user_id);

/* framing.c */
/* Why: RFC 9112 leaves no room for bare CR or LF, NUL or other control
 * bytes in a request head; each is a way to make two parsers disagree. */
bool gw_head_bytes_ok(const char *buf, size_t len);
/* Content-Length: 0 none, 1 one value in *out (identical repeats folded), -1 invalid. */
int gw_content_length(const gw_request_t *req, long long *out);
/* Why: DNS rebinding: a Host outside --allowed-hosts (default on loopback:
 * the bind address, localhost and the hosts of --cors-origins) is refused. */
bool gw_host_allowed(const toro_gateway_t *gw, const char *host);
/* The framing rules for a parsed head: one Host (HTTP/1.1), allowed, and a
 * valid body length in *body_len. 0, or the status to reject with and *why. */
int gw_framing_check(const toro_gateway_t *gw, const gw_request_t *req, size_t *body_len, const char **why);

/* server.c */
/* Why: one output budget for HTTP and WebSocket alike: while a socket holds
 * more unsent bytes than cfg.max_output its input is not parsed (nor read),
 * so a client that does not read its responses cannot grow the server. */
bool gw_conn_over_budget(const toro_gateway_t *gw, const gw_conn_t *c);
/* Why: the accept path and the fuzz harness make a connection of an fd. */
gw_conn_t *gw_conn_adopt(toro_gateway_t *gw, int fd, const char *peer);
/* Why: the fuzz harness feeds bytes as if read from the socket. Returns the
 * bytes taken (fewer than len while the socket's input is paused: output
 * over budget, a commit pending, half-closed), or -1 when the connection
 * must be dropped (gw_conn_drop). */
long gw_conn_feed(toro_gateway_t *gw, gw_conn_t *c, const char *data, size_t len);
void gw_conn_drop(toro_gateway_t *gw, gw_conn_t *c);
/* Why: the fuzz harness has no event loop: does what one round does for c
 * after its input (the group commit) and once its socket is writable (flush,
 * then the input that waited for the output budget). Returns whether c is
 * still open (it may have been closed and freed). */
bool gw_conn_pump(toro_gateway_t *gw, gw_conn_t *c);
/* Why: the fuzz harness's half-close: what a read of EOF does. Returns
 * whether c is still open. */
bool gw_conn_feed_eof(toro_gateway_t *gw, gw_conn_t *c);
int gw_conn_write(toro_gateway_t *gw, gw_conn_t *c, const char *data, size_t len);
void gw_map_remove(toro_gateway_t *gw, gw_conn_t *c);
void gw_map_add(toro_gateway_t *gw, gw_conn_t *c);

#endif

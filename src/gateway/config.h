/* config.h: the gateway's options (shared by `toro serve` and `toro api`)
 * and the rules that complete them (config.c). Data and option parsing
 * only: every gateway layer reads it, none of them is needed to fill it. */
#ifndef TORO_GATEWAY_CONFIG_H
#define TORO_GATEWAY_CONFIG_H

#include <stddef.h>

#include "gateway/auth.h"

typedef enum {
    TORO_AUTH_AUTO, /* resolved by toro_gateway_config_finish: DEV on loopback, JWT elsewhere */
    TORO_AUTH_NONE, /* no authentication: the body/query names the user (reference behaviour; opt-in only) */
    TORO_AUTH_DEV,  /* bearer tokens required; POST /auth/dev-login issues them (simulated login) */
    TORO_AUTH_JWT,  /* bearer tokens required, issued elsewhere with the shared secret */
} toro_auth_mode_t;

typedef struct toro_gateway_config {
    const char *host;          /* listen address, default 127.0.0.1 */
    int port;                  /* 0 = any free port */
    const char *node;          /* this gateway's name in the connections table */
    const char *kb_version;    /* reported by /healthz until core/kbinfo holds one; may be NULL */
    /* POST /admin/kb/reload (admin role): re-reads the snapshot. Returns 0,
     * or a negative code with *why (caller frees) when the new snapshot was
     * refused and the old one kept serving. NULL: the route answers 404. */
    int (*kb_reload)(void *ud, char **why);
    void *kb_reload_ud;
    size_t max_body;           /* request body cap in bytes (413 beyond) */
    size_t max_header;         /* request head cap in bytes (431 beyond) */
    size_t max_ws_message;     /* WebSocket message cap (close 1009 beyond) */
    size_t max_ws_backlog;     /* unsent server pushes allowed per WebSocket before it is dropped */
    size_t max_output;         /* output budget: past this many unsent bytes a socket's input is not read */
    int send_timeout_ms;       /* a socket whose output makes no progress (or stays over budget) this long is closed */
    int header_timeout_ms;     /* a request head must arrive within this (slowloris) */
    int idle_timeout_ms;       /* keep-alive idle limit */
    int ws_ping_ms;            /* server ping period */
    int ws_dead_ms;            /* a socket silent for this long is closed */
    int max_connections;       /* sockets of all kinds */
    toro_auth_mode_t auth_mode;
    toro_auth_t auth;          /* secret, issuer, audience (DEV and JWT) */
    double user_rate_per_min;  /* questions asked per user (per IP without auth) per minute; 0 = off */
    double user_burst;         /* bucket size of the above */
    double read_rate_per_min;  /* history reads per user and dev-logins per IP per minute; 0 = off */
    double read_burst;         /* bucket size of the above */
    int max_ws_per_user;       /* concurrent registered WebSockets per user */
    double ws_msg_rate;        /* client messages per second per WebSocket */
    double ws_msg_burst;
    const char *cors_origins;  /* comma-separated allow-list of origins; NULL = same-origin only */
    const char *allowed_hosts; /* comma-separated Host names accepted ("*" = any); NULL = default (framing.c) */
    const char *tls_cert;      /* PEM certificate chain (leaf first); NULL = plain HTTP. Borrowed */
    const char *tls_key;       /* PEM private key of tls_cert, unencrypted; set with tls_cert or not at all */
} toro_gateway_config_t;

void toro_gateway_config_defaults(toro_gateway_config_t *cfg);

/* Why: `toro serve` and `toro api` share their gateway options. Parses
 * argv[*i] (and its value) when it is a gateway option: --host, --port,
 * --node, --auth none|dev|jwt, --jwt-secret-file, --jwt-issuer,
 * --jwt-audience, --rate-limit N/min (asking), --read-rate-limit N/min
 * (reading one's history, dev-login), --max-ws-per-user N, --max-connections
 * N, --cors-origins LIST, --allowed-hosts LIST, --max-body BYTES, --header-timeout-ms MS,
 * --idle-timeout-ms MS, --send-timeout-ms MS, --tls-cert FILE, --tls-key FILE (HTTPS and wss on
 * the same port; the files are loaded and checked by toro_gateway_new).
 * Returns 1 when consumed, 0 when not a gateway option, -1 on a bad value
 * (message printed). */
int toro_gateway_parse_option(toro_gateway_config_t *cfg, int argc, char **argv, int *i);

/* Why: after parsing, fills what the options imply: environment fallbacks
 * (TORO_JWT_SECRET, TORO_JWT_ISSUER, TORO_JWT_AUDIENCE, TORO_AUTH,
 * TORO_TLS_CERT, TORO_TLS_KEY), the
 * auth mode when left AUTO (dev on a loopback address, jwt elsewhere), a
 * random secret in dev mode when none is configured. Returns 0 or -1 with a message on stderr (jwt mode
 * without a secret, a TLS certificate without its key or the reverse). */
int toro_gateway_config_finish(toro_gateway_config_t *cfg);

/* Why: the authentication mode is announced in the log (the development
 * login loudly) only once the server is actually serving: after the port is
 * bound and everything it needs opened, so a failed start prints only why it
 * failed. Call after toro_gateway_config_finish and toro_gateway_new. */
void toro_gateway_config_announce(const toro_gateway_config_t *cfg);

#endif

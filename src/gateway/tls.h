/* tls.h: TLS for the gateway's listening port (OpenSSL): one context per
 * gateway built from a PEM certificate chain and key, and per-connection
 * non-blocking read/write/close wrappers that turn OpenSSL's error states
 * into a few codes the event loop acts on. It owns no sockets and no
 * buffers, and never blocks: the connection layer (conn.c, conn_read.c) decides when to call
 * and which epoll events to arm. Not used outside gateway/. */
#ifndef TORO_GATEWAY_TLS_H
#define TORO_GATEWAY_TLS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ssl_ctx_st gw_tls_ctx_t; /* = SSL_CTX, without pulling OpenSSL headers in */
typedef struct ssl_st gw_tls_t;         /* = SSL */

/* Results of gw_tls_read / gw_tls_write besides a positive byte count. */
enum {
    GW_TLS_CLOSED = 0,       /* the peer closed the TLS session (close_notify) */
    GW_TLS_WANT_READ = -1,   /* retry once the socket is readable */
    GW_TLS_WANT_WRITE = -2,  /* retry once the socket is writable */
    GW_TLS_ERROR = -3,       /* fatal: protocol error, reset, EOF without close_notify */
    GW_TLS_PLAINTEXT = -4,   /* fatal: the peer sent a plain HTTP request to the TLS port */
};

/* Why: the gateway refuses to start with a certificate or key it cannot
 * use, naming the file and the problem, rather than failing every
 * handshake later. Loads the PEM chain in cert_file and the PEM key in
 * key_file (unencrypted: no passphrase prompt) and checks that they match.
 * Settings: TLS 1.2 minimum, forward-secret AEAD ciphers for TLS 1.2 with
 * the server's preference, no compression, no renegotiation, ALPN
 * "http/1.1" when the client offers it. 0 and *out (free with
 * gw_tls_ctx_free), or -1 with a message in msg. */
int gw_tls_ctx_new(const char *cert_file, const char *key_file, gw_tls_ctx_t **out, char *msg, size_t msg_cap);
void gw_tls_ctx_free(gw_tls_ctx_t *ctx);

/* Why: the accept path gives every socket of a TLS gateway its own
 * session. fd is borrowed (the caller closes it after gw_tls_free).
 * Returns NULL when out of memory. */
gw_tls_t *gw_tls_new(gw_tls_ctx_t *ctx, int fd);
/* Best-effort close_notify (never blocks; skipped after a fatal error or
 * before the handshake finished), then frees. NULL is a no-op. */
void gw_tls_free(gw_tls_t *ssl);

/* Reads decrypted bytes into buf (driving the handshake first when it is
 * not finished). A positive count, or one of the GW_TLS_ codes. Keep
 * calling while it returns a count: OpenSSL may hold whole records that
 * epoll will not report again. */
int gw_tls_read(gw_tls_t *ssl, char *buf, size_t cap);
/* Encrypts and sends up to len bytes; a positive count (possibly less than
 * len: partial writes are on), or a GW_TLS_ code. After WANT_*, retry with
 * the same bytes at the front (the buffer may have moved or grown). */
int gw_tls_write(gw_tls_t *ssl, const char *data, size_t len);
/* Whether the handshake has completed. */
bool gw_tls_ready(const gw_tls_t *ssl);

#endif

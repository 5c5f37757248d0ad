/* tls.c: the gateway's TLS layer on OpenSSL: builds the server context from
 * PEM files (refusing unusable or mismatched ones with a message naming the
 * file) and wraps SSL_read / SSL_write / SSL_shutdown for non-blocking
 * sockets. It does not touch epoll or the connection record: conn.c maps
 * the GW_TLS_ codes to events. Every call clears the thread's OpenSSL error
 * queue first, because SSL_get_error() reads it and a stale entry (from
 * another connection, or from auth.c's HMAC on the same thread) would turn
 * a harmless WANT_READ into a fatal error. */
#include "gateway/tls.h"

#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"

/* TLS 1.2 suites: ECDHE key exchange and AEAD only (TLS 1.3 suites are all
 * fine and keep OpenSSL's defaults). */
static const char tls12_ciphers[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/* Copies the most useful OpenSSL reason of the error queue into buf and
 * clears the queue. */
static const char *ssl_reason(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_error(); /* the first: the cause, not the caller giving up */
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(buf, cap, "%s", r ? r : "unknown error");
    ERR_clear_error();
    return buf;
}

/* A passphrase prompt would block the start on a terminal: refuse instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return 0;
}

/* ALPN: answer "http/1.1" when offered; otherwise go on without ALPN (a
 * client that offers only h2 still speaks HTTP/1.1 after the handshake). */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    (void)ssl, (void)arg;
    static const unsigned char h11[] = "http/1.1";
    for (unsigned int i = 0; i < inlen;) {
        unsigned int n = in[i];
        if (i + 1 + n > inlen)
            break;
        if (n == sizeof h11 - 1 && memcmp(in + i + 1, h11, n) == 0) {
            *out = in + i + 1;
            *outlen = (unsigned char)n;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

int gw_tls_ctx_new(const char *cert_file, const char *key_file, gw_tls_ctx_t **out, char *msg, size_t msg_cap)
{
    int rc = -1;
    char why[256];
    SSL_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    FILE *f = NULL;
    ERR_clear_error();
    /* readable at all? errno says more than OpenSSL's "system lib" */
    if (!(f = fopen(cert_file, "rb"))) {
        snprintf(msg, msg_cap, "cannot read the TLS certificate %s: %s", cert_file, strerror(errno));
        goto out;
    }
    fclose(f);
    if (!(f = fopen(key_file, "rb"))) {
        snprintf(msg, msg_cap, "cannot read the TLS key %s: %s", key_file, strerror(errno));
        goto out;
    }
    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(msg, msg_cap, "cannot create the TLS context: %s", ssl_reason(why, sizeof why));
        goto out;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* partial writes: flush() advances by what was sent; moving buffer:
     * gw_conn_write may compact or grow wbuf between a WANT_WRITE and the retry */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    if (SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1) {
        snprintf(msg, msg_cap, "cannot set the TLS ciphers: %s", ssl_reason(why, sizeof why));
        goto out;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        snprintf(msg, msg_cap, "cannot load the TLS certificate %s (a PEM certificate chain is expected): %s",
                 cert_file, ssl_reason(why, sizeof why));
        goto out;
    }
    pkey = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
    if (!pkey) {
        snprintf(msg, msg_cap,
                 "cannot load the TLS key %s (an unencrypted PEM private key is expected): %s", key_file,
                 ssl_reason(why, sizeof why));
        goto out;
    }
    X509 *leaf = SSL_CTX_get0_certificate(ctx);
    if (!leaf || X509_check_private_key(leaf, pkey) != 1) {
        ERR_clear_error();
        snprintf(msg, msg_cap, "the TLS key %s does not match the certificate %s", key_file, cert_file);
        goto out;
    }
    if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(msg, msg_cap, "cannot use the TLS key %s with the certificate %s: %s", key_file, cert_file,
                 ssl_reason(why, sizeof why));
        goto out;
    }
    *out = ctx;
    ctx = NULL;
    rc = 0;
out:
    if (f)
        fclose(f);
    EVP_PKEY_free(pkey);
    SSL_CTX_free(ctx);
    return rc;
}

void gw_tls_ctx_free(gw_tls_ctx_t *ctx) { SSL_CTX_free(ctx); }

gw_tls_t *gw_tls_new(gw_tls_ctx_t *ctx, int fd)
{
    ERR_clear_error();
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        goto fail;
    if (SSL_set_fd(ssl, fd) != 1)
        goto fail;
    SSL_set_accept_state(ssl);
    return ssl;
fail:
    SSL_free(ssl);
    ERR_clear_error();
    return NULL;
}

void gw_tls_free(gw_tls_t *ssl)
{
    if (!ssl)
        return;
    ERR_clear_error();
    /* one non-blocking attempt to send close_notify; quiet shutdown was
     * set after a fatal error, where sending anything is not allowed */
    if (SSL_is_init_finished(ssl))
        (void)SSL_shutdown(ssl);
    ERR_clear_error();
    SSL_free(ssl);
}

/* Maps a failed SSL_read/SSL_write (n <= 0) to a GW_TLS_ code. */
static int failure(SSL *ssl, int n)
{
    int e = SSL_get_error(ssl, n);
    if (e == SSL_ERROR_WANT_READ)
        return GW_TLS_WANT_READ;
    if (e == SSL_ERROR_WANT_WRITE)
        return GW_TLS_WANT_WRITE;
    if (e == SSL_ERROR_ZERO_RETURN)
        return GW_TLS_CLOSED;
    unsigned long err = ERR_peek_error();
    int rc = ERR_GET_LIB(err) == ERR_LIB_SSL && ERR_GET_REASON(err) == SSL_R_HTTP_REQUEST ? GW_TLS_PLAINTEXT
                                                                                          : GW_TLS_ERROR;
    if (err) {
        char why[256];
        toro_log_debug("gateway", NULL, "TLS connection failed: %s", ssl_reason(why, sizeof why));
    }
    SSL_set_quiet_shutdown(ssl, 1); /* fatal: no close_notify may follow */
    ERR_clear_error();
    return rc;
}

int gw_tls_read(gw_tls_t *ssl, char *buf, size_t cap)
{
    ERR_clear_error();
    int n = SSL_read(ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
    return n > 0 ? n : failure(ssl, n);
}

int gw_tls_write(gw_tls_t *ssl, const char *data, size_t len)
{
    ERR_clear_error();
    int n = SSL_write(ssl, data, len > INT_MAX ? INT_MAX : (int)len);
    return n > 0 ? n : failure(ssl, n);
}

bool gw_tls_ready(const gw_tls_t *ssl) { return SSL_is_init_finished(ssl) != 0; }

/* sigv4.h: AWS Signature Version 4 for HTTP requests signed in the
 * Authorization header (what Bedrock Runtime and Bedrock Agent Runtime
 * expect), built on OpenSSL's SHA-256 and HMAC-SHA256. It computes the
 * canonical request, the string to sign, the signing key and the
 * Authorization value; it does not send anything, read credentials from the
 * environment (the callers do) or implement query-string presigning, chunked
 * payload signing or SigV4a.
 *
 * Canonical URI: the path is URI-encoded once more as given (every byte but
 * unreserved characters and '/'), as AWS does for every service but S3, so a
 * path sent as "/model/a%3A0/converse" is signed as "/model/a%253A0/converse".
 * Dot segments are not normalized (toro never sends them). */
#ifndef TORO_CORE_SIGV4_H
#define TORO_CORE_SIGV4_H

#include <stddef.h>

#define TORO_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef struct toro_sigv4_header {
    const char *name;  /* any case; lowercased in the canonical form */
    const char *value; /* trimmed and inner whitespace runs collapsed when signed */
} toro_sigv4_header_t;

typedef struct toro_sigv4_request {
    const char *method;                 /* "GET", "POST", ... */
    const char *path;                   /* path as sent on the wire, "/" when empty */
    const char *query;                  /* query string without '?', NULL or "" for none */
    const toro_sigv4_header_t *headers; /* headers to sign: must include host and x-amz-date */
    size_t n_headers;
    const void *body; /* payload hashed when payload_hash is NULL */
    size_t body_len;
    const char *payload_hash; /* optional precomputed hex SHA-256 (or "UNSIGNED-PAYLOAD") */
} toro_sigv4_request_t;

typedef struct toro_sigv4_credentials {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL when not using temporary credentials */
} toro_sigv4_credentials_t;

/* Why: exposed so tests can compare each step with the published vectors.
 * *creq and *signed_headers (optional) are caller-freed. 0, or TORO_EINVAL
 * (no request or method, more than 64 headers), TORO_ETOOBIG (over 1 MiB, or
 * more than 128 query parameters), TORO_ENOMEM: then *creq and
 * *signed_headers are NULL. */
int toro_sigv4_canonical_request(const toro_sigv4_request_t *req, char **creq, char **signed_headers);

/* Why: step two of the signature. amz_date is "YYYYMMDDTHHMMSSZ". Caller
 * frees *out. 0, or TORO_EINVAL (a missing argument or a date of the wrong
 * length) or TORO_ENOMEM with *out NULL. */
int toro_sigv4_string_to_sign(const char *amz_date, const char *region, const char *service, const char *creq,
                              char **out);

/* Why: step three, the derived key; date8 is "YYYYMMDD". Out of memory, key
 * is all zeros (which no request verifies with); intermediate keys are wiped. */
void toro_sigv4_signing_key(const char *secret, const char *date8, const char *region, const char *service,
                            unsigned char key[32]);

/* Why: the one call providers use. Returns the Authorization header value
 * ("AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...") in
 * *authorization (caller frees); *signature (optional, caller frees) is the
 * hex signature alone. The request's headers must already hold the
 * x-amz-date (and x-amz-security-token when used) that will be sent. On
 * failure (TORO_EINVAL without credentials, or the codes above) both
 * outputs are NULL. */
int toro_sigv4_sign(const toro_sigv4_request_t *req, const toro_sigv4_credentials_t *cred, const char *region,
                    const char *service, const char *amz_date, char **authorization, char **signature);

/* Why: helpers the providers need around signing. hex must hold 65 bytes. */
void toro_sigv4_sha256_hex(const void *data, size_t len, char hex[65]);
/* Formats a UNIX time as the x-amz-date value (17 bytes with NUL). */
void toro_sigv4_amz_date(long long unix_seconds, char out[17]);
/* URI-encodes every byte except unreserved characters (and '/' when keep_slash).
 * Caller frees; NULL when out of memory. */
char *toro_sigv4_uri_encode(const char *s, size_t len, int keep_slash);

#endif

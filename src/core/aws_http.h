/* aws_http.h: one signed AWS call over libcurl: SigV4 (service, region) in
 * the Authorization header, a POST with a body, the HTTP status and the
 * response body back. For the backends that talk to AWS protocols (SNS and
 * SQS bus, API Gateway Management API push, DynamoDB store, Bedrock). It
 * does not retry, parse
 * responses or know any service: callers map status codes.
 *
 * Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
 * AWS_SESSION_TOKEN (the Lambda environment sets all three), read once into
 * a toro_aws_creds_t (no refresh of expiring session tokens). */
#ifndef TORO_CORE_AWS_HTTP_H
#define TORO_CORE_AWS_HTTP_H

#include <curl/curl.h>
#include <stdatomic.h>
#include <stddef.h>

#include "core/strbuf.h"

typedef struct toro_aws_creds {
    char *access_key_id; /* never logged */
    char *secret_access_key;
    char *session_token; /* NULL without temporary credentials */
} toro_aws_creds_t;

typedef struct toro_aws_header {
    const char *name; /* signed and sent, e.g. "x-amz-target" */
    const char *value;
} toro_aws_header_t;

typedef struct toro_aws_request {
    const char *url;          /* http(s)://host[:port][/path]; the path is sent and signed as given */
    const char *service;      /* signing name: "sqs", "sns", "execute-api" */
    const char *region;
    const char *content_type; /* e.g. "application/x-amz-json-1.0" */
    const toro_aws_header_t *headers; /* extra headers (at most 4), may be NULL */
    size_t n_headers;
    const char *body;
    size_t body_len;
    long timeout_ms; /* whole transfer; 0 means 10 s */
    const atomic_int *cancel; /* optional: nonzero aborts the transfer (checked about once a second) */
} toro_aws_request_t;

/* Why: every backend reads the same variables. 0 with all fields set
 * (session_token may be NULL); TORO_EINVAL (*err says which variable is
 * missing) or TORO_ENOMEM, then *out is zeroed. */
int toro_aws_creds_from_env(toro_aws_creds_t *out, char **err);
/* Wipes and frees the fields; NULL is a no-op. */
void toro_aws_creds_clear(toro_aws_creds_t *c);

/* Why: the one call. 0 when the peer answered (any status): *status is the
 * HTTP status and *body (caller frees, NUL-terminated, may be "") the
 * response, capped at 4 MiB. TORO_EIO when no answer arrived (connection
 * refused, timeout, cancel, bad URL; *err says why), TORO_EINVAL when signing
 * fails, TORO_ENOMEM; then *status is 0 and *body NULL. Thread-safe. */
int toro_aws_post(const toro_aws_request_t *req, const toro_aws_creds_t *cred, long *status, char **body,
                  char **err);

/* Why: answer/bedrock.c posts through its own retrying client and only needs
 * the headers. The curl header list for one POST of req->body, signed now
 * (x-amz-date is this second): Expect (empty), content-type, host,
 * x-amz-content-sha256, x-amz-date, x-amz-security-token with a session
 * token, req's extra headers, Authorization. NULL on failure (*err says why). */
struct curl_slist *toro_aws_signed_headers(const toro_aws_request_t *req, const toro_aws_creds_t *cred, char **err);

/* Appends s percent-encoded: every byte but A-Z a-z 0-9 - _ . ~ as %XX. */
void toro_aws_uri_encode(toro_strbuf_t *b, const char *s);
/* Appends "&key=value" (no '&' when the buffer is empty) with value
 * percent-encoded as AWS query protocols expect (unreserved characters kept). */
void toro_aws_form_add(toro_strbuf_t *b, const char *key, const char *value);

#endif

/* aws_http.h: one signed AWS request over libcurl (SigV4, sigv4.h): the
 * headers every AWS JSON/query API wants, signed for one attempt, and a POST
 * that returns the HTTP status and body as they came. It knows no service:
 * callers (answer/bedrock.c, store/dynamodb.c) decide what a status means.
 * Safe from several threads at once: each thread keeps one curl handle
 * (freed when the thread exits), so calls reuse the connection. */
#ifndef TORO_CORE_AWS_HTTP_H
#define TORO_CORE_AWS_HTTP_H

#include <curl/curl.h>
#include <stddef.h>

#include "core/sigv4.h"

/* Where one signed request goes. Every field is borrowed. */
typedef struct toro_aws_target {
    const char *url;                     /* full URL, e.g. https://dynamodb.us-east-1.amazonaws.com/ */
    const char *host;                    /* Host header (host[:port] of url) */
    const char *path;                    /* path as sent, "/" for the root */
    const char *region, *service;        /* signing scope ("us-east-1", "dynamodb") */
    const toro_sigv4_credentials_t *cred;
    const char *content_type;            /* e.g. "application/x-amz-json-1.0" */
    const char *amz_target;              /* X-Amz-Target (signed) or NULL */
} toro_aws_target_t;

/* Credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and, when set,
 * AWS_SESSION_TOKEN (what Lambda sets). Strings are owned; free with
 * toro_aws_credentials_free. TORO_EINVAL (with *err) when a key is missing,
 * TORO_ENOMEM; on failure every field is NULL. */
int toro_aws_credentials_from_env(toro_sigv4_credentials_t *out, char **err);
void toro_aws_credentials_free(toro_sigv4_credentials_t *c);

/* Why: bedrock.c posts through its own retrying client and only needs the
 * headers. The curl header list of one POST of body, signed now: Host,
 * Content-Type, Accept, X-Amz-Date, X-Amz-Content-Sha256, X-Amz-Security-Token
 * (with a session token), X-Amz-Target (when set), Authorization, and an
 * empty Expect. NULL (with *err when signing failed) on failure. */
struct curl_slist *toro_aws_signed_headers(const toro_aws_target_t *t, const char *body, size_t len, char **err);

/* Why: one signed POST, no retry, on the calling thread's connection. On 0 *status is the HTTP status (any, 4xx
 * and 5xx included) and *resp (caller frees, never NULL) the body. TORO_EIO
 * when no HTTP answer came (*err says why; *status 0, *resp NULL),
 * TORO_ENOMEM. timeout_ms bounds the whole exchange. */
int toro_aws_post(const toro_aws_target_t *t, const char *body, size_t len, long timeout_ms, long *status,
                  char **resp, char **err);

#endif

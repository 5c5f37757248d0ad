/* apigw_post.c: pushing to WebSockets held by API Gateway (toro on AWS):
 * POST {endpoint}/@connections/{connection id} with the message as the body,
 * signed with SigV4 for service "execute-api" (core/aws_http.c). The
 * instance holds configuration and credentials only; each post is its own
 * request, so posts from several threads are safe. See post.h. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/post.h"
#include "core/aws_http.h"
#include "core/error.h"
#include "core/log.h"

struct toro_apigw {
    char *endpoint; /* without a trailing '/' */
    char region[64];
    toro_aws_creds_t cred;
};

/* The region of "https://ID.execute-api.REGION.amazonaws.com/…", or "". */
static void region_of(const char *endpoint, char *out, size_t cap)
{
    const char *p = strstr(endpoint, ".execute-api.");
    const char *e = p ? strstr(p + 13, ".amazonaws.com") : NULL;
    out[0] = '\0';
    if (e && (size_t)(e - (p + 13)) < cap)
        snprintf(out, cap, "%.*s", (int)(e - (p + 13)), p + 13);
}

int toro_apigw_new(const char *endpoint, const char *region, toro_apigw_t **out, char **err)
{
    assert(out);
    if (!endpoint || (strncmp(endpoint, "https://", 8) != 0 && strncmp(endpoint, "http://", 7) != 0)) {
        toro_set_err(err, "the API Gateway endpoint must be an http(s):// URL, not '%s'", endpoint ? endpoint : "");
        return TORO_EINVAL;
    }
    toro_apigw_t *a = calloc(1, sizeof *a);
    if (!a || !(a->endpoint = strdup(endpoint))) {
        free(a);
        return TORO_ENOMEM;
    }
    size_t n = strlen(a->endpoint);
    while (n > 0 && a->endpoint[n - 1] == '/')
        a->endpoint[--n] = '\0';
    const char *env = getenv("AWS_REGION");
    if (region && *region)
        snprintf(a->region, sizeof a->region, "%s", region);
    else if (env && *env)
        snprintf(a->region, sizeof a->region, "%s", env);
    else
        region_of(endpoint, a->region, sizeof a->region);
    int rc = a->region[0] ? toro_aws_creds_from_env(&a->cred, err) : TORO_EINVAL;
    if (!a->region[0])
        toro_set_err(err, "no AWS region for the API Gateway endpoint: set AWS_REGION");
    if (rc != 0) {
        toro_apigw_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

void toro_apigw_free(toro_apigw_t *a)
{
    if (!a)
        return;
    toro_aws_creds_clear(&a->cred);
    free(a->endpoint);
    free(a);
}

int toro_apigw_post(void *ctx, const char *connection_id, const char *node, const char *message)
{
    toro_apigw_t *a = ctx;
    assert(a && connection_id && message);
    (void)node;
    toro_strbuf_t url = {0};
    toro_strbuf_str(&url, a->endpoint);
    toro_strbuf_str(&url, "/@connections/");
    toro_aws_uri_encode(&url, connection_id);
    if (url.err) {
        free(url.s);
        return url.err;
    }
    toro_aws_request_t r = {.url = url.s, .service = "execute-api", .region = a->region,
                            .content_type = "application/json", .body = message, .body_len = strlen(message)};
    long status = 0;
    char *body = NULL, *err = NULL;
    int rc = toro_aws_post(&r, &a->cred, &status, &body, &err);
    if (rc == 0 && status == 410)
        rc = TORO_ENOTFOUND;
    else if (rc == 0 && (status == 429 || status >= 500))
        rc = TORO_ERETRY;
    else if (rc == 0 && (status < 200 || status > 299))
        rc = TORO_EIO;
    if (rc != 0 && rc != TORO_ENOTFOUND)
        toro_log(TORO_LOG_WARN, "apigw", NULL, "post_to_connection %s: %s (HTTP %ld) %.200s", connection_id, err ? err : "failed", status,
                      body ? body : "");
    free(url.s);
    free(body);
    free(err);
    return rc;
}

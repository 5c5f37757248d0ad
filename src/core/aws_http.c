/* aws_http.c: signed AWS requests over libcurl (see aws_http.h). */
#include "core/aws_http.h"

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/strbuf.h"
#include "core/util.h"

static char *env_dup(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? strdup(v) : NULL;
}

void toro_aws_credentials_free(toro_sigv4_credentials_t *c)
{
    if (!c)
        return;
    toro_secret_free((char *)c->access_key_id);
    toro_secret_free((char *)c->secret_access_key);
    toro_secret_free((char *)c->session_token);
    c->access_key_id = c->secret_access_key = c->session_token = NULL;
}

int toro_aws_credentials_from_env(toro_sigv4_credentials_t *out, char **err)
{
    assert(out);
    out->access_key_id = env_dup("AWS_ACCESS_KEY_ID");
    out->secret_access_key = env_dup("AWS_SECRET_ACCESS_KEY");
    out->session_token = env_dup("AWS_SESSION_TOKEN");
    if (!out->access_key_id || !out->secret_access_key) {
        bool oom = getenv("AWS_ACCESS_KEY_ID") && *getenv("AWS_ACCESS_KEY_ID") && getenv("AWS_SECRET_ACCESS_KEY") &&
                   *getenv("AWS_SECRET_ACCESS_KEY");
        toro_aws_credentials_free(out);
        if (oom)
            return TORO_ENOMEM;
        toro_set_err(err, "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                          "(and AWS_SESSION_TOKEN for temporary credentials)");
        return TORO_EINVAL;
    }
    if (getenv("AWS_SESSION_TOKEN") && *getenv("AWS_SESSION_TOKEN") && !out->session_token) {
        toro_aws_credentials_free(out);
        return TORO_ENOMEM;
    }
    return 0;
}

static struct curl_slist *add(struct curl_slist *h, const char *name, const char *value, int *fail)
{
    if (*fail)
        return h;
    char line[4096];
    int n = snprintf(line, sizeof line, "%s: %s", name, value);
    struct curl_slist *t = n > 0 && (size_t)n < sizeof line ? curl_slist_append(h, line) : NULL;
    if (!t)
        *fail = 1;
    return t ? t : h;
}

struct curl_slist *toro_aws_signed_headers(const toro_aws_target_t *t, const char *body, size_t len, char **err)
{
    char amz_date[17], payload[65];
    assert(t && t->host && t->path && t->cred && t->region && t->service && t->content_type);
    toro_sigv4_amz_date((long long)time(NULL), amz_date);
    toro_sigv4_sha256_hex(body, len, payload);
    const char *token = t->cred->session_token;
    toro_sigv4_header_t sh[6] = {{"content-type", t->content_type}, {"host", t->host},
                                 {"x-amz-content-sha256", payload}, {"x-amz-date", amz_date}};
    size_t nh = 4;
    if (token)
        sh[nh++] = (toro_sigv4_header_t){"x-amz-security-token", token};
    if (t->amz_target)
        sh[nh++] = (toro_sigv4_header_t){"x-amz-target", t->amz_target};
    toro_sigv4_request_t req = {.method = "POST", .path = t->path, .headers = sh, .n_headers = nh,
                                .body = body, .body_len = len, .payload_hash = payload};
    char *authz = NULL;
    if (toro_sigv4_sign(&req, t->cred, t->region, t->service, amz_date, &authz, NULL) != 0) {
        toro_set_err(err, "cannot sign the %s request (SigV4)", t->service);
        return NULL;
    }
    int fail = 0;
    struct curl_slist *h = NULL;
    h = add(h, "Host", t->host, &fail);
    h = add(h, "Content-Type", t->content_type, &fail);
    h = add(h, "Accept", "application/json", &fail);
    h = add(h, "X-Amz-Date", amz_date, &fail);
    h = add(h, "X-Amz-Content-Sha256", payload, &fail);
    if (token)
        h = add(h, "X-Amz-Security-Token", token, &fail);
    if (t->amz_target)
        h = add(h, "X-Amz-Target", t->amz_target, &fail);
    h = add(h, "Authorization", authz, &fail);
    struct curl_slist *e = fail ? NULL : curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
    fail |= !e;
    h = e ? e : h;
    toro_secret_free(authz);
    if (fail) {
        curl_slist_free_all(h);
        return NULL;
    }
    return h;
}

/* One curl handle per thread, reset between requests: its connection cache
 * keeps the TCP/TLS connection to AWS open from one call to the next. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static pthread_key_t curl_key;

static void curl_handle_free(void *c) { curl_easy_cleanup(c); }

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (pthread_key_create(&curl_key, curl_handle_free) != 0)
        abort(); /* out of keys at start: nothing can work */
}

static CURL *thread_handle(void)
{
    pthread_once(&curl_once, curl_init_once);
    CURL *c = pthread_getspecific(curl_key);
    if (c) {
        curl_easy_reset(c);
        return c;
    }
    c = curl_easy_init();
    if (c && pthread_setspecific(curl_key, c) != 0) {
        curl_easy_cleanup(c);
        c = NULL;
    }
    return c;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    toro_strbuf_t *b = ud;
    size_t n = size * nmemb;
    toro_strbuf_add(b, p, n);
    return b->err ? 0 : n;
}

int toro_aws_post(const toro_aws_target_t *t, const char *body, size_t len, long timeout_ms, long *status,
                  char **resp, char **err)
{
    assert(t && t->url && body && status && resp);
    *status = 0;
    *resp = NULL;
    struct curl_slist *h = toro_aws_signed_headers(t, body, len, err);
    CURL *c = h ? thread_handle() : NULL;
    if (!c) {
        curl_slist_free_all(h);
        return TORO_ENOMEM;
    }
    toro_strbuf_t b = {.max = 64u << 20};
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, t->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 5000 ? timeout_ms : 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
    CURLcode cc = curl_easy_perform(c);
    if (cc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL); /* h is freed; the handle stays for the next call */
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(h);
    if (cc != CURLE_OK || b.err) {
        toro_set_err(err, "%s %s: %s", t->service, t->url,
                     cc != CURLE_OK ? (*curl_err ? curl_err : curl_easy_strerror(cc)) : "reply too large");
        free(b.s);
        *status = 0;
        return cc == CURLE_OK && b.err == TORO_ENOMEM ? TORO_ENOMEM : TORO_EIO;
    }
    *resp = b.s ? b.s : strdup("");
    return *resp ? 0 : TORO_ENOMEM;
}

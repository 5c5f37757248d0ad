/* aws_http.c: a signed POST to an AWS endpoint (see aws_http.h). Each thread
 * keeps one curl handle (freed when the thread ends), so its calls reuse the
 * connection (no TCP and TLS handshake per call) and threads share nothing.
 * The signer is core/sigv4.c. */
#include "core/aws_http.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "core/error.h"
#include "core/sigv4.h"
#include "core/util.h"

#define MAX_BODY (4u << 20)
#define MAX_EXTRA 4

static char *env_dup(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? strdup(v) : NULL;
}

int toro_aws_creds_from_env(toro_aws_creds_t *out, char **err)
{
    assert(out);
    memset(out, 0, sizeof *out);
    const char *ak = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
    if (!ak || !*ak || !sk || !*sk) {
        toro_set_err(err, "AWS credentials missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
        return TORO_EINVAL;
    }
    out->access_key_id = strdup(ak);
    out->secret_access_key = strdup(sk);
    const char *tok = getenv("AWS_SESSION_TOKEN");
    out->session_token = env_dup("AWS_SESSION_TOKEN");
    if (!out->access_key_id || !out->secret_access_key || (tok && *tok && !out->session_token)) {
        toro_aws_creds_clear(out);
        return TORO_ENOMEM;
    }
    return 0;
}

void toro_aws_creds_clear(toro_aws_creds_t *c)
{
    if (!c)
        return;
    toro_secret_free(c->access_key_id);
    toro_secret_free(c->secret_access_key);
    toro_secret_free(c->session_token);
    memset(c, 0, sizeof *c);
}

void toro_aws_uri_encode(toro_strbuf_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
            *p == '_' || *p == '.' || *p == '~') {
            toro_strbuf_add(b, (const char *)p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            toro_strbuf_add(b, e, 3);
        }
    }
}

void toro_aws_form_add(toro_strbuf_t *b, const char *key, const char *value)
{
    if (b->n > 0)
        toro_strbuf_add(b, "&", 1);
    toro_strbuf_str(b, key);
    toro_strbuf_add(b, "=", 1);
    toro_aws_uri_encode(b, value);
}

/* Splits "scheme://host[:port]/path?query" into host and path (and query). */
typedef struct url_parts {
    char host[256];
    char path[1024];
    const char *query; /* into the URL, NULL without one */
} url_parts_t;

static int split_url(const char *url, url_parts_t *u)
{
    const char *h = strstr(url, "://");
    if (!h)
        return TORO_EINVAL;
    h += 3;
    size_t hn = strcspn(h, "/?");
    const char *p = h + hn;
    size_t pn = strcspn(p, "?");
    if (hn == 0 || hn >= sizeof u->host || pn + 2 > sizeof u->path)
        return TORO_EINVAL;
    memcpy(u->host, h, hn);
    u->host[hn] = '\0';
    if (pn == 0) {
        u->path[0] = '/';
        u->path[1] = '\0';
    } else {
        memcpy(u->path, p, pn);
        u->path[pn] = '\0';
    }
    u->query = p[pn] == '?' ? p + pn + 1 : NULL;
    return 0;
}

static struct curl_slist *add_header(struct curl_slist *h, const char *name, const char *value, int *fail)
{
    toro_strbuf_t line = {0};
    toro_strbuf_str(&line, name);
    toro_strbuf_add(&line, ": ", 2);
    toro_strbuf_str(&line, value);
    struct curl_slist *t = (!*fail && !line.err) ? curl_slist_append(h, line.s) : NULL;
    free(line.s);
    if (!t)
        *fail = 1;
    return t ? t : h;
}

/* Signs the request at this second; returns the header list to send or NULL. */
static struct curl_slist *signed_headers(const toro_aws_request_t *req, const toro_aws_creds_t *cred,
                                         const url_parts_t *u)
{
    if (req->n_headers > MAX_EXTRA)
        return NULL;
    char amz_date[17], payload[65];
    toro_sigv4_amz_date((long long)time(NULL), amz_date);
    toro_sigv4_sha256_hex(req->body, req->body_len, payload);
    toro_sigv4_header_t sh[5 + MAX_EXTRA] = {{"content-type", req->content_type},
                                             {"host", u->host},
                                             {"x-amz-content-sha256", payload},
                                             {"x-amz-date", amz_date}};
    size_t n = 4;
    if (cred->session_token)
        sh[n++] = (toro_sigv4_header_t){"x-amz-security-token", cred->session_token};
    for (size_t i = 0; i < req->n_headers; i++)
        sh[n++] = (toro_sigv4_header_t){req->headers[i].name, req->headers[i].value};
    toro_sigv4_request_t sr = {.method = "POST", .path = u->path, .query = u->query, .headers = sh,
                               .n_headers = n, .body = req->body, .body_len = req->body_len,
                               .payload_hash = payload};
    toro_sigv4_credentials_t sc = {cred->access_key_id, cred->secret_access_key, cred->session_token};
    char *authz = NULL;
    if (toro_sigv4_sign(&sr, &sc, req->region, req->service, amz_date, &authz, NULL) != 0)
        return NULL;
    int fail = 0;
    struct curl_slist *h = curl_slist_append(NULL, "Expect:"); /* no 100-continue round trip */
    fail = h == NULL;
    for (size_t i = 0; i < n; i++)
        h = add_header(h, sh[i].name, sh[i].value, &fail);
    h = add_header(h, "Authorization", authz, &fail);
    free(authz);
    if (fail) {
        curl_slist_free_all(h);
        return NULL;
    }
    return h;
}

struct curl_slist *toro_aws_signed_headers(const toro_aws_request_t *req, const toro_aws_creds_t *cred, char **err)
{
    url_parts_t u;
    if (split_url(req->url, &u) != 0) {
        toro_set_err(err, "cannot sign a request to '%s': not an http(s) URL", req->url);
        return NULL;
    }
    struct curl_slist *h = signed_headers(req, cred, &u);
    if (!h)
        toro_set_err(err, "cannot sign the request to %s", req->url);
    return h;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    toro_strbuf_t *b = ud;
    toro_strbuf_add(b, data, size * n);
    return b->err ? 0 : size * n;
}

static pthread_key_t handle_key;
static pthread_once_t handle_once = PTHREAD_ONCE_INIT;

static void handle_free(void *c) { curl_easy_cleanup(c); }
static void handle_key_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (pthread_key_create(&handle_key, handle_free) != 0)
        abort(); /* only on resource exhaustion at the first call */
}

/* This thread's handle, reset to defaults (connections kept); NULL out of memory. */
static CURL *thread_handle(void)
{
    pthread_once(&handle_once, handle_key_init);
    CURL *c = pthread_getspecific(handle_key);
    if (c) {
        curl_easy_reset(c);
        return c;
    }
    c = curl_easy_init();
    if (c && pthread_setspecific(handle_key, c) != 0) {
        curl_easy_cleanup(c);
        c = NULL;
    }
    return c;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    return atomic_load((const atomic_int *)ud) ? 1 : 0;
}

int toro_aws_post(const toro_aws_request_t *req, const toro_aws_creds_t *cred, long *status, char **body,
                  char **err)
{
    assert(req && req->url && req->service && req->region && req->content_type && cred && status && body);
    assert(req->n_headers <= MAX_EXTRA);
    *status = 0;
    *body = NULL;
    url_parts_t u;
    if (split_url(req->url, &u) != 0) {
        toro_set_err(err, "bad AWS endpoint URL '%s'", req->url);
        return TORO_EIO;
    }
    struct curl_slist *h = signed_headers(req, cred, &u);
    if (!h) {
        toro_set_err(err, "cannot sign the %s request (SigV4)", req->service);
        return TORO_EINVAL;
    }
    CURL *c = thread_handle();
    toro_strbuf_t out = {.max = MAX_BODY};
    int rc = c ? 0 : TORO_ENOMEM;
    if (c) {
        curl_easy_setopt(c, CURLOPT_URL, req->url);
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : 10000L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
        if (req->cancel) {
            curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
            curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)req->cancel);
            curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        }
        CURLcode cc = curl_easy_perform(c);
        if (cc != CURLE_OK) {
            toro_set_err(err, "%s call to %s failed: %s", req->service, u.host, curl_easy_strerror(cc));
            rc = out.err == TORO_ENOMEM ? TORO_ENOMEM : TORO_EIO;
        } else {
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
            toro_strbuf_add(&out, "", 0);
            rc = out.err ? out.err : 0;
        }
    }
    curl_slist_free_all(h);
    if (rc != 0) {
        *status = 0;
        free(out.s);
        return rc;
    }
    *body = out.s;
    return 0;
}

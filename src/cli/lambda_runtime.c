/* lambda_runtime.c: the Lambda Runtime API client (see lambda_runtime.h). */
#include "cli/lambda_runtime.h"

#include <assert.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "core/strbuf.h"

#define API_PREFIX "/2018-06-01/runtime"
#define MAX_EVENT (6u * 1024 * 1024) /* Lambda's synchronous payload cap */

struct toro_lrt {
    CURL *curl;     /* one handle, reused: keeps the connection */
    char base[300]; /* http://host:port/2018-06-01/runtime */
};

/* What one call collects. */
typedef struct reply {
    toro_strbuf_t body;
    toro_lrt_invocation_t *inv; /* headers go here (next only) */
    int overflow;
} reply_t;

int toro_lrt_new(const char *api, toro_lrt_t **out)
{
    assert(out);
    if (!api || !*api || strlen(api) > 200)
        return TORO_EINVAL;
    toro_lrt_t *c = calloc(1, sizeof *c);
    if (!c)
        return TORO_ENOMEM;
    c->curl = curl_easy_init();
    if (!c->curl) {
        free(c);
        return TORO_ENOMEM;
    }
    snprintf(c->base, sizeof c->base, "http://%s" API_PREFIX, api);
    *out = c;
    return 0;
}

void toro_lrt_free(toro_lrt_t *c)
{
    if (!c)
        return;
    curl_easy_cleanup(c->curl);
    free(c);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    reply_t *r = ud;
    size_t len = size * n;
    toro_strbuf_add(&r->body, p, len);
    r->overflow = r->body.err != 0;
    return r->overflow ? 0 : len;
}

/* Copies the value of header `name` from line into out when it matches. */
static void header_value(const char *line, size_t len, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    if (len <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return;
    const char *v = line + nl + 1;
    size_t vl = len - nl - 1;
    while (vl && (*v == ' ' || *v == '\t'))
        v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
    if (vl >= cap)
        vl = cap - 1;
    memcpy(out, v, vl);
    out[vl] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    reply_t *r = ud;
    size_t len = size * n;
    if (r->inv) {
        char deadline[32] = "";
        header_value(p, len, "Lambda-Runtime-Aws-Request-Id", r->inv->request_id, sizeof r->inv->request_id);
        header_value(p, len, "Lambda-Runtime-Deadline-Ms", deadline, sizeof deadline);
        if (*deadline)
            r->inv->deadline_ms = strtoll(deadline, NULL, 10);
    }
    return len;
}

/* One call: GET (body NULL) or POST of body to base + path. Returns the
 * HTTP status, or 0 when no answer arrived. */
static long call(toro_lrt_t *c, const char *path, const char *body, const char *extra_header, reply_t *r)
{
    char url[600];
    snprintf(url, sizeof url, "%s%s", c->base, path);
    CURL *h = c->curl;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (extra_header)
        hdrs = curl_slist_append(hdrs, extra_header);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    long status = 0;
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs);
    return status;
}

int toro_lrt_next(toro_lrt_t *c, toro_lrt_invocation_t *inv)
{
    assert(c && inv);
    memset(inv, 0, sizeof *inv);
    reply_t r = {.inv = inv, .body = {.max = MAX_EVENT}};
    long status = call(c, "/invocation/next", NULL, NULL, &r);
    toro_strbuf_add(&r.body, "", 0); /* an empty event is still a string */
    if (status != 200 || !inv->request_id[0] || r.overflow || r.body.err) {
        free(r.body.s);
        memset(inv, 0, sizeof *inv);
        return TORO_EIO;
    }
    inv->event_len = r.body.n;
    inv->event = r.body.s;
    return 0;
}

static int post(toro_lrt_t *c, const char *path, const char *body, const char *extra_header)
{
    reply_t r = {.body = {.max = 1u << 20}};
    long status = call(c, path, body, extra_header, &r);
    free(r.body.s);
    return status == 202 ? 0 : TORO_EIO;
}

int toro_lrt_respond(toro_lrt_t *c, const char *request_id, const char *body)
{
    char path[200];
    snprintf(path, sizeof path, "/invocation/%s/response", request_id);
    return post(c, path, body, NULL);
}

/* POSTs {"errorMessage", "errorType"} to path. */
static int post_error(toro_lrt_t *c, const char *path, const char *type, const char *message)
{
    json_t *j = json_pack("{s:s, s:s}", "errorMessage", message ? message : "", "errorType", type ? type : "Error");
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!body)
        return TORO_ENOMEM;
    char hdr[200];
    snprintf(hdr, sizeof hdr, "Lambda-Runtime-Function-Error-Type: %s", type ? type : "Error");
    int rc = post(c, path, body, hdr);
    free(body);
    return rc;
}

int toro_lrt_error(toro_lrt_t *c, const char *request_id, const char *type, const char *message)
{
    char path[200];
    snprintf(path, sizeof path, "/invocation/%s/error", request_id);
    return post_error(c, path, type, message);
}

int toro_lrt_init_error(toro_lrt_t *c, const char *type, const char *message)
{
    return post_error(c, "/init/error", type, message);
}

void toro_lrt_invocation_clear(toro_lrt_invocation_t *inv)
{
    if (!inv)
        return;
    free(inv->event);
    memset(inv, 0, sizeof *inv);
}

/* lambda_events.c: AWS event shapes to toro's requests and back (see
 * lambda_events.h). */
#include "cli/lambda_events.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/aws_http.h"
#include "core/error.h"
#include "core/strbuf.h"

/* The string member key of o, or NULL. */
static const char *str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* queryStringParameters as name=value&... (percent-encoded) in out. */
static int encode_query(json_t *params, char *out, size_t cap)
{
    toro_strbuf_t b = {.max = cap};
    const char *k;
    json_t *v;
    json_object_foreach(params, k, v)
    {
        if (!json_is_string(v))
            continue;
        if (b.n)
            toro_strbuf_str(&b, "&");
        toro_aws_uri_encode(&b, k);
        toro_strbuf_str(&b, "=");
        toro_aws_uri_encode(&b, json_string_value(v));
    }
    int rc = b.err ? TORO_EINVAL : 0;
    snprintf(out, cap, "%s", rc == 0 && b.s ? b.s : "");
    free(b.s);
    return rc;
}

int toro_lev_http_decode(json_t *ev, toro_lev_http_t *out)
{
    assert(ev && out);
    memset(out, 0, sizeof *out);
    gw_request_t *req = &out->req;
    req->method = str(ev, "httpMethod");
    req->path = str(ev, "path");
    json_t *b64 = json_object_get(ev, "isBase64Encoded");
    if (!req->method || !req->path || json_is_true(b64) ||
        encode_query(json_object_get(ev, "queryStringParameters"), out->query, sizeof out->query) != 0) {
        memset(out, 0, sizeof *out);
        return TORO_EINVAL;
    }
    req->query = out->query;
    req->minor_version = 1;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(ev, "headers"), k, v)
    {
        if (json_is_string(v) && req->n_headers < GW_MAX_HEADERS)
            req->headers[req->n_headers++] = (gw_header_t){k, json_string_value(v)};
    }
    const char *body = str(ev, "body");
    req->body = body ? body : "";
    req->body_len = body ? strlen(body) : 0;
    json_t *rc = json_object_get(ev, "requestContext");
    const char *rid = str(rc, "requestId");
    snprintf(req->request_id, sizeof req->request_id, "%s", rid ? rid : "");
    req->peer = str(json_object_get(rc, "identity"), "sourceIp");
    if (!req->peer)
        req->peer = "0.0.0.0";
    return 0;
}

/* The "Name: value\r\n" lines of extra as members of headers. */
static void add_extra_headers(json_t *headers, const char *extra)
{
    for (const char *p = extra; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        if (colon) {
            char name[128], value[512];
            size_t nl = (size_t)(colon - p), vl = len - nl - 1;
            const char *vs = colon + 1;
            while (vl && *vs == ' ')
                vs++, vl--;
            if (nl < sizeof name && vl < sizeof value) {
                memcpy(name, p, nl);
                name[nl] = '\0';
                memcpy(value, vs, vl);
                value[vl] = '\0';
                json_object_set_new(headers, name, json_string(value));
            }
        }
        p = eol ? eol + 2 : NULL;
    }
}

char *toro_lev_http_encode(const gw_response_t *r)
{
    assert(r);
    json_t *headers = json_object();
    json_object_set_new(headers, "Content-Type",
                        json_string(r->content_type ? r->content_type : "application/json"));
    add_extra_headers(headers, r->extra);
    const char *body = r->body ? r->body : (const char *)r->static_body;
    size_t len = r->body ? r->body_len : body ? strlen(body) : 0;
    json_t *j = json_pack("{s:i, s:o, s:s%}", "statusCode", r->status, "headers", headers, "body",
                          r->head_only || !body ? "" : body, r->head_only ? (size_t)0 : len);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

int toro_lev_ws_decode(json_t *ev, toro_lev_ws_t *out)
{
    assert(ev && out);
    memset(out, 0, sizeof *out);
    json_t *rc = json_object_get(ev, "requestContext");
    out->route_key = str(rc, "routeKey");
    out->connection_id = str(rc, "connectionId");
    json_t *q = json_object_get(ev, "queryStringParameters");
    out->token = str(q, "token") ? str(q, "token") : str(q, "access_token");
    out->body = str(ev, "body");
    return out->route_key && out->connection_id ? 0 : TORO_EINVAL;
}

char *toro_lev_status(int status, const char *body)
{
    json_t *j = json_pack("{s:i}", "statusCode", status);
    if (j && body)
        json_object_set_new(j, "body", json_string(body));
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

json_t *toro_lev_sqs_records(json_t *ev)
{
    json_t *r = json_object_get(ev, "Records");
    return json_is_array(r) ? r : NULL;
}

int toro_lev_sqs_decode(json_t *rec, toro_lev_sqs_t *out, json_t **envelope)
{
    assert(rec && out && envelope);
    memset(out, 0, sizeof *out);
    *envelope = NULL;
    out->message_id = str(rec, "messageId");
    out->payload = str(rec, "body");
    if (!out->message_id || !out->payload)
        return TORO_EINVAL;
    const char *count = str(json_object_get(rec, "attributes"), "ApproximateReceiveCount");
    long n = count ? strtol(count, NULL, 10) : 1;
    out->deliveries = n >= 1 && n < 1000000 ? (int)n : 1;
    json_t *env = json_loads(out->payload, 0, NULL);
    const char *type = str(env, "Type"), *message = str(env, "Message");
    if (type && message && strcmp(type, "Notification") == 0) {
        out->payload = message;
        *envelope = env;
        return 0;
    }
    json_decref(env);
    return 0;
}

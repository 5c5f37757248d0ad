/* http_response.c: HTTP responses: the status line and fixed headers, JSON
 * bodies and the error shape {success:false, error, code} where `code` is
 * one of a fixed list (openapi.yaml, ErrorCode) that clients map to their
 * own wording and `error` is English text for people (see http.h). */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/http.h"

static const char *reason(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

/* The code of an error that has no more specific one: one per status. */
static const char *status_code(int status)
{
    switch (status) {
    case 400: return "invalid_request";
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 409: return "conflict";
    case 408: return "request_timeout";
    case 411: return "length_required";
    case 413: return "payload_too_large";
    case 414: return "uri_too_long";
    case 415: return "unsupported_media_type";
    case 421: return "misdirected_request";
    case 429: return "rate_limited";
    case 431: return "headers_too_large";
    case 501: return "not_implemented";
    case 503: return "unavailable";
    default: return "internal_error";
    }
}

int gw_http_send(gw_conns_t *cs, gw_client_t *cl, gw_response_t *r, const char *request_id)
{
    char head[1024];
    const void *body = r->static_body ? (const void *)r->static_body : (const void *)r->body;
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: %s\r\n"
                     "X-Content-Type-Options: nosniff\r\nX-Request-Id: %s\r\n%s\r\n",
                     r->status, reason(r->status), r->content_type ? r->content_type : "application/json",
                     r->body_len, r->close ? "close" : "keep-alive", request_id ? request_id : "-", r->extra);
    int rc = -1;
    if (n > 0 && (size_t)n < sizeof head) {
        /* one buffer for head and body: one send() in the common case */
        size_t total = (size_t)n + (r->head_only ? 0 : r->body_len);
        char *all = malloc(total);
        if (all) {
            memcpy(all, head, (size_t)n);
            if (r->body_len && !r->head_only)
                memcpy(all + n, body, r->body_len);
            rc = gw_conn_write(cs, &cl->conn, all, total);
            free(all);
            gw_access_http(cl, r, total);
        }
    }
    free(r->body);
    r->body = NULL;
    if (r->close)
        cl->conn.closing = true;
    return rc;
}

int gw_http_reject(gw_conns_t *cs, gw_client_t *cl, int status, const char *message)
{
    gw_response_t r = {0};
    gw_json_error(&r, status, message);
    r.close = true;
    /* a request refused after its head was parsed answers with its id */
    return gw_http_send(cs, cl, &r, cl->acc.request_id[0] ? cl->acc.request_id : NULL);
}

void gw_add_header(gw_response_t *r, const char *fmt, ...)
{
    size_t n = strlen(r->extra);
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(r->extra + n, sizeof r->extra - n, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w + 2 >= sizeof r->extra - n) {
        r->extra[n] = '\0'; /* does not fit: drop it whole rather than send half a line */
        return;
    }
    memcpy(r->extra + n + w, "\r\n", 3);
}

void gw_http_json_text(gw_response_t *r, int status, char *json)
{
    free(r->body);
    r->status = status;
    r->content_type = "application/json";
    r->body = json;
    r->body_len = r->body ? strlen(r->body) : 0;
    if (!strstr(r->extra, "Cache-Control:"))
        gw_add_header(r, "Cache-Control: no-store");
}

void gw_http_json(gw_response_t *r, int status, json_t *o)
{
    gw_http_json_text(r, status, json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER));
    json_decref(o);
}

const char *gw_code_by_prefix(const gw_code_prefix_t *table, size_t n, const char *message, const char *fallback)
{
    for (size_t i = 0; message && i < n; i++)
        if (strncmp(message, table[i].prefix, strlen(table[i].prefix)) == 0)
            return table[i].code;
    return fallback;
}

void gw_http_ok(gw_response_t *r, int status, json_t *data)
{
    gw_http_json(r, status, json_pack("{s:b, s:o}", "success", 1, "data", data));
}

void gw_json_error_code(gw_response_t *r, int status, const char *code, const char *message)
{
    gw_http_json(r, status,
                 json_pack("{s:b, s:s, s:s}", "success", 0, "error", message, "code", code ? code : status_code(status)));
}

void gw_json_error(gw_response_t *r, int status, const char *message)
{
    gw_json_error_code(r, status, NULL, message);
}

/* framing.c: the strict parts of RFC 9112 message framing that the request
 * parser (http.c) applies before routing: no control bytes in the head,
 * no Transfer-Encoding, exactly one Host, a Content-Length of digits with one value, and the Host
 * allow-list against DNS rebinding. It does not parse the head itself. */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway/http.h"

bool gw_head_bytes_ok(const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)buf[i];
        if (ch == '\r') {
            if (i + 1 >= len || buf[i + 1] != '\n')
                return false; /* bare CR */
            i++;
            continue;
        }
        if (ch == '\n' || ch == 0x7f || (ch < 0x20 && ch != '\t'))
            return false; /* bare LF, NUL and the other controls */
    }
    return true;
}

/* One Content-Length value: 1*DIGIT without a sign, spaces or leading zeros
 * (a "027" some parser reads as octal), at most 15 digits. -1 if invalid. */
static long long cl_value(const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || n > 15 || (n > 1 && s[0] == '0'))
        return -1;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int gw_content_length(const gw_request_t *req, long long *out)
{
    long long v = -2; /* -2: no header seen */
    for (int i = 0; i < req->n_headers; i++) {
        if (strcasecmp(req->headers[i].name, "Content-Length") != 0)
            continue;
        /* "5, 5" and repeated identical headers fold into one value (RFC 9110 8.6) */
        for (const char *p = req->headers[i].value;;) {
            const char *comma = strchr(p, ',');
            size_t n = comma ? (size_t)(comma - p) : strlen(p);
            long long one = cl_value(p, n);
            if (one < 0 || (v != -2 && one != v))
                return -1;
            v = one;
            if (!comma)
                break;
            p = comma + 1;
        }
    }
    *out = v == -2 ? -1 : v;
    return v == -2 ? 0 : 1;
}

/* The host part of a Host header value: "name:port" or "[v6]:port". */
static size_t host_name_len(const char *host)
{
    if (host[0] == '[') {
        const char *end = strchr(host, ']');
        return end ? (size_t)(end - host) + 1 : strlen(host);
    }
    const char *colon = strchr(host, ':');
    return colon ? (size_t)(colon - host) : strlen(host);
}

/* Whether the comma-separated list holds name[0..len) (spaces around items
 * ignored); exact case unless nocase; "*" matches anything when star. */
static bool in_list(const char *list, const char *name, size_t len, bool nocase, bool star)
{
    while (list && *list) {
        const char *comma = strchr(list, ',');
        size_t n = comma ? (size_t)(comma - list) : strlen(list);
        while (n && *list == ' ') {
            list++;
            n--;
        }
        while (n && list[n - 1] == ' ')
            n--;
        if (star && n == 1 && list[0] == '*')
            return true;
        if (n == len && (nocase ? strncasecmp(list, name, len) : strncmp(list, name, len)) == 0)
            return true;
        list = comma ? comma + 1 : NULL;
    }
    return false;
}

/* The host of each origin in --cors-origins ("https://app.example:8443")
 * is a public name of this server too. */
static bool in_origins(const char *origins, const char *name, size_t len)
{
    while (origins && *origins) {
        const char *comma = strchr(origins, ',');
        size_t n = comma ? (size_t)(comma - origins) : strlen(origins);
        const char *sep = memmem(origins, n, "://", 3);
        if (sep) {
            const char *h = sep + 3;
            size_t hl = n - (size_t)(h - origins);
            char host[256];
            if (hl < sizeof host) {
                memcpy(host, h, hl);
                host[hl] = '\0';
                size_t l = host_name_len(host);
                if (l == len && strncasecmp(host, name, len) == 0)
                    return true;
            }
        }
        origins = comma ? comma + 1 : NULL;
    }
    return false;
}

bool gw_host_allowed(const toro_gateway_config_t *cfg, const char *host)
{
    size_t len = host_name_len(host);
    if (cfg->allowed_hosts)
        return in_list(cfg->allowed_hosts, host, len, true, true);
    if (strncmp(cfg->host, "127.", 4) != 0)
        return true; /* not on loopback: no default list (set --allowed-hosts) */
    static const char *const local[] = {"localhost", "[::1]", NULL};
    for (int i = 0; local[i]; i++)
        if (strlen(local[i]) == len && strncasecmp(local[i], host, len) == 0)
            return true;
    if (strlen(cfg->host) == len && strncmp(cfg->host, host, len) == 0)
        return true;
    return in_origins(cfg->cors_origins, host, len);
}

bool gw_origin_allowed(const toro_gateway_config_t *cfg, const gw_request_t *req, const char *origin)
{
    const char *host = gw_header(req, "Host");
    if (host) {
        const char *o = strstr(origin, "://");
        if (o && strcmp(o + 3, host) == 0)
            return true; /* same origin */
    }
    return in_list(cfg->cors_origins, origin, strlen(origin), false, false);
}

int gw_framing_check(const toro_gateway_config_t *cfg, const gw_request_t *req, size_t *body_len, const char **why)
{
    if (gw_header(req, "Transfer-Encoding")) {
        *why = "chunked request bodies are not supported; send Content-Length";
        return 411;
    }
    int hosts = 0;
    const char *host = NULL;
    for (int i = 0; i < req->n_headers; i++) {
        if (strcasecmp(req->headers[i].name, "Host") == 0) {
            hosts++;
            host = req->headers[i].value;
        }
    }
    if (hosts > 1 || (hosts == 0 && req->minor_version >= 1) || (host && !*host)) {
        *why = hosts > 1 ? "more than one Host header" : hosts ? "empty Host header" : "missing Host header";
        return 400;
    }
    if (host && !gw_host_allowed(cfg, host)) {
        *why = "host not allowed";
        return 421;
    }
    long long cl;
    int has = gw_content_length(req, &cl);
    if (has < 0) {
        *why = "invalid Content-Length";
        return 400;
    }
    *body_len = 0;
    if (has) {
        if ((unsigned long long)cl > cfg->max_body) {
            *why = "request body too large";
            return 413;
        }
        *body_len = (size_t)cl;
    }
    return 0;
}

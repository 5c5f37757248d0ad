/* route.c: route labels and the HTTP request counter (see route.h). */
#include "gateway/route.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const int statuses[] = {200, 202, 204, 400, 401, 403, 404, 405, 408, 409, 411, 413, 414, 415, 422, 429, 431, 500, 501, 503};
#define N_STATUS (sizeof statuses / sizeof statuses[0])
static const char *const route_names[GW_ROUTE_COUNT] = {
    "unmatched", "/questions", "/questions/{id}", "/auth/dev-login", "/healthz", "/metrics", "/ws", "static",
    "/questions/{id}/feedback", "/admin/kb/reload", "/conversations", "/conversations/{id}"};
static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"};
#define N_METHOD (sizeof methods / sizeof methods[0])
static atomic_long requests[GW_ROUTE_COUNT][N_METHOD][N_STATUS + 1];

gw_route_t gw_route_template(const char *path)
{
    if (strcmp(path, "/questions") == 0)
        return GW_ROUTE_QUESTIONS;
    if (strncmp(path, "/questions/", 11) == 0 && !strchr(path + 11, '/'))
        return GW_ROUTE_QUESTION;
    const char *slash = strncmp(path, "/questions/", 11) == 0 ? strchr(path + 11, '/') : NULL;
    if (slash && slash > path + 11 && strcmp(slash, "/feedback") == 0)
        return GW_ROUTE_FEEDBACK;
    if (strcmp(path, "/conversations") == 0)
        return GW_ROUTE_CONVERSATIONS;
    if (strncmp(path, "/conversations/", 15) == 0 && !strchr(path + 15, '/'))
        return GW_ROUTE_CONVERSATION;
    if (strcmp(path, "/auth/dev-login") == 0)
        return GW_ROUTE_DEV_LOGIN;
    if (strcmp(path, "/healthz") == 0)
        return GW_ROUTE_HEALTHZ;
    if (strcmp(path, "/metrics") == 0)
        return GW_ROUTE_METRICS;
    if (strcmp(path, "/ws") == 0)
        return GW_ROUTE_WS;
    if (strcmp(path, "/admin/kb/reload") == 0)
        return GW_ROUTE_ADMIN_KB;
    return GW_ROUTE_OTHER;
}

const char *gw_route_name(gw_route_t route)
{
    return route >= 0 && route < GW_ROUTE_COUNT ? route_names[route] : "unmatched";
}

void gw_route_count(gw_route_t route, const char *method, int status)
{
    assert(route >= 0 && route < GW_ROUTE_COUNT);
    size_t i = 0, m = 0;
    while (i < N_STATUS && statuses[i] != status)
        i++;
    while (m + 1 < N_METHOD && !(method && strcmp(methods[m], method) == 0))
        m++;
    atomic_fetch_add(&requests[route][m][i], 1);
}

/* One series; false when it does not fit. */
static bool append(char *buf, size_t cap, size_t *off, int r, size_t m, size_t i, long v)
{
    char status[16];
    if (i < N_STATUS)
        snprintf(status, sizeof status, "%d", statuses[i]);
    else
        snprintf(status, sizeof status, "other");
    int n = snprintf(buf + *off, cap - *off, "toro_http_requests_total{route=\"%s\",method=\"%s\",status=\"%s\"} %ld\n",
                     route_names[r], methods[m], status, v);
    if (n < 0 || (size_t)n >= cap - *off)
        return false;
    *off += (size_t)n;
    return true;
}

long gw_route_render(char *buf, size_t cap)
{
    static const char head[] = "# HELP toro_http_requests_total HTTP requests by route template, method and status "
                               "code.\n# TYPE toro_http_requests_total counter\n";
    size_t off = sizeof head - 1;
    if (cap <= off)
        return -1;
    memcpy(buf, head, off + 1);
    for (int r = 0; r < GW_ROUTE_COUNT; r++)
        for (size_t m = 0; m < N_METHOD; m++)
            for (size_t i = 0; i <= N_STATUS; i++) {
                long v = atomic_load(&requests[r][m][i]);
                if (v && !append(buf, cap, &off, r, m, i, v))
                    return -1;
            }
    return (long)off;
}

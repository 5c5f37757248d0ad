/* route.h: the gateway's route labels: the "route" label of the HTTP
 * request counter in /metrics and of the access log (the template, never
 * the raw path; the method is a separate label). The counts live here, next
 * to the labels, so core/metrics knows nothing of the gateway. Lock-free. */
#ifndef TORO_GATEWAY_ROUTE_H
#define TORO_GATEWAY_ROUTE_H

#include <stddef.h>

typedef enum {
    GW_ROUTE_OTHER,      /* "unmatched": unknown paths, unparsable requests (0: a zeroed response) */
    GW_ROUTE_QUESTIONS,  /* /questions */
    GW_ROUTE_QUESTION,   /* /questions/{id} */
    GW_ROUTE_DEV_LOGIN,  /* /auth/dev-login */
    GW_ROUTE_HEALTHZ,    /* /healthz */
    GW_ROUTE_METRICS,    /* /metrics */
    GW_ROUTE_WS,         /* /ws (and / upgraded with --auth none) */
    GW_ROUTE_STATIC,     /* the web UI's files */
    GW_ROUTE_FEEDBACK,   /* /questions/{id}/feedback */
    GW_ROUTE_ADMIN_KB,   /* /admin/kb/reload */
    GW_ROUTE_CONVERSATIONS, /* /conversations */
    GW_ROUTE_CONVERSATION,  /* /conversations/{id} */
    GW_ROUTE_COUNT
} gw_route_t;

/* Why: the label of a path (API routes only; anything else, static files
 * included, is GW_ROUTE_OTHER), for responses made before routing. */
gw_route_t gw_route_template(const char *path);
/* The label of a route ("/questions/{id}", "unmatched"...). */
const char *gw_route_name(gw_route_t route);

/* Why: one count per HTTP response, by route, method and status. method
 * is the request's (NULL or unknown methods count as "other"). */
void gw_route_count(gw_route_t route, const char *method, int status);
/* Appends toro_http_requests_total (Prometheus text) to buf (cap bytes);
 * bytes written, or -1 when cap is too small (buf then holds a partial text). */
long gw_route_render(char *buf, size_t cap);

#endif

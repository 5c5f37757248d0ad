/* routes.h: the REST contract of DESIGN.md on top of the stages and the
 * store: POST /questions (validated by the ingest stage, committed by the
 * group commit), GET /questions, GET /questions/{id}, GET /conversations,
 * GET /conversations/{id}, /auth/dev-login,
 * /healthz, /metrics, the embedded web UI, and the WebSocket upgrade of /ws
 * handed to ws.c. A request's walk: http.c parses it, gw_routes_serve
 * routes it, the handler calls the stage or store. Loop thread only. */
#ifndef TORO_GATEWAY_ROUTES_H
#define TORO_GATEWAY_ROUTES_H

#include <stdbool.h>

#include "gateway/commit.h"
#include "gateway/config.h"
#include "gateway/http.h"
#include "gateway/limits.h"
#include "gateway/ws.h"
#include "stages/stages.h"

/* What the routes need of the gateway. The owner fills every field. */
typedef struct gw_routes {
    gw_conns_t *conns;
    const toro_gateway_config_t *cfg;
    toro_stage_ctx_t *ctx;    /* ingest, store, bus (borrowed) */
    toro_limits_t *rate;      /* questions asked per user (per address without auth) */
    toro_limits_t *read_rate; /* history reads per user, dev-logins per address */
    const char *node;         /* for /healthz */
    bool tls;                 /* for /healthz */
    gw_ws_t *ws;              /* the upgrade of /ws */
    gw_commit_t *commit;      /* POST /questions waits here */
    toro_auth_cache_t *auth_cache; /* bearer tokens accepted before (loop thread only) */
} gw_routes_t;

/* Why: the serve callback of the HTTP layer (gw_http_t.serve; routes is a
 * gw_routes_t): upgrades /ws, or routes the request and sends the response
 * now or after the group commit. 0, or -1 when cl must close now. */
int gw_routes_serve(void *routes, gw_client_t *cl, gw_request_t *req);
/* Routes req: fills r, or (POST /questions validated) returns true with
 * *item (caller owns it) to commit and r holding the headers so far. */
bool gw_route(gw_routes_t *rt, gw_request_t *req, gw_response_t *r, toro_ingest_item_t *item);

/* The handlers (routes_questions.c, routes_service.c); user is the
 * authenticated subject, NULL without auth. */
void gw_route_post_question(gw_routes_t *rt, gw_request_t *req, const char *user, gw_response_t *r,
                            toro_ingest_item_t *item, bool *deferred);
void gw_route_list_questions(gw_routes_t *rt, gw_request_t *req, const char *user, gw_response_t *r);
void gw_route_get_question(gw_routes_t *rt, gw_request_t *req, const char *user, const char *qid, gw_response_t *r);
/* POST /questions/{id}/feedback (routes_feedback.c); qid is the {id}. */
void gw_route_post_feedback(gw_routes_t *rt, gw_request_t *req, const char *user, const char *qid, gw_response_t *r);
/* GET /conversations and GET /conversations/{id} (routes_questions.c). */
void gw_route_list_conversations(gw_routes_t *rt, gw_request_t *req, const char *user, gw_response_t *r);
void gw_route_get_conversation(gw_routes_t *rt, gw_request_t *req, const char *user, const char *cid,
                               gw_response_t *r);
void gw_route_dev_login(gw_routes_t *rt, gw_request_t *req, gw_response_t *r);
void gw_route_healthz(gw_routes_t *rt, gw_response_t *r);
void gw_route_metrics(gw_routes_t *rt, gw_response_t *r);
/* POST /admin/kb/reload (routes_admin.c); user authenticated, token its
 * bearer token (NULL without auth: refused). */
void gw_route_admin_kb_reload(gw_routes_t *rt, const char *user, const char *token, gw_response_t *r);
/* The web UI file at path ("/" is /index.html): false when there is none. */
bool gw_route_static(const char *path, gw_response_t *r);
/* Whether a Content-Type is application/json (parameters allowed). */
bool gw_route_is_json(const char *content_type);
/* Whether req has a non-empty application/json body; false when r already
 * holds the 415 or 400 to send (routes_questions.c). */
bool gw_route_json_body(gw_request_t *req, gw_response_t *r);

#endif

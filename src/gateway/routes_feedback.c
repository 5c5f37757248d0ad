/* routes_feedback.c: POST /questions/{id}/feedback (issue 17): the asker
 * rates a completed answer up or down, with an optional comment; a second
 * rating replaces the first. Another user's question answers 404 exactly as
 * a missing one does (GET /questions/{id}), so its existence never leaks. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/feedback.h"
#include "core/metrics.h"
#include "core/util.h"
#include "gateway/routes.h"

/* The stored outcome to an HTTP answer. */
static void answer(gw_response_t *r, int rc, const char *qid, const toro_feedback_t *fb)
{
    switch (rc) {
    case 0:
        toro_metrics_feedback(fb->rating == TORO_RATING_UP);
        gw_http_ok(r, 200, json_pack("{s:s, s:o}", "question_id", qid, "feedback", toro_feedback_to_json(fb)));
        break;
    case TORO_ENOTFOUND:
        gw_json_error(r, 404, "question not found");
        break;
    case TORO_ECONFLICT:
        gw_json_error_code(r, 409, "question_not_completed", "only a completed answer can be rated");
        break;
    case TORO_ENOTSUP:
        gw_json_error_code(r, 501, "feedback_unsupported", "this store does not keep feedback");
        break;
    default:
        gw_json_error(r, 503, "feedback cannot be stored right now; try again");
    }
}

void gw_route_post_feedback(gw_routes_t *rt, gw_request_t *req, const char *user, const char *qid, gw_response_t *r)
{
    if (req->query && *req->query) {
        gw_json_error_code(r, 400, "unknown_parameter", "unknown query parameter");
        return;
    }
    if (!gw_route_json_body(req, r))
        return;
    char *uid = NULL;
    toro_feedback_t fb = {0};
    const char *err = NULL, *code = NULL;
    int rc = toro_feedback_validate(req->body, req->body_len, user != NULL, &uid, &fb, &err, &code);
    if (rc) {
        gw_json_error_code(r, rc == TORO_ENOMEM ? 500 : 400, code, err);
        return;
    }
    if (user && uid && strcmp(uid, user) != 0) {
        gw_json_error_code(r, 403, "user_mismatch", "user_id differs from the authenticated user");
    } else if (strlen(qid) != 36) {
        gw_json_error(r, 404, "question not found");
    } else {
        fb.at = toro_now_ms();
        answer(r, toro_store_set_feedback(rt->ctx->store, user ? user : uid, qid, &fb), qid, &fb);
    }
    free(uid);
    toro_feedback_clear(&fb);
}

/* ingest.c: the ingest stage: validate, then commit the pending question and
 * its process event in one transaction before anyone is told "accepted". */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "stages/stages.h"

void toro_stage_ctx_defaults(toro_stage_ctx_t *ctx)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->max_attempts = 3;
    ctx->backoff_base_ms = 200;
    ctx->backoff_max_ms = 5000;
    ctx->max_deliveries = 10;
}

int toro_stage_ingest(toro_stage_ctx_t *ctx, const char *body, size_t len, const char *auth_user, char qid[37],
                      char **user_id, const char **err)
{
    char *uid = NULL, *text = NULL, *payload = NULL;
    int rc = toro_question_validate(body, len, auth_user != NULL, &uid, &text, err);
    if (rc)
        goto out;
    if (auth_user) {
        if (uid && strcmp(uid, auth_user) != 0) {
            *err = "user_id differs from the authenticated user";
            rc = TORO_EFORBIDDEN;
            goto out;
        }
        if (!uid && !(uid = strdup(auth_user))) {
            rc = TORO_ENOMEM;
            goto out;
        }
    }
    toro_uuid4(qid);
    payload = toro_event_encode(uid, qid, TORO_STATUS_PENDING);
    if (!payload) {
        rc = TORO_ENOMEM;
        goto out;
    }
    toro_question_t q = {.user_id = uid, .question_id = qid, .question = text, .created_at = toro_now_ms()};
    toro_event_t ev = {.topic = TORO_TOPIC_PROCESS, .payload = payload};
    rc = ctx->store->ops->create_question(ctx->store, &q, &ev);
    if (rc)
        goto out;
    toro_bus_kick(ctx->bus, TORO_TOPIC_PROCESS);
    toro_log_info("ingest", qid, "accepted question of %zu bytes from %s", strlen(text), uid);
    *user_id = uid;
    uid = NULL;
out:
    free(uid);
    free(text);
    free(payload);
    return rc;
}

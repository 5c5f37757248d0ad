/* notify.c: the notify stage. For one "notify" event, build the
 * question_update message from the stored question and post it to every
 * connection of the user; connections reported gone are deleted. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "stages/stages.h"

char *toro_stage_update_message(const toro_question_t *q, toro_status_t status)
{
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string("question_update"));
    json_object_set_new(o, "question_id", json_string(q->question_id));
    json_object_set_new(o, "user_id", json_string(q->user_id));
    json_object_set_new(o, "status", json_string(toro_status_name(status)));
    json_object_set_new(o, "question", json_string(q->question));
    if (q->conversation_id)
        json_object_set_new(o, "conversation_id", json_string(q->conversation_id));
    if (q->retrieval_query && status == TORO_STATUS_COMPLETED)
        json_object_set_new(o, "retrieval_query", json_string(q->retrieval_query));
    if (status == TORO_STATUS_COMPLETED) {
        json_object_set_new(o, "answer", json_string(q->answer ? q->answer : ""));
        json_object_set_new(o, "sources", toro_sources_to_json(q->sources, q->n_sources));
        json_object_set_new(o, "found_relevant_docs", json_boolean(q->found_relevant_docs));
        json_object_set_new(o, "model", q->model ? json_string(q->model) : json_null());
    } else if (status == TORO_STATUS_ERROR) {
        json_object_set_new(o, "error_message", json_string(q->error_message ? q->error_message : "erro"));
    }
    char ts[32];
    toro_iso8601(q->updated_at, ts);
    json_object_set_new(o, "updated_at", json_string(ts));
    if (toro_status_is_terminal(status) && q->processed_at) {
        toro_iso8601(q->processed_at, ts);
        json_object_set_new(o, "processed_at", json_string(ts));
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

int toro_stage_notify(toro_stage_ctx_t *ctx, const toro_bus_msg_t *msg)
{
    char *uid = NULL, *qid = NULL, *text = NULL;
    toro_status_t status;
    toro_question_t q = {0};
    toro_connection_t *conns = NULL;
    size_t n = 0;
    int rc = toro_event_decode(msg->payload, &uid, &qid, &status);
    if (rc) {
        toro_log_error("notify", NULL, "malformed event dead-lettered: %.200s", msg->payload);
        toro_metrics_inc(TORO_CTR_DEAD_LETTERS);
        rc = toro_bus_dead(ctx->bus, TORO_TOPIC_NOTIFY, msg, "malformed event");
        goto out;
    }
    rc = toro_store_get_question_and_connections(ctx->store, qid, uid, &q, &conns, &n);
    if (rc == TORO_ENOTFOUND) {
        toro_metrics_inc(TORO_CTR_DEAD_LETTERS);
        rc = toro_bus_dead(ctx->bus, TORO_TOPIC_NOTIFY, msg, "unknown question");
        goto out;
    }
    if (rc) {
        toro_bus_nack(ctx->bus, TORO_TOPIC_NOTIFY, msg, toro_stage_backoff_ms(ctx, msg->deliveries));
        goto out;
    }
    text = toro_stage_update_message(&q, status);
    if (!text) {
        rc = TORO_ENOMEM;
        goto out;
    }
    size_t sent = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        int prc = ctx->post(ctx->post_ctx, conns[i].connection_id, conns[i].node, text);
        if (prc == TORO_ENOTFOUND) {
            toro_store_delete_connection(ctx->store, conns[i].connection_id);
            toro_log_info("notify", qid, "connection %s is gone; removed", conns[i].connection_id);
        } else if (prc == 0) {
            sent++;
        } else {
            failed++;
        }
    }
    if (failed && msg->deliveries < ctx->max_deliveries) {
        /* a gateway did not confirm: deliver the update again later (the
         * connections that got it get the same message twice: at least once) */
        toro_log_warn("notify", qid, "%zu of %zu connections unreachable; update will be redelivered", failed, n);
        rc = toro_bus_nack(ctx->bus, TORO_TOPIC_NOTIFY, msg, toro_stage_backoff_ms(ctx, msg->deliveries));
        goto out;
    }
    if (status == TORO_STATUS_COMPLETED || status == TORO_STATUS_ERROR)
        toro_metrics_observe_ms(TORO_HIST_END_TO_END, (double)(toro_now_ms() - q.created_at));
    toro_log_debug("notify", qid, "%s update sent to %zu of %zu connections", toro_status_name(status), sent, n);
    rc = toro_bus_ack(ctx->bus, TORO_TOPIC_NOTIFY, msg);
out:
    toro_connections_free(conns, n);
    toro_question_clear(&q);
    free(text);
    free(uid);
    free(qid);
    return rc;
}

/* process.c: the process stage. For one "process" event: skip questions that
 * already ended (redelivery), move the question to processing (announcing it
 * once), ask the answerer, and commit completed or error together with the
 * notify event. Transient answerer failures are retried through the bus with
 * exponential backoff; after max_attempts the question is marked error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "stages/stages.h"

int toro_stage_backoff_ms(const toro_stage_ctx_t *ctx, int attempt)
{
    long d = ctx->backoff_base_ms;
    for (int i = 1; i < attempt && d < ctx->backoff_max_ms; i++)
        d *= 2;
    if (d > ctx->backoff_max_ms)
        d = ctx->backoff_max_ms;
    /* up to 25% jitter so retries of many questions do not align */
    long jitter = d / 4 > 0 ? (long)((unsigned)toro_mono_ms() % (unsigned long)(d / 4 + 1)) : 0;
    return (int)(d - jitter);
}

/* Marks the question error (guarded) with its notify event. ECONFLICT means
 * it had already ended: nothing to announce. */
static int mark_error(toro_stage_ctx_t *ctx, const char *uid, const char *qid, const char *message)
{
    char *payload = toro_event_encode(uid, qid, TORO_STATUS_ERROR);
    if (!payload)
        return TORO_ENOMEM;
    toro_event_t ev = {TORO_TOPIC_NOTIFY, payload};
    int rc = ctx->store->ops->fail(ctx->store, uid, qid, message, &ev);
    free(payload);
    if (rc == 0) {
        toro_bus_kick(ctx->bus, TORO_TOPIC_NOTIFY);
        toro_log_warn("process", qid, "question marked error: %s", message);
    }
    return rc == TORO_ECONFLICT ? 0 : rc;
}

int toro_stage_process(toro_stage_ctx_t *ctx, const toro_bus_msg_t *msg)
{
    char *uid = NULL, *qid = NULL, *payload = NULL, *errmsg = NULL;
    toro_status_t ev_status;
    toro_question_t q = {0};
    toro_answer_t ans = {0};
    int rc = toro_event_decode(msg->payload, &uid, &qid, &ev_status);
    if (rc) {
        toro_log_error("process", NULL, "malformed event dead-lettered: %.200s", msg->payload);
        toro_metrics_inc(TORO_CTR_DEAD_LETTERS);
        rc = toro_bus_dead(ctx->bus, TORO_TOPIC_PROCESS, msg, "malformed event");
        goto out;
    }
    if (msg->deliveries > ctx->max_deliveries) {
        char m[160];
        snprintf(m, sizeof m, "A pergunta não pôde ser processada após %d entregas.", msg->deliveries - 1);
        rc = mark_error(ctx, uid, qid, m);
        if (rc)
            goto retry;
        toro_metrics_inc(TORO_CTR_DEAD_LETTERS);
        rc = toro_bus_dead(ctx->bus, TORO_TOPIC_PROCESS, msg, "too many deliveries");
        goto out;
    }
    rc = ctx->store->ops->get_question(ctx->store, qid, &q);
    if (rc == TORO_ENOTFOUND) {
        toro_log_error("process", qid, "event for an unknown question dead-lettered");
        toro_metrics_inc(TORO_CTR_DEAD_LETTERS);
        rc = toro_bus_dead(ctx->bus, TORO_TOPIC_PROCESS, msg, "unknown question");
        goto out;
    }
    if (rc)
        goto retry;
    if (toro_status_is_terminal(q.status)) {
        toro_log_info("process", qid, "redelivered event for a %s question acknowledged", toro_status_name(q.status));
        rc = toro_bus_ack(ctx->bus, TORO_TOPIC_PROCESS, msg);
        goto out;
    }

    payload = toro_event_encode(uid, qid, TORO_STATUS_PROCESSING);
    toro_event_t ev = {TORO_TOPIC_NOTIFY, payload};
    bool first = false;
    int attempts = 0;
    rc = payload ? ctx->store->ops->start_processing(ctx->store, uid, qid, &ev, &first, &attempts) : TORO_ENOMEM;
    free(payload);
    payload = NULL;
    if (rc == TORO_ECONFLICT) {
        rc = toro_bus_ack(ctx->bus, TORO_TOPIC_PROCESS, msg);
        goto out;
    }
    if (rc)
        goto retry;
    if (first)
        toro_bus_kick(ctx->bus, TORO_TOPIC_NOTIFY);

    int64_t t_answer = toro_mono_ms();
    rc = toro_answerer_answer(ctx->answerer, q.question, &ans, &errmsg);
    toro_metrics_answerer_call(ctx->answerer->ops->name, rc != 0, (double)(toro_mono_ms() - t_answer));
    if (rc == TORO_ERETRY && attempts < ctx->max_attempts) {
        int delay = toro_stage_backoff_ms(ctx, attempts);
        toro_log_warn("process", qid, "answerer failed (attempt %d of %d), retrying in %d ms: %s", attempts,
                      ctx->max_attempts, delay, errmsg ? errmsg : toro_strerror(rc));
        toro_metrics_inc(TORO_CTR_RETRIES);
        rc = toro_bus_nack(ctx->bus, TORO_TOPIC_PROCESS, msg, delay);
        goto out;
    }
    if (rc) {
        char m[600];
        snprintf(m, sizeof m, "Não foi possível gerar a resposta após %d tentativa%s: %s", attempts,
                 attempts == 1 ? "" : "s", errmsg ? errmsg : toro_strerror(rc));
        rc = mark_error(ctx, uid, qid, m);
        if (rc)
            goto retry;
        rc = toro_bus_ack(ctx->bus, TORO_TOPIC_PROCESS, msg);
        goto out;
    }

    payload = toro_event_encode(uid, qid, TORO_STATUS_COMPLETED);
    toro_question_t result = {.user_id = uid,
                              .question_id = qid,
                              .answer = ans.text,
                              .sources = ans.sources, /* borrowed from ans */
                              .n_sources = ans.n_sources,
                              .found_relevant_docs = ans.found_relevant_docs,
                              .model = ans.model,
                              .kb_version = ans.kb_version};
    toro_event_t done = {TORO_TOPIC_NOTIFY, payload};
    rc = payload ? ctx->store->ops->complete(ctx->store, &result, &done) : TORO_ENOMEM;
    if (rc == 0) {
        toro_bus_kick(ctx->bus, TORO_TOPIC_NOTIFY);
        toro_metrics_answer(ans.found_relevant_docs);
        toro_log_info("process", qid, "completed with %zu sources (found_relevant_docs=%s)", ans.n_sources,
                      ans.found_relevant_docs ? "true" : "false");
    } else if (rc == TORO_ECONFLICT) {
        toro_log_info("process", qid, "already ended by another delivery; answer discarded");
    } else {
        goto retry;
    }
    rc = toro_bus_ack(ctx->bus, TORO_TOPIC_PROCESS, msg);
    goto out;

retry:
    /* The store or bus failed: leave the event for a later delivery. */
    toro_log_ratelimited(TORO_LOG_ERROR, "process", "process-retry", "stage failed (%s); event will be redelivered",
                         toro_strerror(rc));
    toro_bus_nack(ctx->bus, TORO_TOPIC_PROCESS, msg, toro_stage_backoff_ms(ctx, msg->deliveries));
out:
    toro_answer_clear(&ans);
    toro_question_clear(&q);
    free(payload);
    free(errmsg);
    free(uid);
    free(qid);
    return rc;
}

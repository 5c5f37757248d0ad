/* process.c: the process stage. For one "process" event: skip questions that
 * already ended (redelivery), move the question to processing (announcing it
 * once, best-effort: begin_processing), ask the answerer, and commit
 * completed or error together with the notify event. Transient answerer failures are retried through the bus with
 * exponential backoff; after max_attempts the question is marked error.
 * Text an answerer streams goes to the asker's sockets as answer_delta
 * messages (delta.c) before the commit; only the committed answer is stored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "answer/prompt.h"
#include "stages/rewrite.h"
#include "stages/stages.h"

#define FOLLOWUP_TURNS 3 /* earlier turns of its conversation a question is read with */

/* Marks the question error (guarded) with its notify event. ECONFLICT means
 * it had already ended: nothing to announce. */
static int mark_error(toro_stage_ctx_t *ctx, const char *uid, const char *qid, const char *message)
{
    char *payload = toro_event_encode(uid, qid, TORO_STATUS_ERROR);
    if (!payload)
        return TORO_ENOMEM;
    toro_event_t ev = {TORO_TOPIC_NOTIFY, payload};
    int rc = toro_store_fail(ctx->store, uid, qid, message, &ev);
    free(payload);
    if (rc == 0) {
        toro_bus_kick(ctx->bus, TORO_TOPIC_NOTIFY);
        toro_log_warn("process", qid, "question marked error: %s", message);
    }
    return rc == TORO_ECONFLICT ? 0 : rc;
}

/* Dead-letters msg with reason; the stage's result. */
static int dead_letter(toro_stage_ctx_t *ctx, const toro_bus_msg_t *msg, const char *reason)
{
    toro_metrics_inc(TORO_CTR_DEAD_LETTERS);
    return toro_bus_dead(ctx->bus, TORO_TOPIC_PROCESS, msg, reason);
}

/* The store or bus failed with rc: leave the event for a later delivery. */
static int retry_later(toro_stage_ctx_t *ctx, const toro_bus_msg_t *msg, int rc)
{
    toro_log_ratelimited(TORO_LOG_ERROR, "process", "process-retry", "stage failed (%s); event will be redelivered",
                         toro_strerror(rc));
    toro_bus_nack(ctx->bus, TORO_TOPIC_PROCESS, msg, toro_stage_backoff_ms(ctx, msg->deliveries));
    return rc;
}

/* A message delivered too often: the question ends in error, the event dies. */
static int give_up(toro_stage_ctx_t *ctx, const toro_bus_msg_t *msg, const char *uid, const char *qid)
{
    char m[160];
    snprintf(m, sizeof m, "A pergunta não pôde ser processada após %d entregas.", msg->deliveries - 1);
    int rc = mark_error(ctx, uid, qid, m);
    return rc ? retry_later(ctx, msg, rc) : dead_letter(ctx, msg, "too many deliveries");
}

/* Moves the question to processing and reads it (*q, in the same round
 * trip where the store can). The first move (from pending) is announced:
 * with a post, best-effort to the asker's sockets through fwd (no event:
 * the final update is the durable one); without one (a process function
 * that cannot reach the sockets), by a notify event written with the move.
 * 0: go on answering with *attempts; 2: the same, after the first move
 * (announce it when there is a post); 1: the stage is done (acked,
 * dead-lettered or left for redelivery) and *result is its outcome. */
static int begin_processing(toro_stage_ctx_t *ctx, const toro_bus_msg_t *msg, const char *uid, const char *qid,
                            toro_question_t *q, int *attempts, int *result)
{
    char *payload = ctx->post ? NULL : toro_event_encode(uid, qid, TORO_STATUS_PROCESSING);
    toro_event_t ev = {TORO_TOPIC_NOTIFY, payload};
    bool first = false;
    int rc = ctx->post || payload ? toro_store_start_processing_get(ctx->store, uid, qid, payload ? &ev : NULL, &first,
                                                                    attempts, q)
                                  : TORO_ENOMEM;
    free(payload);
    if (rc == TORO_ECONFLICT) { /* ended already (a redelivery) or meanwhile by another delivery */
        toro_log_info("process", qid, "event for a question that already ended acknowledged");
        *result = toro_bus_ack(ctx->bus, TORO_TOPIC_PROCESS, msg);
        return 1;
    }
    if (rc == TORO_ENOTFOUND) {
        toro_log_error("process", qid, "event for an unknown question dead-lettered");
        *result = dead_letter(ctx, msg, "unknown question");
        return 1;
    }
    if (rc) {
        *result = retry_later(ctx, msg, rc);
        return 1;
    }
    if (first && !ctx->post)
        toro_bus_kick(ctx->bus, TORO_TOPIC_NOTIFY);
    return first ? 2 : 0;
}

/* The answerer failed with rc: retry through the bus while attempts last,
 * else the question ends in error. */
static int answer_failed(toro_stage_ctx_t *ctx, const toro_bus_msg_t *msg, const char *uid, const char *qid,
                         int attempts, int rc, const char *errmsg)
{
    const char *why = errmsg ? errmsg : toro_strerror(rc);
    if (rc == TORO_ERETRY && attempts < ctx->max_attempts) {
        int delay = toro_stage_backoff_ms(ctx, attempts);
        toro_log_warn("process", qid, "answerer failed (attempt %d of %d), retrying in %d ms: %s", attempts,
                      ctx->max_attempts, delay, why);
        toro_metrics_inc(TORO_CTR_RETRIES);
        return toro_bus_nack(ctx->bus, TORO_TOPIC_PROCESS, msg, delay);
    }
    char m[600];
    snprintf(m, sizeof m, "Não foi possível gerar a resposta após %d tentativa%s: %s", attempts,
             attempts == 1 ? "" : "s", why);
    rc = mark_error(ctx, uid, qid, m);
    return rc ? retry_later(ctx, msg, rc) : toro_bus_ack(ctx->bus, TORO_TOPIC_PROCESS, msg);
}

/* Commits the answer (guarded) with its notify event, then acks. query:
 * the retrieval query when it differs from the question, else NULL. */
static int commit_answer(toro_stage_ctx_t *ctx, const toro_bus_msg_t *msg, char *uid, char *qid,
                         const toro_answer_t *ans, char *query)
{
    char *payload = toro_event_encode(uid, qid, TORO_STATUS_COMPLETED);
    toro_question_t result = {.user_id = uid,
                              .question_id = qid,
                              .answer = ans->text,
                              .sources = ans->sources, /* borrowed from ans */
                              .n_sources = ans->n_sources,
                              .found_relevant_docs = ans->found_relevant_docs,
                              .model = ans->model,
                              .kb_version = ans->kb_version,
                              .retrieval_query = query};
    toro_event_t done = {TORO_TOPIC_NOTIFY, payload};
    int rc = payload ? toro_store_complete(ctx->store, &result, &done) : TORO_ENOMEM;
    free(payload);
    if (rc == 0) {
        toro_bus_kick(ctx->bus, TORO_TOPIC_NOTIFY);
        toro_metrics_answer(ans->found_relevant_docs);
        toro_log_info("process", qid, "completed with %zu sources (found_relevant_docs=%s)", ans->n_sources,
                      ans->found_relevant_docs ? "true" : "false");
    } else if (rc == TORO_ECONFLICT) { /* acked only when the question did end */
        toro_question_t now = {0};
        int grc = toro_store_get_question(ctx->store, qid, &now);
        bool open = grc == 0 && !toro_status_is_terminal(now.status);
        toro_question_clear(&now);
        if (grc && grc != TORO_ENOTFOUND)
            return retry_later(ctx, msg, grc);
        if (open) { /* pending again: a crash of the store forgot the move to processing (postgres.c) */
            toro_log_warn("process", qid, "answer refused but the question has not ended; event redelivered");
            return retry_later(ctx, msg, TORO_ECONFLICT);
        }
        toro_log_info("process", qid, "already ended by another delivery; answer discarded");
    } else {
        return retry_later(ctx, msg, rc);
    }
    return toro_bus_ack(ctx->bus, TORO_TOPIC_PROCESS, msg);
}

/* The earlier turns of q's conversation, newest first (at most
 * FOLLOWUP_TURNS); none when q has no conversation, is its first question
 * (a conversation ingest started is named after its first question: no
 * read then), or the store keeps no conversations. *turns: caller frees. */
static void earlier_turns(toro_stage_ctx_t *ctx, const toro_question_t *q, toro_question_t **turns, size_t *n)
{
    char *cursor = NULL, *next = NULL;
    *turns = NULL;
    *n = 0;
    if (!q->conversation_id || strcmp(q->conversation_id, q->question_id) == 0 ||
        !(cursor = toro_history_cursor_encode(q)))
        return;
    int rc = toro_store_list_turns(ctx->store, q->user_id, q->conversation_id, true, FOLLOWUP_TURNS, cursor, turns, n,
                                   &next);
    if (rc && rc != TORO_ENOTSUP)
        toro_log_warn("process", q->question_id, "earlier turns unavailable (%s); answered alone", toro_strerror(rc));
    free(cursor);
    free(next);
}

/* Calls the answerer for q inside its conversation: a follow-up is asked
 * as its standalone query (*query, caller frees; NULL when the question
 * stands alone), and a model answerer's prompt carries the earlier turns.
 * Streamed text goes to fwd (to the asker's sockets when ctx->post). */
static int ask(toro_stage_ctx_t *ctx, const toro_question_t *q, toro_delta_fwd_t *fwd, toro_answer_t *ans,
               char **errmsg, char **query)
{
    toro_question_t *turns = NULL;
    size_t n = 0;
    const char *prev[FOLLOWUP_TURNS];
    toro_prompt_turn_t pt[FOLLOWUP_TURNS];
    *query = NULL;
    earlier_turns(ctx, q, &turns, &n);
    assert(n <= FOLLOWUP_TURNS);
    for (size_t i = 0; i < n; i++) {
        prev[i] = turns[i].retrieval_query ? turns[i].retrieval_query : turns[i].question;
        pt[n - 1 - i] = (toro_prompt_turn_t){turns[i].question, turns[i].answer};
    }
    if (n && toro_rewrite_followup(q->question, prev, n, query) == 0 && *query)
        toro_log_info("process", q->question_id, "follow-up asked as: %.300s", *query);
    toro_prompt_set_turns(pt, n, q->question);
    int rc = toro_answerer_answer_streamed(ctx->answerer, *query ? *query : q->question,
                                           ctx->post ? toro_delta_fwd_add : NULL, fwd, ans, errmsg);
    toro_prompt_set_turns(NULL, 0, NULL);
    toro_questions_free(turns, n);
    return rc;
}

/* Asks the answerer for q and settles the outcome. first: this attempt
 * moved q from pending (announce processing when it can be posted). */
static int answer(toro_stage_ctx_t *ctx, const toro_bus_msg_t *msg, char *uid, char *qid, const toro_question_t *q,
                  int attempts, bool first)
{
    toro_answer_t ans = {0};
    char *errmsg = NULL, *query = NULL;
    toro_delta_fwd_t fwd; /* processing and streamed text to the asker, before the completed update */
    toro_delta_fwd_init(&fwd, ctx, uid, qid, attempts);
    if (first && ctx->post)
        toro_delta_fwd_status(&fwd, q, TORO_STATUS_PROCESSING);
    int64_t t_answer = toro_mono_ms();
    int rc = ask(ctx, q, &fwd, &ans, &errmsg, &query);
    if (rc == 0)
        toro_delta_fwd_flush(&fwd);
    toro_delta_fwd_clear(&fwd);
    toro_metrics_answerer_call(ctx->answerer->ops->name, rc != 0, (double)(toro_mono_ms() - t_answer));
    rc = rc ? answer_failed(ctx, msg, uid, qid, attempts, rc, errmsg) : commit_answer(ctx, msg, uid, qid, &ans, query);
    toro_answer_clear(&ans);
    free(errmsg);
    free(query);
    return rc;
}

int toro_stage_process(toro_stage_ctx_t *ctx, const toro_bus_msg_t *msg)
{
    char *uid = NULL, *qid = NULL;
    toro_status_t ev_status;
    toro_question_t q = {0};
    int attempts = 0;
    assert(ctx && ctx->store && ctx->bus && ctx->answerer && msg && msg->payload);
    int rc = toro_event_decode(msg->payload, &uid, &qid, &ev_status);
    if (rc) {
        toro_log_error("process", NULL, "malformed event dead-lettered: %.200s", msg->payload);
        rc = dead_letter(ctx, msg, "malformed event");
        goto out;
    }
    if (msg->deliveries > ctx->max_deliveries) {
        rc = give_up(ctx, msg, uid, qid);
        goto out;
    }
    int begun = begin_processing(ctx, msg, uid, qid, &q, &attempts, &rc);
    if (begun != 1)
        rc = answer(ctx, msg, uid, qid, &q, attempts, begun == 2);
out:
    toro_question_clear(&q);
    free(uid);
    free(qid);
    return rc;
}

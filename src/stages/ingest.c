/* ingest.c: the ingest stage: validate, then commit the pending question and
 * its process event in one transaction before anyone is told "accepted". */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "stages/stages.h"

void toro_ingest_item_clear(toro_ingest_item_t *item)
{
    if (!item)
        return;
    toro_question_clear(&item->q);
    free(item->payload);
    item->payload = NULL;
}

/* A conversation_id sent by the client must name a conversation of uid:
 * 0 with *last_at its newest question's created_at, TORO_ENOTFOUND (unknown
 * or another user's: the same answer), or the store's error (TORO_ENOTSUP
 * when it keeps no conversations). */
static int conversation_of(toro_stage_ctx_t *ctx, const char *uid, const char *conv, int64_t *last_at)
{
    toro_question_t *items = NULL;
    size_t n = 0;
    char *next = NULL;
    int rc = toro_store_list_turns(ctx->store, uid, conv, true, 1, NULL, &items, &n, &next);
    if (rc == 0 && n == 0)
        rc = TORO_ENOTFOUND;
    if (rc == 0)
        *last_at = items[0].created_at;
    toro_questions_free(items, n);
    free(next);
    return rc;
}

/* Fills the new question's ids and its event; conv (taken) continues a
 * conversation whose newest question was created at last_at (a follow-up
 * is always later, even within one millisecond), NULL starts one where the
 * store keeps conversations, named after the question (its id: so the
 * process stage knows, without a read, that it has no earlier turns). */
static int fill_item(toro_stage_ctx_t *ctx, toro_ingest_item_t *item, char *conv, int64_t last_at)
{
    char qid[37];
    bool want_conv = conv || toro_store_has_conversations(ctx->store);
    toro_uuid7(qid); /* time-ordered: see core/util.h */
    if (!conv && want_conv)
        conv = strdup(qid);
    item->q.conversation_id = conv;
    item->q.question_id = strdup(qid);
    item->q.created_at = toro_now_ms();
    if (conv && item->q.created_at <= last_at)
        item->q.created_at = last_at + 1;
    item->payload = toro_event_encode(item->q.user_id, qid, TORO_STATUS_PENDING);
    return item->q.question_id && item->payload && (conv || !want_conv) ? 0 : TORO_ENOMEM;
}

int toro_stage_ingest_prepare(toro_stage_ctx_t *ctx, const char *body, size_t len, const char *auth_user,
                              toro_ingest_item_t *item, const char **err)
{
    char *uid = NULL, *text = NULL, *conv = NULL;
    memset(item, 0, sizeof *item);
    int rc = toro_question_validate_conv(body, len, auth_user != NULL, &uid, &text, &conv, err);
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
    int64_t last_at = 0;
    if (conv && (rc = conversation_of(ctx, uid, conv, &last_at)) != 0) {
        *err = rc == TORO_ENOTFOUND ? "conversation not found" : "conversations are not supported by this store";
        goto out;
    }
    item->q.user_id = uid;
    item->q.question = text;
    uid = text = NULL;
    rc = fill_item(ctx, item, conv, last_at);
    conv = NULL;
    if (rc)
        toro_ingest_item_clear(item);
out:
    free(uid);
    free(text);
    free(conv);
    return rc;
}

int toro_stage_ingest_commit(toro_stage_ctx_t *ctx, toro_ingest_item_t *items, size_t n, int *results)
{
    if (n == 0)
        return 0;
    toro_question_t *qs = calloc(n, sizeof *qs);
    toro_event_t *evs = calloc(n, sizeof *evs);
    int rc = TORO_ENOMEM;
    if (qs && evs) {
        for (size_t i = 0; i < n; i++) {
            qs[i] = items[i].q; /* shallow: items keep ownership */
            evs[i] = (toro_event_t){TORO_TOPIC_PROCESS, items[i].payload};
        }
        rc = toro_store_create_questions(ctx->store, qs, evs, n, results);
    } else {
        for (size_t i = 0; i < n; i++)
            results[i] = rc;
    }
    free(qs);
    free(evs);
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        if (results[i] == 0) {
            any = true;
            toro_log_info("ingest", items[i].q.question_id, "accepted question of %zu bytes from %s",
                          strlen(items[i].q.question), items[i].q.user_id);
        }
    }
    if (any)
        toro_bus_kick(ctx->bus, TORO_TOPIC_PROCESS);
    return rc;
}

int toro_stage_ingest(toro_stage_ctx_t *ctx, const char *body, size_t len, const char *auth_user, char qid[37],
                      char **user_id, const char **err)
{
    toro_ingest_item_t item;
    int rc = toro_stage_ingest_prepare(ctx, body, len, auth_user, &item, err);
    if (rc)
        return rc;
    int result = 0;
    rc = toro_stage_ingest_commit(ctx, &item, 1, &result);
    if (rc == 0) {
        snprintf(qid, 37, "%s", item.q.question_id);
        *user_id = item.q.user_id;
        item.q.user_id = NULL;
    }
    toro_ingest_item_clear(&item);
    return rc;
}

/* store.c: what both stores share: the default of optional methods and the
 * freeing of store-owned rows. No engine code lives here. */
#include <stdlib.h>

#include "core/error.h"
#include "store/store.h"

int toro_store_create_each(toro_store_t *s, const toro_question_t *qs, const toro_event_t *evs, size_t n,
                           int *results)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        results[i] = toro_store_create_question(s, &qs[i], &evs[i]);
        if (results[i] && !rc)
            rc = results[i];
    }
    return rc;
}

int toro_transition_args(const toro_transition_t *t, const char *yes, const char *no,
                         const char *args[TORO_TRANSITION_MAX_ARGS], char **owned)
{
    *owned = NULL;
    if (t->to == TORO_STATUS_ERROR) {
        args[0] = t->message;
        return 1;
    }
    if (t->to != TORO_STATUS_COMPLETED)
        return 0;
    const toro_question_t *r = t->result;
    assert(r);
    if (!(*owned = toro_sources_dump(r->sources, r->n_sources)))
        return TORO_ENOMEM;
    args[0] = r->answer ? r->answer : "";
    args[1] = *owned;
    args[2] = r->found_relevant_docs ? yes : no;
    args[3] = r->model;
    args[4] = r->kb_version;
    args[5] = r->retrieval_query;
    return 6;
}

int toro_store_start_processing_get(toro_store_t *s, const char *user_id, const char *question_id,
                                    const toro_event_t *ev, bool *first, int *attempts, toro_question_t *q)
{
    assert(s && user_id && question_id && first && attempts);
    assert(!q || !q->question_id);
    toro_transition_t t = {.user_id = user_id, .question_id = question_id, .to = TORO_STATUS_PROCESSING,
                           .ev = ev, .ev_if_pending = true, .question = q};
    int rc = s->ops->transition(s, &t);
    *attempts = t.attempts;
    if (rc == 0) {
        *first = t.from == TORO_STATUS_PENDING;
        *attempts += 1;
    }
    if (rc == 0 && q && !q->question_id)
        rc = s->ops->get_question(s, question_id, q);
    return rc;
}

int toro_store_start_processing(toro_store_t *s, const char *user_id, const char *question_id,
                                const toro_event_t *ev, bool *first, int *attempts)
{
    return toro_store_start_processing_get(s, user_id, question_id, ev, first, attempts, NULL);
}

int toro_store_complete(toro_store_t *s, const toro_question_t *result, const toro_event_t *ev)
{
    assert(s && result && result->user_id && result->question_id);
    toro_transition_t t = {.user_id = result->user_id, .question_id = result->question_id,
                           .to = TORO_STATUS_COMPLETED, .result = result, .ev = ev};
    return s->ops->transition(s, &t);
}

int toro_store_fail(toro_store_t *s, const char *user_id, const char *question_id, const char *message,
                    const toro_event_t *ev)
{
    assert(s && user_id && question_id && message);
    toro_transition_t t = {.user_id = user_id, .question_id = question_id, .to = TORO_STATUS_ERROR,
                           .message = message, .ev = ev};
    return s->ops->transition(s, &t);
}

int toro_store_questions_page(toro_question_t *arr, size_t count, int limit, toro_question_t **items, size_t *n,
                              char **next)
{
    assert(limit > 0 && items && n && next);
    if (count > (size_t)limit) {
        for (size_t i = (size_t)limit; i < count; i++)
            toro_question_clear(&arr[i]);
        count = (size_t)limit;
        if (!(*next = toro_history_cursor_encode(&arr[count - 1]))) {
            toro_questions_free(arr, count);
            return TORO_ENOMEM;
        }
    }
    *items = arr;
    *n = count;
    return 0;
}

int toro_store_conversations_page(toro_conversation_t *arr, size_t count, int limit, toro_conversation_t **items,
                                  size_t *n, char **next)
{
    assert(limit > 0 && items && n && next);
    if (count > (size_t)limit) {
        for (size_t i = (size_t)limit; i < count; i++) {
            free(arr[i].conversation_id);
            free(arr[i].user_id);
            free(arr[i].title);
        }
        count = (size_t)limit;
        if (!(*next = toro_conversation_cursor_encode(&arr[count - 1]))) {
            toro_conversations_free(arr, count);
            return TORO_ENOMEM;
        }
    }
    *items = arr;
    *n = count;
    return 0;
}

void toro_connections_free(toro_connection_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i].connection_id);
        free(items[i].user_id);
        free(items[i].node);
    }
    free(items);
}

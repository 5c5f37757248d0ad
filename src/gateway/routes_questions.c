/* routes_questions.c: the questions API: POST /questions (validated by the
 * ingest stage; the group commit answers), GET /questions (the user's
 * history, newest first, paginated) and GET /questions/{id} (see routes.h). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "core/question.h"
#include "core/util.h"
#include "gateway/routes.h"

/* The code of a question the ingest stage refused, from its message (the
 * messages are core/question.c's own, fixed strings). */
static const char *ingest_code(int rc, const char *err)
{
    static const gw_code_prefix_t table[] = {
        {"request body is not valid JSON", "invalid_json"},
        {"question must not be empty", "question_empty"},
        {"question must be at most", "question_too_long"},
        {"question is required", "question_missing"},
        {"question must be", "question_invalid"},
        {"user_id differs", "user_mismatch"},
        {"user_id", "invalid_user_id"},
        {"conversation_id", "invalid_conversation_id"},
    };
    return gw_code_by_prefix(table, sizeof table / sizeof table[0], err,
                             rc == TORO_EFORBIDDEN ? "forbidden" : "invalid_request");
}

bool gw_route_is_json(const char *ct)
{
    if (!ct)
        return false;
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

bool gw_route_json_body(gw_request_t *req, gw_response_t *r)
{
    if (!gw_route_is_json(gw_header(req, "Content-Type"))) {
        gw_json_error(r, 415, "Content-Type must be application/json");
        return false;
    }
    if (req->body_len == 0) {
        gw_json_error(r, 400, "request body is required");
        return false;
    }
    return true;
}

void gw_route_post_question(gw_routes_t *rt, gw_request_t *req, const char *user, gw_response_t *r,
                            toro_ingest_item_t *item, bool *deferred)
{
    if (!gw_route_json_body(req, r))
        return;
    const char *err = NULL;
    int rc = toro_stage_ingest_prepare(rt->ctx, req->body, req->body_len, user, item, &err);
    if (rc == TORO_EINVAL)
        gw_json_error_code(r, 400, ingest_code(rc, err), err);
    else if (rc == TORO_EFORBIDDEN)
        gw_json_error_code(r, 403, ingest_code(rc, err), err);
    else if (rc == TORO_ENOTFOUND) /* unknown and another user's look the same */
        gw_json_error_code(r, 404, "not_found", "conversation not found");
    else if (rc == TORO_ENOTSUP)
        gw_json_error_code(r, 501, "not_implemented", "this store keeps no conversations");
    else if (rc)
        gw_commit_answer(r, NULL, rc);
    else
        *deferred = true; /* answered after the group commit */
}

/* Rejects query parameters the route does not define (a misspelt
 * "limt=5" should not silently return the default page). */
static bool query_only(const char *query, const char *const *allowed, gw_response_t *r)
{
    for (const char *p = query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;
        bool ok = len == 0; /* "a=1&&b=2" */
        for (int i = 0; !ok && allowed[i]; i++)
            ok = strlen(allowed[i]) == klen && strncmp(allowed[i], p, klen) == 0;
        if (!ok) {
            gw_json_error_code(r, 400, "unknown_parameter", "unknown query parameter");
            return false;
        }
        p = amp ? amp + 1 : NULL;
    }
    return true;
}

/* The user a read is for: the token's subject; a user_id in the query must
 * name the same user (403 otherwise). Without auth, the query names it. */
static bool query_user(gw_request_t *req, const char *user, char uid[256], gw_response_t *r, bool required)
{
    int has_uid = gw_query_get(req->query, "user_id", uid, 256);
    if (has_uid < 0) {
        gw_json_error_code(r, 400, "invalid_user_id", "user_id is not valid");
        return false;
    }
    if (has_uid == 1 && !*uid) {
        gw_json_error_code(r, 400, "invalid_user_id", "user_id must not be empty");
        return false;
    }
    if (has_uid == 1) {
        char *trimmed = toro_trim_dup(uid);
        bool valid = trimmed && toro_user_id_is_valid(trimmed);
        if (valid)
            snprintf(uid, 256, "%s", trimmed);
        free(trimmed);
        if (!valid) {
            gw_json_error_code(r, 400, "invalid_user_id",
                               "user_id must be at most 128 characters of letters, digits and . _ - @ :");
            return false;
        }
        if (user && strcmp(uid, user) != 0) {
            gw_json_error_code(r, 403, "user_mismatch", "user_id differs from the authenticated user");
            return false;
        }
        return true;
    }
    if (user) {
        snprintf(uid, 256, "%s", user);
        return true;
    }
    uid[0] = '\0';
    if (required)
        gw_json_error_code(r, 400, "invalid_user_id", "user_id query parameter is required");
    return !required;
}

/* Sends a page {items, next_token} (takes arr). */
static void send_page(gw_response_t *r, json_t *arr, const char *next)
{
    gw_http_ok(r, 200, json_pack("{s:o, s:o}", "items", arr, "next_token", next ? json_string(next) : json_null()));
}

/* The query of a paginated read (user_id, limit, next_token): false when r
 * holds the 400/403 to send. *limit keeps its default when absent; token is
 * "" when absent. */
static bool page_query(gw_request_t *req, const char *user, char uid[256], long *limit, char token[256],
                       gw_response_t *r)
{
    char lim[32];
    int has_lim = gw_query_get(req->query, "limit", lim, sizeof lim);
    int has_tok = gw_query_get(req->query, "next_token", token, 256);
    static const char *const params[] = {"user_id", "limit", "next_token", NULL};
    if (!query_only(req->query, params, r) || !query_user(req, user, uid, r, true))
        return false;
    if (has_lim < 0 || (has_lim == 1 && toro_parse_long(lim, 1, 100, limit) != 0)) {
        gw_json_error_code(r, 400, "invalid_parameter", "limit must be an integer from 1 to 100");
        return false;
    }
    if (has_tok < 0) {
        gw_json_error_code(r, 400, "invalid_parameter", "next_token is not valid");
        return false;
    }
    if (has_tok != 1)
        token[0] = '\0';
    return true;
}

void gw_route_list_questions(gw_routes_t *rt, gw_request_t *req, const char *user, gw_response_t *r)
{
    char uid[256], token[256];
    long limit = 20;
    if (!page_query(req, user, uid, &limit, token, r))
        return;
    int has_tok = *token ? 1 : 0;
    toro_question_t *items = NULL;
    size_t n = 0;
    char *next = NULL;
    int rc = toro_store_list_questions(rt->ctx->store, uid, (int)limit, has_tok == 1 && *token ? token : NULL,
                                                 &items, &n, &next);
    if (rc == TORO_EINVAL) {
        gw_json_error_code(r, 400, "invalid_parameter", "next_token is not valid");
        return;
    }
    if (rc) {
        gw_json_error(r, 503, "history is unavailable right now; try again");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, toro_question_to_json(&items[i]));
    send_page(r, arr, next);
    toro_questions_free(items, n);
    free(next);
}

void gw_route_get_question(gw_routes_t *rt, gw_request_t *req, const char *user, const char *qid, gw_response_t *r)
{
    char uid[256];
    static const char *const params[] = {"user_id", NULL};
    if (!query_only(req->query, params, r) || !query_user(req, user, uid, r, false))
        return;
    if (strlen(qid) != 36) {
        gw_json_error(r, 404, "question not found");
        return;
    }
    toro_question_t q = {0};
    int rc = toro_store_get_question(rt->ctx->store, qid, &q);
    /* another user's question does not exist for this caller */
    if (rc == 0 && uid[0] && strcmp(uid, q.user_id) != 0)
        rc = TORO_ENOTFOUND;
    if (rc == TORO_ENOTFOUND)
        gw_json_error(r, 404, "question not found");
    else if (rc)
        gw_json_error(r, 503, "the question is unavailable right now; try again");
    else
        gw_http_ok(r, 200, toro_question_to_json(&q));
    toro_question_clear(&q);
}

/* The answer of a conversation read that failed with rc (not 0). */
static void conversation_error(gw_response_t *r, int rc)
{
    if (rc == TORO_EINVAL)
        gw_json_error_code(r, 400, "invalid_parameter", "next_token is not valid");
    else if (rc == TORO_ENOTSUP)
        gw_json_error_code(r, 501, "not_implemented", "this store keeps no conversations");
    else if (rc == TORO_ENOTFOUND)
        gw_json_error(r, 404, "conversation not found");
    else
        gw_json_error(r, 503, "history is unavailable right now; try again");
}

void gw_route_list_conversations(gw_routes_t *rt, gw_request_t *req, const char *user, gw_response_t *r)
{
    char uid[256], token[256];
    long limit = 20;
    if (!page_query(req, user, uid, &limit, token, r))
        return;
    toro_conversation_t *items = NULL;
    size_t n = 0;
    char *next = NULL;
    int rc = toro_store_list_conversations(rt->ctx->store, uid, (int)limit, *token ? token : NULL, &items, &n, &next);
    if (rc) {
        conversation_error(r, rc);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, toro_conversation_to_json(&items[i]));
    send_page(r, arr, next);
    toro_conversations_free(items, n);
    free(next);
}

void gw_route_get_conversation(gw_routes_t *rt, gw_request_t *req, const char *user, const char *cid,
                               gw_response_t *r)
{
    char uid[256], token[256];
    long limit = 100;
    if (!page_query(req, user, uid, &limit, token, r))
        return;
    toro_question_t *items = NULL;
    size_t n = 0;
    char *next = NULL;
    int rc = toro_conversation_id_is_valid(cid) ? 0 : TORO_ENOTFOUND;
    if (rc == 0)
        rc = toro_store_list_turns(rt->ctx->store, uid, cid, false, (int)limit, *token ? token : NULL, &items, &n,
                                   &next);
    if (rc == 0 && n == 0 && !*token) /* another user's conversation does not exist for this caller */
        rc = TORO_ENOTFOUND;
    if (rc) {
        conversation_error(r, rc);
        toro_questions_free(items, n);
        free(next);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, toro_question_to_json(&items[i]));
    gw_http_ok(r, 200,
               json_pack("{s:s, s:o, s:o}", "conversation_id", cid, "items", arr, "next_token",
                         next ? json_string(next) : json_null()));
    toro_questions_free(items, n);
    free(next);
}

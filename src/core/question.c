/* question.c: status machine, record <-> JSON, request validation, events. */
#include "core/question.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/util.h"

static const char *status_names[TORO_STATUS_COUNT] = {"pending", "processing", "completed", "error"};

const char *toro_status_name(toro_status_t s)
{
    return (s >= 0 && s < TORO_STATUS_COUNT) ? status_names[s] : "unknown";
}

int toro_status_parse(const char *name, toro_status_t *out)
{
    for (int i = 0; i < TORO_STATUS_COUNT; i++) {
        if (name && strcmp(name, status_names[i]) == 0) {
            *out = (toro_status_t)i;
            return 0;
        }
    }
    return TORO_EINVAL;
}

bool toro_status_can_move(toro_status_t from, toro_status_t to)
{
    assert(from >= 0 && from < TORO_STATUS_COUNT && to >= 0 && to < TORO_STATUS_COUNT);
    switch (from) {
    case TORO_STATUS_PENDING:
        return to == TORO_STATUS_PROCESSING || to == TORO_STATUS_ERROR;
    case TORO_STATUS_PROCESSING:
        return to == TORO_STATUS_PROCESSING || to == TORO_STATUS_COMPLETED || to == TORO_STATUS_ERROR;
    default:
        return false;
    }
}

void toro_question_clear(toro_question_t *q)
{
    if (!q)
        return;
    free(q->user_id);
    free(q->question_id);
    free(q->question);
    free(q->answer);
    toro_sources_free(q->sources, q->n_sources);
    free(q->model);
    free(q->kb_version);
    free(q->error_message);
    toro_feedback_clear(&q->feedback);
    free(q->conversation_id);
    free(q->retrieval_query);
    memset(q, 0, sizeof *q);
}

void toro_questions_free(toro_question_t *items, size_t n)
{
    for (size_t i = 0; i < n && items; i++)
        toro_question_clear(&items[i]);
    free(items);
}

static json_t *str_or_null(const char *s) { return s ? json_string(s) : json_null(); }

void toro_sources_free(toro_source_t *s, size_t n)
{
    if (!s)
        return;
    for (size_t i = 0; i < n; i++) {
        free(s[i].doc_id);
        free(s[i].title);
        free(s[i].section);
        free(s[i].chunk_id);
        free(s[i].snippet);
    }
    free(s);
}

json_t *toro_sources_to_json(const toro_source_t *s, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        const toro_source_t *x = &s[i];
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:f, s:s}", "doc_id", x->doc_id ? x->doc_id : "", "title",
                              x->title ? x->title : "", "section", x->section ? x->section : "", "chunk_id",
                              x->chunk_id ? x->chunk_id : "", "score", x->score, "snippet",
                              x->snippet ? x->snippet : "");
        if (!o || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

char *toro_sources_dump(const toro_source_t *s, size_t n)
{
    json_t *arr = toro_sources_to_json(s, n);
    char *r = arr ? json_dumps(arr, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(arr);
    return r;
}

static char *field_dup(json_t *o, const char *key, int *oom)
{
    const char *v = json_string_value(json_object_get(o, key));
    char *r = v ? strdup(v) : NULL;
    if (v && !r)
        *oom = 1;
    return r;
}

int toro_sources_load(const char *text, toro_source_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!text)
        return 0;
    json_t *arr = json_loads(text, 0, NULL);
    if (!json_is_array(arr)) {
        json_decref(arr);
        return TORO_EFORMAT;
    }
    size_t cap = json_array_size(arr);
    toro_source_t *s = cap ? calloc(cap, sizeof *s) : NULL;
    int oom = cap && !s;
    size_t k = 0;
    for (size_t i = 0; i < cap && !oom; i++) {
        json_t *o = json_array_get(arr, i);
        if (!json_is_object(o))
            continue;
        toro_source_t *x = &s[k++];
        x->doc_id = field_dup(o, "doc_id", &oom);
        x->title = field_dup(o, "title", &oom);
        x->section = field_dup(o, "section", &oom);
        x->chunk_id = field_dup(o, "chunk_id", &oom);
        x->snippet = field_dup(o, "snippet", &oom);
        x->score = json_number_value(json_object_get(o, "score"));
    }
    json_decref(arr);
    if (oom) {
        toro_sources_free(s, k);
        return TORO_ENOMEM;
    }
    *out = s;
    *n = k;
    return 0;
}

static json_t *time_or_null(int64_t ms)
{
    if (!ms)
        return json_null();
    char buf[32];
    toro_iso8601(ms, buf);
    return json_string(buf);
}

json_t *toro_question_to_json(const toro_question_t *q)
{
    json_t *o = json_object();
    json_object_set_new(o, "user_id", json_string(q->user_id));
    json_object_set_new(o, "question_id", json_string(q->question_id));
    json_object_set_new(o, "question", json_string(q->question));
    json_object_set_new(o, "status", json_string(toro_status_name(q->status)));
    json_object_set_new(o, "answer", str_or_null(q->answer));
    json_object_set_new(o, "sources", toro_sources_to_json(q->sources, q->n_sources));
    json_object_set_new(o, "found_relevant_docs",
                        q->status == TORO_STATUS_COMPLETED ? json_boolean(q->found_relevant_docs) : json_null());
    json_object_set_new(o, "model", str_or_null(q->model));
    json_object_set_new(o, "kb_version", str_or_null(q->kb_version));
    json_object_set_new(o, "error_message", str_or_null(q->error_message));
    json_object_set_new(o, "attempts", json_integer(q->attempts));
    json_object_set_new(o, "created_at", time_or_null(q->created_at));
    json_object_set_new(o, "updated_at", time_or_null(q->updated_at));
    json_object_set_new(o, "processing_started_at", time_or_null(q->processing_started_at));
    json_object_set_new(o, "processed_at", time_or_null(q->processed_at));
    json_object_set_new(o, "feedback", toro_feedback_to_json(&q->feedback));
    json_object_set_new(o, "conversation_id", str_or_null(q->conversation_id));
    json_object_set_new(o, "retrieval_query", str_or_null(q->retrieval_query));
    return o;
}

void toro_conversations_free(toro_conversation_t *items, size_t n)
{
    for (size_t i = 0; i < n && items; i++) {
        free(items[i].conversation_id);
        free(items[i].user_id);
        free(items[i].title);
    }
    free(items);
}

json_t *toro_conversation_to_json(const toro_conversation_t *c)
{
    json_t *o = json_object();
    json_object_set_new(o, "conversation_id", str_or_null(c->conversation_id));
    json_object_set_new(o, "title", json_string(c->title ? c->title : ""));
    json_object_set_new(o, "question_count", json_integer(c->n_questions));
    json_object_set_new(o, "created_at", time_or_null(c->created_at));
    json_object_set_new(o, "last_activity_at", time_or_null(c->last_activity_at));
    return o;
}

char *toro_conversation_cursor_encode(const toro_conversation_t *last)
{
    toro_question_t q = {.created_at = last->last_activity_at, .question_id = last->conversation_id};
    return toro_history_cursor_encode(&q);
}

bool toro_conversation_id_is_valid(const char *id)
{
    if (!id || strlen(id) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        char c = id[i];
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

bool toro_user_id_is_valid(const char *u)
{
    size_t n = u ? strlen(u) : 0;
    if (n == 0 || n > TORO_USER_ID_MAX_CHARS)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = u[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                  c == '-' || c == '@' || c == ':';
        if (!ok)
            return false;
    }
    return true;
}

/* The fields of a request body object: only user_id and question (and
 * conversation_id when with_conv), all strings without NUL, user_id present
 * unless optional. NULL when they are, else the message saying what is wrong. */
static const char *check_fields(json_t *root, bool user_optional, bool with_conv)
{
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        if (strcmp(key, "user_id") != 0 && strcmp(key, "question") != 0 &&
            !(with_conv && strcmp(key, "conversation_id") == 0))
            return with_conv ? "unknown field in request body (allowed: user_id, question, conversation_id)"
                             : "unknown field in request body (allowed: user_id, question)";
    }
    json_t *ju = json_object_get(root, "user_id");
    json_t *jq = json_object_get(root, "question");
    json_t *jc = json_object_get(root, "conversation_id");
    if (!ju && !user_optional)
        return "user_id is required";
    if (ju && !json_is_string(ju))
        return "user_id must be a string";
    if (!jq)
        return "question is required";
    if (!json_is_string(jq))
        return "question must be a string";
    if ((ju && strlen(json_string_value(ju)) != json_string_length(ju)) ||
        strlen(json_string_value(jq)) != json_string_length(jq))
        return "strings must not contain NUL characters";
    if (jc && (!json_is_string(jc) || !toro_conversation_id_is_valid(json_string_value(jc))))
        return "conversation_id must be the id of an earlier question's conversation";
    return NULL;
}

/* The trimmed values: a user id (NULL when absent) of allowed characters and
 * a non-empty question of at most TORO_QUESTION_MAX_CHARS characters. NULL
 * when they are valid, else the message. */
static const char *check_values(const char *uid, const char *qtext)
{
    if (uid && !*uid)
        return "user_id must not be empty";
    if (uid && !toro_user_id_is_valid(uid))
        return "user_id must be at most 128 characters of letters, digits and . _ - @ :";
    if (!*qtext)
        return "question must not be empty";
    if (toro_utf8_count(qtext, strlen(qtext)) > TORO_QUESTION_MAX_CHARS)
        return "question must be at most 2000 characters";
    return NULL;
}

/* The validation of toro_question_validate_conv; conv NULL: the field is
 * not allowed. */
static int validate(const char *body, size_t len, bool user_optional, char **user_id, char **question, char **conv,
                    const char **err)
{
    int rc = TORO_EINVAL;
    json_t *root = NULL;
    char *uid = NULL, *qtext = NULL, *cid = NULL;
    assert(body || !len);
    *user_id = NULL;
    *question = NULL;
    if (toro_utf8_count(body, len) < 0) {
        *err = "request body is not valid UTF-8";
        goto out;
    }
    json_error_t jerr;
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    const char *why = !root                ? "request body is not valid JSON"
                      : !json_is_object(root) ? "request body must be a JSON object"
                                            : check_fields(root, user_optional, conv != NULL);
    if (why) {
        *err = why;
        goto out;
    }
    json_t *ju = json_object_get(root, "user_id"), *jc = json_object_get(root, "conversation_id");
    uid = ju ? toro_trim_dup(json_string_value(ju)) : NULL;
    qtext = toro_trim_dup(json_string_value(json_object_get(root, "question")));
    cid = jc ? strdup(json_string_value(jc)) : NULL;
    if ((ju && !uid) || !qtext || (jc && !cid)) {
        *err = "out of memory";
        goto out;
    }
    if ((why = check_values(uid, qtext)) != NULL) {
        *err = why;
        goto out;
    }
    *user_id = uid;
    *question = qtext;
    if (conv)
        *conv = cid;
    uid = qtext = cid = NULL;
    rc = 0;
out:
    free(uid);
    free(qtext);
    free(cid);
    json_decref(root);
    return rc;
}

int toro_question_validate(const char *body, size_t len, bool user_optional, char **user_id, char **question,
                           const char **err)
{
    return validate(body, len, user_optional, user_id, question, NULL, err);
}

int toro_question_validate_conv(const char *body, size_t len, bool user_optional, char **user_id, char **question,
                                char **conversation_id, const char **err)
{
    assert(conversation_id);
    *conversation_id = NULL;
    return validate(body, len, user_optional, user_id, question, conversation_id, err);
}

char *toro_history_cursor_encode(const toro_question_t *last)
{
    char buf[128];
    int n = snprintf(buf, sizeof buf, "%lld|%s", (long long)last->created_at, last->question_id);
    return (n > 0 && (size_t)n < sizeof buf) ? toro_b64url_encode((unsigned char *)buf, (size_t)n) : NULL;
}

int toro_history_cursor_decode(const char *cursor, int64_t *created_at, char question_id[64])
{
    size_t len;
    unsigned char *raw = toro_b64url_decode(cursor, &len);
    int rc = TORO_EINVAL;
    if (!raw)
        return rc;
    char *bar = strchr((char *)raw, '|');
    if (bar && strlen(bar + 1) > 0 && strlen(bar + 1) < 64) {
        *bar = '\0';
        char *end;
        long long v = strtoll((char *)raw, &end, 10);
        bool clean = true;
        for (const char *p = bar + 1; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                clean = false; /* ids are printable ASCII; a database need not see anything else */
        if (*end == '\0' && end != (char *)raw && v >= 0 && clean) {
            *created_at = v;
            snprintf(question_id, 64, "%s", bar + 1);
            rc = 0;
        }
    }
    free(raw);
    return rc;
}

char *toro_event_encode(const char *user_id, const char *question_id, toro_status_t status)
{
    const char *kv[] = {"user_id", user_id, "question_id", question_id, "status", toro_status_name(status)};
    if (user_id && question_id) { /* ids are plain ASCII in practice: no tree to build */
        char *plain = toro_json_plain("", kv, 3, "");
        if (plain)
            return plain;
    }
    json_t *o = json_pack("{s:s, s:s, s:s}", "user_id", user_id, "question_id", question_id, "status",
                          toro_status_name(status));
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return s;
}

int toro_event_decode(const char *payload, char **user_id, char **question_id, toro_status_t *status)
{
    json_t *o = json_loads(payload, 0, NULL);
    const char *u, *q, *s;
    int rc = TORO_EFORMAT;
    assert(user_id && question_id && status);
    *user_id = *question_id = NULL;
    if (o && json_unpack(o, "{s:s, s:s, s:s}", "user_id", &u, "question_id", &q, "status", &s) == 0 &&
        toro_status_parse(s, status) == 0) {
        *user_id = strdup(u);
        *question_id = strdup(q);
        rc = (*user_id && *question_id) ? 0 : TORO_ENOMEM;
        if (rc) {
            free(*user_id);
            free(*question_id);
            *user_id = *question_id = NULL;
        }
    }
    json_decref(o);
    return rc;
}

/* feedback.c: rating names, JSON and body validation (see feedback.h). */
#include "core/feedback.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/question.h"
#include "core/util.h"

static const char *const rating_names[] = {[TORO_RATING_UP] = "up", [TORO_RATING_DOWN] = "down"};

const char *toro_rating_name(toro_rating_t r)
{
    return r == TORO_RATING_UP || r == TORO_RATING_DOWN ? rating_names[r] : NULL;
}

int toro_rating_parse(const char *name, toro_rating_t *out)
{
    for (toro_rating_t r = TORO_RATING_UP; r <= TORO_RATING_DOWN; r++) {
        if (name && strcmp(name, rating_names[r]) == 0) {
            *out = r;
            return 0;
        }
    }
    return TORO_EINVAL;
}

void toro_feedback_clear(toro_feedback_t *f)
{
    if (!f)
        return;
    free(f->comment);
    memset(f, 0, sizeof *f);
}

json_t *toro_feedback_to_json(const toro_feedback_t *f)
{
    if (!f || !toro_rating_name(f->rating))
        return json_null();
    char at[32] = "";
    if (f->at)
        toro_iso8601(f->at, at);
    return json_pack("{s:s, s:o, s:o}", "rating", toro_rating_name(f->rating), "comment",
                     f->comment ? json_string(f->comment) : json_null(), "updated_at",
                     f->at ? json_string(at) : json_null());
}

/* The fields of the body object; NULL when they are well-typed, else the
 * message, with *code. */
static const char *check_fields(json_t *root, bool user_optional, const char **code)
{
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        if (strcmp(key, "rating") != 0 && strcmp(key, "comment") != 0 && strcmp(key, "user_id") != 0) {
            *code = "unknown_field";
            return "unknown field in request body (allowed: rating, comment, user_id)";
        }
        if (!json_is_string(val) && !(strcmp(key, "comment") == 0 && json_is_null(val))) {
            *code = strcmp(key, "rating") == 0    ? "invalid_rating"
                    : strcmp(key, "comment") == 0 ? "invalid_comment"
                                                  : "invalid_user_id";
            return strcmp(key, "rating") == 0 ? "rating must be \"up\" or \"down\"" : "fields must be strings";
        }
        if (json_is_string(val) && strlen(json_string_value(val)) != json_string_length(val)) {
            *code = "invalid_request";
            return "strings must not contain NUL characters";
        }
    }
    if (!json_object_get(root, "user_id") && !user_optional) {
        *code = "invalid_user_id";
        return "user_id is required";
    }
    if (!json_object_get(root, "rating")) {
        *code = "rating_missing";
        return "rating is required (\"up\" or \"down\")";
    }
    return NULL;
}

/* The values: rating, trimmed comment, trimmed user id. NULL or the message. */
static const char *check_values(json_t *root, char **uid, toro_feedback_t *out, const char **code)
{
    if (toro_rating_parse(json_string_value(json_object_get(root, "rating")), &out->rating) != 0) {
        *code = "invalid_rating";
        return "rating must be \"up\" or \"down\"";
    }
    const char *c = json_string_value(json_object_get(root, "comment"));
    const char *u = json_string_value(json_object_get(root, "user_id"));
    if ((c && !(out->comment = toro_trim_dup(c))) || (u && !(*uid = toro_trim_dup(u)))) {
        *code = "internal_error";
        return "out of memory";
    }
    if (out->comment && toro_utf8_count(out->comment, strlen(out->comment)) > TORO_FEEDBACK_COMMENT_MAX_CHARS) {
        *code = "comment_too_long";
        return "comment must be at most 1000 characters";
    }
    if (out->comment && !*out->comment) {
        free(out->comment);
        out->comment = NULL; /* an empty comment is no comment */
    }
    if (*uid && !toro_user_id_is_valid(*uid)) {
        *code = "invalid_user_id";
        return "user_id must be at most 128 characters of letters, digits and . _ - @ :";
    }
    return NULL;
}

int toro_feedback_validate(const char *body, size_t len, bool user_optional, char **user_id, toro_feedback_t *out,
                           const char **err, const char **code)
{
    assert((body || !len) && user_id && out && err && code);
    *user_id = NULL;
    memset(out, 0, sizeof *out);
    *err = NULL;
    json_t *root = NULL;
    if (toro_utf8_count(body, len) < 0) {
        *code = "invalid_request";
        *err = "request body is not valid UTF-8";
    } else if (!(root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL))) {
        *code = "invalid_json";
        *err = "request body is not valid JSON";
    } else if (!json_is_object(root)) {
        *code = "invalid_json";
        *err = "request body must be a JSON object";
    } else if (!(*err = check_fields(root, user_optional, code))) {
        *err = check_values(root, user_id, out, code);
    }
    json_decref(root);
    if (!*err)
        return 0;
    int rc = strcmp(*code, "internal_error") == 0 ? TORO_ENOMEM : TORO_EINVAL;
    free(*user_id);
    *user_id = NULL;
    toro_feedback_clear(out);
    return rc;
}

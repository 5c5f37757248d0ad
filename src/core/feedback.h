/* feedback.h: the asker's rating of an answer (issue 17): its record, its
 * JSON and the validation of a POST /questions/{id}/feedback body. Pure data
 * and rules, like core/question.h (which embeds the record); no storage. */
#ifndef TORO_CORE_FEEDBACK_H
#define TORO_CORE_FEEDBACK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TORO_FEEDBACK_COMMENT_MAX_CHARS 1000 /* characters (code points), not bytes */

typedef enum { TORO_RATING_NONE = 0, TORO_RATING_UP, TORO_RATING_DOWN } toro_rating_t;

/* At most one per question: a second replaces the first. */
typedef struct toro_feedback {
    toro_rating_t rating; /* NONE: no feedback given (then comment is NULL and at 0) */
    char *comment;        /* owned; NULL when none */
    int64_t at;           /* ms since epoch of the last rating */
} toro_feedback_t;

/* Why: ratings travel as "up" / "down" in JSON, SQL and metrics. name: a
 * static string, NULL for NONE or a value outside the enum. parse: 0 and
 * *out set, or TORO_EINVAL (NULL or another word) with *out untouched. */
const char *toro_rating_name(toro_rating_t r);
int toro_rating_parse(const char *name, toro_rating_t *out);

/* Why: records are cleared field by field; frees the comment and zeroes f.
 * Safe on NULL. */
void toro_feedback_clear(toro_feedback_t *f);

/* Why: the API form, `feedback` of a question: null when none, else
 * {rating, comment (string or null), updated_at (ISO 8601)}. New reference;
 * NULL when out of memory. */
json_t *toro_feedback_to_json(const toro_feedback_t *f);

/* Why: the route and its unit tests share one validator. Parses a POST
 * /questions/{id}/feedback body: a JSON object with "rating" ("up"|"down"),
 * optional "comment" (string, trimmed, at most 1000 characters of valid
 * UTF-8 without NUL; empty means none) and optional "user_id" (required when
 * !user_optional); no other field. On success 0 with *out->rating and
 * *out->comment (caller frees via toro_feedback_clear) and *user_id (caller
 * frees; NULL when absent). On failure TORO_EINVAL (TORO_ENOMEM when out of
 * memory), outputs empty, *err a static message and *code its stable error
 * code ("invalid_rating"...). */
int toro_feedback_validate(const char *body, size_t len, bool user_optional, char **user_id, toro_feedback_t *out,
                           const char **err, const char **code);

#endif

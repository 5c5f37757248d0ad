/* fuzz_request.c: libFuzzer harness for request-body validation (questions
 * and feedback) and the JSON handling around it (events, UTF-8 counting,
 * trimming, query strings). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/question.h"
#include "core/util.h"
#include "gateway/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *u = NULL, *q = NULL;
    const char *err = NULL;
    for (int optional = 0; optional < 2; optional++) {
        if (toro_question_validate((const char *)data, size, optional, &u, &q, &err) == 0) {
            /* accepted input must satisfy the documented rules */
            if (!q || !*q || toro_utf8_count(q, strlen(q)) > TORO_QUESTION_MAX_CHARS)
                abort();
            if (u && !toro_user_id_is_valid(u))
                abort();
        }
        free(u);
        free(q);
        u = q = NULL;
        toro_feedback_t fb;
        const char *code = NULL;
        if (toro_feedback_validate((const char *)data, size, optional, &u, &fb, &err, &code) == 0) {
            if (!toro_rating_name(fb.rating) || (!optional && !u) || (u && !toro_user_id_is_valid(u)))
                abort();
            if (fb.comment && (!*fb.comment || toro_utf8_count(fb.comment, strlen(fb.comment)) >
                                                   TORO_FEEDBACK_COMMENT_MAX_CHARS))
                abort();
        } else if (u || fb.comment || !code) {
            abort(); /* a refusal keeps nothing and names its code */
        }
        free(u);
        u = NULL;
        toro_feedback_clear(&fb);
    }
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    char *uid = NULL, *qid = NULL;
    toro_status_t st;
    if (toro_event_decode(s, &uid, &qid, &st) == 0) {
        free(uid);
        free(qid);
    }
    char out[256];
    gw_query_get(s, "user_id", out, sizeof out);
    gw_query_get(s, "next_token", out, sizeof out);
    size_t n;
    free(toro_b64url_decode(s, &n));
    free(toro_trim_dup(s));
    free(s);
    return 0;
}

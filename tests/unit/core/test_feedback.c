/* test_feedback.c: the feedback body validator, rating names and the JSON
 * form (core/feedback.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/feedback.h"

/* Validates body; returns the code (NULL when valid) and fills out/uid. */
static const char *check(const char *body, bool user_optional, toro_feedback_t *out, char **uid)
{
    const char *err = NULL, *code = NULL;
    int rc = toro_feedback_validate(body, strlen(body), user_optional, uid, out, &err, &code);
    if (rc == 0) {
        assert_null(err);
        return NULL;
    }
    assert_int_equal(rc, TORO_EINVAL);
    assert_non_null(err);
    assert_null(*uid);
    assert_null(out->comment);
    assert_int_equal(out->rating, TORO_RATING_NONE);
    return code;
}

static void test_valid_bodies(void **state)
{
    (void)state;
    toro_feedback_t fb;
    char *uid = NULL;
    assert_null(check("{\"rating\":\"up\"}", true, &fb, &uid));
    assert_int_equal(fb.rating, TORO_RATING_UP);
    assert_null(fb.comment);
    assert_null(uid);
    assert_null(check("{\"rating\":\"down\",\"comment\":\"  faltou  \",\"user_id\":\" ana \"}", false, &fb, &uid));
    assert_int_equal(fb.rating, TORO_RATING_DOWN);
    assert_string_equal(fb.comment, "faltou");
    assert_string_equal(uid, "ana");
    free(uid);
    uid = NULL;
    toro_feedback_clear(&fb);
    assert_null(check("{\"rating\":\"down\",\"comment\":\"   \"}", true, &fb, &uid)); /* empty: none */
    assert_null(fb.comment);
    assert_null(check("{\"rating\":\"down\",\"comment\":null}", true, &fb, &uid));
    assert_null(fb.comment);
    /* 1000 characters of two bytes each is within the limit; 1001 is not */
    char body[4200];
    size_t off = (size_t)snprintf(body, sizeof body, "{\"rating\":\"up\",\"comment\":\"");
    for (int i = 0; i < 1000; i++)
        off += (size_t)snprintf(body + off, sizeof body - off, "\xc3\xa9");
    snprintf(body + off, sizeof body - off, "\"}");
    assert_null(check(body, true, &fb, &uid));
    assert_int_equal(strlen(fb.comment), 2000);
    toro_feedback_clear(&fb);
    memcpy(body + off, "x\"}", 4);
    assert_string_equal(check(body, true, &fb, &uid), "comment_too_long");
}

static void test_invalid_bodies(void **state)
{
    (void)state;
    toro_feedback_t fb;
    char *uid = NULL;
    assert_string_equal(check("{\"rating\":\"meh\"}", true, &fb, &uid), "invalid_rating");
    assert_string_equal(check("{\"rating\":true}", true, &fb, &uid), "invalid_rating");
    assert_string_equal(check("{\"comment\":\"x\"}", true, &fb, &uid), "rating_missing");
    assert_string_equal(check("{\"rating\":\"up\",\"comment\":3}", true, &fb, &uid), "invalid_comment");
    assert_string_equal(check("{\"rating\":\"up\",\"stars\":3}", true, &fb, &uid), "unknown_field");
    assert_string_equal(check("{\"rating\":\"up\"}", false, &fb, &uid), "invalid_user_id");
    assert_string_equal(check("{\"rating\":\"up\",\"user_id\":\"a b\"}", true, &fb, &uid), "invalid_user_id");
    assert_string_equal(check("{\"rating\":\"up\",\"comment\":\"a\\u0000b\"}", true, &fb, &uid), "invalid_request");
    assert_string_equal(check("{\"rating\":\"up\",\"rating\":\"down\"}", true, &fb, &uid), "invalid_json");
    assert_string_equal(check("[\"up\"]", true, &fb, &uid), "invalid_json");
    assert_string_equal(check("{", true, &fb, &uid), "invalid_json");
    assert_string_equal(check("{\"rating\":\"up\",\"comment\":\"\xff\"}", true, &fb, &uid), "invalid_request");
}

static void test_names_and_json(void **state)
{
    (void)state;
    toro_rating_t r = TORO_RATING_NONE;
    assert_int_equal(toro_rating_parse("down", &r), 0);
    assert_int_equal(r, TORO_RATING_DOWN);
    assert_int_equal(toro_rating_parse("Up", &r), TORO_EINVAL);
    assert_int_equal(toro_rating_parse(NULL, &r), TORO_EINVAL);
    assert_int_equal(r, TORO_RATING_DOWN);
    assert_null(toro_rating_name(TORO_RATING_NONE));
    toro_feedback_t none = {0};
    json_t *j = toro_feedback_to_json(&none);
    assert_true(json_is_null(j));
    json_decref(j);
    toro_feedback_t fb = {.rating = TORO_RATING_UP, .at = 1764547200000};
    j = toro_feedback_to_json(&fb);
    assert_string_equal(json_string_value(json_object_get(j, "rating")), "up");
    assert_true(json_is_null(json_object_get(j, "comment")));
    assert_string_equal(json_string_value(json_object_get(j, "updated_at")), "2025-12-01T00:00:00.000Z");
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_bodies),
        cmocka_unit_test(test_invalid_bodies),
        cmocka_unit_test(test_names_and_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

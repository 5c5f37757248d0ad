/* test_routes_feedback.c: POST /questions/{id}/feedback against fake stores
 * (gateway/routes_feedback.c): what each store outcome answers (200, 404,
 * 409, 501 for a store without feedback, 503), who the rating is stored
 * for (the token's subject, else the body's user_id), and that the counter
 * moves only on a stored rating. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/metrics.h"
#include "gateway/routes.h"

#define QID "00000000-0000-4000-8000-000000000001"

typedef struct fake {
    toro_store_t super;
    int rc;                       /* what set_feedback answers */
    char user[64], qid[64];       /* what it was called with */
    toro_rating_t rating;
    int calls;
} fake_t;

static int fake_set(toro_store_t *s, const char *user_id, const char *question_id, const toro_feedback_t *fb)
{
    fake_t *f = (fake_t *)s;
    f->calls++;
    snprintf(f->user, sizeof f->user, "%s", user_id);
    snprintf(f->qid, sizeof f->qid, "%s", question_id);
    f->rating = fb->rating;
    assert_true(fb->at > 0);
    return f->rc;
}

static const toro_store_ops_t v3 = {.name = "fake", .version = 3, .set_feedback = fake_set};
static const toro_store_ops_t v2 = {.name = "old", .version = 2, .set_feedback = fake_set}; /* never called */

/* Posts body for user (NULL: no auth) and returns the response's JSON. */
static json_t *post(fake_t *f, const char *user, const char *qid, const char *body, int *status)
{
    toro_stage_ctx_t ctx = {.store = &f->super};
    gw_routes_t rt = {.ctx = &ctx};
    gw_request_t req = {.method = "POST", .path = "/questions/x/feedback", .query = "", .n_headers = 1,
                        .body = body, .body_len = strlen(body), .peer = "127.0.0.1"};
    req.headers[0] = (gw_header_t){"Content-Type", "application/json"};
    gw_response_t r = {0};
    gw_route_post_feedback(&rt, &req, user, qid, &r);
    *status = r.status;
    json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
    free(r.body);
    assert_non_null(j);
    return j;
}

static const char *code_of(json_t *j) { return json_string_value(json_object_get(j, "code")); }

/* The value of toro_feedback_total{rating="<rating>"} in /metrics. */
static long counted(const char *rating)
{
    static char buf[65536];
    assert_true(toro_metrics_render(buf, sizeof buf) > 0);
    char key[64];
    snprintf(key, sizeof key, "toro_feedback_total{rating=\"%s\"} ", rating);
    const char *p = strstr(buf, key);
    assert_non_null(p);
    return strtol(p + strlen(key), NULL, 10);
}

static void test_store_outcomes(void **state)
{
    (void)state;
    fake_t f = {.super.ops = &v3};
    int status = 0;
    long down0 = counted("down");
    json_t *j = post(&f, "ana", QID, "{\"rating\":\"down\",\"comment\":\" curto \"}", &status);
    assert_int_equal(status, 200);
    assert_string_equal(f.user, "ana");
    assert_string_equal(f.qid, QID);
    assert_int_equal(f.rating, TORO_RATING_DOWN);
    json_t *fb = json_object_get(json_object_get(j, "data"), "feedback");
    assert_string_equal(json_string_value(json_object_get(fb, "rating")), "down");
    assert_string_equal(json_string_value(json_object_get(fb, "comment")), "curto");
    json_decref(j);
    assert_int_equal(counted("down"), down0 + 1);
    const struct { int rc, status; const char *code; } cases[] = {
        {TORO_ENOTFOUND, 404, "not_found"},
        {TORO_ECONFLICT, 409, "question_not_completed"},
        {TORO_ENOTSUP, 501, "feedback_unsupported"},
        {TORO_EIO, 503, "unavailable"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f.rc = cases[i].rc;
        j = post(&f, "ana", QID, "{\"rating\":\"up\"}", &status);
        assert_int_equal(status, cases[i].status);
        assert_string_equal(code_of(j), cases[i].code);
        json_decref(j);
    }
    assert_int_equal(counted("down"), down0 + 1); /* refused ratings are not counted */
}

static void test_store_without_feedback_is_501(void **state)
{
    (void)state;
    fake_t f = {.super.ops = &v2};
    int status = 0;
    json_t *j = post(&f, "ana", QID, "{\"rating\":\"up\"}", &status);
    assert_int_equal(status, 501);
    assert_string_equal(code_of(j), "feedback_unsupported");
    assert_int_equal(f.calls, 0); /* the version-2 table was never read past its end */
    json_decref(j);
}

static void test_who_and_what_is_refused_before_the_store(void **state)
{
    (void)state;
    fake_t f = {.super.ops = &v3};
    int status = 0;
    json_t *j = post(&f, NULL, QID, "{\"rating\":\"up\",\"user_id\":\"bia\"}", &status); /* no auth: the body */
    assert_int_equal(status, 200);
    assert_string_equal(f.user, "bia");
    json_decref(j);
    f.calls = 0;
    j = post(&f, NULL, QID, "{\"rating\":\"up\"}", &status);
    assert_int_equal(status, 400);
    assert_string_equal(code_of(j), "invalid_user_id");
    json_decref(j);
    j = post(&f, "ana", QID, "{\"rating\":\"up\",\"user_id\":\"bia\"}", &status);
    assert_int_equal(status, 403);
    assert_string_equal(code_of(j), "user_mismatch");
    json_decref(j);
    j = post(&f, "ana", "short-id", "{\"rating\":\"up\"}", &status);
    assert_int_equal(status, 404);
    json_decref(j);
    j = post(&f, "ana", QID, "{\"rating\":\"sideways\"}", &status);
    assert_int_equal(status, 400);
    assert_string_equal(code_of(j), "invalid_rating");
    json_decref(j);
    assert_int_equal(f.calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_outcomes),
        cmocka_unit_test(test_store_without_feedback_is_501),
        cmocka_unit_test(test_who_and_what_is_refused_before_the_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

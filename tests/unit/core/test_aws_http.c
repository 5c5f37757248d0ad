/* test_aws_http.c: the parts of core/aws_http.c that need no peer: form and
 * URI encoding as AWS query protocols expect, credentials from the
 * environment (session token optional, missing keys named), and the outputs
 * of a call that gets no answer. The signed calls themselves are tested
 * against peers in tests/integration/bus/ (moto, the API Gateway peer). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/aws_http.h"
#include "core/error.h"

static void test_form_encoding(void **state)
{
    (void)state;
    toro_strbuf_t b = {0};
    toro_aws_form_add(&b, "Action", "Publish");
    toro_aws_form_add(&b, "Message", "{\"a\": \"b&c=d/\xc3\xa9~._-\"}");
    assert_int_equal(b.err, 0);
    assert_string_equal(b.s, "Action=Publish&Message=%7B%22a%22%3A%20%22b%26c%3Dd%2F%C3%A9~._-%22%7D");
    free(b.s);
    toro_strbuf_t u = {0};
    toro_aws_uri_encode(&u, "L0SM9cOFvHcCIhw=");
    assert_string_equal(u.s, "L0SM9cOFvHcCIhw%3D");
    free(u.s);
}

static void test_creds_from_env(void **state)
{
    (void)state;
    toro_aws_creds_t c;
    char *err = NULL;
    setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "SECRET", 1);
    unsetenv("AWS_SESSION_TOKEN");
    assert_int_equal(toro_aws_creds_from_env(&c, &err), 0);
    assert_string_equal(c.access_key_id, "AKID");
    assert_string_equal(c.secret_access_key, "SECRET");
    assert_null(c.session_token);
    toro_aws_creds_clear(&c);
    assert_null(c.access_key_id);
    setenv("AWS_SESSION_TOKEN", "TOKEN", 1);
    assert_int_equal(toro_aws_creds_from_env(&c, &err), 0);
    assert_string_equal(c.session_token, "TOKEN");
    toro_aws_creds_clear(&c);
    unsetenv("AWS_SECRET_ACCESS_KEY");
    assert_int_equal(toro_aws_creds_from_env(&c, &err), TORO_EINVAL);
    assert_null(c.access_key_id);
    assert_non_null(strstr(err, "AWS_SECRET_ACCESS_KEY"));
    free(err);
}

static void test_no_answer(void **state)
{
    (void)state;
    toro_aws_creds_t c = {"AKID", "SECRET", NULL};
    toro_aws_request_t r = {.url = "http://127.0.0.1:1/", .service = "sqs", .region = "us-east-1",
                            .content_type = "application/x-amz-json-1.0", .body = "{}", .body_len = 2};
    long status = -1;
    char *body = (char *)"x", *err = NULL;
    assert_int_equal(toro_aws_post(&r, &c, &status, &body, &err), TORO_EIO);
    assert_int_equal(status, 0);
    assert_null(body);
    assert_non_null(err);
    free(err);
    err = NULL;
    r.url = "no-scheme";
    assert_int_equal(toro_aws_post(&r, &c, &status, &body, &err), TORO_EIO);
    assert_null(body);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form_encoding),
        cmocka_unit_test(test_creds_from_env),
        cmocka_unit_test(test_no_answer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

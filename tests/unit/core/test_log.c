/* test_log.c: structured logs are one JSON object per line and sensitive
 * values never reach them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

/* Runs fn with stderr redirected to a pipe; returns what it wrote (caller frees). */
static char *capture(void (*fn)(void))
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    char *buf = calloc(1, 65536);
    size_t n = 0;
    ssize_t r;
    while ((r = read(fds[0], buf + n, 65535 - n)) > 0)
        n += (size_t)r;
    close(fds[0]);
    return buf;
}

static void log_secrets(void)
{
    toro_log_kv(TORO_LOG_INFO, "config", "provider configured", "base_url", "http://127.0.0.1:8000/v1", "api_key",
                "sk-live-123", "AWS_SECRET_ACCESS_KEY", "abc/xyz", "Authorization", "Bearer eyJ.x.y", "password",
                "hunter2", "jwt_token", "t0k", NULL);
    toro_log(TORO_LOG_WARN, "process", "q-1", "retry %d of %d", 1, 3);
    toro_log(TORO_LOG_DEBUG, "process", NULL, "below the level: not written");
}

static void test_json_lines_and_redaction(void **state)
{
    (void)state;
    toro_log_set_level(TORO_LOG_INFO);
    char *out = capture(log_secrets);
    assert_null(strstr(out, "sk-live-123"));
    assert_null(strstr(out, "abc/xyz"));
    assert_null(strstr(out, "eyJ.x.y"));
    assert_null(strstr(out, "hunter2"));
    assert_null(strstr(out, "t0k"));
    assert_null(strstr(out, "below the level"));
    char *line2 = strchr(out, '\n');
    assert_non_null(line2);
    *line2++ = '\0';
    json_t *a = json_loads(out, 0, NULL), *b = json_loads(line2, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(a, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(a, "component")), "config");
    assert_string_equal(json_string_value(json_object_get(a, "base_url")), "http://127.0.0.1:8000/v1");
    assert_string_equal(json_string_value(json_object_get(a, "api_key")), "[REDACTED]");
    assert_string_equal(json_string_value(json_object_get(a, "Authorization")), "[REDACTED]");
    assert_non_null(json_object_get(a, "time"));
    assert_string_equal(json_string_value(json_object_get(b, "question_id")), "q-1");
    assert_string_equal(json_string_value(json_object_get(b, "message")), "retry 1 of 3");
    json_decref(a);
    json_decref(b);
    free(out);
}

static void test_sensitive_keys(void **state)
{
    (void)state;
    const char *yes[] = {"password", "DB_PASSWORD", "secret", "client_secret", "token", "access_token", "key",
                         "api_key", "credential", "credentials", "Authorization", NULL};
    const char *no[] = {"user_id", "question_id", "model", "region", "base_url", NULL};
    for (int i = 0; yes[i]; i++)
        if (!toro_log_key_is_sensitive(yes[i]))
            fail_msg("%s should be redacted", yes[i]);
    for (int i = 0; no[i]; i++)
        if (toro_log_key_is_sensitive(no[i]))
            fail_msg("%s should not be redacted", no[i]);
}

static void log_fields(void)
{
    toro_log_field_t f[] = {
        TORO_LOG_STR("user_id", "ana"),   TORO_LOG_STR("request_id", NULL), TORO_LOG_NUM("status", 429),
        TORO_LOG_NUM("bytes", 123456789012LL), TORO_LOG_STR("session_token", "tok-secret"),
    };
    toro_log_fields(TORO_LOG_INFO, "access", "POST /questions 429", f, sizeof f / sizeof f[0]);
    toro_log_fields(TORO_LOG_DEBUG, "access", "below the level", f, 1);
}

static void test_typed_fields(void **state)
{
    (void)state;
    toro_log_set_level(TORO_LOG_INFO);
    char *out = capture(log_fields);
    assert_null(strstr(out, "below the level"));
    assert_null(strstr(out, "tok-secret"));
    json_t *o = json_loads(out, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "component")), "access");
    assert_string_equal(json_string_value(json_object_get(o, "message")), "POST /questions 429");
    assert_string_equal(json_string_value(json_object_get(o, "user_id")), "ana");
    assert_true(json_is_null(json_object_get(o, "request_id")));
    assert_true(json_is_integer(json_object_get(o, "status")));
    assert_int_equal(json_integer_value(json_object_get(o, "status")), 429);
    assert_true(json_integer_value(json_object_get(o, "bytes")) == 123456789012LL);
    assert_string_equal(json_string_value(json_object_get(o, "session_token")), "[REDACTED]");
    json_decref(o);
    free(out);
}

static void log_storm(void)
{
    for (int i = 0; i < 10000; i++)
        toro_log_ratelimited(TORO_LOG_ERROR, "db", "storm", "COMMIT: database or disk is full (%d)", i);
    toro_log_ratelimited(TORO_LOG_ERROR, "db", "other", "another condition");
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* A condition repeated in a loop writes one line per TORO_LOG_RATE_MS, and
 * the next line written says how many were dropped; keys are independent. */
static void test_rate_limited_lines(void **state)
{
    (void)state;
    toro_log_set_level(TORO_LOG_INFO);
    char *out = capture(log_storm);
    assert_int_equal(count_lines(out), 2); /* the first of the storm and the other key */
    assert_non_null(strstr(out, "disk is full (0)"));
    assert_null(strstr(out, "disk is full (1)"));
    assert_non_null(strstr(out, "another condition"));
    free(out);
    struct timespec wait = {.tv_sec = (TORO_LOG_RATE_MS + 100) / 1000, .tv_nsec = ((TORO_LOG_RATE_MS + 100) % 1000) * 1000000L};
    nanosleep(&wait, NULL);
    out = capture(log_storm);
    assert_int_equal(count_lines(out), 2); /* one of each key again, the storm's with its count */
    assert_non_null(strstr(out, "(9999 similar lines suppressed)"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_lines_and_redaction),
        cmocka_unit_test(test_sensitive_keys),
        cmocka_unit_test(test_typed_fields),
        cmocka_unit_test(test_rate_limited_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_lambda_events.c: the AWS event shapes of `toro lambda`
 * (cli/lambda_events.c) on the recorded samples in tests/e2e/lambda_events/:
 * a REST proxy event becomes the request the gateway's routes serve, a
 * response becomes {statusCode, headers, body}, WebSocket route events and
 * SQS records (raw or in an SNS envelope) decode to their fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/lambda_events.h"
#include "core/error.h"

static json_t *sample(const char *name)
{
    const char *root = getenv("TORO_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/e2e/lambda_events/%s", root ? root : ".", name);
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    assert_non_null(j);
    return j;
}

static void rest_event_becomes_a_request(void **state)
{
    (void)state;
    json_t *ev = sample("rest_proxy.json");
    json_object_set_new(ev, "httpMethod", json_string("GET"));
    json_object_set_new(ev, "path", json_string("/questions"));
    json_object_set_new(ev, "queryStringParameters", json_pack("{s:s, s:s}", "limit", "5", "next_token", "a b&c"));
    toro_lev_http_t h;
    assert_int_equal(toro_lev_http_decode(ev, &h), 0);
    assert_string_equal(h.req.method, "GET");
    assert_string_equal(h.req.path, "/questions");
    char v[64];
    assert_int_equal(gw_query_get(h.req.query, "limit", v, sizeof v), 1);
    assert_string_equal(v, "5");
    assert_int_equal(gw_query_get(h.req.query, "next_token", v, sizeof v), 1);
    assert_string_equal(v, "a b&c"); /* re-encoded, decoded back intact */
    assert_string_equal(gw_header(&h.req, "authorization"), "Bearer TOKEN");
    assert_string_equal(h.req.peer, "198.51.100.7");
    assert_int_equal(h.req.body_len, 0);
    json_object_set_new(ev, "isBase64Encoded", json_true());
    assert_int_equal(toro_lev_http_decode(ev, &h), TORO_EINVAL);
    json_object_set_new(ev, "isBase64Encoded", json_false());
    json_object_del(ev, "httpMethod");
    assert_int_equal(toro_lev_http_decode(ev, &h), TORO_EINVAL);
    json_decref(ev);
}

static void response_becomes_a_proxy_result(void **state)
{
    (void)state;
    gw_response_t r = {.status = 429, .content_type = "application/json"};
    r.body = strdup("{\"success\":false}");
    r.body_len = strlen(r.body);
    snprintf(r.extra, sizeof r.extra, "Retry-After: 3\r\nAllow: GET, POST\r\n");
    char *s = toro_lev_http_encode(&r);
    json_t *j = json_loads(s, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "statusCode")), 429);
    json_t *h = json_object_get(j, "headers");
    assert_string_equal(json_string_value(json_object_get(h, "Retry-After")), "3");
    assert_string_equal(json_string_value(json_object_get(h, "Allow")), "GET, POST");
    assert_string_equal(json_string_value(json_object_get(h, "Content-Type")), "application/json");
    assert_string_equal(json_string_value(json_object_get(j, "body")), "{\"success\":false}");
    json_decref(j);
    free(s);
    free(r.body);
}

static void websocket_events_decode(void **state)
{
    (void)state;
    json_t *ev = sample("ws_event.json");
    toro_lev_ws_t w;
    assert_int_equal(toro_lev_ws_decode(ev, &w), 0);
    assert_string_equal(w.route_key, "$connect");
    assert_string_equal(w.connection_id, "CONNECTION_ID");
    assert_null(w.token);
    json_object_set_new(ev, "queryStringParameters", json_pack("{s:s}", "access_token", "T"));
    assert_int_equal(toro_lev_ws_decode(ev, &w), 0);
    assert_string_equal(w.token, "T");
    json_object_del(json_object_get(ev, "requestContext"), "connectionId");
    assert_int_equal(toro_lev_ws_decode(ev, &w), TORO_EINVAL);
    json_decref(ev);
}

static void sqs_records_raw_and_enveloped(void **state)
{
    (void)state;
    const char *payload = "{\"user_id\":\"ana\",\"question_id\":\"q\",\"status\":\"pending\"}";
    json_t *env = json_pack("{s:s, s:s, s:s}", "Type", "Notification", "MessageId", "m", "Message", payload);
    char *enveloped = json_dumps(env, JSON_COMPACT);
    json_t *ev = json_pack("{s:[{s:s, s:s, s:{s:s}}, {s:s, s:s}, {s:s}]}", "Records", "messageId", "1", "body", payload,
                           "attributes", "ApproximateReceiveCount", "3", "messageId", "2", "body", enveloped,
                           "messageId", "3");
    json_t *recs = toro_lev_sqs_records(ev);
    assert_int_equal(json_array_size(recs), 3);
    toro_lev_sqs_t s;
    json_t *keep = NULL;
    assert_int_equal(toro_lev_sqs_decode(json_array_get(recs, 0), &s, &keep), 0);
    assert_string_equal(s.payload, payload);
    assert_int_equal(s.deliveries, 3);
    assert_null(keep);
    assert_int_equal(toro_lev_sqs_decode(json_array_get(recs, 1), &s, &keep), 0);
    assert_string_equal(s.payload, payload); /* unwrapped from the SNS envelope */
    assert_string_equal(s.message_id, "2");
    assert_int_equal(s.deliveries, 1);
    json_decref(keep);
    assert_int_equal(toro_lev_sqs_decode(json_array_get(recs, 2), &s, &keep), TORO_EINVAL);
    assert_null(toro_lev_sqs_records(env));
    json_decref(ev);
    json_decref(env);
    free(enveloped);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rest_event_becomes_a_request),
        cmocka_unit_test(response_becomes_a_proxy_result),
        cmocka_unit_test(websocket_events_decode),
        cmocka_unit_test(sqs_records_raw_and_enveloped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_route.c: the gateway's route labels (gateway/route.c): the template
 * of a path, and toro_http_requests_total by route, method and status in
 * the Prometheus text /metrics serves (the series names it always had). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/route.h"

static char *render(void)
{
    size_t cap = 256 * 1024;
    char *buf = malloc(cap);
    assert_non_null(buf);
    long n = gw_route_render(buf, cap);
    assert_true(n > 0 && (size_t)n < cap);
    assert_int_equal(strlen(buf), (size_t)n);
    return buf;
}

static void test_routes_by_template_and_method(void **state)
{
    (void)state;
    gw_route_count(GW_ROUTE_QUESTION, "DELETE", 405);
    gw_route_count(GW_ROUTE_QUESTION, "GET", 200);
    gw_route_count(GW_ROUTE_QUESTION, "GET", 200);
    gw_route_count(GW_ROUTE_DEV_LOGIN, "POST", 200);
    gw_route_count(GW_ROUTE_OTHER, NULL, 400);
    gw_route_count(GW_ROUTE_OTHER, "BREW", 999);
    char *t = render();
#define REQ "toro_http_requests_total"
    assert_true(strncmp(t, "# HELP " REQ " HTTP requests by route template, method and status code.\n# TYPE " REQ
                           " counter\n", strlen("# HELP " REQ " HTTP requests by route template, method and status "
                                                "code.\n# TYPE " REQ " counter\n")) == 0);
    assert_non_null(strstr(t, REQ "{route=\"/questions/{id}\",method=\"DELETE\",status=\"405\"} 1\n"));
    assert_non_null(strstr(t, REQ "{route=\"/questions/{id}\",method=\"GET\",status=\"200\"} 2\n"));
    assert_non_null(strstr(t, REQ "{route=\"/auth/dev-login\",method=\"POST\",status=\"200\"} 1\n"));
    assert_non_null(strstr(t, REQ "{route=\"unmatched\",method=\"other\",status=\"400\"} 1\n"));
    assert_non_null(strstr(t, REQ "{route=\"unmatched\",method=\"other\",status=\"other\"} 1\n"));
    assert_null(strstr(t, "route=\"/healthz\"")); /* no count, no series */
#undef REQ
    free(t);
}

static void test_render_too_small(void **state)
{
    (void)state;
    gw_route_count(GW_ROUTE_HEALTHZ, "GET", 200);
    char small[64];
    assert_int_equal(gw_route_render(small, sizeof small), -1);
    char mid[200]; /* the head fits, a series does not */
    assert_int_equal(gw_route_render(mid, sizeof mid), -1);
}

static void test_templates_and_names(void **state)
{
    (void)state;
    assert_int_equal(gw_route_template("/questions"), GW_ROUTE_QUESTIONS);
    assert_int_equal(gw_route_template("/questions/abc"), GW_ROUTE_QUESTION);
    assert_int_equal(gw_route_template("/questions/abc/def"), GW_ROUTE_OTHER);
    assert_int_equal(gw_route_template("/questionsx"), GW_ROUTE_OTHER);
    assert_int_equal(gw_route_template("/auth/dev-login"), GW_ROUTE_DEV_LOGIN);
    assert_int_equal(gw_route_template("/healthz"), GW_ROUTE_HEALTHZ);
    assert_int_equal(gw_route_template("/metrics"), GW_ROUTE_METRICS);
    assert_int_equal(gw_route_template("/ws"), GW_ROUTE_WS);
    assert_int_equal(gw_route_template("/conversations"), GW_ROUTE_CONVERSATIONS);
    assert_int_equal(gw_route_template("/conversations/abc"), GW_ROUTE_CONVERSATION);
    assert_int_equal(gw_route_template("/conversations/abc/def"), GW_ROUTE_OTHER);
    assert_string_equal(gw_route_name(GW_ROUTE_CONVERSATION), "/conversations/{id}");
    assert_string_equal(gw_route_name(GW_ROUTE_CONVERSATIONS), "/conversations");
    assert_int_equal(gw_route_template("/index.html"), GW_ROUTE_OTHER);
    assert_string_equal(gw_route_name(GW_ROUTE_WS), "/ws");
    assert_string_equal(gw_route_name(GW_ROUTE_QUESTION), "/questions/{id}");
    assert_string_equal(gw_route_name(GW_ROUTE_STATIC), "static");
    assert_string_equal(gw_route_name(GW_ROUTE_OTHER), "unmatched");
    assert_string_equal(gw_route_name(GW_ROUTE_COUNT), "unmatched");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_by_template_and_method),
        cmocka_unit_test(test_render_too_small),
        cmocka_unit_test(test_templates_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

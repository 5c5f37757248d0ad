/* test_metrics.c: the Prometheus text of core/metrics: refusals, the
 * per-answerer table and its bound (HTTP counts by route are the gateway's:
 * tests/unit/gateway/test_route.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"

static char *render(void)
{
    size_t cap = 256 * 1024;
    char *buf = malloc(cap);
    assert_non_null(buf);
    long n = toro_metrics_render(buf, cap);
    assert_true(n > 0 && (size_t)n < cap);
    return buf;
}

static void test_refusals_and_answerers(void **state)
{
    (void)state;
    toro_metrics_answer(false);
    toro_metrics_answer(true);
    toro_metrics_answer(false);
    toro_metrics_answerer_call("openai", true, 30.0);
    toro_metrics_answerer_call("openai", false, 3000.0);
    /* more names than the table holds: the overflow is counted as "other" */
    char name[16];
    for (int i = 0; i < 12; i++) {
        snprintf(name, sizeof name, "prov%d", i);
        toro_metrics_answerer_call(name, false, 1.0);
    }
    char *t = render();
    assert_non_null(strstr(t, "toro_refusals_total 2\n"));
    assert_non_null(strstr(t, "toro_answers_total{found_relevant_docs=\"true\"} 1\n"));
    assert_non_null(strstr(t, "toro_answerer_calls_total{answerer=\"openai\"} 2\n"));
    assert_non_null(strstr(t, "toro_answerer_errors_total{answerer=\"openai\"} 1\n"));
    assert_non_null(strstr(t, "toro_answerer_latency_seconds_bucket{answerer=\"openai\",le=\"0.025\"} 0\n"));
    assert_non_null(strstr(t, "toro_answerer_latency_seconds_bucket{answerer=\"openai\",le=\"0.05\"} 1\n"));
    assert_non_null(strstr(t, "toro_answerer_latency_seconds_bucket{answerer=\"openai\",le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(t, "toro_answerer_latency_seconds_count{answerer=\"openai\"} 2\n"));
    /* 8 slots: openai, prov0..prov5, then "other" takes prov6..prov11 */
    assert_non_null(strstr(t, "toro_answerer_calls_total{answerer=\"prov5\"} 1\n"));
    assert_null(strstr(t, "answerer=\"prov6\""));
    assert_non_null(strstr(t, "toro_answerer_calls_total{answerer=\"other\"} 6\n"));
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals_and_answerers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

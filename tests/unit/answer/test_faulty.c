/* test_faulty.c: fault injection around an answerer (answer/faulty.c), the
 * TORO_FAULT_ANSWERER spec. A counting inner answerer shows which calls
 * reach it: transient/permanent rules fail the first N calls of a matching
 * question with the right code, delay rules hold each matching call for at
 * least N ms (a lower bound nanosleep guarantees, not a performance figure)
 * and then pass it through, and malformed specs are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "answer/faulty.h"
#include "core/error.h"

typedef struct counter {
    toro_answerer_t base;
    int calls;      /* answers that reached the inner answerer */
    int *destroyed; /* set to 1 by destroy */
} counter_t;

static int counter_answer(toro_answerer_t *self, const char *q, toro_answer_t *out, char **errmsg)
{
    counter_t *c = (counter_t *)self;
    (void)q;
    (void)errmsg;
    c->calls++;
    out->text = strdup("ok");
    return 0;
}

static void counter_destroy(toro_answerer_t *self)
{
    counter_t *c = (counter_t *)self;
    *c->destroyed = 1;
    free(c);
}

static const toro_answerer_ops_t COUNTER_OPS = {.name = "counter", .answer = counter_answer,
                                                .destroy = counter_destroy};

static counter_t *counter_new(int *destroyed)
{
    counter_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->base.ops = &COUNTER_OPS;
    c->destroyed = destroyed;
    return c;
}

/* One call: its return code; the answer and message are checked and freed. */
static int ask(toro_answerer_t *a, const char *q)
{
    toro_answer_t out = {0};
    char *err = NULL;
    int rc = toro_answerer_answer(a, q, &out, &err);
    if (rc == 0) {
        assert_string_equal(out.text, "ok");
        assert_null(err);
    } else {
        assert_non_null(err);
        assert_non_null(strstr(err, "injected fault"));
    }
    toro_answer_clear(&out);
    free(err);
    return rc;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_transient_then_permanent(void **state)
{
    (void)state;
    int destroyed = 0;
    counter_t *c = counter_new(&destroyed);
    toro_answerer_t *f = NULL;
    assert_int_equal(toro_answerer_faulty_new(&c->base, "transient:2:[instavel];permanent:1:[recusa]", &f), 0);
    assert_int_equal(ask(f, "q [instavel]"), TORO_ERETRY);
    assert_int_equal(ask(f, "q [instavel]"), TORO_ERETRY);
    assert_int_equal(ask(f, "q [instavel]"), 0); /* the third call gets through */
    assert_int_equal(ask(f, "q [recusa]"), TORO_EIO);
    assert_int_equal(ask(f, "q [recusa]"), 0);
    assert_int_equal(ask(f, "plain question"), 0);
    assert_int_equal(c->calls, 3);
    toro_answerer_free(f);
    assert_int_equal(destroyed, 1); /* the wrapper owns the inner answerer */
}

static void test_delay_holds_matching_calls_then_answers(void **state)
{
    (void)state;
    int destroyed = 0;
    counter_t *c = counter_new(&destroyed);
    toro_answerer_t *f = NULL;
    assert_int_equal(toro_answerer_faulty_new(&c->base, "delay:30:[lento]", &f), 0);
    for (int i = 0; i < 3; i++) { /* every call, not only the first ones */
        double t0 = now_ms();
        assert_int_equal(ask(f, "q [lento]"), 0);
        assert_true(now_ms() - t0 >= 30.0);
    }
    assert_int_equal(ask(f, "not slowed"), 0);
    assert_int_equal(c->calls, 4);
    toro_answerer_free(f);
}

static void test_star_matches_every_question_and_combines(void **state)
{
    (void)state;
    int destroyed = 0;
    counter_t *c = counter_new(&destroyed);
    toro_answerer_t *f = NULL;
    assert_int_equal(toro_answerer_faulty_new(&c->base, "delay:20:*;transient:1:*", &f), 0);
    double t0 = now_ms();
    assert_int_equal(ask(f, "anything"), TORO_ERETRY); /* delayed, then failed */
    assert_true(now_ms() - t0 >= 20.0);
    t0 = now_ms();
    assert_int_equal(ask(f, "anything"), 0);
    assert_true(now_ms() - t0 >= 20.0);
    assert_int_equal(ask(f, "something else"), TORO_ERETRY);
    assert_int_equal(c->calls, 1);
    toro_answerer_free(f);
}

static void test_bad_specs_are_refused(void **state)
{
    (void)state;
    const char *bad[] = {"slow:1:x",     "delay:-1:x",      "delay:60001:x", "transient:x:y",
                         "transient:1",  "permanent:1:x;;", ";",             "delay:1:a;delay:1:b;delay:1:c;"
                                                                             "delay:1:d;delay:1:e;delay:1:f;"
                                                                             "delay:1:g;delay:1:h;delay:1:i"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int destroyed = 0;
        counter_t *c = counter_new(&destroyed);
        toro_answerer_t *f = NULL;
        assert_int_equal(toro_answerer_faulty_new(&c->base, bad[i], &f), TORO_EINVAL);
        assert_null(f);
        assert_int_equal(destroyed, 0); /* the caller still owns inner */
        counter_destroy(&c->base);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transient_then_permanent),
        cmocka_unit_test(test_delay_holds_matching_calls_then_answers),
        cmocka_unit_test(test_star_matches_every_question_and_combines),
        cmocka_unit_test(test_bad_specs_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

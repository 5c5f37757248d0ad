/* test_live.c: knowledge-base generations (answer/live.c). The live
 * answerer forwards to the current generation; a swap sends new calls to
 * the new one while a call in flight finishes on the old one, which is
 * freed only when that call returns. Fake answerers (no kb) record which
 * generation answered and when they are destroyed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>

#include "answer/live.h"

typedef struct fake {
    toro_answerer_t base;
    const char *version;  /* what its answers carry */
    int *destroyed;       /* incremented by destroy */
    sem_t *entered, *go;  /* non-NULL: the call signals entered, then waits for go */
} fake_t;

static int fake_answer(toro_answerer_t *self, const char *q, toro_answer_t *out, char **errmsg)
{
    fake_t *f = (fake_t *)self;
    (void)q;
    (void)errmsg;
    if (f->entered) {
        sem_post(f->entered);
        sem_wait(f->go);
    }
    out->kb_version = strdup(f->version);
    out->text = strdup("ok");
    return 0;
}

static void fake_destroy(toro_answerer_t *self)
{
    fake_t *f = (fake_t *)self;
    (*f->destroyed)++;
    free(f);
}

static const toro_answerer_ops_t FAKE_OPS = {.name = "fake", .answer = fake_answer, .destroy = fake_destroy};

static toro_answerer_t *fake_new(const char *version, int *destroyed)
{
    fake_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->base.ops = &FAKE_OPS;
    f->version = version;
    f->destroyed = destroyed;
    return &f->base;
}

/* The version of the answer live gives now (caller frees). */
static char *answer_version(toro_answerer_t *live)
{
    toro_answer_t a = {0};
    char *err = NULL;
    assert_int_equal(toro_answerer_answer(live, "q", &a, &err), 0);
    char *v = a.kb_version;
    a.kb_version = NULL;
    toro_answer_clear(&a);
    return v;
}

static void test_swap_routes_new_calls(void **state)
{
    (void)state;
    int d1 = 0, d2 = 0;
    toro_answerer_t *live = NULL;
    assert_int_equal(toro_live_new(NULL, NULL, fake_new("v1", &d1), &live), 0);
    assert_string_equal(live->ops->name, "fake"); /* metrics keep the answerer's name */
    assert_null(live->ops->answer_stream);        /* the fake does not stream: neither does live */
    char *v = answer_version(live);
    assert_string_equal(v, "v1");
    free(v);
    assert_int_equal(toro_live_swap(live, NULL, NULL, fake_new("v2", &d2)), 0);
    assert_int_equal(d1, 1); /* nothing in flight: the old generation is freed at once */
    assert_int_equal(toro_live_generations(live), 1);
    v = answer_version(live);
    assert_string_equal(v, "v2");
    free(v);
    toro_answerer_free(live);
    assert_int_equal(d2, 1);
}

static void test_reference_keeps_old_generation(void **state)
{
    (void)state;
    int d1 = 0, d2 = 0, d3 = 0;
    toro_answerer_t *live = NULL;
    assert_int_equal(toro_live_new(NULL, NULL, fake_new("v1", &d1), &live), 0);
    toro_kbgen_t *g1 = toro_live_acquire(live);
    assert_int_equal(toro_live_swap(live, NULL, NULL, fake_new("v2", &d2)), 0);
    toro_kbgen_t *g2 = toro_live_acquire(live);
    assert_int_equal(toro_live_swap(live, NULL, NULL, fake_new("v3", &d3)), 0);
    assert_int_equal(toro_live_generations(live), 3);
    assert_int_equal(d1 + d2, 0);
    assert_ptr_not_equal(toro_kbgen_answerer(g1), toro_kbgen_answerer(g2));
    toro_live_release(live, g2); /* out of order: each is freed by its own last reference */
    assert_int_equal(d2, 1);
    assert_int_equal(d1, 0);
    toro_live_release(live, g1);
    assert_int_equal(d1, 1);
    assert_int_equal(toro_live_generations(live), 1);
    assert_int_equal(d3, 0);
    toro_answerer_free(live);
    assert_int_equal(d3, 1);
}

typedef struct call {
    toro_answerer_t *live;
    char *version;
} call_t;

static void *call_main(void *arg)
{
    call_t *c = arg;
    c->version = answer_version(c->live);
    return NULL;
}

static void test_call_in_flight_finishes_on_its_generation(void **state)
{
    (void)state;
    int d1 = 0, d2 = 0;
    sem_t entered, go;
    sem_init(&entered, 0, 0);
    sem_init(&go, 0, 0);
    toro_answerer_t *first = fake_new("v1", &d1), *live = NULL;
    ((fake_t *)first)->entered = &entered;
    ((fake_t *)first)->go = &go;
    assert_int_equal(toro_live_new(NULL, NULL, first, &live), 0);
    call_t c = {live, NULL};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, call_main, &c), 0);
    sem_wait(&entered); /* the call is inside generation 1 */
    assert_int_equal(toro_live_swap(live, NULL, NULL, fake_new("v2", &d2)), 0);
    char *v = answer_version(live); /* a new call meanwhile: generation 2 */
    assert_string_equal(v, "v2");
    free(v);
    assert_int_equal(d1, 0); /* still in use */
    assert_int_equal(toro_live_generations(live), 2);
    sem_post(&go);
    pthread_join(t, NULL);
    assert_string_equal(c.version, "v1");
    free(c.version);
    assert_int_equal(d1, 1); /* freed by the call that held it last */
    assert_int_equal(toro_live_generations(live), 1);
    toro_answerer_free(live);
    assert_int_equal(d2, 1);
    sem_destroy(&entered);
    sem_destroy(&go);
}

static void test_version_without_kb(void **state)
{
    (void)state;
    int d = 0;
    toro_answerer_t *live = NULL;
    assert_int_equal(toro_live_new(NULL, NULL, fake_new("v1", &d), &live), 0);
    char buf[8] = "junk";
    toro_live_version(live, buf, sizeof buf);
    assert_string_equal(buf, "");
    toro_answerer_free(live);
    assert_int_equal(d, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swap_routes_new_calls),
        cmocka_unit_test(test_reference_keeps_old_generation),
        cmocka_unit_test(test_call_in_flight_finishes_on_its_generation),
        cmocka_unit_test(test_version_without_kb),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

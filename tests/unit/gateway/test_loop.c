/* test_loop.c: the gateway's protocol-free event loop (gateway/loop.c):
 * ready watches get their callback, a watch removed by an earlier callback
 * of the same round is not called (its memory is gone), timers (one-shot
 * and periodic), the after-round hook, and a wake-up from another thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "gateway/loop.h"

static gw_loop_t *loop;
static gw_watch_t *watches[2];
static int calls, rounds, one_shot, periodic, wakes;

/* The first of the two ready watches to be served removes and frees the other. */
static void remove_other(gw_watch_t *w, unsigned ready)
{
    assert_true(ready & GW_LOOP_READ);
    calls++;
    int other = watches[0] == w ? 1 : 0;
    if (watches[other]) {
        gw_loop_del(loop, watches[other]);
        free(watches[other]);
        watches[other] = NULL;
    }
}

static void stop_after_round(void *data)
{
    (void)data;
    rounds++;
    gw_loop_stop(loop);
}

static void test_removed_watch_not_called(void **state)
{
    (void)state;
    assert_int_equal(gw_loop_new(&loop), 0);
    int a[2], b[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
    for (int i = 0; i < 2; i++) {
        watches[i] = calloc(1, sizeof *watches[i]);
        assert_int_equal(gw_loop_add(loop, watches[i], i ? b[0] : a[0], GW_LOOP_READ, remove_other, NULL), 0);
    }
    assert_int_equal(write(a[1], "x", 1), 1); /* both readable before the round */
    assert_int_equal(write(b[1], "x", 1), 1);
    gw_loop_after_round(loop, stop_after_round, NULL);
    assert_int_equal(gw_loop_run(loop), 0);
    assert_int_equal(rounds, 1);
    assert_int_equal(calls, 1); /* the removed one was skipped */
    for (int i = 0; i < 2; i++)
        if (watches[i]) {
            gw_loop_del(loop, watches[i]);
            free(watches[i]);
        }
    close(a[0]), close(a[1]), close(b[0]), close(b[1]);
    gw_loop_free(loop);
}

static void on_one_shot(void *data)
{
    (void)data;
    one_shot++;
}

static void on_periodic(void *data)
{
    (void)data;
    if (++periodic == 3)
        gw_loop_stop(loop);
}

static void test_timers(void **state)
{
    (void)state;
    one_shot = periodic = 0;
    assert_int_equal(gw_loop_new(&loop), 0);
    int64_t t0 = toro_mono_ms();
    int id = gw_loop_timer(loop, t0 + 10, 0, on_one_shot, NULL);
    assert_true(id >= 0);
    assert_true(gw_loop_timer(loop, t0 + 20, 20, on_periodic, NULL) >= 0);
    assert_true(gw_loop_timer(loop, 0, 0, on_one_shot, NULL) >= 0); /* disarmed: never runs */
    assert_int_equal(gw_loop_run(loop), 0);
    int64_t took = toro_mono_ms() - t0;
    assert_int_equal(periodic, 3);
    assert_int_equal(one_shot, 1);
    assert_true(took >= 60 && took < 1000); /* the loop slept until the timers, not a whole second */
    gw_loop_free(loop);
}

static void on_wake(void *data)
{
    (void)data;
    wakes++;
    gw_loop_stop(loop);
}

static void *waker(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    gw_loop_wake(loop);
    return NULL;
}

static void test_wake_from_another_thread(void **state)
{
    (void)state;
    wakes = 0;
    assert_int_equal(gw_loop_new(&loop), 0);
    gw_loop_on_wake(loop, on_wake, NULL);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, waker, NULL), 0);
    int64_t t0 = toro_mono_ms();
    assert_int_equal(gw_loop_run(loop), 0);
    pthread_join(t, NULL);
    assert_true(wakes >= 1);
    assert_true(toro_mono_ms() - t0 < 900); /* woken, not timed out */
    gw_loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_removed_watch_not_called),
        cmocka_unit_test(test_timers),
        cmocka_unit_test(test_wake_from_another_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

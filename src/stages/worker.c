/* worker.c: the loop of a stage worker thread (the Lambda runtime of the
 * reference): fetch one message of its topic, run the stage, repeat until
 * told to stop. A message in flight when stop is set is finished first.
 * While the store or bus fails (disk full, I/O error, lock timeouts) the
 * worker backs off exponentially instead of spinning, and the process is
 * marked degraded (core/health.h) until a write succeeds again.
 * A worker given a nice increment lowers its own thread's CPU priority
 * first (Linux: nice is per thread), so that in `toro serve` the gateway's
 * loop accepting questions is not starved by the threads answering them. */
#define _GNU_SOURCE /* gettid */
#include "core/error.h"
#include "core/health.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "stages/stages.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Sleeps ms in slices so a stop request is honoured within 100 ms. */
static void nap(atomic_int *stop, int ms)
{
    for (int left = ms; left > 0 && !atomic_load(stop); left -= 100)
        toro_sleep_ms(left < 100 ? left : 100);
}

static bool store_failure(int rc) { return rc == TORO_EIO || rc == TORO_EUNAVAIL || rc == TORO_ENOMEM; }

/* Adds inc to the calling thread's nice value (an unprivileged process
 * may always lower its priority). A failure only costs throughput: logged. */
static void lower_priority(int inc)
{
    if (inc <= 0)
        return;
    pid_t tid = gettid();
    errno = 0;
    int now = getpriority(PRIO_PROCESS, (id_t)tid);
    if ((now == -1 && errno) || setpriority(PRIO_PROCESS, (id_t)tid, now + inc) != 0)
        toro_log_warn("worker", NULL, "cannot lower the worker's priority: %s", strerror(errno));
}

void *toro_worker_main(void *arg)
{
    toro_worker_t *w = arg;
    lower_priority(w->nice);
    int is_process = strcmp(w->topic, TORO_TOPIC_PROCESS) == 0;
    pthread_setname_np(pthread_self(), is_process ? "toro-process" : "toro-notify"); /* for top -H, perf */
    const char *who = is_process ? "process worker" : "notify worker";
    int failures = 0; /* consecutive store/bus failures: the back-off grows with them */
    while (!atomic_load(w->stop)) {
        toro_bus_msg_t msg;
        int rc = toro_bus_fetch(w->ctx->bus, w->topic, 500, &msg);
        if (rc == TORO_EEMPTY)
            continue;
        if (rc) {
            toro_log_ratelimited(TORO_LOG_ERROR, "worker", w->topic, "fetch from %s failed: %s", w->topic,
                                 toro_strerror(rc));
            toro_health_fail(who);
            nap(w->stop, toro_health_backoff_ms(++failures));
            continue;
        }
        int64_t t0 = toro_mono_ms();
        if (is_process)
            rc = toro_stage_process(w->ctx, &msg);
        else
            rc = toro_stage_notify(w->ctx, &msg);
        toro_metrics_observe_ms(is_process ? TORO_HIST_PROCESS : TORO_HIST_NOTIFY, (double)(toro_mono_ms() - t0));
        toro_bus_msg_clear(&msg);
        if (store_failure(rc)) {
            toro_health_fail(who);
            nap(w->stop, toro_health_backoff_ms(++failures));
        } else if (rc == 0) {
            failures = 0;
            toro_health_ok();
        }
    }
    return NULL;
}

/* health.c: the degraded state of the process (see health.h). */
#include "core/health.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char last_error[201];   /* latest store/bus error text (guarded by lock) */
static char reason[256];       /* why degraded; "" = healthy (guarded by lock) */
static int64_t since;          /* wall-clock ms the degraded state began */

void toro_health_note(const char *error_text)
{
    pthread_mutex_lock(&lock);
    snprintf(last_error, sizeof last_error, "%s", error_text ? error_text : "");
    pthread_mutex_unlock(&lock);
}

void toro_health_fail(const char *who)
{
    char line[600] = "";
    assert(who);
    pthread_mutex_lock(&lock);
    if (!reason[0]) {
        snprintf(reason, sizeof reason, "store failing: %s", last_error[0] ? last_error : "I/O error");
        since = toro_now_ms();
        snprintf(line, sizeof line, "%s (seen by the %s); backing off until it recovers", reason, who);
    }
    pthread_mutex_unlock(&lock);
    if (line[0])
        toro_log_ratelimited(TORO_LOG_ERROR, "health", "health-degraded", "degraded: %s", line);
}

void toro_health_ok(void)
{
    int64_t began = 0;
    pthread_mutex_lock(&lock);
    if (reason[0]) {
        reason[0] = '\0';
        began = since;
    }
    pthread_mutex_unlock(&lock);
    if (began)
        toro_log_ratelimited(TORO_LOG_INFO, "health", "health-recovered", "recovered: store writes succeed again "
                             "after %lld ms", (long long)(toro_now_ms() - began));
}

bool toro_health_degraded(char *buf, size_t cap, int64_t *since_ms)
{
    assert(!buf || cap > 0);
    pthread_mutex_lock(&lock);
    bool bad = reason[0] != '\0';
    if (bad && buf)
        snprintf(buf, cap, "%s", reason);
    if (bad && since_ms)
        *since_ms = since;
    pthread_mutex_unlock(&lock);
    return bad;
}

int toro_health_backoff_ms(int failures)
{
    int d = 100;
    for (int i = 1; i < failures && d < 10000; i++)
        d *= 2;
    return d > 10000 ? 10000 : d;
}

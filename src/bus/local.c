/* local.c: the embedded durable bus. It keeps no messages of its own: its
 * topics are served straight from the store's outbox (bus/outbox.h), the
 * table where the store commits each event with the state change it
 * announces, so nothing is copied and a crash loses nothing. fetch() claims
 * the oldest ready event of the topic with a lease; ack marks it published
 * (it leaves the outbox); nack releases it into the future; dead() buries it
 * in the store's dead-letter table; leases of a crashed run are released
 * when the next run opens the bus. Waiting consumers sleep on a condition
 * variable per bus, woken by kick() or every poll interval (delayed retries
 * become due without a kick). It does not span processes: one process owns
 * the outbox (the caller holds a lock file). No SQL here. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"

#define POLL_MS 200

typedef struct local_bus {
    toro_bus_t super;
    toro_outbox_t *outbox;    /* borrowed: the store's */
    int lease_ms;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned long generation; /* bumped by every kick, guarded by lock */
    int interrupted;          /* guarded by lock */
} local_bus_t;

static int try_fetch(local_bus_t *b, const char *topic, toro_bus_msg_t *out)
{
    toro_outbox_event_t ev;
    size_t n = 0;
    int rc = toro_outbox_claim(b->outbox, topic, 1, b->lease_ms, &ev, &n);
    if (rc)
        return rc;
    if (n == 0)
        return TORO_EEMPTY;
    assert(n == 1);
    out->id = ev.id;
    out->payload = ev.payload; /* moved */
    out->deliveries = ev.deliveries;
    out->enqueued_at = ev.created_at;
    ev.payload = NULL;
    toro_outbox_events_clear(&ev, 1);
    return 0;
}

static int l_fetch(toro_bus_t *bus, const char *topic, int timeout_ms, toro_bus_msg_t *out)
{
    local_bus_t *b = (local_bus_t *)bus;
    int64_t deadline = toro_mono_ms() + timeout_ms;
    memset(out, 0, sizeof *out);
    for (;;) {
        pthread_mutex_lock(&b->lock);
        unsigned long gen = b->generation;
        int stop = b->interrupted;
        pthread_mutex_unlock(&b->lock);
        if (stop)
            return TORO_EEMPTY;
        int rc = try_fetch(b, topic, out);
        if (rc != TORO_EEMPTY)
            return rc;
        int64_t left = deadline - toro_mono_ms();
        if (left <= 0)
            return TORO_EEMPTY;
        if (left > POLL_MS)
            left = POLL_MS;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&b->lock);
        while (b->generation == gen && !b->interrupted) {
            if (pthread_cond_timedwait(&b->cond, &b->lock, &ts) != 0)
                break;
        }
        pthread_mutex_unlock(&b->lock);
    }
}

static int l_ack(toro_bus_t *bus, const char *topic, const toro_bus_msg_t *m)
{
    (void)topic;
    return toro_outbox_mark_published(((local_bus_t *)bus)->outbox, &m->id, 1);
}

static int l_nack(toro_bus_t *bus, const char *topic, const toro_bus_msg_t *m, int delay_ms)
{
    int rc = toro_outbox_release(((local_bus_t *)bus)->outbox, m->id, delay_ms > 0 ? delay_ms : 0);
    if (rc == 0 && delay_ms <= 0)
        toro_bus_kick(bus, topic);
    return rc;
}

static int l_dead(toro_bus_t *bus, const char *topic, const toro_bus_msg_t *m, const char *reason)
{
    (void)topic;
    return toro_outbox_bury(((local_bus_t *)bus)->outbox, m->id, reason);
}

static void l_kick(toro_bus_t *bus, const char *topic)
{
    local_bus_t *b = (local_bus_t *)bus;
    pthread_mutex_lock(&b->lock);
    b->generation++;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

static int l_depth(toro_bus_t *bus, const char *topic, long *out)
{
    return toro_outbox_depth(((local_bus_t *)bus)->outbox, topic, out);
}

static void l_interrupt(toro_bus_t *bus)
{
    local_bus_t *b = (local_bus_t *)bus;
    pthread_mutex_lock(&b->lock);
    b->interrupted = 1;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

static void l_close(toro_bus_t *bus)
{
    local_bus_t *b = (local_bus_t *)bus;
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

static const toro_bus_ops_t local_ops = {
    .name = "local",
    .fetch = l_fetch,
    .ack = l_ack,
    .nack = l_nack,
    .dead = l_dead,
    .kick = l_kick,
    .depth = l_depth,
    .interrupt = l_interrupt,
    .close = l_close,
};

int toro_bus_local_open(toro_outbox_t *outbox, int lease_ms, toro_bus_t **out, char **err)
{
    assert(outbox && out);
    local_bus_t *b = calloc(1, sizeof *b);
    if (!b)
        return TORO_ENOMEM;
    int rc = toro_outbox_release(outbox, 0, 0); /* leases of a previous run */
    if (rc) {
        if (err)
            *err = strdup("cannot release the outbox leases of a previous run");
        free(b);
        return rc;
    }
    b->super.ops = &local_ops;
    b->outbox = outbox;
    b->lease_ms = lease_ms > 0 ? lease_ms : 60000;
    pthread_mutex_init(&b->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cond, &ca);
    pthread_condattr_destroy(&ca);
    *out = &b->super;
    return 0;
}

/* bus.c: what every bus implementation and user shares: message and outbox
 * event clean-up, the kick hook, the publish wrapper and the default outbox wait. No
 * backend code lives here. */
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "core/error.h"
#include "core/util.h"

void toro_kick_hook_init(toro_kick_hook_t *h)
{
    pthread_mutex_init(&h->lock, NULL);
    h->fn = NULL;
    h->ctx = NULL;
}

void toro_kick_hook_destroy(toro_kick_hook_t *h) { pthread_mutex_destroy(&h->lock); }

void toro_kick_hook_set(toro_kick_hook_t *h, void (*fn)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&h->lock);
    h->fn = fn;
    h->ctx = ctx;
    pthread_mutex_unlock(&h->lock);
}

void toro_kick_hook_call(toro_kick_hook_t *h)
{
    pthread_mutex_lock(&h->lock);
    if (h->fn)
        h->fn(h->ctx);
    pthread_mutex_unlock(&h->lock);
}

void toro_bus_msg_clear(toro_bus_msg_t *m)
{
    if (!m)
        return;
    free(m->payload);
    memset(m, 0, sizeof *m);
}

int toro_bus_publish(toro_bus_t *b, const char *topic, const char *payload, const char *msg_id)
{
    assert(b && b->ops && topic && payload);
    return b->ops->publish ? b->ops->publish(b, topic, payload, msg_id) : TORO_EINVAL;
}

int toro_bus_publish_batch(toro_bus_t *b, const toro_bus_pub_t *msgs, size_t n, unsigned char *ok)
{
    assert(b && b->ops && (n == 0 || (msgs && ok)));
    if (b->ops->publish_batch)
        return n ? b->ops->publish_batch(b, msgs, n, ok) : 0;
    size_t done = 0;
    int rc = 0;
    memset(ok, 0, n);
    while (done < n && (rc = toro_bus_publish(b, msgs[done].topic, msgs[done].payload, msgs[done].msg_id)) == 0)
        ok[done++] = 1;
    return done == 0 && n > 0 ? rc : (int)done;
}

static int cmp_event(const void *a, const void *b)
{
    int64_t x = ((const toro_outbox_event_t *)a)->id, y = ((const toro_outbox_event_t *)b)->id;
    return x < y ? -1 : x > y;
}

void toro_outbox_events_sort(toro_outbox_event_t *evs, size_t n)
{
    if (n > 1)
        qsort(evs, n, sizeof *evs, cmp_event);
}

void toro_outbox_events_clear(toro_outbox_event_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(out[i].topic);
        free(out[i].payload);
        memset(&out[i], 0, sizeof out[i]);
    }
}

int toro_outbox_wait(toro_outbox_t *o, int wake_fd, int timeout_ms)
{
    assert(o && o->ops);
    if (o->ops->wait)
        return o->ops->wait(o, wake_fd, timeout_ms);
    /* default: sleep, but return early when wake_fd is readable */
    struct pollfd p = {.fd = wake_fd, .events = POLLIN};
    poll(&p, wake_fd >= 0 ? 1 : 0, timeout_ms);
    return 0;
}

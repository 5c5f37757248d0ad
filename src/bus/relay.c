/* relay.c: the transactional outbox relay. The store commits each state
 * change together with its event in its outbox; this thread claims a batch
 * of ready events (a lease, so relays of other processes skip them),
 * publishes them to the bus in id order with the event's msg_id as the
 * deduplication id, without waiting for each ack (one wait per batch where
 * the bus has publish_batch: NATS), and marks the acknowledged ones
 * published so they leave the outbox: the thread holds the marks for up to
 * MARK_MS and makes one outbox call for all the batches of that time (at a
 * moderate load a batch is one event; the events stay leased meanwhile,
 * and a crash before the mark only means a deduplicated re-publish when
 * the lease ends, as below). An event whose
 * publish failed is released and goes out with the next batch, after events
 * of this batch that succeeded: order holds within a batch that succeeds,
 * and a retried event can land behind later ones (the relays of several
 * processes already publish side by side and a stage's workers run in
 * parallel, so no stage relies on the order of events).
 * Between batches it sleeps. On a bus that reports kicks (on_kick: NATS,
 * SNS) it is woken by the kicks of its own process, which follow every
 * commit of an event, and looks every POLL_MS for the events of processes
 * whose relay is gone; nothing wakes it for other processes' commits (a
 * PostgreSQL NOTIFY would wake every relay of every process for every
 * commit, and all but one of them then claim nothing: bench/bus_cost.sh,
 * five processes, 22 outbox index scans and 32 transactions per question
 * that way, 7 and 13 this way). On other buses it sleeps in
 * toro_outbox_wait (every POLL_MS unless the store can tell sooner). It
 * knows no SQL and no broker: only the outbox and bus interfaces.
 *
 * Why a thread in every writing process rather than a separate `toro relay`:
 * nothing extra to deploy or monitor, and the outbox drains whenever any
 * process is up. A relay that dies after a publish but before its mark
 * leaves the events leased; when the lease ends another relay re-publishes
 * them with the same msg_id, which the bus's duplicate window drops; past
 * that window the duplicate event is harmless because every stage is
 * idempotent and guarded.
 *
 * While the store or the bus is down it retries every POLL_MS; nothing is
 * lost because events leave the outbox only after the publish ack. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/relay.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"

#define POLL_MS 500
#define BATCH 256
#define LEASE_MS 10000 /* a batch is published in well under this */
#define MARK_MS 100    /* the relay thread marks published events at most this late */

struct toro_relay {
    toro_outbox_t *outbox; /* borrowed */
    toro_bus_t *bus;       /* borrowed; accepts publish */
    pthread_t thread;
    int wake[2];           /* self-pipe (non-blocking): stop() and kicks write to end the wait */
    int kicked;            /* the bus reports this process's commits (on_kick) */
    atomic_int stop;
    atomic_long published;
    int down_logged;       /* 1 after "store unreachable" was logged */
    int64_t unmarked[4 * BATCH]; /* published, not yet marked (the relay thread's; see flush_marks) */
    size_t n_unmarked;
    int64_t unmarked_since; /* toro_mono_ms() of the oldest of them */
};

/* Publishes evs[0..n) as one batch (sent in id order, one wait for all the
 * acks where the bus allows it) and releases the events not acknowledged
 * for the next round (their msg_id deduplicates the ones that reached the
 * bus after all). The ids of the acknowledged ones go to ids; returns how
 * many, or TORO_EIO when none was. */
static int publish_batch(toro_outbox_t *outbox, toro_bus_t *bus, toro_outbox_event_t *evs, size_t n, int64_t *ids)
{
    toro_bus_pub_t msgs[BATCH];
    unsigned char ok[BATCH];
    size_t done = 0;
    assert(n <= BATCH);
    for (size_t i = 0; i < n; i++)
        msgs[i] = (toro_bus_pub_t){evs[i].topic, evs[i].payload, evs[i].msg_id};
    if (toro_bus_publish_batch(bus, msgs, n, ok) < 0)
        memset(ok, 0, n);
    for (size_t i = 0; i < n; i++) {
        if (ok[i])
            ids[done++] = evs[i].id;
        else
            toro_outbox_release(outbox, evs[i].id, 0);
    }
    return done ? (int)done : TORO_EIO;
}

/* Claims one batch and publishes it; the acknowledged ids go to ids.
 * Returns how many, 0 when nothing was ready, or a negative code. */
static int claim_and_publish(toro_outbox_t *outbox, toro_bus_t *bus, int64_t *ids)
{
    toro_outbox_event_t evs[BATCH];
    size_t n = 0;
    int rc = toro_outbox_claim(outbox, NULL, BATCH, LEASE_MS, evs, &n);
    if (rc)
        return rc;
    rc = n ? publish_batch(outbox, bus, evs, n, ids) : 0;
    toro_outbox_events_clear(evs, n);
    return rc;
}

int toro_relay_drain_once(toro_outbox_t *outbox, toro_bus_t *bus)
{
    assert(outbox && bus && toro_bus_can_publish(bus));
    int64_t ids[BATCH];
    int rc = claim_and_publish(outbox, bus, ids);
    /* a failed mark leaves them leased: re-published (deduplicated) later */
    if (rc > 0 && toro_outbox_mark_published(outbox, ids, (size_t)rc) != 0)
        rc = TORO_EIO;
    return rc;
}

/* Marks the published events the thread holds, in one outbox call. A
 * failed mark leaves them leased: re-published (deduplicated) when the
 * lease ends, as after a crash between publish and mark. */
static void flush_marks(toro_relay_t *r)
{
    if (r->n_unmarked && toro_outbox_mark_published(r->outbox, r->unmarked, r->n_unmarked) != 0)
        toro_log_ratelimited(TORO_LOG_WARN, "relay", "relay-mark", "cannot mark %zu published events; they "
                             "are published again (deduplicated) when their lease ends", r->n_unmarked);
    r->n_unmarked = 0;
}

/* How long the thread may sleep before its held marks are due: the mark of
 * a published event is deferred up to MARK_MS, so that one statement marks
 * the events of many small batches (at a moderate load each batch is one
 * event). The lease (LEASE_MS) outlasts the wait by far. */
static int marks_due_in(toro_relay_t *r, int timeout_ms)
{
    if (!r->n_unmarked)
        return timeout_ms;
    int64_t left = r->unmarked_since + MARK_MS - toro_mono_ms();
    return left <= 0 ? 0 : (left < timeout_ms ? (int)left : timeout_ms);
}

/* One batch: events published, 0 when the outbox was empty, TORO_EIO when
 * the store or the bus failed. Their marks are held (flush_marks). */
static int drain_batch(toro_relay_t *r)
{
    int64_t ids[BATCH];
    if (r->n_unmarked > 0 && r->n_unmarked + BATCH > sizeof r->unmarked / sizeof r->unmarked[0])
        flush_marks(r); /* room for a whole batch */
    int rc = claim_and_publish(r->outbox, r->bus, ids);
    if (rc < 0) {
        if (!r->down_logged)
            toro_log_warn("relay", NULL, "outbox or bus unreachable (%s); retrying", toro_strerror(rc));
        r->down_logged = 1;
        return rc;
    }
    if (r->down_logged) {
        toro_log_info("relay", NULL, "outbox reachable again");
        r->down_logged = 0;
    }
    if (rc > 0) {
        if (!r->n_unmarked)
            r->unmarked_since = toro_mono_ms();
        memcpy(r->unmarked + r->n_unmarked, ids, (size_t)rc * sizeof ids[0]);
        r->n_unmarked += (size_t)rc;
        atomic_fetch_add(&r->published, (long)rc);
    }
    return rc;
}

/* Waits for a kick, stop() or the timeout, then empties the pipe. */
static void wait_kick(toro_relay_t *r, int timeout_ms)
{
    struct pollfd p = {.fd = r->wake[0], .events = POLLIN};
    char buf[64];
    poll(&p, 1, timeout_ms);
    while (read(r->wake[0], buf, sizeof buf) > 0)
        ;
}

static void *relay_main(void *arg)
{
    toro_relay_t *r = arg;
    while (!atomic_load(&r->stop)) {
        int n = drain_batch(r);
        if (n == BATCH)
            continue;
        int idle = n < 0 ? POLL_MS / 2 : POLL_MS;
        int timeout = marks_due_in(r, idle);
        if (timeout == 0) { /* then sleep: a claim now would only find the table empty */
            flush_marks(r);
            timeout = idle;
        }
        if (r->kicked)
            wait_kick(r, timeout);
        else
            toro_outbox_wait(r->outbox, r->wake[0], timeout);
    }
    drain_batch(r); /* what the process committed last (its workers have stopped) goes out now */
    flush_marks(r);
    return NULL;
}

/* The bus's on_kick callback: an event was committed by this process. A
 * full pipe already holds a wake-up. */
static void relay_kick(void *ctx)
{
    toro_relay_t *r = ctx;
    ssize_t w = write(r->wake[1], "k", 1);
    (void)w;
}

static int open_pipe(int fds[2])
{
    if (pipe(fds) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        int fl = fcntl(fds[i], F_GETFL);
        if (fl < 0 || fcntl(fds[i], F_SETFL, fl | O_NONBLOCK) != 0) {
            close(fds[0]);
            close(fds[1]);
            fds[0] = fds[1] = -1;
            return -1;
        }
    }
    return 0;
}

int toro_relay_start(toro_outbox_t *outbox, toro_bus_t *bus, toro_relay_t **out, char **err)
{
    assert(outbox && bus && out);
    if (!toro_bus_can_publish(bus)) {
        if (err)
            *err = strdup("the outbox relay needs a bus that accepts publishing (nats)");
        return TORO_EINVAL;
    }
    toro_relay_t *r = calloc(1, sizeof *r);
    if (!r)
        return TORO_ENOMEM;
    r->wake[0] = r->wake[1] = -1;
    r->outbox = outbox;
    r->bus = bus;
    r->kicked = bus->ops->on_kick != NULL;
    if (open_pipe(r->wake) != 0 || pthread_create(&r->thread, NULL, relay_main, r) != 0) {
        if (err)
            *err = strdup("cannot start the outbox relay");
        if (r->wake[0] >= 0) {
            close(r->wake[0]);
            close(r->wake[1]);
        }
        free(r);
        return TORO_EIO;
    }
    if (r->kicked)
        toro_bus_on_kick(bus, relay_kick, r);
    *out = r;
    return 0;
}

void toro_relay_stop(toro_relay_t *r)
{
    if (!r)
        return;
    if (r->kicked) /* no kick runs past this */
        toro_bus_on_kick(r->bus, NULL, NULL);
    atomic_store(&r->stop, 1);
    ssize_t w = write(r->wake[1], "x", 1);
    (void)w;
    pthread_join(r->thread, NULL);
    close(r->wake[0]);
    close(r->wake[1]);
    free(r);
}

long toro_relay_published(const toro_relay_t *r) { return r ? atomic_load(&((toro_relay_t *)r)->published) : 0; }

/* bus.h: the durable topics between stages (the SNS boxes of the reference).
 * A consumer fetches one message at a time, handles it and acks it; a message
 * that is not acked comes back (at-least-once). Messages carry ids only. A
 * backend may fetch a batch from its server and hand it out one message per
 * fetch (nats.c): the interface stays one message at a time, the round trips
 * do not.
 * Implementations: local.c (a table in the embedded SQLite file), nats.c
 * (NATS JetStream streams, for the distributed mode), sns.c (SNS topics
 * read through SQS queues, for toro on AWS).
 * Stages never publish: events are written by the store in the same
 * transaction as the state change they announce (bus/outbox.h), and kick()
 * tells waiting consumers to look now. Only the outbox relay (relay.h)
 * publishes, to buses that carry events between processes.
 * Posting an update to a gateway node is not a topic: see post.h. */
#ifndef TORO_BUS_BUS_H
#define TORO_BUS_BUS_H

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus/outbox.h"

typedef struct toro_bus toro_bus_t;

typedef struct toro_bus_msg {
    int64_t id;          /* implementation's message id */
    char *payload;       /* event JSON (caller frees via toro_bus_msg_clear) */
    int deliveries;      /* 1 on first delivery */
    int64_t enqueued_at; /* ms since epoch when it was first published */
} toro_bus_msg_t;

/* One message of a publish batch (all fields borrowed). */
typedef struct toro_bus_pub {
    const char *topic;
    const char *payload;
    const char *msg_id; /* deduplication id: the outbox event's msg_id */
} toro_bus_pub_t;

typedef struct toro_bus_ops {
    const char *name;
    /* Wait up to timeout_ms for a message; 0, TORO_EEMPTY on timeout or
     * interrupt, TORO_EIO when the backend fails. */
    int (*fetch)(toro_bus_t *bus, const char *topic, int timeout_ms, toro_bus_msg_t *out);
    int (*ack)(toro_bus_t *bus, const char *topic, const toro_bus_msg_t *msg);
    /* Make the message available again after delay_ms (retry with backoff). */
    int (*nack)(toro_bus_t *bus, const char *topic, const toro_bus_msg_t *msg, int delay_ms);
    /* Move the message to the dead-letter store with a reason. */
    int (*dead)(toro_bus_t *bus, const char *topic, const toro_bus_msg_t *msg, const char *reason);
    void (*kick)(toro_bus_t *bus, const char *topic);
    int (*depth)(toro_bus_t *bus, const char *topic, long *out);
    /* Wake every waiting fetch; later fetches return TORO_EEMPTY at once. */
    void (*interrupt)(toro_bus_t *bus);
    void (*close)(toro_bus_t *bus);
    /* Optional (NULL: the bus is fed by an outbox, not by publishers).
     * Returns 0 once the message is durable on the bus; msg_id deduplicates
     * a re-publish. TORO_EIO when it is not (publish again later). */
    int (*publish)(toro_bus_t *bus, const char *topic, const char *payload, const char *msg_id);
    /* Optional (NULL: toro_bus_publish_batch publishes one at a time). Sends
     * msgs[0..n) in order without waiting for each ack, then waits for all of
     * them; ok[i] is set to 1 when msgs[i] is durable on the bus, 0 when it is
     * not (publish it again later, with the same msg_id). Returns how many are
     * durable, or a negative code when the bus cannot be used (all ok[] 0). */
    int (*publish_batch)(toro_bus_t *bus, const toro_bus_pub_t *msgs, size_t n, unsigned char *ok);
    /* Optional (NULL: kicks reach no one outside the bus). From now on
     * kick() also calls fn(ctx), on the kicking thread; fn NULL unregisters
     * (when it returns, no call of the old fn is running). The relay uses it
     * to publish what its own process just committed, instead of every
     * relay waking for every commit (PostgreSQL NOTIFY goes to all). */
    void (*on_kick)(toro_bus_t *bus, void (*fn)(void *ctx), void *ctx);
} toro_bus_ops_t;

struct toro_bus {
    const toro_bus_ops_t *ops; /* first field of every implementation */
};

/* Wrappers: call sites never write b->ops->fn(b, ...). On a failed fetch *m
 * is zeroed; a failed ack/nack leaves the message to the bus's redelivery. */
static inline int toro_bus_fetch(toro_bus_t *b, const char *t, int ms, toro_bus_msg_t *m)
{
    assert(b && b->ops && t && m);
    return b->ops->fetch(b, t, ms, m);
}
static inline int toro_bus_ack(toro_bus_t *b, const char *t, const toro_bus_msg_t *m) { return b->ops->ack(b, t, m); }
static inline int toro_bus_nack(toro_bus_t *b, const char *t, const toro_bus_msg_t *m, int d) { return b->ops->nack(b, t, m, d); }
static inline int toro_bus_dead(toro_bus_t *b, const char *t, const toro_bus_msg_t *m, const char *r) { return b->ops->dead(b, t, m, r); }
static inline void toro_bus_kick(toro_bus_t *b, const char *t) { b->ops->kick(b, t); }
static inline int toro_bus_depth(toro_bus_t *b, const char *t, long *n) { return b->ops->depth(b, t, n); }
static inline void toro_bus_interrupt(toro_bus_t *b) { b->ops->interrupt(b); }
static inline void toro_bus_close(toro_bus_t *b)
{
    if (b)
        b->ops->close(b);
}

/* Registers (or, fn NULL, removes) the kick hook (on_kick above); false
 * when the bus has none. */
static inline bool toro_bus_on_kick(toro_bus_t *b, void (*fn)(void *ctx), void *ctx)
{
    if (!b->ops->on_kick)
        return false;
    b->ops->on_kick(b, fn, ctx);
    return true;
}

/* Whether the bus accepts toro_bus_publish (the relay needs one that does). */
static inline bool toro_bus_can_publish(const toro_bus_t *b) { return b->ops->publish != NULL; }
int toro_bus_publish(toro_bus_t *b, const char *topic, const char *payload, const char *msg_id);
/* Why: the relay publishes a claimed batch with one wait for all acks
 * (publish_batch above) where the bus can, and one message at a time
 * (stopping at the first failure, the rest ok[i] = 0) where it cannot.
 * Returns how many are durable, or a negative code. */
int toro_bus_publish_batch(toro_bus_t *b, const toro_bus_pub_t *msgs, size_t n, unsigned char *ok);

/* The kick hook a bus keeps for on_kick (nats.c, sns.c): set and called
 * under its own lock, so that when set() returns no call of the old
 * function is running. Zero-initialized after toro_kick_hook_init. */
typedef struct toro_kick_hook {
    pthread_mutex_t lock;
    void (*fn)(void *ctx); /* NULL: none */
    void *ctx;
} toro_kick_hook_t;
void toro_kick_hook_init(toro_kick_hook_t *h);
void toro_kick_hook_destroy(toro_kick_hook_t *h);
void toro_kick_hook_set(toro_kick_hook_t *h, void (*fn)(void *ctx), void *ctx);
void toro_kick_hook_call(toro_kick_hook_t *h);

/* Frees m's payload and zeroes it; NULL is a no-op (bus.c). */
void toro_bus_msg_clear(toro_bus_msg_t *m);

/* Why: `toro serve` (one process) serves its topics straight from the
 * store's outbox (borrowed; must outlive the bus), so a state change and the
 * event announcing it stay one transaction and nothing is copied. lease_ms
 * bounds how long a fetched message stays invisible before it is
 * redelivered. At open the outbox's leases are released: the caller owns the
 * outbox alone (a lock file), so leases left by a previous run are stale.
 * Publishing is not supported (events enter through the store). On failure
 * *out is untouched and *err (caller frees, may be NULL) says why. */
int toro_bus_local_open(toro_outbox_t *outbox, int lease_ms, toro_bus_t **out, char **err);

/* Why: `toro api` and `toro worker` share JetStream. url is
 * nats://HOST:PORT[?prefix=NAME&ack_wait_ms=N&dup_window_ms=N&fetch_batch=N];
 * prefix (default "toro") names the streams and subjects so several
 * deployments or tests share one server; fetch_batch (1..64, default 16)
 * bounds the messages one fetch pulls from the server. An unreachable server is retried forever in the
 * background (ops return TORO_EIO meanwhile). On failure *out is untouched. */
int toro_bus_nats_open(const char *url, toro_bus_t **out, char **err);
bool toro_bus_nats_connected(toro_bus_t *bus);

/* Why: toro on AWS (SNS topics, SQS queues with a dead-letter queue each;
 * sns.c). url is sns://REGION[?endpoint=URL&prefix=NAME&declare=1&
 * retries=N&visibility_s=N&wait_s=N]: an empty REGION takes AWS_REGION;
 * endpoint (default https://sns|sqs.REGION.amazonaws.com) serves both
 * services (a local peer such as moto); prefix (default "toro") names
 * topic <prefix>-T, queue <prefix>-T and dead-letter queue <prefix>-T-dead
 * for T in process, notify; declare=1 creates them all (idempotent) with
 * retries (maxReceiveCount, default 5) and visibility_s (lease, default 30),
 * otherwise they must exist; wait_s (default 20) bounds one long poll.
 * Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN.
 * On failure (bad URL or credentials: TORO_EINVAL; the queues cannot be
 * found or declared: TORO_EIO) *out is untouched and *err says why. */
int toro_bus_sns_open(const char *url, toro_bus_t **out, char **err);
/* Why: toro on Lambda gets its SQS records from the event source mapping,
 * not from fetch; a record the stage nacks is reported as a batch item
 * failure, and this makes it visible again after delay_ms (the nack's
 * backoff) rather than after the queue's visibility timeout. bus is an sns
 * bus, receipt_handle the record's. 0, TORO_EINVAL (not sns, unknown topic),
 * or the SQS call's error (then the queue's timeout applies). */
int toro_bus_sns_retry_in(toro_bus_t *bus, const char *topic, const char *receipt_handle, int delay_ms);

#endif

/* outbox.h: the durable queue of committed events that a store keeps beside
 * its tables (the transactional outbox). A store writes an event in the same
 * transaction as the state change it announces; this interface is how the
 * rest of the system reads those events back. The store implements it (the
 * tables and their SQL live in store/sqlite.c and store/postgres.c); bus/
 * only consumes it, so bus/ holds no SQL and never includes store/:
 * - bus/local.c serves its topics straight from the outbox (one process:
 *   the outbox is the queue, nothing is copied);
 * - bus/relay.c claims batches, publishes them to a bus with a publish op
 *   (NATS) and marks them published.
 * Every call is safe from several threads at once. */
#ifndef TORO_BUS_OUTBOX_H
#define TORO_BUS_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

typedef struct toro_outbox toro_outbox_t;

typedef struct toro_outbox_event {
    int64_t id;          /* outbox row id, increasing in commit order */
    char msg_id[40];     /* stable id of the event (deduplication key when re-published) */
    char *topic;         /* owned */
    char *payload;       /* owned: toro_event_encode() */
    int deliveries;      /* times claimed, this claim included */
    int64_t created_at;  /* ms since epoch of the commit */
} toro_outbox_event_t;

#define TORO_OUTBOX_OPS_VERSION 1

typedef struct toro_outbox_ops {
    int version; /* TORO_OUTBOX_OPS_VERSION the table was written for */
    /* Leases up to max ready, unleased events (of topic, or of every topic
     * when topic is NULL), oldest first, for lease_ms; each claim counts as a
     * delivery. On 0, out[0..*n) are filled (caller clears them with
     * toro_outbox_events_clear); *n == 0 when nothing is ready. On failure
     * *n is 0 and nothing was leased. A store may hand its claimer the
     * events its own process commits and look for the others less often
     * (postgres.c: every 500 ms, and at once after a release); a caller that
     * claims again 500 ms later sees every ready event. */
    int (*claim)(toro_outbox_t *o, const char *topic, int max, int lease_ms, toro_outbox_event_t *out, size_t *n);
    /* The events are handled (published to another bus, or consumed): they
     * leave the outbox. Unknown ids are ignored. On failure none left. */
    int (*mark_published)(toro_outbox_t *o, const int64_t *ids, size_t n);
    /* Ends the lease of id; the event is ready again after delay_ms. id 0
     * releases every lease (a restarted single owner: its consumers are gone). */
    int (*release)(toro_outbox_t *o, int64_t id, int delay_ms);
    /* Moves the event to the dead-letter table with reason. On failure it stays. */
    int (*bury)(toro_outbox_t *o, int64_t id, const char *reason);
    /* Events of topic still in the outbox, leased or not. */
    int (*depth)(toro_outbox_t *o, const char *topic, long *out);
    /* Optional (NULL = sleep): waits up to timeout_ms for new events or for
     * wake_fd to become readable (-1 = none). Returns 0 either way. */
    int (*wait)(toro_outbox_t *o, int wake_fd, int timeout_ms);
} toro_outbox_ops_t;

struct toro_outbox {
    const toro_outbox_ops_t *ops; /* first field of every implementation */
};

static inline int toro_outbox_claim(toro_outbox_t *o, const char *topic, int max, int lease_ms,
                                    toro_outbox_event_t *out, size_t *n)
{
    return o->ops->claim(o, topic, max, lease_ms, out, n);
}
static inline int toro_outbox_mark_published(toro_outbox_t *o, const int64_t *ids, size_t n)
{
    return n ? o->ops->mark_published(o, ids, n) : 0;
}
static inline int toro_outbox_release(toro_outbox_t *o, int64_t id, int delay_ms)
{
    return o->ops->release(o, id, delay_ms);
}
static inline int toro_outbox_bury(toro_outbox_t *o, int64_t id, const char *reason)
{
    return o->ops->bury(o, id, reason);
}
static inline int toro_outbox_depth(toro_outbox_t *o, const char *topic, long *out)
{
    return o->ops->depth(o, topic, out);
}
/* Why: the relay sleeps here between batches (on a bus without kicks); a
 * store that can tell when events arrive (SQLite, within its process)
 * wakes it early. */
int toro_outbox_wait(toro_outbox_t *o, int wake_fd, int timeout_ms);

/* Why: engines whose claim returns rows in no set order (UPDATE ...
 * RETURNING) sort them by id here. */
void toro_outbox_events_sort(toro_outbox_event_t *evs, size_t n);
/* Frees the fields of out[0..n) (not the array). */
void toro_outbox_events_clear(toro_outbox_event_t *out, size_t n);

#endif

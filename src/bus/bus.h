/* bus.h: the durable topics between stages (the SNS boxes of the reference).
 * A consumer fetches one message at a time, handles it and acks it; a message
 * that is not acked comes back (at-least-once). Messages carry ids only.
 * Implementations: local.c (a table in the embedded SQLite file), nats.c
 * (NATS JetStream streams, for the distributed mode).
 * Publishing is not here: events are written by the store in the same
 * transaction as the state change they announce (an outbox), and kick()
 * tells waiting consumers to look now. */
#ifndef TORO_BUS_BUS_H
#define TORO_BUS_BUS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct toro_bus toro_bus_t;

typedef struct toro_bus_msg {
    int64_t id;          /* implementation's message id */
    char *payload;       /* event JSON (caller frees via toro_bus_msg_clear) */
    int deliveries;      /* 1 on first delivery */
    int64_t enqueued_at; /* ms since epoch when it was first published */
} toro_bus_msg_t;

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
} toro_bus_ops_t;

struct toro_bus {
    const toro_bus_ops_t *ops; /* first field of every implementation */
};

static inline int toro_bus_fetch(toro_bus_t *b, const char *t, int ms, toro_bus_msg_t *m) { return b->ops->fetch(b, t, ms, m); }
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

void toro_bus_msg_clear(toro_bus_msg_t *m);

/* Why: the embedded bus lives in the SQLite file of the store; the store
 * calls these inside its own transactions. */
#define TORO_BUS_LOCAL_SCHEMA                                                                                          \
    "CREATE TABLE IF NOT EXISTS bus_events(id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"                 \
    " payload TEXT NOT NULL, created_at INTEGER NOT NULL, available_at INTEGER NOT NULL,"                              \
    " leased_until INTEGER NOT NULL DEFAULT 0, deliveries INTEGER NOT NULL DEFAULT 0);"                                \
    "CREATE INDEX IF NOT EXISTS bus_events_topic ON bus_events(topic, id);"                                            \
    "CREATE TABLE IF NOT EXISTS bus_dead(id INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload TEXT NOT NULL,"          \
    " created_at INTEGER NOT NULL, dead_at INTEGER NOT NULL, deliveries INTEGER NOT NULL, reason TEXT);"

struct sqlite3;
/* Inserts an event inside the caller's open transaction on conn. */
int toro_bus_local_enqueue(struct sqlite3 *conn, const char *topic, const char *payload);

/* Why: `toro serve` opens the bus on its data file. lease_ms bounds how long a
 * fetched message stays invisible before it is redelivered. At open, leases of
 * a previous run of this single-owner file are released (that process is gone). */
int toro_bus_local_open(const char *db_path, int lease_ms, toro_bus_t **out, char **err);

/* Why: `toro api` and `toro worker` share JetStream. url is
 * nats://HOST:PORT[?prefix=NAME&ack_wait_ms=N&dup_window_ms=N]; prefix
 * (default "toro") names the streams and subjects so several deployments
 * or tests share one server. An unreachable server is retried forever in the
 * background (ops return TORO_EIO meanwhile). */
int toro_bus_nats_open(const char *url, toro_bus_t **out, char **err);
/* Why: the outbox relay publishes with the outbox row id as Nats-Msg-Id;
 * returns 0 once JetStream acknowledged (duplicates included). */
int toro_bus_nats_publish(toro_bus_t *bus, const char *topic, const char *payload, const char *msg_id);
bool toro_bus_nats_connected(toro_bus_t *bus);
/* Same shape as toro_post_fn (stages.h): deliver message to connection_id on node. */
typedef int (*toro_bus_post_fn)(void *ctx, const char *connection_id, const char *node, const char *message);
/* Why: the notify worker's post function: a request to the `toro api` that
 * holds node. 0 delivered; TORO_ENOTFOUND when the connection or the node is
 * gone (no responders); TORO_EIO on timeout. bus is a nats bus. */
int toro_bus_nats_post(void *bus, const char *connection_id, const char *node, const char *message);
/* Why: `toro api` answers those requests by calling fn(ctx, ...) (the local
 * gateway post) from a NATS thread. */
int toro_bus_nats_serve_node(toro_bus_t *bus, const char *node, toro_bus_post_fn fn, void *ctx);
/* Why: while an api is cut off from NATS, notify workers see "no responders"
 * and delete its connection rows; after a reconnect the api writes them back
 * (fn runs on a NATS thread). */
void toro_bus_nats_on_reconnect(toro_bus_t *bus, void (*fn)(void *ctx), void *ctx);

#endif

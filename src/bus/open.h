/* open.h: choosing the bus by URL (--bus). The one place that maps a URL to
 * an implementation; their own constructors stay in bus.h. */
#ifndef TORO_BUS_OPEN_H
#define TORO_BUS_OPEN_H

#include "bus/bus.h"
#include "bus/outbox.h"

typedef enum {
    TORO_BUS_URL_BAD = 0, /* neither below */
    TORO_BUS_URL_LOCAL,   /* "local": the table in the embedded SQLite file, one process */
    TORO_BUS_URL_NATS,    /* nats://HOST:PORT[?prefix=…&ack_wait_ms=…]: JetStream, many processes */
    TORO_BUS_URL_SNS,     /* sns://REGION[?endpoint=…&prefix=…&declare=1]: SNS + SQS, toro on AWS */
} toro_bus_url_kind_t;

/* Why: commands check a combination of store and bus before opening either.
 * url may be NULL (TORO_BUS_URL_BAD). */
toro_bus_url_kind_t toro_bus_url_kind(const char *url);

/* Why: `--bus URL` everywhere. "local" serves its topics from outbox, the
 * store's outbox (the store writes events there in the transaction that
 * changes a question), with the local bus's lease; outbox NULL refuses "local". nats://… opens
 * JetStream (an unreachable server is retried in the background); sns://…
 * finds (or with declare=1 creates) the SNS topics and SQS queues. On failure
 * *out is NULL and *err (caller frees) says why: TORO_EINVAL for an unknown
 * URL or a local bus without an outbox; other codes are the bus's. */
int toro_bus_open(const char *url, toro_outbox_t *outbox, toro_bus_t **out, char **err);

#endif

/* relay.h: the outbox relay of the distributed mode: moves events committed
 * in PostgreSQL's outbox table to JetStream (see relay.c for why it runs as a
 * thread in every `toro api` and `toro worker` process). */
#ifndef TORO_BUS_RELAY_H
#define TORO_BUS_RELAY_H

#include "bus/bus.h"

typedef struct toro_relay toro_relay_t;

/* Why: every process that writes the store also drains the outbox, so events
 * flow as long as any process runs. store_url is a libpq URL (copied); bus is
 * a nats bus (borrowed; must outlive the relay). */
int toro_relay_start(const char *store_url, toro_bus_t *bus, toro_relay_t **out, char **err);
/* Stops the thread and frees the relay; rows not yet published stay in the
 * outbox for any other relay. NULL is a no-op. */
void toro_relay_stop(toro_relay_t *r);
/* Events published since start (for logs and tests). */
long toro_relay_published(const toro_relay_t *r);

#endif

/* relay.h: the outbox relay: moves events committed in a store's outbox
 * (bus/outbox.h) to a bus that carries them between processes (NATS). See
 * relay.c for why it runs as a thread in every process that writes. */
#ifndef TORO_BUS_RELAY_H
#define TORO_BUS_RELAY_H

#include "bus/bus.h"
#include "bus/outbox.h"

typedef struct toro_relay toro_relay_t;

/* Why: every process that writes the store also drains the outbox, so events
 * flow as long as any process runs. outbox is the store's
 * (toro_store_outbox); bus must accept publish (toro_bus_can_publish). Both
 * borrowed; they must outlive the relay. On a bus with a kick hook
 * (toro_bus_on_kick) the relay registers itself there until stop, and the
 * kicks that follow this process's commits wake it. On failure nothing runs, *out is
 * untouched and *err (caller frees) says why. */
int toro_relay_start(toro_outbox_t *outbox, toro_bus_t *bus, toro_relay_t **out, char **err);
/* Stops the thread (after one last batch: call it once the process's
 * writers have stopped) and frees the relay; events not yet published stay
 * in the outbox for any other relay (their lease expires). NULL is a no-op. */
void toro_relay_stop(toro_relay_t *r);
/* Why: toro on AWS Lambda has no background thread between invocations:
 * each invocation that wrote drains the outbox itself, and a scheduled
 * "relay" function drains what a crashed one left. One batch: claims ready
 * events, publishes them in order as one batch (msg_id deduplicates) and
 * marks the acknowledged ones in one call; the others are released. Returns events published (0: none ready), or a negative
 * code when the store or the bus failed (unpublished events are released
 * or stay leased until their lease ends). bus must accept publish. */
int toro_relay_drain_once(toro_outbox_t *outbox, toro_bus_t *bus);
/* Events published since start (for logs and tests). */
long toro_relay_published(const toro_relay_t *r);

#endif

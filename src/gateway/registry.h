/* registry.h: the registered WebSocket sockets of a gateway by connection
 * id, and the queue of messages other threads post to them (notify's
 * toro_gateway_post). The only gateway state other threads touch: guarded
 * by one mutex. It sends nothing itself: the loop thread pops messages
 * (gw_registry_pop) and writes them. */
#ifndef TORO_GATEWAY_REGISTRY_H
#define TORO_GATEWAY_REGISTRY_H

#include <pthread.h>
#include <stddef.h>

#include "gateway/client.h"
#include "store/store.h"

#define GW_REGISTRY_BUCKETS 4096

typedef struct gw_posted {
    char connection_id[37];
    char *text;               /* owned */
    struct gw_posted *next;
} gw_posted_t;

typedef struct gw_registry {
    pthread_mutex_t lock;     /* guards map and the queue */
    gw_client_t *map[GW_REGISTRY_BUCKETS];
    gw_posted_t *pending, *pending_tail;
} gw_registry_t;

void gw_registry_init(gw_registry_t *reg);
/* Frees the queued messages (the sockets are not the registry's). */
void gw_registry_destroy(gw_registry_t *reg);

/* Loop thread: lists cl (registered: connection_id and user_id set). */
void gw_registry_add(gw_registry_t *reg, gw_client_t *cl);
/* Loop thread: unlists cl; a no-op when it is not listed. */
void gw_registry_remove(gw_registry_t *reg, gw_client_t *cl);

/* Thread-safe: queues a copy of message for connection_id. 0, TORO_ENOTFOUND
 * when no such socket is registered, TORO_ENOMEM (nothing queued). The
 * caller wakes the loop. */
int gw_registry_post(gw_registry_t *reg, const char *connection_id, const char *message);
/* Loop thread: the oldest queued message (caller frees with
 * gw_posted_free) and in *cl its socket, NULL when it closed meanwhile.
 * NULL when the queue is empty. */
gw_posted_t *gw_registry_pop(gw_registry_t *reg, gw_client_t **cl);
void gw_posted_free(gw_posted_t *m);

/* Thread-safe: writes the connections-table row of every registered socket
 * (node names this gateway). Returns the rows written. */
int gw_registry_resync(gw_registry_t *reg, toro_store_t *store, const char *node);

#endif

/* accept.h: the gateway's listening socket: binding, accepting clients
 * into the connection set, the connection cap (503 beyond it), and the
 * answer to running out of descriptors (EMFILE): one reserve descriptor
 * given up to answer one client 503, then a back-off during which the
 * listening socket is not polled. Loop thread only. */
#ifndef TORO_GATEWAY_ACCEPT_H
#define TORO_GATEWAY_ACCEPT_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/conn.h"
#include "gateway/loop.h"

typedef struct gw_listener {
    gw_watch_t watch;         /* the listening socket (watch.fd, -1 when closed) */
    gw_conns_t *conns;        /* where accepted sockets go (its loop watches the listener too) */
    int max_connections;      /* sockets of all kinds; clients beyond it get 503 */
    int reserve_fd;           /* spare descriptor given up to accept-and-503 one client on EMFILE */
    int backoff_ms;           /* current back-off, doubled while EMFILE persists; 0 = none */
    int timer;                /* the loop timer that ends the back-off */
} gw_listener_t;

/* Why: binds host:port (IPv4; port 0 = any free port) so a failure is
 * reported before workers start, and starts accepting into conns. 0 and
 * the bound port in *port, or -1 with msg set (l then holds nothing open). */
int gw_listener_open(gw_listener_t *l, gw_conns_t *conns, const char *host, int port, int *bound, char *msg,
                     size_t cap);
/* Closes the listening socket and the reserve descriptor. Safe on a listener never opened (zeroed, fds -1). */
void gw_listener_close(gw_listener_t *l);

/* Why: a --max-connections above the open-files limit turns into EMFILE
 * storms. Raises the soft RLIMIT_NOFILE to the hard limit and returns
 * max_connections clamped to the limit minus a reserve for the store, the
 * bus, the log and the workers. Logs the result. */
int gw_fit_open_files(int max_connections);

#endif

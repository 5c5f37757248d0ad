/* server.h: what the fuzz harness and the unit tests reach of a running
 * gateway without its event loop: the connection set (gw_conn_adopt,
 * gw_conn_feed, gw_conn_feed_eof, gw_conn_close act on it) and one round's
 * work for a socket. Not used by the gateway's own layers. */
#ifndef TORO_GATEWAY_SERVER_H
#define TORO_GATEWAY_SERVER_H

#include <stdbool.h>

#include "gateway/conn.h"
#include "gateway/gateway.h"

/* The gateway's sockets (adopt a socketpair end here to drive it by hand). */
gw_conns_t *gw_server_conns(toro_gateway_t *gw);
/* Why: the harness has no event loop: does what one round does for c
 * after its input (the group commit) and once its socket is writable (flush,
 * then the input that waited for the output budget). Returns whether c is
 * still open (it may have been closed and freed). */
bool gw_server_pump(toro_gateway_t *gw, gw_conn_t *c);

#endif

/* commands.h: the subcommands of the toro binary. main.c parses the first
 * word and hands the rest of argv to one of these; each returns the process
 * exit status (0 ok, 1 failure, 2 usage error). */
#ifndef TORO_CLI_COMMANDS_H
#define TORO_CLI_COMMANDS_H

int toro_cmd_serve(int argc, char **argv); /* toro serve ... (cli/serve_cmd.c) */
int toro_cmd_kb(int argc, char **argv);    /* toro kb build|search|eval|info ... (cli/kb_cmd.c) */
int toro_cmd_ask(int argc, char **argv);   /* toro ask --kb FILE "question" (cli/kb_cmd.c) */
int toro_cmd_api(int argc, char **argv);    /* toro api --store postgres://.. --bus nats://.. (cli/api_cmd.c) */
int toro_cmd_worker(int argc, char **argv); /* toro worker process|notify ... (cli/worker_cmd.c) */
int toro_cmd_db(int argc, char **argv);     /* toro db migrate --store postgres://.. (cli/db_cmd.c) */

/* Distributed-mode wiring shared by `toro api` and `toro worker`
 * (cli/worker_cmd.c): PostgreSQL store, NATS bus and the outbox relay. */
#include <stddef.h>

#include "bus/bus.h"
#include "bus/relay.h"
#include "store/store.h"

typedef struct toro_dist {
    const char *store_url; /* borrowed: --store or env TORO_STORE */
    const char *bus_url;   /* borrowed: --bus or env TORO_BUS */
    toro_store_t *store;   /* owned after toro_dist_open */
    toro_bus_t *bus;       /* owned */
    toro_relay_t *relay;   /* owned */
} toro_dist_t;

void toro_dist_defaults(toro_dist_t *d);
/* Opens store, bus and relay; prints why on failure and returns an exit status. */
int toro_dist_open(toro_dist_t *d, const char *cmd);
void toro_dist_close(toro_dist_t *d);
/* The /healthz body of a worker in buf; returns 200 or 503. */
int toro_dist_health(toro_dist_t *d, char *buf, size_t cap);

#endif

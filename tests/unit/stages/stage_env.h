/* stage_env.h: the embedded backends the stage tests run on: a SQLite store
 * in a fresh temporary directory, the local bus on its outbox, and a stage
 * context with fast retries (1-2 ms). The test sets the answerer and the
 * post function. Header-only: each stage test includes it once. */
#ifndef TORO_TEST_STAGE_ENV_H
#define TORO_TEST_STAGE_ENV_H

#include <stdio.h>
#include <stdlib.h>

#include "bus/bus.h"
#include "stages/stages.h"
#include "store/store.h"

/* Opens store and bus under a new dir ("/tmp/<tag>-XXXXXX"; path is its
 * toro.db) and fills ctx with them; asserts on any failure. */
static inline void stage_env_open(const char *tag, char dir[64], char path[128], toro_store_t **store,
                                  toro_bus_t **bus, toro_stage_ctx_t *ctx)
{
    snprintf(dir, 64, "/tmp/%s-XXXXXX", tag);
    assert_non_null(mkdtemp(dir));
    snprintf(path, 128, "%s/toro.db", dir);
    char *err = NULL;
    assert_int_equal(toro_store_sqlite_open(path, TORO_DB_SYNC_NORMAL, store, &err), 0);
    assert_int_equal(toro_bus_local_open(toro_store_outbox(*store), 60000, bus, &err), 0);
    toro_stage_ctx_defaults(ctx);
    ctx->store = *store;
    ctx->bus = *bus;
    ctx->backoff_base_ms = 1;
    ctx->backoff_max_ms = 2;
}

/* Closes bus and store and removes dir. */
static inline void stage_env_close(const char *dir, toro_store_t *store, toro_bus_t *bus)
{
    toro_bus_close(bus);
    toro_store_close(store);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

#endif

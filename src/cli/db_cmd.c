/* db_cmd.c: `toro db migrate`: creates or upgrades the PostgreSQL schema of
 * the distributed mode. It is the only command that changes the schema; the
 * api and worker processes expect it to have run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/error.h"
#include "store/store.h"

static void db_usage(FILE *f)
{
    fprintf(f, "usage: toro db migrate [--store postgres://HOST:PORT/DB]   (env TORO_STORE)\n");
}

int toro_cmd_db(int argc, char **argv)
{
    const char *store = getenv("TORO_STORE");
    if (argc < 2 || strcmp(argv[1], "migrate") != 0) {
        db_usage(argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) ? stdout : stderr);
        return argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) ? 0 : 2;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--store") == 0 && i + 1 < argc) {
            store = argv[++i];
        } else {
            fprintf(stderr, "toro db migrate: unknown or incomplete option '%s'\n", argv[i]);
            db_usage(stderr);
            return 2;
        }
    }
    if (!store || (strncmp(store, "postgres://", 11) != 0 && strncmp(store, "postgresql://", 13) != 0)) {
        fprintf(stderr, "toro db migrate: --store postgres://... is required\n");
        return 2;
    }
    int from = 0, to = 0;
    char *err = NULL;
    int rc = toro_store_postgres_migrate(store, &from, &to, &err);
    if (rc) {
        fprintf(stderr, "toro db migrate: %s\n", err && *err ? err : toro_strerror(rc));
        free(err);
        return 1;
    }
    free(err);
    if (from == to)
        printf("schema is up to date (version %d)\n", to);
    else
        printf("schema migrated from version %d to %d\n", from, to);
    return 0;
}
